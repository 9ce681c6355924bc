"""Supply-chain rules: which image and which model code may run (pinned tags and chart versions;
a prod stack that trusts remote code pins the model revision to a commit)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .common import (
    COMMIT_SHA,
    REMOTE_CODE_FLAG,
    STRICT_ENVIRONMENTS,
    Props,
    _containers,
    _image_problem,
    _map,
    _seq,
    _workload,
    _workloads_by_kind,
)


def pinned_images(resource_type: str, props: Props) -> list[str]:
    """A moving tag changes what runs without a diff in `pulumi preview`; Helm charts likewise."""
    if resource_type in ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart"):
        version = props.get("version")
        if not isinstance(version, str) or not version.strip():
            return [f"Helm chart {props.get('chart')!r} has no pinned version"]
        if re.search(r"[\^~*<>|=]|\s-\s|(^|\.)[xX*](\.|$)|^latest$", version.strip()):
            return [f"Helm chart {props.get('chart')!r} version {version!r} is a range, not a pinned version"]
        return []
    workload = _workload(resource_type, props)
    if workload is None:
        return []
    what, _, spec = workload
    problems = []
    for container in _containers(spec):
        problem = _image_problem(container.get("image"))
        if problem:
            problems.append(f"{what} container {container.get('name')!r} {problem}")
    return problems


def _environment(resources: Sequence[tuple[str, Props]]) -> str | None:
    """The stack's `environment` tag, from its EKS cluster."""
    for resource_type, props in resources:
        if resource_type == "aws:eks/cluster:Cluster":
            return _map(props.get("tags")).get("environment")
    return None


def _revision(argv: Sequence[Any]) -> str | None:
    items = [str(a) for a in argv]
    for i, item in enumerate(items):
        if item == "--revision" and i + 1 < len(items):
            return items[i + 1]
        if item.startswith("--revision="):
            return item.split("=", 1)[1]
    return None


def pinned_revision_with_remote_code(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """In a prod stack, a container that runs the model repository's code (--trust-remote-code)
    pins that repository with --revision <40-hex commit>."""
    if _environment(resources) not in STRICT_ENVIRONMENTS:
        return []
    problems = []
    for what, _, _, spec in _workloads_by_kind(resources):
        for container in _containers(spec):
            argv = [*_seq(container.get("command")), *_seq(container.get("args"))]
            if REMOTE_CODE_FLAG not in argv:
                continue
            revision = _revision(argv)
            if not (revision and COMMIT_SHA.fullmatch(revision)):
                problems.append(
                    f"{what} container {container.get('name')!r} passes {REMOTE_CODE_FLAG} with --revision {revision!r}, not a 40-hex commit"
                )
    return problems
