"""Kubernetes' matching rules, as the scheduler and the Prometheus operator apply them: label
selectors, node selectors and required node affinity, taints and tolerations (pure functions
over plain objects, for tests/test_chart_record.py)."""

from __future__ import annotations

from typing import Any

from ops.offline.engine import Rendering

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector; None selects nothing, {} everything."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def node_groups(rendering: Rendering) -> dict[str, dict[str, Any]]:
    """'gpu' and 'system': each rendered node group's labels (with the kubelet's own) and taints."""
    found = {}
    for g in rendering.of_type(NODE_GROUP):
        arch = "arm64" if "ARM" in g.inputs["amiType"] else "amd64"
        labels = {**g.inputs.get("labels", {}), "kubernetes.io/os": "linux", "kubernetes.io/arch": arch}
        effect = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
        taints = [{**t, "effect": effect[t["effect"]]} for t in g.inputs.get("taints") or []]
        found["gpu" if "NVIDIA" in g.inputs["amiType"] else "system"] = {"labels": labels, "taints": taints}
    return found


def tolerated(taint: dict[str, str], tolerations: list[dict[str, Any]]) -> bool:
    for t in tolerations or []:
        if t.get("effect") not in (None, "", taint["effect"]):
            continue
        if t.get("operator") == "Exists" and t.get("key") in (None, "", taint["key"]):
            return True
        if t.get("key") == taint["key"] and str(t.get("value", "")) == str(taint.get("value", "")):
            return True
    return False


def schedulable(pod: dict[str, Any], node: dict[str, Any]) -> bool:
    labels = node["labels"]
    if any(labels.get(k) != v for k, v in (pod.get("nodeSelector") or {}).items()):
        return False
    terms = pod.get("requiredNodeAffinity") or []
    if terms and not any(matches({"matchExpressions": t.get("matchExpressions")}, labels) for t in terms):
        return False
    return all(
        tolerated(t, pod.get("tolerations")) for t in node["taints"] if t["effect"] in ("NoSchedule", "NoExecute")
    )
