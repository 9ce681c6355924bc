"""Who reaches what in monitoring, keda and nvidia-device-plugin, computed from the rendered
NetworkPolicies and the pods that run (the stack's own, and the pinned charts' as
components/facts/data/chart-record/ holds them).

Kubernetes' rules: a pod selected by no policy of a direction is open that way; otherwise a
connection needs an ingress rule of the target's policies and an egress rule of the source's.
Prometheus and Alertmanager answer anyone who reaches them (no credentials), so who reaches
their ports is who may read metrics and silence alerts.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import pytest

from components.facts import keda_chart, scraper
from components.kubernetes import network_policy
from components.observability import network as monitoring
from components.observability import values as obs
from ops.charts import record as chart_record
from ops.offline.manifests import helm_releases

STACKS = chart_record.stack_names()
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
POD_TEMPLATES = ("Deployment", "Job", "StatefulSet", "DaemonSet")
FENCED = ("monitoring", "node-metrics", "keda", "nvidia-device-plugin")
NS_LABEL = network_policy.NAMESPACE_NAME_LABEL


@dataclass(frozen=True)
class Pod:
    who: str
    namespace: str
    labels: dict[str, str]
    ports: tuple[int, ...] = ()
    names: dict[str, int] = field(default_factory=dict)  # named container ports


def _selector(svc: dict[str, Any]) -> dict[str, str]:
    return dict(svc["selector"])


@functools.cache
def rendered(stack: str):
    return chart_record.rendering(stack)


def chart_objects(stack: str) -> list[dict[str, Any]]:
    found = []
    for rel in helm_releases(rendered(stack)):
        (variant,) = [v for v in chart_record.load(rel["chart"])["variants"] if stack in v["stacks"]]
        found += variant["objects"]
    return found


def pods(stack: str) -> list[Pod]:
    """Every pod: the charts', the operator's Prometheus and Alertmanager (labels of the Services
    the chart selects them by, ports of those Services), the stack's, and three strangers."""
    found = []
    objects = chart_objects(stack)
    for o in objects:
        if "pod" in o:
            containers = o["pod"]["containers"]
            names = {p["name"]: p["containerPort"] for c in containers for p in c["ports"] if p["name"]}
            ports = tuple(p["containerPort"] for c in containers for p in c["ports"])
            found.append(Pod(f"{o['kind']} {o['name']}", o["namespace"], o["pod"]["labels"], ports, names))
    services = {(o["namespace"], o["name"]): o for o in objects if o["kind"] == "Service"}
    for kind, service in (("Prometheus", obs.PROMETHEUS_SERVICE), ("Alertmanager", obs.ALERTMANAGER_SERVICE)):
        svc = services.get((obs.NAMESPACE, service))
        if svc:
            ports = tuple(p["port"] for p in svc["ports"])  # targetPort is the same number or a name for it
            names = {p["targetPort"]: p["port"] for p in svc["ports"] if isinstance(p["targetPort"], str)}
            found.append(Pod(kind, obs.NAMESPACE, _selector(svc), ports, names))
    for o in rendered(stack).kubernetes_objects():
        if o.inputs["kind"] in POD_TEMPLATES:
            t = o.inputs["spec"]["template"]
            ports = tuple(p["containerPort"] for c in t["spec"]["containers"] for p in c.get("ports") or [])
            found.append(
                Pod(
                    f"{o.inputs['kind']} {o.inputs['metadata']['name']}",
                    o.inputs["metadata"]["namespace"],
                    t["metadata"]["labels"],
                    ports,
                )
            )
    return found + list(STRANGERS)


STRANGERS = (
    Pod("a debug pod in monitoring", "monitoring", {"run": "debug"}),
    Pod("a debug pod in keda", "keda", {"run": "debug"}),
    Pod("any pod of any namespace", "default", {"app": "curious"}),
)


def scales(stack: str) -> bool:
    return any(rel["chart"] == "keda" for rel in helm_releases(rendered(stack)))


def selects(selector: dict | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def policies(stack: str) -> list[dict[str, Any]]:
    return [p.inputs for p in rendered(stack).of_type(NETPOL)]


def _peer_has(peer: dict, home: str, pod: Pod) -> bool:
    if "ipBlock" in peer:
        return False  # pods are judged by label; address rules are checked on their own
    ns_ok = (
        pod.namespace == home
        if "namespaceSelector" not in peer
        else selects(peer["namespaceSelector"], {NS_LABEL: pod.namespace})
    )
    return ns_ok and selects(peer.get("podSelector") or {}, pod.labels)


def _port_ok(rule: dict, port: int, pod: Pod) -> bool:
    ports = rule.get("ports") or []
    return not ports or any(p.get("port") in (None, port) or pod.names.get(p.get("port")) == port for p in ports)


def _direction(stack: str, pod: Pod, kind: str) -> list[dict]:
    return [
        p
        for p in policies(stack)
        if p["metadata"]["namespace"] == pod.namespace
        and selects(p["spec"]["podSelector"], pod.labels)
        and kind in p["spec"]["policyTypes"]
    ]


def reaches(stack: str, source: Pod, target: Pod, port: int) -> bool:
    """Whether `source` may open a connection to `target` on `port`."""
    ingress = _direction(stack, target, "Ingress")
    admitted = not ingress or any(
        _port_ok(rule, port, target)
        and (not rule.get("from") or any(_peer_has(peer, p["metadata"]["namespace"], source) for peer in rule["from"]))
        for p in ingress
        for rule in p["spec"].get("ingress") or []
    )
    egress = _direction(stack, source, "Egress")
    sent = not egress or any(
        _port_ok(rule, port, target)
        and (not rule.get("to") or any(_peer_has(peer, p["metadata"]["namespace"], target) for peer in rule["to"]))
        for p in egress
        for rule in p["spec"].get("egress") or []
    )
    return admitted and sent


def admits_from_anywhere(stack: str, target: Pod, port: int) -> bool:
    """Whether an address rule (or a rule with no peers) lets any source in on `port`."""
    return not _direction(stack, target, "Ingress") or any(
        _port_ok(rule, port, target) and (not rule.get("from") or any("ipBlock" in peer for peer in rule["from"]))
        for p in _direction(stack, target, "Ingress")
        for rule in p["spec"].get("ingress") or []
    )


def one(stack: str, who: str) -> Pod:
    (pod,) = [p for p in pods(stack) if p.who == who]
    return pod


# --- the tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_each_fenced_namespace_denies_by_default(stack):
    present = {p.namespace for p in pods(stack) if p not in STRANGERS} & set(FENCED)
    assert "nvidia-device-plugin" in present
    for namespace in present:
        deny = [
            p
            for p in policies(stack)
            if p["metadata"]["namespace"] == namespace
            and p["spec"]["podSelector"] == {}
            and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
        ]
        assert deny, f"namespace {namespace} has no default-deny NetworkPolicy"


@pytest.mark.parametrize("stack", STACKS)
def test_only_grafana_keda_and_prometheus_reach_prometheus_and_only_prometheus_reaches_alertmanager(stack):
    everyone = pods(stack)
    prometheus = one(stack, "Prometheus")
    assert not admits_from_anywhere(stack, prometheus, obs.PROMETHEUS_PORT)
    got = sorted(p.who for p in everyone if p != prometheus and reaches(stack, p, prometheus, obs.PROMETHEUS_PORT))
    expected = ["Deployment grafana"] + (["Deployment keda-operator"] if scales(stack) else [])
    assert got == expected, f"these reach Prometheus' API: {got}"
    alertmanagers = [p for p in everyone if p.who == "Alertmanager"]
    for am in alertmanagers:
        assert not admits_from_anywhere(stack, am, obs.ALERTMANAGER_PORT)
        got = sorted(p.who for p in everyone if reaches(stack, p, am, obs.ALERTMANAGER_PORT))
        assert got == ["Prometheus"], f"these reach Alertmanager's API (silences): {got}"


@pytest.mark.parametrize("stack", STACKS)
def test_every_scrape_of_the_fenced_namespaces_still_gets_through(stack):
    """Each ServiceMonitor's Service, its port's target, and the pods behind it: Prometheus reaches them."""
    objects = chart_objects(stack)
    everyone = pods(stack)
    prometheus = one(stack, "Prometheus")
    services = [o for o in objects if o["kind"] == "Service" and o["namespace"] in FENCED]
    checked = 0
    for monitor in (o for o in objects if o["kind"] == "ServiceMonitor"):
        for svc in services:
            if not selects(monitor["selector"], svc["labels"]):
                continue
            backends = [
                p
                for p in everyone
                if p.namespace == svc["namespace"] and selects({"matchLabels": svc["selector"]}, p.labels)
            ]
            for endpoint in monitor["endpoints"]:
                (port,) = [p for p in svc["ports"] if p["name"] == endpoint["port"]]
                for pod in backends:
                    target = port["targetPort"]
                    number = pod.names.get(target, port["port"]) if isinstance(target, str) else target
                    assert reaches(stack, prometheus, pod, number), (
                        f"{monitor['name']}: Prometheus cannot scrape {pod.who}:{number}"
                    )
                    checked += 1
    assert checked >= 7


@pytest.mark.parametrize("stack", STACKS)
def test_the_paths_the_stack_needs_are_open(stack):
    everyone = pods(stack)
    prometheus = one(stack, "Prometheus")
    assert reaches(stack, one(stack, "Deployment grafana"), prometheus, obs.PROMETHEUS_PORT)
    if scales(stack):
        operator = one(stack, "Deployment keda-operator")
        assert reaches(stack, operator, prometheus, obs.PROMETHEUS_PORT), "KEDA's Prometheus triggers are cut"
        server = one(stack, "Deployment keda-operator-metrics-apiserver")
        assert reaches(stack, server, operator, keda_chart.OPERATOR_GRPC_PORT)
        for pod, port in (
            (server, keda_chart.METRICS_APISERVER_PORT),
            (one(stack, "Deployment keda-admission-webhooks"), keda_chart.WEBHOOKS_PORT),
        ):
            assert port in pod.ports and admits_from_anywhere(stack, pod, port), "the control plane cannot call it"
        assert not reaches(stack, one(stack, "any pod of any namespace"), operator, keda_chart.OPERATOR_GRPC_PORT)
    for am in (p for p in everyone if p.who == "Alertmanager"):
        assert reaches(stack, prometheus, am, obs.ALERTMANAGER_PORT)
    operator = one(stack, "Deployment kps-operator")
    assert monitoring.OPERATOR_PORT in operator.ports and admits_from_anywhere(
        stack, operator, monitoring.OPERATOR_PORT
    )


def _egress_peers(stack: str, pod: Pod) -> list[dict]:
    return [
        peer | {"ports": rule.get("ports")}
        for p in _direction(stack, pod, "Egress")
        for rule in p["spec"].get("egress") or []
        for peer in rule.get("to") or [{}]
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_the_exporters_send_nothing_and_only_aws_callers_reach_the_pod_identity_agent(stack):
    for who in ("DaemonSet kube-prometheus-stack-prometheus-node-exporter", "DaemonSet dcgm-exporter"):
        pod = one(stack, who)
        assert _direction(stack, pod, "Egress") and not _egress_peers(stack, pod), f"{who} may send"
    agent = network_policy.POD_IDENTITY_AGENT
    callers = set()
    for pod in (p for p in pods(stack) if p.namespace in FENCED):
        for peer in _egress_peers(stack, pod):
            cidr = (peer.get("ipBlock") or {}).get("cidr")
            ports = {p["port"] for p in peer["ports"] or []}
            if cidr == agent:
                callers.add(pod.who)
            elif cidr is not None:
                assert ports and network_policy.POD_IDENTITY_PORT not in ports, f"{pod.who} may send to {cidr}:{ports}"
    assert callers <= {"Prometheus", "Deployment grafana", "Deployment keda-operator"}, callers


def test_the_labels_and_ports_the_policies_name_are_the_charts():
    """Every selector of the three namespaces' policies picks a pod the charts render, and every
    port it admits is one of that pod's ports."""
    stack = "dev"
    everyone = pods(stack)
    for p in policies(stack):
        ns = p["metadata"]["namespace"]
        if ns not in FENCED or p["spec"]["podSelector"] == {} and not p["spec"].get("ingress"):
            continue
        chosen = [pod for pod in everyone if pod.namespace == ns and selects(p["spec"]["podSelector"], pod.labels)]
        assert chosen, f"NetworkPolicy {ns}/{p['metadata']['name']} selects no pod"
        for rule in p["spec"].get("ingress") or []:
            for port in rule.get("ports") or []:
                assert all(port["port"] in pod.ports for pod in chosen), (p["metadata"]["name"], port, chosen)
    assert scraper.NAMESPACE == monitoring.NAMESPACE
