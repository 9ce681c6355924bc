"""The digests the chart images are pinned to, read from data/image-pins.json (`pinned`), where each
one is recorded with the chart values key that sets it and the public sources that tie it to its
tag. The chart values builders take digests only from here, so a digest lives in one place.
"""

from __future__ import annotations

import json
import re

from components.facts import DATA

PINS: dict = json.loads((DATA / "image-pins.json").read_text())
PINNED: dict[str, dict] = PINS["pinned"]
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def image(chart: tuple[str, str, str], values_key: str) -> str:
    """The one pinned image the chart (a components/facts/versions.py `*_CHART` pin) takes through
    `values_key` (`name:tag`, as the chart renders it)."""
    name = chart[1]
    found = [i for i, e in PINNED.items() if e["chart"] == name and e["values_key"] == values_key]
    if len(found) != 1:
        raise KeyError(f"{name} {values_key}: {len(found)} pinned images, expected one")
    return found[0]


def digest(pinned_image: str) -> str:
    """`sha256:<64 hex>`: the multi-arch index digest of that exact tag."""
    value = PINNED[pinned_image]["digest"]
    if not DIGEST.fullmatch(value):
        raise ValueError(f"{pinned_image}: {value!r} is not sha256:<64 hex>")
    return value


def sha(pinned_image: str) -> str:
    """The digest's hex alone: charts whose `image.sha` key they prefix with `@sha256:` themselves."""
    return digest(pinned_image).removeprefix("sha256:")


def tag_at_digest(pinned_image: str) -> str:
    """`<tag>@sha256:<hex>`: for charts that join `repository:tag` and have no digest key."""
    return f"{pinned_image.rsplit(':', 1)[1]}@{digest(pinned_image)}"


def tag_or_pinned(repository: str, tag: str) -> str:
    """`tag`, digest-pinned when `repository:tag` is pinned (an image chosen per Kubernetes version,
    some of whose tags have no recorded digest: data/image-pins.json lists those under not_pinned)."""
    ref = f"{repository}:{tag}"
    return tag_at_digest(ref) if ref in PINNED else tag
