"""Every image the stacks run is pinned by digest, or named, with its reason and the values key
that would pin it, in components/facts/data/image-pins.json. A chart bump that brings an image
nobody decided about fails here; so does a pin that does not render, a pin without a source or
with a malformed digest, and an entry for an image nothing renders any more."""

from __future__ import annotations

import functools
import json
import re

import pytest
from test_policies import STACKS, rendered

from components.aws import image_registry
from components.facts import DATA, image_pins, versions
from components.scaling import cluster_autoscaler

PINS = json.loads((DATA / "image-pins.json").read_text())
PINNED: dict[str, dict] = PINS["pinned"]
NOT_PINNED: dict[str, dict] = PINS["not_pinned"]
# <name>:<tag>@sha256:<64 hex>, the whole reference.
PINNED_REF = re.compile(r"[^@\s]+:[^:@/\s]+@sha256:[0-9a-f]{64}")


def _images_in(text: str) -> set[str]:
    """Containers' and operator-managed pods' `image`, and the config-reloader image the
    Prometheus operator adds to those pods (its `--prometheus-config-reloader` argument)."""
    return set(re.findall(r'"image": "([^"]+)"', text)) | set(
        re.findall(r'"--prometheus-config-reloader=([^"]+)"', text)
    )


@functools.cache
def chart_images() -> dict[str, set[str]]:
    """image -> the charts whose recorded rendering runs it."""
    found: dict[str, set[str]] = {}
    for path in sorted((DATA / "chart-record").glob("*.json")):
        for image in _images_in(path.read_text()):
            found.setdefault(image, set()).add(path.stem)
    return found


def _values_keys(chart: str) -> set[str]:
    keys = json.loads((DATA / "chart-values" / f"{chart}.json").read_text())["keys"]
    return set(keys) if isinstance(keys, dict) else {k if isinstance(k, str) else k["key"] for k in keys}


def manifest_images() -> set[str]:
    return {
        image
        for stack in STACKS
        for r in rendered(stack).kubernetes_objects()
        for image in _images_in(json.dumps(r.inputs))
    }


def test_every_chart_image_is_pinned_by_digest_or_named_with_its_reason() -> None:
    images = set(chart_images())
    by_tag_only = {image for image in images if not PINNED_REF.fullmatch(image)}
    assert by_tag_only == {image for image, entry in NOT_PINNED.items() if entry.get("rendered", True)}
    # Each digest-pinned image is one of the recorded pins, and each pin renders as exactly that.
    assert images - by_tag_only == {f"{image}@{entry['digest']}" for image, entry in PINNED.items()}


@pytest.mark.parametrize("image", sorted(PINNED))
def test_each_pin_is_an_index_digest_with_its_sources_and_values_key(image: str) -> None:
    entry = PINNED[image]
    assert "@" not in image and re.fullmatch(r"[^:]+(:\d+)?/[^:]+:[^:/]+", image), image
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", entry["digest"]), entry["digest"]
    assert entry["sources"], f"{image}: a pin needs the public sources that tie the digest to the tag"
    assert all(source.startswith("https://") and source.strip() for source in entry["sources"])
    assert entry["chart"] in chart_images()[f"{image}@{entry['digest']}"]
    assert entry["values_key"] in _values_keys(entry["chart"]), f"{entry['chart']} has no {entry['values_key']}"


@pytest.mark.parametrize("image", sorted(NOT_PINNED))
def test_each_unpinned_image_names_the_chart_key_that_would_pin_it(image: str) -> None:
    entry = NOT_PINNED[image]
    if entry.get("rendered", True):
        assert entry["chart"] in chart_images()[image]
    else:
        assert image not in chart_images()
    assert entry["values_key"] in _values_keys(entry["chart"]), f"{entry['chart']} has no {entry['values_key']}"
    assert entry["why"].strip()
    assert image not in PINNED


def test_every_cluster_autoscaler_image_is_decided() -> None:
    """The autoscaler's image follows the control plane's minor; a stack on a version the record
    does not render still runs a pinned image or one listed with its reason."""
    for tag in versions.CLUSTER_AUTOSCALER_IMAGE_TAGS.values():
        image = f"{cluster_autoscaler.IMAGE_REPOSITORY}:{tag}"
        assert (image in PINNED) != (image in NOT_PINNED), image
        expected = f"{tag}@{PINNED[image]['digest']}" if image in PINNED else tag
        assert image_pins.tag_or_pinned(cluster_autoscaler.IMAGE_REPOSITORY, tag) == expected


def test_a_malformed_digest_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    image = sorted(PINNED)[0]
    monkeypatch.setitem(image_pins.PINNED, image, {**PINNED[image], "digest": "sha256:" + "0" * 63})
    with pytest.raises(ValueError):
        image_pins.digest(image)
    monkeypatch.setitem(image_pins.PINNED, image, {**PINNED[image], "digest": "0" * 64})
    with pytest.raises(ValueError):
        image_pins.tag_at_digest(image)


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
