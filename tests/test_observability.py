"""Metrics, dashboards and alerts, checked against the pinned releases rather than by eye."""

from __future__ import annotations

import functools
import json
import re
import types
from pathlib import Path

import promql_parser
import pytest
import yaml

from components.aws.cluster import SYSTEM_POOL_LABEL
from components.facts import gpu_pool, timeline
from components.observability import alerts, dashboards, dcgm_fields
from components.observability import values as obs
from components.platform import config
from components.platform.config import from_stack_file
from components.platform.kubernetes_layer import release_namespaces
from components.serving import workload
from components.settings.observability import ObservabilitySettings
from components.settings.stack import SettingsError
from ops.offline.engine import Rendering, render

STACKS = ("dev", "staging", "prod-4gpu", "prod-8gpu")
RELEASE = "kubernetes:helm.sh/v3:Release"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
OPERATIONS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
DEFAULTS = ObservabilitySettings()


def cold_start_budget(stack: str) -> int:
    """The stack's own cold-start budget, from its timeline (model, replicas, weight source)."""
    settings = from_stack_file(stack)
    return workload.timers(settings.serving, settings.weights.source).cold_start_alert


BUDGET = cold_start_budget("prod-8gpu")


@functools.cache
def rendered(stack: str, mode: str | None = None) -> Rendering:
    return render(stack, overrides={"observability": {"mode": mode}} if mode else None)


def release(r: Rendering, chart: str):
    (found,) = [x for x in r.of_type(RELEASE) if x.inputs["chart"] == chart]
    return found


# --- what the pinned vLLM exports --------------------------------------------------------


@functools.cache
def vllm_exported_names() -> frozenset[str]:
    """Every series name vLLM 0.32.0's API server registers, read from its own registry.

    Builds the release's PrometheusStatLogger (the engine's metrics) with a default
    observability config, and starts an app with the release's HTTP instrumentation (request
    counts by route and status); then derives the exported names from each family's type:
    counters end in _total, histograms in _bucket/_sum/_count.
    """
    import prometheus_client
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from vllm.config import CacheConfig, ObservabilityConfig, ParallelConfig
    from vllm.entrypoints.serve.instrumentator.metrics import attach_router
    from vllm.v1.metrics.loggers import PrometheusStatLogger

    config = types.SimpleNamespace(
        observability_config=ObservabilityConfig(),
        model_config=types.SimpleNamespace(served_model_name="minimax-m2.5", max_model_len=196608, is_diffusion=False),
        cache_config=CacheConfig(),
        parallel_config=ParallelConfig(),
        speculative_config=None,
        kv_transfer_config=None,
        ec_transfer_config=None,
        lora_config=None,
        watermark_config=None,
    )
    PrometheusStatLogger(config, [0])
    app = FastAPI()
    attach_router(app)
    with TestClient(app) as client:  # the HTTP instrumentation registers its metrics when the app starts
        client.get("/v1/models")
    # A family's own name is a series name only for a gauge; the others expose suffixed series.
    suffixes = {
        "gauge": ("",),
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("", "_sum", "_count"),
    }
    names: set[str] = set()
    for family in prometheus_client.REGISTRY.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(s.name for s in family.samples)
    return frozenset(names)


# --- reading PromQL with a real parser ---------------------------------------------------


def selectors(node) -> list[str]:
    """Every metric name a parsed PromQL expression selects."""
    if isinstance(node, promql_parser.VectorSelector):
        named = [m.value for m in node.matchers.matchers if m.name == "__name__"]
        return ([node.name] if node.name else []) + named
    if isinstance(node, promql_parser.MatrixSelector):
        return selectors(node.vector_selector)
    if isinstance(node, promql_parser.BinaryExpr):
        return selectors(node.lhs) + selectors(node.rhs)
    if isinstance(node, promql_parser.Call):
        return [name for arg in node.args for name in selectors(arg)]
    if isinstance(node, promql_parser.AggregateExpr):
        return selectors(node.expr) + (selectors(node.param) if node.param is not None else [])
    if isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)):
        return selectors(node.expr)
    return []


def expressions(groups: list[dict], boards: dict[str, dict]) -> dict[str, str]:
    """Every query of the alert rules and the dashboards, by where it is used."""
    found = {f"alert {rule['alert']}": rule["expr"] for g in groups for rule in g["rules"]}
    for uid, board in boards.items():
        for panel in board["panels"]:
            for target in panel["targets"]:
                found[f"{uid} / {panel['title']} / {target['refId']}"] = target["expr"]
    return found


def unknown_metrics(queries: dict[str, str]) -> list[str]:
    """Each use of a vLLM or DCGM metric that the pinned releases do not export."""
    problems = []
    vllm_names = vllm_exported_names()
    for where, expr in sorted(queries.items()):
        for name in selectors(promql_parser.parse(expr)):
            if name.startswith("vllm:") and name not in vllm_names:
                problems.append(f"{where}: {name} is not exported by vLLM 0.32.0")
            if name.startswith("DCGM_") and name not in dcgm_fields.NAMES:
                problems.append(f"{where}: {name} is not in the dcgm-exporter collector list ({dcgm_fields.SOURCE})")
    return problems


def shipped_queries(o: ObservabilitySettings = DEFAULTS) -> dict[str, str]:
    return expressions(
        alerts.rule_groups(o, BUDGET), dashboards.dashboards(o.ttft_p95_slo_seconds, o.itl_p95_slo_seconds)
    )


def test_every_alert_and_dashboard_query_parses_as_promql():
    queries = shipped_queries(ObservabilitySettings(ttftP95SloSeconds=3.5, waitingRequestsThreshold=4))
    assert len(queries) > 30
    for where, expr in queries.items():
        try:
            promql_parser.parse(expr)
        except Exception as err:  # the parser raises its own error types
            pytest.fail(f"{where}: {expr!r} does not parse: {err}")


def test_the_promql_check_rejects_a_broken_expression():
    with pytest.raises(Exception):  # noqa: B017 (the parser's error type is not public)
        promql_parser.parse("sum by (pod (vllm:num_requests_waiting)")


@pytest.mark.vllm
def test_dashboards_and_alerts_use_only_metrics_the_pinned_releases_export():
    queries = shipped_queries()
    used = {name for expr in queries.values() for name in selectors(promql_parser.parse(expr))}
    assert {"vllm:kv_cache_usage_perc", "vllm:num_preemptions_total", "vllm:time_to_first_token_seconds_bucket"} <= used
    assert {"DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_THERMAL_VIOLATION"} <= used
    assert unknown_metrics(queries) == []


@pytest.mark.vllm
@pytest.mark.parametrize(
    ("real", "renamed"),
    [
        ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),  # removed from vLLM in v1
        ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),  # what stale dashboards still query
        ("vllm:num_preemptions_total", "vllm:num_preemptions"),  # a counter without _total
        ("vllm:inter_token_latency_seconds_bucket", "vllm:time_per_output_token_seconds_bucket"),
        ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_GPU_UTIL_RATIO"),  # dcgm-exporter 4.9's name
    ],
)
def test_a_renamed_metric_in_a_dashboard_or_an_alert_fails_the_check(real, renamed):
    groups = alerts.rule_groups(DEFAULTS, BUDGET)
    boards = dashboards.dashboards(DEFAULTS.ttft_p95_slo_seconds, DEFAULTS.itl_p95_slo_seconds)
    renamed_groups = json.loads(json.dumps(groups).replace(real, renamed))
    renamed_boards = json.loads(json.dumps(boards).replace(real, renamed))
    problems = unknown_metrics(expressions(renamed_groups, renamed_boards))
    assert problems and all(renamed in p for p in problems)
    assert any(p.startswith("alert ") for p in problems) or any(p.startswith("minimax-vllm-") for p in problems)


@pytest.mark.vllm
def test_the_exported_names_come_from_the_release_not_from_a_list():
    names = vllm_exported_names()
    assert "vllm:kv_cache_usage_perc" in names and "vllm:gpu_cache_usage_perc" not in names
    assert "vllm:num_preemptions_total" in names and "vllm:num_preemptions" not in names  # a counter's series
    assert "vllm:time_to_first_token_seconds_bucket" in names and "vllm:time_to_first_token_seconds" not in names
    assert "http_requests_total" in names  # the API server's route instrumentation


def test_the_dcgm_collector_list_is_what_the_exporter_runs():
    values = obs.dcgm_values()
    rows = [line.split(",")[0].strip() for line in values["customMetrics"].splitlines() if not line.startswith("#")]
    assert rows == [f.name for f in dcgm_fields.FIELDS] and len(set(rows)) == len(rows)
    assert {f.type for f in dcgm_fields.FIELDS} <= {"gauge", "counter"}


# --- dashboards -------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod-8gpu"])
def test_dashboards_are_valid_json_with_the_datasource_bound_and_reach_grafanas_sidecar(stack):
    r = rendered(stack)
    values = release(r, "kube-prometheus-stack").inputs["values"]
    sidecar = values["grafana"]["sidecar"]["dashboards"]
    maps = [
        o.inputs
        for o in r.of_type("kubernetes:core/v1:ConfigMap")
        if o.inputs["metadata"]["name"].startswith("dashboard-")
    ]
    assert len(maps) == 2
    for cm in maps:
        assert cm["metadata"]["namespace"] == obs.NAMESPACE == sidecar["searchNamespace"]
        assert cm["metadata"]["labels"][sidecar["label"]] == sidecar["labelValue"]
        ((filename, text),) = cm["data"].items()
        board = json.loads(text)
        assert filename == f"{board['uid']}.json"
        assert text == json.dumps(board, sort_keys=True, indent=1)  # sorted: renders are byte-stable
        (variable,) = board["templating"]["list"]
        assert variable["type"] == "datasource" and variable["query"] == "prometheus"
        assert variable["current"]["value"] == values["grafana"]["sidecar"]["datasources"]["uid"]
        bound = {"type": "prometheus", "uid": f"${{{variable['name']}}}"}
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))
        for panel in board["panels"]:
            assert panel["datasource"] == bound and panel["targets"]
            assert all(t["datasource"] == bound and t["expr"] for t in panel["targets"])


def test_the_serving_dashboard_covers_what_operators_watch():
    board = dashboards.dashboards(10, 0.2)["minimax-vllm-serving"]
    text = json.dumps(board)
    for metric in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prefix_cache_hits_total",
        "vllm:num_preemptions_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
        "vllm:generation_tokens_total",
        'status=\\"5xx\\"',
    ):
        assert metric in text, metric
    gpu = json.dumps(dashboards.dashboards(10, 0.2)["minimax-vllm-gpu"])
    for metric in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_TEMP"):
        assert metric in gpu
    assert f'mountpoint=\\"{gpu_pool.NVME_MOUNT}\\"' in gpu


# --- alerts and runbooks ----------------------------------------------------------------


def runbook_sections() -> dict[str, str]:
    text = OPERATIONS.read_text()
    parts = re.split(r"^### (\S+)\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_alert_has_a_runbook_entry_and_every_entry_an_alert():
    sections = runbook_sections()
    names = [a.name for a in alerts.serving_alerts(DEFAULTS, BUDGET)]
    assert len(names) == len(set(names))
    for a in alerts.serving_alerts(DEFAULTS, BUDGET):
        assert a.name in sections, f"docs/operations.md has no '### {a.name}' runbook"
        body = sections[a.name]
        assert "Check" in body and "Fix" in body, a.name
        assert a.rule()["annotations"]["runbook_url"] == f"docs/operations.md#{a.name.lower()}"
    runbook_names = {n for n in sections if re.fullmatch(r"[A-Z][A-Za-z]+", n)}
    assert runbook_names == set(names)


def test_the_issue_s_alerts_are_all_there():
    exprs = {a.name: a.expr for a in alerts.serving_alerts(DEFAULTS, BUDGET)}
    assert "vllm:num_requests_waiting" in exprs["VllmRequestsWaiting"]
    assert "vllm:kv_cache_usage_perc" in exprs["VllmKvCacheNearlyFull"] and "> 0.9" in exprs["VllmKvCacheNearlyFull"]
    assert "vllm:num_preemptions_total" in exprs["VllmPreemptionsRising"]
    assert "DCGM_FI_DEV_XID_ERRORS" in exprs["GpuXidError"]
    assert "THERMAL_VIOLATION" in exprs["GpuThermalThrottling"] and "POWER_VIOLATION" in exprs["GpuPowerThrottling"]
    assert f'mountpoint="{gpu_pool.NVME_MOUNT}"' in exprs["ModelCacheDiskFilling"]
    assert gpu_pool.MODEL_CACHE_HOST_PATH.startswith(alerts.MODEL_CACHE_MOUNT + "/")
    assert "kube_pod_container_status_restarts_total" in exprs["PodRestarting"]
    assert {"VllmEngineDown", "VllmReplicaNotReady", "VllmColdStartOverBudget"} <= set(exprs)


def test_slos_and_thresholds_come_from_the_settings():
    o = ObservabilitySettings(
        ttftP95SloSeconds=3.5, itlP95SloSeconds=0.08, waitingRequestsThreshold=40, waitingMinutes=7
    )
    by_name = {a.name: a for a in alerts.serving_alerts(o, BUDGET)}
    assert by_name["VllmTimeToFirstTokenSlow"].expr.endswith("> 3.5")
    assert by_name["VllmInterTokenLatencySlow"].expr.endswith("> 0.08")
    assert by_name["VllmRequestsWaiting"].expr.endswith("> 40") and by_name["VllmRequestsWaiting"].for_ == "7m"
    board = dashboards.dashboards(3.5, 0.08)["minimax-vllm-serving"]
    ttft = next(p for p in board["panels"] if p["title"] == "Time to first token")
    assert ttft["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == 3.5


@pytest.mark.parametrize("stack", STACKS)
def test_the_cold_start_alert_fires_when_the_stacks_own_rollout_gives_up(stack):
    """Not at one fixed budget for every stack: on prod that fired 37 minutes after `pulumi up` failed."""
    r = rendered(stack)
    (deployment,) = [
        d for d in r.of_type("kubernetes:apps/v1:Deployment") if d.inputs["metadata"]["name"] == workload.APP
    ]
    deadline = deployment.inputs["spec"]["progressDeadlineSeconds"]
    (rule,) = r.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    exprs = {x["alert"]: x["expr"] for g in rule.inputs["spec"]["groups"] for x in g["rules"]}
    assert re.search(rf"> {deadline}\b", exprs["VllmColdStartOverBudget"])
    assert f"< {deadline})" in exprs["VllmEngineDown"]  # a start within budget is not an outage
    settings = from_stack_file(stack)
    (guard,) = [
        g
        for g in timeline.guards(
            workload.timers(settings.serving, settings.weights.source),
            settings.serving.replicas,
            settings.serving.model_facts.weights_gb,
            source=settings.weights.source,
        )
        if g.timer.startswith("VllmColdStartOverBudget")
    ]
    assert guard.seconds == deadline and not guard.short


def restart_watched(groups: list[dict]) -> set[str]:
    (expr,) = [r["expr"] for g in groups for r in g["rules"] if r["alert"] == "PodRestarting"]
    return set(re.search(r'namespace=~"([^"]+)"', expr).group(1).split("|"))


@pytest.mark.parametrize("stack", [*STACKS, "amp"])
def test_restart_alert_watches_the_namespace_of_every_release_the_stack_installs(stack):
    """A crash-looping KEDA operator (or any chart's pod) must raise PodRestarting where it is installed."""
    r = rendered("prod-8gpu", "amp") if stack == "amp" else rendered(stack)
    if stack == "amp":
        groups = yaml.safe_load(r.one("aws:amp/ruleGroupNamespace:RuleGroupNamespace").inputs["data"])["groups"]
    else:
        (rule,) = r.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
        groups = rule.inputs["spec"]["groups"]
    installed = {x.inputs["namespace"] for x in r.of_type(RELEASE)}
    own = {o.inputs["metadata"]["namespace"] for o in r.kubernetes_objects() if o.inputs["kind"] == "Deployment"}
    assert restart_watched(groups) == installed | own | {"kube-system"}
    if "keda" in {x.inputs["chart"] for x in r.of_type(RELEASE)}:
        assert "keda" in restart_watched(groups)


# --- the stack as rendered --------------------------------------------------------------


def node_group(r: Rendering, label: tuple[str, str]):
    (group,) = [g for g in r.of_type(NODE_GROUP) if g.inputs.get("labels", {}).get(label[0]) == label[1]]
    return group


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_renders_collection_and_the_rules(stack):
    r = rendered(stack)
    assert {"kube-prometheus-stack", "dcgm-exporter"} <= {x.inputs["chart"] for x in r.of_type(RELEASE)}
    (rule,) = r.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    settings = from_stack_file(stack)
    namespaces = release_namespaces(settings, settings.scaling)
    assert rule.inputs["spec"]["groups"] == alerts.rule_groups(
        settings.observability, cold_start_budget(stack), namespaces
    )
    assert r.of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")


@pytest.mark.parametrize("stack", ["dev", "prod-4gpu"])
def test_monitoring_runs_on_system_nodes_and_dcgm_only_on_gpu_nodes(stack):
    r = rendered(stack)
    system, gpu = node_group(r, SYSTEM_POOL_LABEL), node_group(r, gpu_pool.POOL_LABEL)
    values = release(r, "kube-prometheus-stack").inputs["values"]
    placed = {
        "prometheus": values["prometheus"]["prometheusSpec"],
        "alertmanager": values["alertmanager"]["alertmanagerSpec"],
        "grafana": values["grafana"],
        "operator": values["prometheusOperator"],
        "webhook job": values["prometheusOperator"]["admissionWebhooks"]["patch"],
        "kube-state-metrics": values["kube-state-metrics"],
    }
    for name, spec in placed.items():
        selector = spec["nodeSelector"]
        assert all(system.inputs["labels"].get(k) == v for k, v in selector.items()), name
        assert not all(gpu.inputs["labels"].get(k) == v for k, v in selector.items()), name
        assert "tolerations" not in spec, name  # nothing lets them onto the tainted GPU nodes
    dcgm = release(r, "dcgm-exporter").inputs["values"]
    terms = dcgm["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    matches = [
        all(g.inputs["labels"].get(e["key"]) in e["values"] for e in t["matchExpressions"])
        for t in terms
        for g in (gpu, system)
    ]
    assert matches == [True, False]
    taint = gpu.inputs["taints"][0]
    assert any(t["key"] == taint["key"] and t["operator"] == "Exists" for t in dcgm["tolerations"])
    exporter = values["prometheus-node-exporter"]["tolerations"]
    assert any(t.get("key") == taint["key"] for t in exporter)  # the NVMe cache on GPU nodes is measured


@pytest.mark.parametrize("stack", ["dev", "prod-8gpu"])
def test_vllm_metrics_are_scraped_in_cluster_only(stack):
    r = rendered(stack)
    (monitor,) = [
        m
        for m in r.of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")
        if m.inputs["metadata"]["name"] == obs.PODMONITOR
    ]
    spec = monitor.inputs["spec"]
    deployment = r.vllm_deployment().inputs
    ports = {p["name"]: p["containerPort"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    (endpoint,) = spec["podMetricsEndpoints"]
    assert ports[endpoint["port"]] == 8000 and endpoint["path"] == "/metrics"
    assert spec["namespaceSelector"]["matchNames"] == [deployment["metadata"]["namespace"]]
    assert spec["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert {"targetLabel": "job", "replacement": alerts.VLLM_JOB} in endpoint["relabelings"]
    assert monitor.inputs["metadata"]["namespace"] == "monitoring"  # the namespace the vLLM NetworkPolicy admits
    values = release(r, "kube-prometheus-stack").inputs["values"]
    assert values["prometheus"]["prometheusSpec"]["podMonitorSelectorNilUsesHelmValues"] is False
    # No part of the monitoring stack gets a public address.
    for chart in ("kube-prometheus-stack", "dcgm-exporter"):
        text = json.dumps(release(r, chart).inputs["values"])
        assert "LoadBalancer" not in text and '"ingress"' not in text.lower()
    for obj in r.kubernetes_objects():
        if obj.inputs["metadata"].get("namespace") == obs.NAMESPACE:
            assert obj.inputs["kind"] not in ("Service", "Ingress")


def test_dev_can_turn_collection_off():
    # Autoscaling queries Prometheus, so a stack without collection runs at a fixed size.
    r = render("dev", overrides={"observability": {"mode": "off"}, "scaling": {"enabled": False}})
    assert not [x for x in r.resources if x.type == "minimax-vllm:k8s:Observability"]
    assert {x.inputs["chart"] for x in r.of_type(RELEASE)} == {"nvidia-device-plugin", "aws-load-balancer-controller"}
    assert not [x for x in r.kubernetes_objects() if x.inputs["metadata"].get("namespace") == obs.NAMESPACE]


def test_amp_mode_remote_writes_to_a_workspace_that_evaluates_the_same_rules():
    r = rendered("prod-8gpu", "amp")
    workspace = r.one("aws:amp/workspace:Workspace")
    rules = r.one("aws:amp/ruleGroupNamespace:RuleGroupNamespace")
    assert rules.inputs["workspaceId"] == workspace.id
    groups = yaml.safe_load(rules.inputs["data"])["groups"]
    assert [[x["alert"] for x in g["rules"]] for g in groups] == [
        [x["alert"] for x in g["rules"]] for g in alerts.rule_groups(DEFAULTS, BUDGET)
    ]
    assert not r.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")  # no second evaluator
    values = release(r, "kube-prometheus-stack").inputs["values"]
    assert values["prometheus"]["agentMode"] is True and values["alertmanager"]["enabled"] is False
    (write,) = values["prometheus"]["prometheusSpec"]["remoteWrite"]
    assert write["url"] == workspace.outputs["prometheusEndpoint"] + "api/v1/remote_write"
    assert write["sigv4"] == {"region": "us-east-2"}
    (source,) = values["grafana"]["additionalDataSources"]
    assert source["url"] == workspace.outputs["prometheusEndpoint"] and source["jsonData"]["sigV4Auth"] is True
    assert source["uid"] == dashboards.DEFAULT_DATASOURCE_UID  # the dashboards' default data source
    accounts = {
        (a.inputs["namespace"], a.inputs["serviceAccount"])
        for a in r.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    }
    assert {
        (obs.NAMESPACE, values["prometheus"]["serviceAccount"]["name"]),
        (obs.NAMESPACE, values["grafana"]["serviceAccount"]["name"]),
    } <= accounts
    # Prometheus may only write and Grafana only read, each on this workspace.
    granted = {}
    for a in r.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation"):
        role = next(x for x in r.of_type("aws:iam/role:Role") if x.outputs["arn"] == a.inputs["roleArn"])
        (attachment,) = [
            x
            for x in r.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
            if x.inputs["role"] in (role.id, role.outputs["name"])
        ] or [None]
        policy = attachment and next(
            (p for p in r.of_type("aws:iam/policy:Policy") if p.outputs["arn"] == attachment.inputs["policyArn"]), None
        )
        if policy is not None and "aps:" in policy.inputs["policy"]:
            (statement,) = json.loads(policy.inputs["policy"])["Statement"]
            assert statement["Resource"] == workspace.outputs["arn"]
            granted[a.inputs["serviceAccount"]] = set(statement["Action"])
    assert granted == {
        values["prometheus"]["serviceAccount"]["name"]: {"aps:RemoteWrite"},
        values["grafana"]["serviceAccount"]["name"]: {
            "aps:QueryMetrics",
            "aps:GetSeries",
            "aps:GetLabels",
            "aps:GetMetricMetadata",
        },
    }


def test_helm_values_are_rendered_with_sorted_keys():
    def ordered(value) -> bool:
        if isinstance(value, dict):
            return list(value) == sorted(value) and all(ordered(v) for v in value.values())
        if isinstance(value, list):
            return all(ordered(v) for v in value)
        return True

    assert ordered(obs.stack_values(DEFAULTS, "us-east-2"))
    assert ordered(obs.stack_values(ObservabilitySettings(mode="amp"), "us-east-2", "https://aps/ws/"))
    assert ordered(obs.dcgm_values()) and ordered(obs.vllm_pod_monitor(DEFAULTS))
    assert not ordered({"b": 1, "a": 2})


# --- settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"mode": "prometheus"},
            "observability.mode = 'prometheus' is not a collection mode; choose one of: in-cluster, amp, off",
        ),
        ({"ttftP95SloSeconds": 0}, "observability.ttftP95SloSeconds = 0"),
        ({"itlP95SloSeconds": 20}, "observability.itlP95SloSeconds = 20"),
        ({"waitingRequestsThreshold": 0}, "observability.waitingRequestsThreshold = 0"),
        ({"retentionDays": 90}, "observability.retentionDays = 90"),
        ({"slo": 1}, "observability.slo = 1 is not a known setting"),
    ],
)
def test_bad_observability_settings_name_key_value_rule_and_fix(raw, message):
    with pytest.raises(SettingsError) as caught:
        config.parse({"owner": "ml-platform", "observability": raw}, "test", "us-east-2")
    (problem,) = caught.value.problems
    assert message in problem and "Fix: pulumi config " in problem


def test_observability_settings_read_camel_case_keys_from_the_stack():
    raw = {"mode": "off", "ttftP95SloSeconds": 4, "scrapeIntervalSeconds": 15}
    settings = config.parse({"owner": "ml-platform", "observability": raw}, "test", "us-east-2").observability
    assert settings.mode == "off" and not settings.enabled
    assert settings.ttft_p95_slo_seconds == 4 and settings.scrape_interval_seconds == 15


def test_a_bad_mode_stops_the_program_before_any_resource(monkeypatch):
    from ops.offline import mocks

    created = []
    original = mocks.OfflineMocks.new_resource
    monkeypatch.setattr(mocks.OfflineMocks, "new_resource", lambda self, a: created.append(a.typ) or original(self, a))
    with pytest.raises(SettingsError, match=r"observability.mode.*pulumi config set --path 'observability.mode'"):
        render("dev", overrides={"observability": {"mode": "grafana-cloud"}})
    assert created == []


# --- plan and verify --------------------------------------------------------------------


def test_plan_lists_the_monitoring_components_where_they_run_and_what_they_add(tmp_path, capsys):
    from ops import plan

    assert plan.main("prod-8gpu", str(tmp_path)) == 0
    out = capsys.readouterr().out
    section = out.split("Observability:")[1].split("Capacity:")[0]
    for component, where in (
        ("prometheus", "system nodes"),
        ("alertmanager", "system nodes"),
        ("grafana", "system nodes"),
        ("node-exporter", "every node"),
        ("dcgm-exporter", "GPU nodes"),
    ):
        assert re.search(rf"^  {component}\s+{where}", section, re.M), component
    settings = from_stack_file("prod-8gpu")
    cost = plan.observability_cost(settings)
    assert 0 < cost.total < 1 and f"added: about ${cost.total:.2f}/hour" in section
    total, detail = plan.hourly_cost(settings)
    assert f"observability ${cost.total:.2f}" in detail
    # The stack's requests fit the system nodes beside what already runs there.
    assert cost.system_cpu < 2 and cost.system_memory_gib < 8
    assert "kubectl -n monitoring port-forward svc/grafana 3000:80" in section


def test_amp_adds_ingestion_to_the_cost_and_off_adds_nothing():
    from ops import plan

    base = from_stack_file("prod-8gpu")
    amp = base.__class__(**{**base.__dict__, "observability": ObservabilitySettings(mode="amp")})
    off = base.__class__(**{**base.__dict__, "observability": ObservabilitySettings(mode="off")})
    ingestion = plan.observability_cost(amp).rows[-1]
    assert ingestion[0].startswith("AMP workspace") and ingestion[3] > 0.1
    slower = base.__class__(
        **{**base.__dict__, "observability": ObservabilitySettings(mode="amp", scrapeIntervalSeconds=60)}
    )
    assert plan.observability_cost(slower).rows[-1][3] == pytest.approx(ingestion[3] / 2)
    assert plan.hourly_cost(off)[0] < plan.hourly_cost(base)[0] < plan.hourly_cost(amp)[0]
    assert plan.observability_lines(off) == ["  off (observability.mode): no metrics, dashboards or alerts"]


def test_plan_files_are_the_same_on_every_run(tmp_path):
    from ops import plan

    first, second = rendered("prod-4gpu"), render("prod-4gpu")
    for rendering, out in ((first, tmp_path / "a"), (second, tmp_path / "b")):
        plan.write_manifests(rendering, out)
    for name in ("kubernetes.yaml", "helm-releases.yaml"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    docs = list(yaml.safe_load_all((tmp_path / "a" / "helm-releases.yaml").read_text()))
    assert [(d["namespace"], d["name"]) for d in docs] == sorted((d["namespace"], d["name"]) for d in docs)
    stack = next(d for d in docs if d["chart"] == "kube-prometheus-stack")
    assert list(stack["values"]) == sorted(stack["values"])
