"""This project's Grafana dashboards, built in Python (plain dicts, provisioned by Grafana's sidecar).

Two dashboards: serving (what vLLM does with requests) and GPU and node (what the p5s do).
Every panel queries the data source chosen by the `datasource` variable, so the same JSON
works on the in-cluster Prometheus and on an Amazon Managed Service for Prometheus workspace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from components.observability.alerts import (
    ADMISSION_REJECTIONS,
    DCGM_JOB,
    KV_CACHE_FULL_RATIO,
    MODEL_CACHE_MOUNT,
    MONITORING_NAMESPACE,
    OVER_CAP,
    VLLM,
)

# The Grafana sidecar loads every ConfigMap carrying this label (kube-prometheus-stack's
# `grafana.sidecar.dashboards.label` / `labelValue`, set from the same constants).
SIDECAR_LABEL = ("grafana_dashboard", "1")
DATASOURCE_VAR = "datasource"
DATASOURCE = {"type": "prometheus", "uid": f"${{{DATASOURCE_VAR}}}"}
# kube-prometheus-stack's provisioned Prometheus data source uid (grafana.sidecar.datasources.uid).
DEFAULT_DATASOURCE_UID = "prometheus"
SCHEMA_VERSION = 39


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    queries: tuple[Query, ...]
    description: str = ""
    threshold: float | None = None  # drawn red from this value up


def _q(expr: str, legend: str) -> Query:
    return Query(expr, legend)


def _quantiles(metric: str) -> tuple[Query, ...]:
    return tuple(
        _q(f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{VLLM}}}[5m])))", f"p{int(q * 100)}")
        for q in (0.5, 0.95, 0.99)
    )


def serving_panels(ttft_slo: float, itl_slo: float) -> list[Panel]:
    return [
        Panel(
            "Requests running and waiting",
            "short",
            (
                _q(f"sum by (pod) (vllm:num_requests_running{{{VLLM}}})", "running {{pod}}"),
                _q(f"sum by (pod) (vllm:num_requests_waiting{{{VLLM}}})", "waiting {{pod}}"),
            ),
            "Requests in the running batch, and requests queued for capacity, per replica.",
        ),
        Panel(
            "KV-cache usage",
            "percentunit",
            (_q(f"max by (pod) (vllm:kv_cache_usage_perc{{{VLLM}}})", "{{pod}}"),),
            "Share of KV-cache blocks in use; above 90% new requests wait and running ones get preempted.",
            KV_CACHE_FULL_RATIO,
        ),
        Panel(
            "Prefix-cache hit rate",
            "percentunit",
            (
                _q(
                    f"sum by (pod) (rate(vllm:prefix_cache_hits_total{{{VLLM}}}[5m]))"
                    f" / sum by (pod) (rate(vllm:prefix_cache_queries_total{{{VLLM}}}[5m]))",
                    "{{pod}}",
                ),
            ),
            "Prompt tokens served from cached KV blocks (shared system prompts, multi-turn history).",
        ),
        Panel(
            "Preemptions",
            "reqps",
            (_q(f"sum by (pod) (rate(vllm:num_preemptions_total{{{VLLM}}}[5m]))", "{{pod}}"),),
            "Requests evicted from the batch for lack of KV cache; their work is recomputed.",
        ),
        Panel(
            "Time to first token",
            "s",
            _quantiles("vllm:time_to_first_token_seconds"),
            "Queue, prefill and the first decode step. The red line is observability.ttftP95SloSeconds.",
            ttft_slo,
        ),
        Panel(
            "Inter-token latency",
            "s",
            _quantiles("vllm:inter_token_latency_seconds"),
            "Time between two streamed tokens. The red line is observability.itlP95SloSeconds.",
            itl_slo,
        ),
        Panel(
            "Request latency and queue time (p95)",
            "s",
            (
                _q(
                    f"histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{{{VLLM}}}[5m])))",
                    "end to end",
                ),
                _q(
                    f"histogram_quantile(0.95, sum by (le) (rate(vllm:request_queue_time_seconds_bucket{{{VLLM}}}[5m])))",
                    "waiting in queue",
                ),
            ),
        ),
        Panel(
            "Token throughput",
            "short",
            (
                _q(f"sum(rate(vllm:prompt_tokens_total{{{VLLM}}}[5m]))", "prompt tokens/s"),
                _q(f"sum(rate(vllm:generation_tokens_total{{{VLLM}}}[5m]))", "generated tokens/s"),
            ),
        ),
        Panel(
            "Finished requests by reason",
            "reqps",
            (_q(f"sum by (finished_reason) (rate(vllm:request_success_total{{{VLLM}}}[5m]))", "{{finished_reason}}"),),
            "stop and length are normal ends; abort is a client that left; error is a server-side failure.",
        ),
        Panel(
            "Errors",
            "reqps",
            (
                _q(
                    f'sum by (handler) (rate(http_requests_total{{{VLLM}, status="5xx"}}[5m]))',
                    "HTTP 5xx {{handler}}",
                ),
                _q(
                    f'sum(rate(vllm:request_success_total{{{VLLM}, finished_reason="error"}}[5m]))',
                    "engine errors",
                ),
                _q(f"sum by (pod) (rate({ADMISSION_REJECTIONS}{{{OVER_CAP}}}[5m]))", "refused over the cap {{pod}}"),
            ),
            "Server errors by API route (vLLM's HTTP instrumentation), requests the engine ended with an error, "
            "and requests a replica refused with 503 because it held serving.maxQueuedRequests.",
        ),
    ]


DCGM = f'job="{DCGM_JOB}"'
CACHE = f'mountpoint="{MODEL_CACHE_MOUNT}"'


def gpu_panels() -> list[Panel]:
    return [
        Panel(
            "GPU utilisation",
            "percent",
            (_q(f"avg by (node, gpu) (DCGM_FI_DEV_GPU_UTIL{{{DCGM}}})", "{{node}} GPU {{gpu}}"),),
            "Time a kernel was running (dcgm-exporter 4.8: percent).",
        ),
        Panel(
            "Tensor-core activity",
            "percentunit",
            (_q(f"avg by (node, gpu) (DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{{{DCGM}}})", "{{node}} GPU {{gpu}}"),),
            "How much of the time the tensor pipes do work: the real measure of a busy H100.",
        ),
        Panel(
            "GPU memory used",
            "mbytes",
            (_q(f"max by (node, gpu) (DCGM_FI_DEV_FB_USED{{{DCGM}}})", "{{node}} GPU {{gpu}}"),),
            "Framebuffer in use (MiB): weights plus the KV cache vLLM preallocates.",
        ),
        Panel(
            "Power draw",
            "watt",
            (_q(f"max by (node, gpu) (DCGM_FI_DEV_POWER_USAGE{{{DCGM}}})", "{{node}} GPU {{gpu}}"),),
        ),
        Panel(
            "GPU temperature",
            "celsius",
            (
                _q(f"max by (node, gpu) (DCGM_FI_DEV_GPU_TEMP{{{DCGM}}})", "{{node}} GPU {{gpu}}"),
                _q(f"max by (node, gpu) (DCGM_FI_DEV_MEMORY_TEMP{{{DCGM}}})", "{{node}} HBM {{gpu}}"),
            ),
        ),
        Panel(
            "Time throttled",
            "percentunit",
            (
                _q(
                    f"max by (node, gpu) (rate(DCGM_FI_DEV_THERMAL_VIOLATION{{{DCGM}}}[5m])) / 1e9",
                    "thermal {{node}} {{gpu}}",
                ),
                _q(
                    f"max by (node, gpu) (rate(DCGM_FI_DEV_POWER_VIOLATION{{{DCGM}}}[5m])) / 1e9",
                    "power {{node}} {{gpu}}",
                ),
            ),
            "Share of wall time the clocks were held down by temperature or the power limit.",
        ),
        Panel(
            "XID errors",
            "none",
            (_q(f"max by (node, gpu) (max_over_time(DCGM_FI_DEV_XID_ERRORS{{{DCGM}}}[5m]))", "{{node}} GPU {{gpu}}"),),
            "The last XID the driver reported (0: none). Look the number up in NVIDIA's XID catalogue.",
        ),
        Panel(
            "NVMe model cache usage",
            "percentunit",
            (
                _q(
                    f"1 - node_filesystem_avail_bytes{{{CACHE}}} / node_filesystem_size_bytes{{{CACHE}}}",
                    "{{instance}}",
                ),
            ),
            f"The instance-store RAID0 at {MODEL_CACHE_MOUNT} that holds the weights and compile caches.",
            0.9,
        ),
        Panel(
            "Node CPU and memory",
            "percentunit",
            (
                _q('1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))', "CPU {{instance}}"),
                _q("1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "memory {{instance}}"),
            ),
        ),
    ]


def _panel_json(panel: Panel, panel_id: int) -> dict:
    width, height = 12, 8
    steps = [{"color": "green", "value": None}]
    if panel.threshold is not None:
        steps.append({"color": "red", "value": panel.threshold})
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": dict(DATASOURCE),
        "gridPos": {"h": height, "w": width, "x": ((panel_id - 1) % 2) * width, "y": ((panel_id - 1) // 2) * height},
        "fieldConfig": {
            "defaults": {
                "unit": panel.unit,
                "thresholds": {"mode": "absolute", "steps": steps},
                "custom": {"thresholdsStyle": {"mode": "line" if panel.threshold is not None else "off"}},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": q.expr, "legendFormat": q.legend, "datasource": dict(DATASOURCE)}
            for i, q in enumerate(panel.queries)
        ],
    }


def dashboard(uid: str, title: str, panels: list[Panel]) -> dict:
    return {
        "uid": uid,
        "title": title,
        "tags": ["minimax-vllm"],
        "editable": False,
        "schemaVersion": SCHEMA_VERSION,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "utc",
        "templating": {
            "list": [
                {
                    "name": DATASOURCE_VAR,
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {"text": "Prometheus", "value": DEFAULT_DATASOURCE_UID},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                }
            ]
        },
        "panels": [_panel_json(p, i) for i, p in enumerate(panels, start=1)],
    }


def dashboards(ttft_slo: float, itl_slo: float) -> dict[str, dict]:
    """Dashboards by uid."""
    return {
        "minimax-vllm-serving": dashboard(
            "minimax-vllm-serving", "minimax-vllm: serving", serving_panels(ttft_slo, itl_slo)
        ),
        "minimax-vllm-gpu": dashboard("minimax-vllm-gpu", "minimax-vllm: GPUs and nodes", gpu_panels()),
    }


def config_maps(ttft_slo: float, itl_slo: float) -> list[dict]:
    """One ConfigMap per dashboard, labelled for the sidecar; JSON with sorted keys, so renders are stable."""
    key, value = SIDECAR_LABEL
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"dashboard-{uid}",
                "namespace": MONITORING_NAMESPACE,
                "labels": {key: value, "app.kubernetes.io/part-of": "minimax-vllm"},
            },
            "data": {f"{uid}.json": json.dumps(board, sort_keys=True, indent=1)},
        }
        for uid, board in sorted(dashboards(ttft_slo, itl_slo).items())
    ]
