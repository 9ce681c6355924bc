"""The offline rendering as files and as a tree: the Kubernetes objects and Helm releases `make plan`
writes (secrets redacted, values assigned at `pulumi up` marked as such, in the same order every
run) and each component's resources."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from components.observability.values import sorted_keys
from ops.offline.engine import Rendering

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


def redacted(obj: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes object safe to write out: Secret values replaced."""
    if obj.get("kind") != "Secret":
        return obj
    out = dict(obj)
    for field in ("data", "stringData"):
        if field in out:
            out[field] = {k: "<redacted: Pulumi secret>" for k in out[field]}
    return out


def known(value: Any, invented: Mapping[str, str]) -> Any:
    """`value` with the mocks' stand-ins for what is assigned at `pulumi up` shown as such.

    A mock id (vpc-0f3c...) or ALB hostname in the plan would read as a real value; the whole
    word holding one becomes `<assigned by AWS>` (or `<assigned by Pulumi>` for auto-names).
    """
    if not invented:
        return value
    tokens = "|".join(re.escape(t) for t in sorted(invented, key=len, reverse=True))
    word = re.compile(rf"[A-Za-z0-9_.-]*({tokens})[A-Za-z0-9_.-]*", re.IGNORECASE)

    def mask(v: Any) -> Any:
        if isinstance(v, str):
            return word.sub(lambda m: f"<assigned by {invented[m.group(1).lower()]}>", v)
        if isinstance(v, Mapping):
            return {k: mask(x) for k, x in v.items()}
        if isinstance(v, list):
            return [mask(x) for x in v]
        return v

    return mask(value)


def _object_order(obj: dict[str, Any]) -> tuple:
    meta = obj.get("metadata") or {}
    return (obj.get("kind") != "Namespace", meta.get("namespace") or "", obj.get("kind"), meta.get("name") or "")


def manifests(rendering: Rendering) -> list[dict[str, Any]]:
    """Every plain object, Namespaces first, then by namespace, kind and name: the same order every run."""
    return sorted(
        (known(redacted(r.inputs), rendering.invented) for r in rendering.kubernetes_objects()), key=_object_order
    )


def helm_releases(rendering: Rendering) -> list[dict[str, Any]]:
    releases = [
        known(
            {
                "name": r.inputs.get("name"),
                "namespace": r.inputs.get("namespace"),
                "repository": (r.inputs.get("repositoryOpts") or {}).get("repo"),
                "chart": r.inputs.get("chart"),
                "version": r.inputs.get("version"),
                "values": sorted_keys(r.inputs.get("values")),
            },
            rendering.invented,
        )
        for r in rendering.of_type(HELM_RELEASE)
    ]
    return sorted(releases, key=lambda x: (x["namespace"] or "", x["name"] or ""))


def write_manifests(rendering: Rendering, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        out_dir / "kubernetes.yaml": manifests(rendering),
        out_dir / "helm-releases.yaml": helm_releases(rendering),
    }
    for path, docs in files.items():
        # Keys sorted: the engine hands mappings over in protobuf map order, not the program's.
        # (Sorted, apiVersion, kind, metadata come first anyway.) Documents are in URN order.
        path.write_text(yaml.safe_dump_all(docs, sort_keys=True, width=120))
    return list(files)


def resource_tree(rendering: Rendering) -> list[str]:
    """Each component and how many resources of each type it holds."""
    components = sorted(
        (r for r in rendering.resources if not r.type.startswith(("aws:", "kubernetes:", "pulumi:"))),
        key=lambda r: (r.type, r.name),
    )
    lines = []
    for comp in components:
        kinds = Counter(_kind(r.type) for r in rendering.resources if r.parent == comp.urn)
        inner = ", ".join(f"{n} {t}" for t, n in sorted(kinds.items()))
        lines.append(f"  {comp.type:<42} {comp.name:<34} {inner}")
    lines.append(f"  total: {len(rendering.resources)} resources")
    return lines


def _kind(type_token: str) -> str:
    """`aws:eks/cluster:Cluster` -> `Cluster`; a provider reads as `Provider(kubernetes)`."""
    if type_token.startswith("pulumi:providers:"):
        return f"Provider({type_token.rsplit(':', 1)[-1]})"
    return type_token.rsplit(":", 1)[-1]
