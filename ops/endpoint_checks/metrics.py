"""`ops verify`'s metrics rows: the endpoint keeps /metrics private, and what Prometheus scrapes inside the cluster.

Prometheus is never exposed; the operator opens a `kubectl port-forward` (the exact command is
printed) and passes its local URL with `--prometheus`. Standard library only, like verify.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from components.facts import gpu_pool
from components.observability import alerts
from components.observability import values as observability
from components.serving import profiles, workload
from components.settings.observability import ObservabilitySettings
from ops.report import Check, failed, info, passed, skipped

# The tunnels to open, as the monitoring stack names its Services (components/observability/values.py).
LOCAL_PROMETHEUS = f"http://localhost:{observability.PROMETHEUS_PORT}"
PORT_FORWARD = observability.port_forwards()["prometheus"]
GRAFANA_PORT_FORWARD = observability.port_forwards()["grafana"]

# (row, PromQL, what it proves, the fix when nothing comes back)
EXPECTED: tuple[tuple[str, str, str], ...] = (
    (
        "scrape vLLM",
        f'up{{job="{alerts.VLLM_JOB}"}} == 1',
        f"the vllm PodMonitor and the NetworkPolicy that admits the Prometheus pods of namespace "
        f"{alerts.MONITORING_NAMESPACE} to port {profiles.PORT}; kubectl -n {alerts.MONITORING_NAMESPACE} get podmonitor vllm",
    ),
    (
        "vLLM serving metrics",
        f'vllm:num_requests_running{{job="{alerts.VLLM_JOB}"}}',
        "vLLM's /metrics answers once the engine has loaded; wait for the pods to be Ready",
    ),
    (
        "GPU metrics",
        f'DCGM_FI_DEV_GPU_UTIL{{job="{alerts.DCGM_JOB}"}}',
        f"kubectl -n {observability.NODE_METRICS_NAMESPACE} get pods -l app.kubernetes.io/name=dcgm-exporter -o wide",
    ),
    (
        "model cache disk",
        f'node_filesystem_avail_bytes{{mountpoint="{gpu_pool.NVME_MOUNT}"}}',
        "node-exporter must run on the GPU nodes (it tolerates their taint) and the NVMe RAID0 must be mounted:"
        f" kubectl -n {observability.NODE_METRICS_NAMESPACE} get pods -l app.kubernetes.io/name=prometheus-node-exporter -o wide",
    ),
    (
        "pod state",
        f'kube_pod_status_ready{{namespace="{workload.NAMESPACE}"}}',
        f"kubectl -n {alerts.MONITORING_NAMESPACE} get pods -l app.kubernetes.io/name=kube-state-metrics",
    ),
)


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def check_metrics_not_public(endpoint: str, timeout: float) -> Check:
    """vLLM serves /metrics without the API key; the public endpoint must not pass it through."""
    name = "metrics not public"
    try:
        status, body = _get(f"{endpoint}/metrics", timeout)
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
        return skipped(name, f"GET {endpoint}/metrics: {getattr(err, 'reason', err)}")
    if status == 200 and b"vllm:" in body:
        return failed(
            name,
            f"GET {endpoint}/metrics returns vLLM's metrics to anyone, without the API key",
            "the load balancer must forward only /v1/* and health; scrape /metrics inside the cluster (PodMonitor)",
        )
    return passed(name, f"GET /metrics on the endpoint: {status}")


def _query(base: str, promql: str, timeout: float) -> list[dict[str, Any]]:
    status, body = _get(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}", timeout)
    data = json.loads(body or b"{}")
    if status != 200 or data.get("status") != "success":
        raise ValueError(f"HTTP {status}: {data.get('error') or body[:200]!r}")
    return data["data"]["result"]


def _rules(base: str, timeout: float) -> set[str]:
    status, body = _get(f"{base}/api/v1/rules?type=alert", timeout)
    data = json.loads(body or b"{}")
    if status != 200 or data.get("status") != "success":
        raise ValueError(f"HTTP {status}")
    return {r.get("name") for g in data["data"]["groups"] for r in g.get("rules", [])}


def check_prometheus(base: str, settings: ObservabilitySettings, timeout: float) -> list[Check]:
    """One row per kind of metric the dashboards and alerts need, then the rules and what fires."""
    base = base.rstrip("/")
    checks: list[Check] = []
    try:
        for row, promql, fix in EXPECTED:
            series = _query(base, promql, timeout)
            if series:
                checks.append(passed(row, f"{len(series)} series: {promql}"))
            else:
                checks.append(failed(row, f"no series for {promql}", fix))
        expected = alerts.alert_names(settings)
        loaded = _rules(base, timeout)
        missing = sorted(expected - loaded)
        if missing:
            checks.append(
                failed(
                    "alert rules",
                    f"{len(missing)} of {len(expected)} not loaded: {', '.join(missing)}",
                    f"kubectl -n {alerts.MONITORING_NAMESPACE} get prometheusrule minimax-vllm-serving -o yaml",
                )
            )
        else:
            checks.append(passed("alert rules", f"all {len(expected)} minimax-vllm alerts loaded"))
        firing = _query(base, 'ALERTS{alertstate="firing", component="minimax-vllm"}', timeout)
        names = sorted({s["metric"].get("alertname", "?") for s in firing})
        checks.append(info("firing alerts", ", ".join(names) if names else "none"))
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError, ValueError) as err:
        checks.append(
            failed(
                "prometheus",
                f"{base} did not answer: {getattr(err, 'reason', err)}",
                f"open the tunnel first: {PORT_FORWARD}",
            )
        )
    return checks


def run(endpoint: str, settings: ObservabilitySettings, prometheus: str | None, timeout: float) -> list[Check]:
    checks = [check_metrics_not_public(endpoint, timeout)]
    if settings.mode == "off":
        return checks + [skipped("cluster metrics", "observability.mode is off: nothing is collected")]
    if settings.mode == "amp":
        return checks + [
            info(
                "cluster metrics",
                "samples go to the AMP workspace (SigV4); see them in Grafana: "
                f"{GRAFANA_PORT_FORWARD}, then http://localhost:3000",
            )
        ]
    if prometheus is None:
        return checks + [
            info(
                "cluster metrics",
                f"not checked; to check what Prometheus scrapes inside the cluster run `{PORT_FORWARD}` "
                f"and then `python -m ops verify ... --prometheus {LOCAL_PROMETHEUS}`",
            )
        ]
    return checks + check_prometheus(prometheus, settings, timeout)
