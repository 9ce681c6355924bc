"""Alert rules for the serving path, as one PrometheusRule (pure: plain dicts, no Pulumi imports).

Every rule names its runbook section in docs/operations.md (a test keeps the two in step),
and every metric it reads is one the pinned vLLM, dcgm-exporter, node-exporter or
kube-state-metrics exports (tests/test_observability.py checks the vLLM and DCGM names
against the pinned releases).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from components.facts import gpu_pool, scraper
from components.serving import workload
from components.settings.observability import ObservabilitySettings

MONITORING_NAMESPACE = scraper.NAMESPACE
# The PodMonitor relabels every vLLM target to this job, so rules do not depend on object names.
VLLM_JOB = "vllm"
VLLM = f'namespace="{workload.NAMESPACE}", job="{VLLM_JOB}"'
KSM_VLLM_PODS = f'namespace="{workload.NAMESPACE}", pod=~"{workload.APP}-.+"'
DCGM_JOB = "dcgm-exporter"
# The instance-store RAID0 holding the model cache, as node-exporter reports its mount point.
MODEL_CACHE_MOUNT = gpu_pool.NVME_MOUNT
RUNBOOK_DOC = "docs/operations.md"

KV_CACHE_FULL_RATIO = 0.90
# Requests a replica answered 503 over serving.maxQueuedRequests (vLLM 0.32.0 vllm/v1/metrics/loggers.py:
# counter vllm:admission_rejections, reason max_num_queued_reqs), as Prometheus exposes the counter.
ADMISSION_REJECTIONS = "vllm:admission_rejections_total"
OVER_CAP = f'{VLLM}, reason="max_num_queued_reqs"'
MODEL_CACHE_FREE_RATIO = 0.10
# Share of wall time a GPU may spend clock-throttled before it is worth a look.
THROTTLED_TIME_RATIO = 0.05


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str  # critical pages someone; warning waits for working hours
    summary: str
    description: str

    @property
    def runbook_anchor(self) -> str:
        """GitHub's anchor for the `### <name>` heading in docs/operations.md."""
        return self.name.lower()

    def rule(self) -> dict:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity, "component": "minimax-vllm"},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": f"{RUNBOOK_DOC}#{self.runbook_anchor}",
            },
        }


def _pod_age(selector: str) -> str:
    return f"(time() - kube_pod_start_time{{{selector}}})"


def _ready(selector: str) -> str:
    return f'kube_pod_status_ready{{{selector}, condition="true"}}'


def serving_alerts(
    o: ObservabilitySettings, cold_start_budget_s: int, release_namespaces: Iterable[str] = ()
) -> list[Alert]:
    """The serving alerts. `cold_start_budget_s` is the stack's own cold-start budget
    (`timeline.Timers.cold_start_alert`): how long a start on a new node may take before it is stuck.
    `release_namespaces`: where the stack's Helm releases run (kubernetes_layer.release_namespaces);
    PodRestarting watches them besides ALWAYS_WATCHED_NAMESPACES."""
    watched = "|".join(sorted(ALWAYS_WATCHED_NAMESPACES | set(release_namespaces)))
    budget = cold_start_budget_s
    pods = KSM_VLLM_PODS
    deployment = f'namespace="{workload.NAMESPACE}", deployment="{workload.APP}"'
    ready_lately = f"max_over_time({_ready(pods)}[{budget}s]) == 1"
    return [
        Alert(
            "VllmEngineDown",
            f"((sum(kube_deployment_status_replicas_available{{{deployment}}}) or vector(0)) == 0)"
            # ... while replicas are wanted (a deliberate scale to zero is not an outage) ...
            f" and on () (sum(kube_deployment_spec_replicas{{{deployment}}}) > 0)"
            # ... and no pod is still inside its cold-start budget.
            f" unless on () (count({_pod_age(pods)} < {budget}) > 0)",
            "5m",
            "critical",
            "No vLLM replica is serving",
            "No vLLM pod has been Ready for 5 minutes and none is within its "
            f"{budget // 60}-minute cold-start budget: every request to the endpoint fails.",
        ),
        Alert(
            "VllmReplicaNotReady",
            f"({_ready(pods)} == 0) and on (namespace, pod) ({ready_lately})",
            "5m",
            "warning",
            "A vLLM replica stopped being Ready",
            "{{ $labels.pod }} was Ready within the cold-start budget and has failed its /health readiness "
            "probe for 5 minutes; the load balancer no longer sends it traffic.",
        ),
        Alert(
            "VllmColdStartOverBudget",
            f"({_ready(pods)} == 0) and on (namespace, pod) ({_pod_age(pods)} > {budget})"
            f" unless on (namespace, pod) ({ready_lately})",
            "0m",
            "warning",
            "A vLLM start is taking longer than the cold-start budget",
            f"{{{{ $labels.pod }}}} started more than {budget // 60} minutes ago and has not been Ready since: "
            "the startup probe restarts it, and each restart begins the load (and any download) again.",
        ),
        Alert(
            "VllmMetricsUnreachable",
            f'(up{{{VLLM}}} == 0) and on (namespace, pod) (kube_pod_status_ready{{{KSM_VLLM_PODS}, condition="true"}} == 1)',
            "10m",
            "warning",
            "Prometheus cannot scrape a Ready vLLM pod",
            "{{ $labels.pod }} is Ready but its /metrics on port 8000 does not answer Prometheus: "
            "the dashboards and the serving alerts are blind for it.",
        ),
        Alert(
            "VllmRequestsWaiting",
            f"max by (namespace, pod) (vllm:num_requests_waiting{{{VLLM}}}) > {o.waiting_requests_threshold}",
            f"{o.waiting_minutes}m",
            "warning",
            "Requests are queueing in vLLM",
            f"{{{{ $labels.pod }}}} has had more than {o.waiting_requests_threshold} requests waiting for "
            f"{o.waiting_minutes} minutes: the replicas are saturated.",
        ),
        Alert(
            "VllmRefusingRequests",
            f"sum by (namespace, pod) (increase({ADMISSION_REJECTIONS}{{{OVER_CAP}}}[5m])) > 0",
            "5m",
            "warning",
            "vLLM is refusing requests at its admission cap",
            "{{ $labels.pod }} has answered 503 to {{ $value | humanize }} requests in the last 5 minutes, and kept "
            "doing so for 5 minutes: it already held serving.maxQueuedRequests requests (waiting + running).",
        ),
        Alert(
            "VllmKvCacheNearlyFull",
            f"max by (namespace, pod) (vllm:kv_cache_usage_perc{{{VLLM}}}) > {KV_CACHE_FULL_RATIO}",
            "15m",
            "warning",
            "vLLM's KV cache is nearly full",
            f"{{{{ $labels.pod }}}} has used more than {KV_CACHE_FULL_RATIO:.0%} of its KV cache for 15 minutes; "
            "new requests wait and running ones get preempted.",
        ),
        Alert(
            "VllmPreemptionsRising",
            f"sum by (namespace, pod) (increase(vllm:num_preemptions_total{{{VLLM}}}[10m])) > 0",
            "10m",
            "warning",
            "vLLM is preempting requests",
            "{{ $labels.pod }} preempted {{ $value | humanize }} requests in the last 10 minutes, and has kept "
            "doing so for 10 minutes: their KV cache is thrown away and recomputed.",
        ),
        Alert(
            "VllmTimeToFirstTokenSlow",
            f"histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{{{VLLM}}}[5m])))"
            f" > {o.ttft_p95_slo_seconds}",
            "10m",
            "warning",
            "p95 time to first token is above its SLO",
            f"p95 time to first token has been above {o.ttft_p95_slo_seconds} s "
            "(observability.ttftP95SloSeconds) for 10 minutes; it is {{ $value | humanizeDuration }}.",
        ),
        Alert(
            "VllmInterTokenLatencySlow",
            f"histogram_quantile(0.95, sum by (le) (rate(vllm:inter_token_latency_seconds_bucket{{{VLLM}}}[5m])))"
            f" > {o.itl_p95_slo_seconds}",
            "10m",
            "warning",
            "p95 inter-token latency is above its SLO",
            f"p95 time between streamed tokens has been above {o.itl_p95_slo_seconds} s "
            "(observability.itlP95SloSeconds) for 10 minutes; it is {{ $value | humanizeDuration }}.",
        ),
        Alert(
            "GpuXidError",
            f'max by (node, gpu) (max_over_time(DCGM_FI_DEV_XID_ERRORS{{job="{DCGM_JOB}"}}[5m])) > 0',
            "0m",
            "critical",
            "A GPU reported an XID error",
            "GPU {{ $labels.gpu }} on {{ $labels.node }} reported XID {{ $value }}: the driver saw a "
            "GPU fault; the vLLM replica on it may hang or crash.",
        ),
        Alert(
            "GpuThermalThrottling",
            f'max by (node, gpu) (rate(DCGM_FI_DEV_THERMAL_VIOLATION{{job="{DCGM_JOB}"}}[5m])) / 1e9'
            f" > {THROTTLED_TIME_RATIO}",
            "10m",
            "warning",
            "A GPU is throttled by temperature",
            "GPU {{ $labels.gpu }} on {{ $labels.node }} has spent {{ $value | humanizePercentage }} of the "
            "time clock-limited by temperature for 10 minutes.",
        ),
        Alert(
            "GpuPowerThrottling",
            f'max by (node, gpu) (rate(DCGM_FI_DEV_POWER_VIOLATION{{job="{DCGM_JOB}"}}[5m])) / 1e9'
            f" > {THROTTLED_TIME_RATIO}",
            "10m",
            "warning",
            "A GPU is throttled by its power limit",
            "GPU {{ $labels.gpu }} on {{ $labels.node }} has spent {{ $value | humanizePercentage }} of the "
            "time clock-limited by power for 10 minutes.",
        ),
        Alert(
            "ModelCacheDiskFilling",
            f'node_filesystem_avail_bytes{{mountpoint="{MODEL_CACHE_MOUNT}"}}'
            f' / node_filesystem_size_bytes{{mountpoint="{MODEL_CACHE_MOUNT}"}} < {MODEL_CACHE_FREE_RATIO}',
            "15m",
            "warning",
            "The NVMe model cache is nearly full",
            f"Less than {MODEL_CACHE_FREE_RATIO:.0%} of {MODEL_CACHE_MOUNT} is free on {{{{ $labels.instance }}}}: "
            "the next model or revision download will fail.",
        ),
        Alert(
            "PodRestarting",
            "sum by (namespace, pod, container) (increase(kube_pod_container_status_restarts_total"
            f'{{namespace=~"{watched}"}}[30m])) > 0',
            "0m",
            "warning",
            "A pod of the serving stack restarted",
            "{{ $labels.namespace }}/{{ $labels.pod }} container {{ $labels.container }} restarted "
            "{{ $value | humanize }} times in 30 minutes.",
        ),
    ]


# Restarts that matter to the endpoint wherever the stack runs: the model's own namespace, and
# kube-system (CoreDNS and the EKS add-ons: VPC CNI, kube-proxy, the Pod Identity agent). The
# namespaces of the Helm releases are added per stack, from what it installs.
ALWAYS_WATCHED_NAMESPACES = frozenset({workload.NAMESPACE, "kube-system"})


def alert_names(o: ObservabilitySettings) -> set[str]:
    """The names of the rules a stack loads: what ops verify and the plan count (no threshold needed)."""
    return {a.name for a in serving_alerts(o, cold_start_budget_s=0)}


def rule_groups(
    o: ObservabilitySettings, cold_start_budget_s: int, release_namespaces: Iterable[str] = ()
) -> list[dict]:
    rules = [a.rule() for a in serving_alerts(o, cold_start_budget_s, release_namespaces)]
    return [{"name": "minimax-vllm.serving", "rules": rules}]


def prometheus_rule(o: ObservabilitySettings, cold_start_budget_s: int, release_namespaces: Iterable[str] = ()) -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "minimax-vllm-serving",
            "namespace": MONITORING_NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "minimax-vllm"},
        },
        "spec": {"groups": rule_groups(o, cold_start_budget_s, release_namespaces)},
    }
