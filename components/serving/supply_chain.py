"""Supply-chain rules: what code and which image a stack may run.

Pure functions, so the settings layer calls them (one line) and tests call them directly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from components.aws import image_registry
from components.facts import versions
from components.weights import staging

PROJECT = "minimax-vllm"
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
REMOTE_CODE_FLAG = "--trust-remote-code"


def remote_code_revision_problems(
    production: bool, argv: Sequence[str], model: str, revision: str | None, environment: str = "prod"
) -> list[str]:
    """With --trust-remote-code the model repository's Python runs in the pod: a production stack
    (`Settings.is_production`) must pin that repository to one commit, or a push to the Hub changes
    what runs on next restart."""
    if not production or REMOTE_CODE_FLAG not in argv:
        return []
    if revision and COMMIT_SHA.fullmatch(revision):
        return []
    return [
        f"{PROJECT}:serving.revision = {revision!r} must be a 40-hex Hugging Face commit sha in a "
        f"{environment} stack, because {REMOTE_CODE_FLAG} runs {model}'s own code in the pod (a branch or "
        "tag can move). Fix: pulumi config set --path 'serving.revision' <commit sha from "
        f"`hf api` or https://huggingface.co/{model}/commits/main>"
    ]


def pinned_image(image: str, digests: dict[str, str] | None = None) -> str:
    """`repo:tag@sha256:...` when a digest is recorded for that tag of the pinned repository,
    else the image unchanged (preflight refuses that for prod stacks)."""
    recorded = versions.VLLM_IMAGE_DIGESTS if digests is None else digests
    repository, _, tag = image.partition(":")
    digest = recorded.get(tag) if repository == versions.VLLM_IMAGE_REPOSITORY else None
    return f"{image}@{digest}" if digest else image


def vllm_image(image: str, registry: image_registry.Registry | None) -> str:
    """The pinned image as the pods pull it: from the stack's in-region copy (by digest once
    recorded: `python -m ops image copy` copies exactly that digest), or upstream without a registry."""
    pinned = pinned_image(image)
    if registry is None:
        return pinned
    repository, _, rest = pinned.partition(":")
    if repository != versions.VLLM_IMAGE_REPOSITORY:
        raise ValueError(f"{image}: only {versions.VLLM_IMAGE_REPOSITORY} is mirrored into the stack's registry")
    return f"{registry.url(image_registry.VLLM)}:{rest}"


def stager_image(registry: image_registry.Registry) -> str:
    """The stager image in the stack's registry, tagged with the hash of what it is built from
    (images/stage-weights/): a change to the Dockerfile or its pins is a new, immutable tag."""
    return f"{registry.url(image_registry.STAGER)}:{staging.image_tag()}"
