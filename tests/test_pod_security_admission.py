"""Every namespace of every stack enforces a Pod Security level, and each level is the strictest
one that admits the pods that run there.

The pods: the stack's own rendered pod templates and, for each Helm release, the pods the
pinned chart renders for the stack's values (components/facts/data/chart-record/). kube-system
also runs EKS's own add-ons, which no release of the stack renders: aws-node stands for them.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from components.facts import versions
from components.kubernetes import pod_security_admission as psa
from ops.charts import record as chart_record
from ops.offline.manifests import helm_releases
from tests import pss

STACKS = chart_record.stack_names()
POD_TEMPLATES = ("Deployment", "Job", "StatefulSet", "DaemonSet", "ReplicaSet")
NAMESPACE_PATCH = "kubernetes:core/v1:NamespacePatch"
# The VPC CNI's node agent in kube-system: hostNetwork, hostPath volumes and a privileged init
# container (eks-charts stable/aws-vpc-cni 1.22.4, templates/daemonset.yaml and values.yaml
# `init.securityContext.privileged: true`).
AWS_NODE = {
    "security": {
        "hostNetwork": True,
        "securityContext": {},
        "volumes": [{"name": "cni-bin-dir", "type": "hostPath", "path": "/opt/cni/bin"}],
    },
    "containers": [{"name": "aws-vpc-cni-init", "securityContext": {"privileged": True}, "hostPorts": []}],
}
# The Prometheus and Alertmanager pods the operator creates from its custom resources (no chart
# template renders them): the pod securityContext is the chart's prometheusSpec / alertmanagerSpec
# default (kube-prometheus-stack 88.5.3 values.yaml: runAsNonRoot, seccompProfile RuntimeDefault),
# the containers' is the operator's own (prometheus-operator v0.93 pkg/prometheus/server/statefulset.go,
# pkg/alertmanager/statefulset.go, pkg/operator/config_reloader.go: no privilege escalation,
# capabilities drop ALL), the volumes emptyDir, Secrets and ConfigMaps.
OPERATOR_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
OPERATOR_POD = {
    "security": {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": [
            {"name": n, "type": t} for n, t in (("db", "emptyDir"), ("config", "secret"), ("rules", "configMap"))
        ],
    },
    "containers": [
        {"name": c, "securityContext": dict(OPERATOR_CONTAINER), "hostPorts": []}
        for c in ("init-config-reloader", "config-reloader", "main")
    ],
}
OUTSIDE_THE_STACK = {
    "kube-system": [("DaemonSet aws-node (EKS add-on vpc-cni)", AWS_NODE)],
    "monitoring": [
        ("StatefulSet prometheus (prometheus-operator)", OPERATOR_POD),
        ("StatefulSet alertmanager (prometheus-operator)", OPERATOR_POD),
    ],
}


@functools.cache
def rendered(stack: str):
    return chart_record.rendering(stack)


def namespace_labels(stack: str) -> dict[str, dict[str, str] | None]:
    """Every namespace the stack creates, patches, installs into or puts an object in: its labels
    (None when the stack sets none)."""
    r = rendered(stack)
    found: dict[str, dict[str, str] | None] = {rel["namespace"]: None for rel in helm_releases(r)}
    for o in r.kubernetes_objects():
        meta = o.inputs["metadata"]
        if o.inputs["kind"] == "Namespace":
            found[meta["name"]] = dict(meta.get("labels") or {})
        elif meta.get("namespace"):
            found.setdefault(meta["namespace"], None)
    for patch in r.of_type(NAMESPACE_PATCH):
        found[patch.inputs["metadata"]["name"]] = dict(patch.inputs["metadata"].get("labels") or {})
    return found


def pods(stack: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """namespace -> (who, pod) for every pod that runs there."""
    found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for o in rendered(stack).kubernetes_objects():
        if o.inputs["kind"] in POD_TEMPLATES:
            meta = o.inputs["metadata"]
            who = f"{o.inputs['kind']} {meta['name']}"
            found.setdefault(meta["namespace"], []).append((who, pss.pod(o.inputs["spec"]["template"]["spec"])))
    for rel in helm_releases(rendered(stack)):
        (variant,) = [v for v in chart_record.load(rel["chart"])["variants"] if stack in v["stacks"]]
        for o in variant["objects"]:
            if "pod" in o:
                found.setdefault(o["namespace"], []).append((f"{rel['chart']}: {o['kind']} {o['name']}", o["pod"]))
    for namespace, outside in OUTSIDE_THE_STACK.items():
        if namespace in found:
            found[namespace] += outside
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_every_namespace_enforces_warns_and_audits_a_pinned_pod_security_level(stack):
    namespaces = namespace_labels(stack)
    assert {"minimax-vllm", "kube-system", "nvidia-device-plugin"} <= set(namespaces)
    if "monitoring" in namespaces:  # the exporters that read the node run apart
        assert namespaces["monitoring"]["pod-security.kubernetes.io/enforce"] == psa.RESTRICTED
        assert namespaces["node-metrics"]["pod-security.kubernetes.io/enforce"] == psa.PRIVILEGED
    for namespace, labels in sorted(namespaces.items()):
        assert labels is not None, f"namespace {namespace} gets no Pod Security labels from the stack"
        level = labels.get("pod-security.kubernetes.io/enforce")
        assert level in psa.LEVELS, f"namespace {namespace} enforces no Pod Security level: {labels}"
        for mode in psa.MODES:
            assert labels.get(f"pod-security.kubernetes.io/{mode}") == level, (namespace, mode)
            assert labels.get(f"pod-security.kubernetes.io/{mode}-version") == psa.VERSION, (namespace, mode)


@pytest.mark.parametrize("stack", STACKS)
def test_each_namespace_level_is_the_strictest_that_admits_its_pods(stack):
    labels = namespace_labels(stack)
    for namespace, running in sorted(pods(stack).items()):
        level = (labels[namespace] or {})["pod-security.kubernetes.io/enforce"]
        refused = {who: pss.violations(p, level) for who, p in running if pss.violations(p, level)}
        assert not refused, f"{namespace} enforces {level}, which refuses: {refused}"
        strictest = min((pss.strictest(p) for _, p in running), key=psa.LEVELS.index)
        assert level == strictest, (
            f"{namespace} enforces {level}, but every pod there passes {strictest}: "
            + ", ".join(f"{who} ({pss.strictest(p)})" for who, p in running)
        )


def test_the_levels_found_and_why():
    """The levels as docs/security.md states them: keda and monitoring run at restricted; the rest
    need hostPath (the cache, the device plugin's kubelet socket, node-exporter's /proc /sys /)."""
    running = pods("dev")  # dev scales with KEDA: every namespace is there
    why = {
        ns: sorted({v.split(" (")[0] for _, p in found for v in pss.baseline_violations(p)})
        for ns, found in running.items()
    }
    assert why["keda"] == [] and all(not pss.restricted_violations(p) for _, p in running["keda"])
    assert any(v.startswith("hostPath volume cache") for v in why["minimax-vllm"]), why["minimax-vllm"]
    assert all(not pss.restricted_violations(p) for _, p in running["monitoring"]), why["monitoring"]
    assert "hostPID" in why["node-metrics"] and any("SYS_ADMIN" in v for v in why["node-metrics"])
    assert any("device-plugins" in v for _, p in running["nvidia-device-plugin"] for v in pss.baseline_violations(p))


def test_the_node_exporter_uses_its_own_network_namespace_on_every_stack():
    for stack in STACKS:
        (variant,) = [v for v in chart_record.load("kube-prometheus-stack")["variants"] if stack in v["stacks"]]
        (exporter,) = [o for o in variant["objects"] if o["kind"] == "DaemonSet" and "node-exporter" in o["name"]]
        assert exporter["pod"]["security"]["hostNetwork"] is False, stack


def test_the_pinned_standards_version_is_no_newer_than_any_cluster_a_stack_may_run():
    """An API server evaluates a version newer than itself as its own latest: the pin would not hold."""
    pinned = tuple(int(x) for x in psa.VERSION.lstrip("v").split("."))
    assert all(pinned <= tuple(int(x) for x in v.split(".")) for v in versions.EKS_ADDON_VERSIONS)


def test_the_checker_refuses_what_each_level_forbids():
    """The checker itself: each rule it knows, on a pod that breaks only that rule."""
    clean = {
        "security": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "s", "type": "secret"}],
        },
        "containers": [
            {
                "name": "c",
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                "hostPorts": [],
            }
        ],
    }
    assert pss.strictest(clean) == psa.RESTRICTED

    def broken(change) -> dict:
        import copy

        p = copy.deepcopy(clean)
        change(p)
        return p

    baseline_breaks = [
        lambda p: p["security"].update(hostNetwork=True),
        lambda p: p["security"].update(hostPID=True),
        lambda p: p["security"]["volumes"].append({"name": "h", "type": "hostPath", "path": "/etc"}),
        lambda p: p["containers"][0]["securityContext"].update(privileged=True),
        lambda p: p["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
        lambda p: p["containers"][0].update(hostPorts=[9100]),
    ]
    for change in baseline_breaks:
        assert pss.strictest(broken(change)) == psa.PRIVILEGED
    restricted_breaks = [
        lambda p: p["security"]["securityContext"].pop("runAsNonRoot"),
        lambda p: p["security"]["securityContext"].pop("seccompProfile"),
        lambda p: p["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"),
        lambda p: p["containers"][0]["securityContext"]["capabilities"].update(drop=[]),
        lambda p: p["security"]["volumes"].append({"name": "n", "type": "nfs"}),
    ]
    for change in restricted_breaks:
        assert pss.strictest(broken(change)) == psa.BASELINE
