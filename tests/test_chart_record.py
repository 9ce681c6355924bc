"""What the stacks rely on, checked against what the pinned charts really render.

components/facts/data/chart-record/ holds, per chart, the objects `helm template` renders for the
values each stack passes (`make chart-record`, ops/charts/record.py). These tests tie the
stacks' addresses, monitors, DCGM fields, Pod Identity associations and node placement to
those objects, so a name, port, label or toleration that only a real cluster would reject
fails here instead.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import pytest
import yaml

from components.facts import versions
from components.observability import alerts, dashboards
from components.observability import values as obs
from components.serving import routing
from components.settings.observability import ObservabilitySettings
from ops.charts import record as chart_record
from ops.charts.record import PINS, load, stack_names, values_sha256
from ops.endpoint_checks import metrics as metrics_check
from ops.offline.engine import Rendering
from ops.offline.manifests import helm_releases
from tests.kube_match import matches, node_groups, schedulable, strings

STACKS = stack_names()
ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
REGENERATE = "run `make chart-record` (docs/charts.md) and commit components/facts/data/chart-record/"
# Versions the record could not be made from yet: chart -> why. Each is an expected failure of
# test_the_record_is_of_the_pinned_version until the record is generated again.
RENDERED_FROM_ANOTHER_VERSION = {
    "nvidia-device-plugin": "the source fetched for the record had no v0.20.1 tag; it is of v0.20.0",
}
# The chart workloads that call AWS APIs, so need a Pod Identity association: chart -> workload.
AWS_CALLERS = {
    "aws-load-balancer-controller": "aws-load-balancer-controller",
    "cluster-autoscaler": "cluster-autoscaler-aws-cluster-autoscaler",
    "keda": "keda-operator",  # the wake trigger reads CloudWatch (TriggerAuthentication podIdentity aws)
}
# DaemonSets that must run on every GPU node and nowhere else, and those that must run on every node.
GPU_ONLY_DAEMONSETS = {("nvidia-device-plugin", "nvidia-device-plugin"), ("dcgm-exporter", "dcgm-exporter")}
EVERY_NODE_DAEMONSETS = {("kube-prometheus-stack", "kube-prometheus-stack-prometheus-node-exporter")}


@functools.cache
def rendered(stack: str) -> Rendering:
    return chart_record.rendering(stack)


@functools.cache
def releases(stack: str) -> tuple[dict[str, Any], ...]:
    return tuple(helm_releases(rendered(stack)))


@functools.cache
def record(chart: str) -> dict[str, Any]:
    return load(chart)


def variant(chart: str, stack: str) -> dict[str, Any]:
    found = [v for v in record(chart)["variants"] if stack in v["stacks"]]
    assert found, f"components/facts/data/chart-record/{chart}.json has nothing for stack {stack}: {REGENERATE}"
    return found[0]


def chart_objects(stack: str) -> list[tuple[str, dict[str, Any]]]:
    """(chart, object) for every object the stack's releases render."""
    return [(rel["chart"], o) for rel in releases(stack) for o in variant(rel["chart"], stack)["objects"]]


def stack_objects(stack: str) -> list[dict[str, Any]]:
    return [o.inputs for o in rendered(stack).kubernetes_objects()]


# --- the record is of these values and these versions ---------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_the_record_is_of_the_values_each_stack_passes(stack):
    installed = set()
    for rel in releases(stack):
        chart = rel["chart"]
        installed.add(chart)
        rec = record(chart)
        assert rec["format"] == chart_record.FORMAT
        assert rec["chart"]["pinned_version"] == rel["version"], f"{chart} pin moved to {rel['version']}: {REGENERATE}"
        assert (rec["release"]["name"], rec["release"]["namespace"]) == (rel["name"], rel["namespace"]), REGENERATE
        assert variant(chart, stack)["values_sha256"] == values_sha256(rel["values"]), (
            f"stack {stack} passes other values to {chart} than the record was made from: {REGENERATE}"
        )
    stale = {c for c in PINS if any(stack in v["stacks"] for v in record(c)["variants"])} - installed
    assert not stale, f"the record still lists {stack} for {sorted(stale)}: {REGENERATE}"


@pytest.mark.parametrize(
    "chart",
    [
        pytest.param(c, marks=pytest.mark.xfail(reason=RENDERED_FROM_ANOTHER_VERSION[c], strict=True))
        if c in RENDERED_FROM_ANOTHER_VERSION
        else c
        for c in sorted(PINS)
    ],
)
def test_the_record_is_of_the_pinned_version(chart):
    rec = record(chart)["chart"]
    assert rec["rendered_version"] == rec["pinned_version"] == PINS[chart][2]


# --- addresses --------------------------------------------------------------------------------

SVC_URL = re.compile(r"(?:(https?)://)?([a-z0-9][-a-z0-9]*)\.([a-z0-9][-a-z0-9]*)\.svc(?:\.cluster\.local)?(?::(\d+))?")
SHORT_URL = re.compile(r"(https?)://([a-z0-9][-a-z0-9]*)\.([a-z0-9][-a-z0-9]*):(\d+)")
PORT_FORWARD = re.compile(r"kubectl -n (\S+) port-forward (svc|deploy)/(\S+) \d+:(\d+)")


def services(stack: str) -> dict[tuple[str, str], set[int]]:
    found = {
        (o["namespace"], o["name"]): {p["port"] for p in o["ports"]}
        for _, o in chart_objects(stack)
        if o["kind"] == "Service"
    }
    for o in stack_objects(stack):
        if o["kind"] == "Service":
            found[(o["metadata"]["namespace"], o["metadata"]["name"])] = {p["port"] for p in o["spec"]["ports"]}
    return found


def addresses(stack: str) -> list[tuple[str, str, str, int]]:
    """(where, namespace, service, port) of every in-cluster address the stack renders or prints."""
    found = []
    texts = [("stack objects", s) for o in stack_objects(stack) for s in strings(o)]
    texts += [(f"{r['chart']} values", s) for r in releases(stack) for s in strings(r["values"])]
    for where, text in texts:
        for scheme, name, namespace, port in SVC_URL.findall(text):
            found.append((where, namespace, name, int(port or (443 if scheme == "https" else 80))))
    for chart, o in chart_objects(stack):
        for ds in o.get("datasources") or []:
            for _scheme, name, namespace, port in SHORT_URL.findall(ds["url"] or ""):
                found.append((f"{chart} Grafana data source {ds['name']}", namespace, name, int(port)))
    (kps,) = [r["values"] for r in releases(stack) if r["chart"] == "kube-prometheus-stack"]
    mode = "amp" if kps["prometheus"]["agentMode"] else "in-cluster"
    hints = [*obs.port_forwards(mode).values(), metrics_check.PORT_FORWARD, metrics_check.GRAFANA_PORT_FORWARD]
    for hint in hints:
        ((namespace, kind, name, port),) = PORT_FORWARD.findall(hint)
        if kind == "svc":
            found.append((f"port-forward hint `{hint}`", namespace, name, int(port)))
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_every_in_cluster_address_is_a_service_and_port_the_charts_or_the_stack_create(stack):
    known = services(stack)
    found = addresses(stack)
    assert any("port-forward" in w for w, *_ in found)
    (kps,) = [r["values"] for r in releases(stack) if r["chart"] == "kube-prometheus-stack"]
    if kps["grafana"]["sidecar"]["datasources"]["defaultDatasourceEnabled"]:  # in-cluster: the chart's data source
        assert any("data source" in w for w, *_ in found)
    wrong = [
        f"{where}: {name}.{namespace}:{port} (Services there: {sorted(n for ns, n in known if ns == namespace)})"
        for where, namespace, name, port in found
        if port not in known.get((namespace, name), set())
    ]
    assert not wrong, "addresses no Service answers:\n" + "\n".join(wrong)
    if any(r["chart"] == "keda" for r in releases(stack)):
        assert any(w == "stack objects" and n == obs.PROMETHEUS_SERVICE for w, _, n, _ in found)  # KEDA's triggers


def test_the_vllm_port_forward_names_a_container_port():
    (hint,) = [h for h in obs.port_forwards().values() if "deploy/" in h]
    ((namespace, _, name, port),) = PORT_FORWARD.findall(hint)
    (deployment,) = [
        o
        for o in stack_objects("dev")
        if o["kind"] == "Deployment" and (o["metadata"]["namespace"], o["metadata"]["name"]) == (namespace, name)
    ]
    ports = {
        p["containerPort"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])
    }
    assert int(port) in ports


# --- monitors ---------------------------------------------------------------------------------


def namespace_labels(stack: str) -> dict[str, dict[str, str]]:
    found = {r["namespace"]: {} for r in releases(stack)}
    for o in stack_objects(stack):
        ns = o["metadata"].get("namespace")
        if ns:
            found.setdefault(ns, {})
        if o["kind"] == "Namespace":
            found[o["metadata"]["name"]] = dict(o["metadata"].get("labels") or {})
    return {ns: {**labels, "kubernetes.io/metadata.name": ns} for ns, labels in found.items()}


def monitors(stack: str) -> list[tuple[str, dict[str, Any]]]:
    """(source, monitor) with kind, name, namespace and labels, from the charts and from the stack."""
    found = [(chart, o) for chart, o in chart_objects(stack) if o["kind"] in chart_record.MONITORS]
    for o in stack_objects(stack):
        if o["kind"] in chart_record.MONITORS:
            meta = o["metadata"]
            found.append(
                (
                    "stack",
                    {
                        "kind": o["kind"],
                        "name": meta["name"],
                        "namespace": meta["namespace"],
                        "labels": meta.get("labels") or {},
                    },
                )
            )
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_every_monitor_and_rule_is_selected_by_the_prometheus_the_chart_renders(stack):
    (prometheus,) = [o for c, o in chart_objects(stack) if o["kind"] in ("Prometheus", "PrometheusAgent")]
    ns_labels = namespace_labels(stack)
    field = {"ServiceMonitor": "serviceMonitor", "PodMonitor": "podMonitor", "PrometheusRule": "rule", "Probe": "probe"}
    missed = []
    for source, m in monitors(stack):
        key = field[m["kind"]]
        ns_selector = prometheus.get(f"{key}NamespaceSelector")
        in_namespace = (
            m["namespace"] == prometheus["namespace"]
            if ns_selector is None
            else matches(ns_selector, ns_labels[m["namespace"]])
        )
        if not (matches(prometheus.get(f"{key}Selector"), m["labels"]) and in_namespace):
            missed.append(f"{source} {m['kind']} {m['namespace']}/{m['name']}")
    assert any(s == "stack" for s, _ in monitors(stack)) and any(s == "dcgm-exporter" for s, _ in monitors(stack))
    assert not missed, f"Prometheus {prometheus['name']} does not select: {missed}"


def pods(stack: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, workload name, recorded pod) for the charts' and the stack's workloads."""
    found = [(o["namespace"], o["name"], o["pod"]) for _, o in chart_objects(stack) if "pod" in o]
    found += [
        (o["namespace"], o["name"], {"labels": {}, "serviceAccountName": o["serviceAccountName"], "containers": []})
        for _, o in chart_objects(stack)
        if o["kind"] in chart_record.PROMETHEUSES
    ]
    for o in stack_objects(stack):
        if o["kind"] in chart_record.WORKLOADS:
            pod = chart_record._pod(o["spec"]["template"])
            found.append((o["metadata"]["namespace"], o["metadata"]["name"], pod))
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_the_projects_monitors_find_their_targets(stack):
    """The vLLM PodMonitor and dcgm-exporter's ServiceMonitor select a pod or Service with the named port."""
    podmonitors = [o for o in stack_objects(stack) if o["kind"] == "PodMonitor"]
    servicemonitors = [o for c, o in chart_objects(stack) if o["kind"] == "ServiceMonitor" and c == "dcgm-exporter"]
    assert podmonitors and servicemonitors
    for m in podmonitors:
        spec = m["spec"]
        targets = [
            p
            for ns, _, p in pods(stack)
            if ns in spec["namespaceSelector"]["matchNames"] and matches(spec["selector"], p["labels"])
        ]
        names = {port["name"] for p in targets for c in p["containers"] for port in c["ports"]}
        assert targets and {e["port"] for e in spec["podMetricsEndpoints"]} <= names, m["metadata"]["name"]
    all_services = [o for _, o in chart_objects(stack) if o["kind"] == "Service"]
    for m in servicemonitors:
        names = m["namespaceSelector"].get("matchNames") or [m["namespace"]]
        targets = [s for s in all_services if s["namespace"] in names and matches(m["selector"], s["labels"])]
        assert targets and {e["port"] for e in m["endpoints"]} <= {p["name"] for s in targets for p in s["ports"]}


# --- DCGM fields --------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_dcgm_field_in_an_alert_or_a_panel_is_in_the_csv_the_exporter_loads(stack):
    loaded = variant("dcgm-exporter", stack).get("loaded_metrics_csv") or []
    assert len(loaded) == 1, f"dcgm-exporter does not load the project's collector list from its ConfigMap: {loaded}"
    (csv,) = loaded
    o = ObservabilitySettings()
    texts = strings(stack_objects(stack)) + strings(alerts.rule_groups(o, cold_start_budget_s=0))
    texts += [json.dumps(d) for d in dashboards.dashboards(o.ttft_p95_slo_seconds, o.itl_p95_slo_seconds)]
    texts += [q for _, q, _ in metrics_check.EXPECTED]
    used = {f for t in texts for f in re.findall(r"\bDCGM_FI_[A-Z0-9_]+", t)}
    assert used, "no DCGM field found in the alerts and dashboards"
    assert used <= set(csv["fields"]), (
        f"not collected by dcgm-exporter ({csv['path']}): {sorted(used - set(csv['fields']))}"
    )


# --- ServiceAccounts and Pod Identity -------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_pod_identity_associations_name_the_service_accounts_the_charts_pods_run_as(stack):
    accounts = {(o["namespace"], o["name"]) for _, o in chart_objects(stack) if o["kind"] == "ServiceAccount"}
    accounts |= {
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in stack_objects(stack)
        if o["kind"] == "ServiceAccount"
    }
    used = {(ns, p["serviceAccountName"]) for ns, _, p in pods(stack)}
    associated = {(a.inputs["namespace"], a.inputs["serviceAccount"]) for a in rendered(stack).of_type(ASSOCIATION)}
    dangling = {a for a in associated if a not in used or (a not in accounts and a[1] != "default")}
    assert not dangling, f"associations no pod of this stack runs as: {sorted(dangling)}"
    for chart, workload in AWS_CALLERS.items():
        if any(r["chart"] == chart for r in releases(stack)):
            (sa,) = [(ns, p["serviceAccountName"]) for ns, name, p in pods(stack) if name == workload]
            assert sa in associated, f"{chart}'s {workload} runs as {sa}, which has no Pod Identity association"
    # With observability.mode amp (the prod-8gpu+amp rendering), Prometheus and Grafana get
    # associations by these names; the association check above then covers their pods.
    kps = {(o["kind"], o["name"]) for c, o in chart_objects(stack) if c == "kube-prometheus-stack"}
    wanted = {("ServiceAccount", obs.PROMETHEUS_SERVICE_ACCOUNT), ("ServiceAccount", obs.GRAFANA_SERVICE_ACCOUNT)}
    assert wanted <= kps, f"the chart creates no {sorted(wanted - kps)}, which AMP mode's associations name"
    (prometheus,) = [o for _, o in chart_objects(stack) if o["kind"] in ("Prometheus", "PrometheusAgent")]
    assert prometheus["serviceAccountName"] == obs.PROMETHEUS_SERVICE_ACCOUNT
    assert any(
        p["serviceAccountName"] == obs.GRAFANA_SERVICE_ACCOUNT for ns, n, p in pods(stack) if n == obs.GRAFANA_SERVICE
    )


# --- where pods run ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_daemons_run_on_every_gpu_node_and_nothing_else_of_the_charts_does(stack):
    groups = node_groups(rendered(stack))
    gpu, system = groups["gpu"], groups["system"]
    wrong = []
    for chart, o in chart_objects(stack):
        placed = o.get("pod") or (o if o["kind"] in chart_record.PROMETHEUSES else None)
        if placed is None:
            continue
        on_gpu, on_system = schedulable(placed, gpu), schedulable(placed, system)
        key = (chart, o["name"])
        if key in GPU_ONLY_DAEMONSETS:
            ok = on_gpu and not on_system
        elif key in EVERY_NODE_DAEMONSETS:
            ok = on_gpu and on_system
        elif o["kind"] == "DaemonSet":
            ok = not on_system  # a GPU feature's daemon (the MPS control daemon) stays off the system nodes
        else:
            ok = on_system and not on_gpu  # controllers and jobs: never on a p5, always somewhere
        if not ok:
            wrong.append(f"{chart} {o['kind']} {o['name']}: on GPU nodes {on_gpu}, on system nodes {on_system}")
    assert not wrong, "\n".join(wrong)
    (vllm,) = [p for _, _, p in pods(stack) if p["labels"].get("app.kubernetes.io/name") == "vllm"]
    assert schedulable(vllm, gpu) and not schedulable(vllm, system)


def test_the_pins_and_the_record_name_the_same_charts():
    assert set(PINS) == {
        p[1]
        for p in vars(versions).values()
        if isinstance(p, tuple) and len(p) == 3 and str(p[0]).startswith("https://")
    }
    for chart in PINS:
        assert record(chart)["source"]["tag"], chart
        assert yaml.safe_dump(record(chart))  # plain data, shareable


@pytest.mark.parametrize("stack", ["dev", "prod-4gpu"])
def test_the_router_pods_metrics_port_is_scraped_by_the_rendered_prometheus(stack):
    """Where the router renders, a monitor that the chart's Prometheus selects targets the router
    pods' own metrics port (not its serving port, which would forward /metrics to a vLLM replica)."""
    (router,) = [o for o in stack_objects(stack) if o["kind"] == "Deployment" and o["metadata"]["name"] == routing.APP]
    labels = router["spec"]["template"]["metadata"]["labels"]
    (container,) = router["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    metrics_port = int(next(a for a in args if a.startswith("--prometheus-port=")).split("=", 1)[1])
    (port_name,) = [p["name"] for p in container["ports"] if p["containerPort"] == metrics_port]
    (prometheus,) = [o for c, o in chart_objects(stack) if o["kind"] in ("Prometheus", "PrometheusAgent")]
    ns_labels = namespace_labels(stack)
    scraping = [
        o
        for o in stack_objects(stack)
        if o["kind"] == "PodMonitor"
        and router["metadata"]["namespace"] in o["spec"]["namespaceSelector"]["matchNames"]
        and matches(o["spec"]["selector"], labels)
        and port_name in {e["port"] for e in o["spec"]["podMetricsEndpoints"]}
        and matches(prometheus.get("podMonitorSelector"), o["metadata"].get("labels") or {})
        and matches(prometheus.get("podMonitorNamespaceSelector"), ns_labels[o["metadata"]["namespace"]])
    ]
    assert scraping, f"no PodMonitor selected by Prometheus scrapes the router's port {port_name}"
