"""Every image the stacks run is pinned by digest, or named, with its reason and the values key
that would pin it, in components/facts/data/image-pins.json. A chart bump that brings an image
nobody decided about fails here; so does an entry for an image nothing renders any more."""

from __future__ import annotations

import functools
import json
import re

import pytest
from test_policies import STACKS, rendered

from components.aws import image_registry
from components.facts import DATA, versions

PINS = json.loads((DATA / "image-pins.json").read_text())
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _images_in(text: str) -> set[str]:
    return set(re.findall(r'"image": "([^"]+)"', text))


@functools.cache
def chart_images() -> dict[str, set[str]]:
    """image -> the charts whose recorded rendering runs it."""
    found: dict[str, set[str]] = {}
    for path in sorted((DATA / "chart-record").glob("*.json")):
        for image in _images_in(path.read_text()):
            found.setdefault(image, set()).add(path.stem)
    return found


def manifest_images() -> set[str]:
    return {
        image
        for stack in STACKS
        for r in rendered(stack).kubernetes_objects()
        for image in _images_in(json.dumps(r.inputs))
    }


def test_every_chart_image_is_pinned_by_digest_or_named_with_its_reason() -> None:
    unpinned = {image for image in chart_images() if not DIGEST.search(image)}
    assert unpinned == set(PINS["not_pinned"])


@pytest.mark.parametrize("image", sorted(PINS["not_pinned"]))
def test_each_unpinned_image_names_the_chart_key_that_would_pin_it(image: str) -> None:
    entry = PINS["not_pinned"][image]
    assert entry["chart"] in chart_images()[image]
    keys = json.loads((DATA / "chart-values" / f"{entry['chart']}.json").read_text())["keys"]
    names = set(keys) if isinstance(keys, dict) else {k if isinstance(k, str) else k["key"] for k in keys}
    assert entry["values_key"] in names, f"{entry['chart']} has no values key {entry['values_key']}"
    assert entry["why"].strip()


def test_the_stacks_own_images_come_only_from_its_own_immutable_repositories() -> None:
    """The program's own objects pull only from the stack's ECR repositories (immutable tags): the
    vLLM copy (its digest recorded by preflight), the stager (a content-hash tag) and the router."""
    own = manifest_images()
    repositories = {image.split("@")[0].rsplit(":", 1)[0] for image in own}
    allowed = re.compile(
        rf"\d{{12}}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/{image_registry.PREFIX}/[a-z0-9-]+/"
        rf"({'|'.join(image_registry.IMAGES)})"
    )
    assert all(allowed.fullmatch(r) for r in repositories), sorted(repositories)
    assert image_registry.TAG_MUTABILITY == "IMMUTABLE"
    assert PINS["vllm"]["how"] and PINS["vllm"]["why"]


def test_eks_add_ons_are_pinned_to_exact_builds() -> None:
    assert PINS["eks_managed_addons"]["why"]
    for addons in versions.EKS_ADDON_VERSIONS.values():
        for name, version in addons.items():
            assert re.fullmatch(r"v\d+\.\d+\.\d+-eksbuild\.\d+", version), (name, version)
