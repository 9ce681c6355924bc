"""The alert rules evaluated by Prometheus' own rule tester (`promtool test rules`) on synthetic series.

Parsing and metric names are checked in test_observability.py; here each rule is run over
series shaped like the failure it names, and like the normal case it must stay quiet for.
CI installs promtool (Debian package `prometheus`); without it these tests are skipped.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.facts import gpu_pool
from components.observability import alerts
from components.platform.config import from_stack_file
from components.serving import workload
from components.settings.observability import ObservabilitySettings

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")

SETTINGS = ObservabilitySettings(ttftP95SloSeconds=10, waitingRequestsThreshold=16, waitingMinutes=5)
NS = workload.NAMESPACE
# The prod-8gpu stack's own budget (S3 weights): the rules under test use one stack's timeline.
BUDGET_S = workload.timers(from_stack_file("prod-8gpu").serving, "s3").cold_start_alert
BUDGET_MIN = BUDGET_S // 60
POD = {"namespace": NS, "pod": "vllm-7d9f-abcde", "uid": "u1"}
VLLM = {"namespace": NS, "job": alerts.VLLM_JOB, "pod": "vllm-7d9f-abcde"}
RULE_LABELS = {"component": "minimax-vllm"}


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"series": f"{name}{{{inner}}}", "values": values}


def expect(alert: str, at: str, labels: list[dict[str, str]] | None = None) -> dict:
    severity = {a.name: a.severity for a in alerts.serving_alerts(SETTINGS, BUDGET_S)}[alert]
    return {
        "eval_time": at,
        "alertname": alert,
        "exp_alerts": [{"exp_labels": {**RULE_LABELS, "severity": severity, **lab}} for lab in labels or []],
    }


def run_promtool(tmp_path: Path, input_series: list[dict], checks: list[dict]) -> None:
    groups = alerts.rule_groups(SETTINGS, BUDGET_S)
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations")  # templated text; the tests are about when and for whom rules fire
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=True))
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input_series, "alert_rule_test": checks}],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test, sort_keys=True))
    done = subprocess.run(
        [PROMTOOL, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_first_start_is_quiet_within_its_budget_and_alerts_after_it(tmp_path):
    never_ready = [
        series("kube_pod_start_time", POD, f"0x{BUDGET_MIN + 30}"),
        series("kube_pod_status_ready", {**POD, "condition": "true"}, f"0x{BUDGET_MIN + 30}"),
        series(
            "kube_deployment_status_replicas_available", {"namespace": NS, "deployment": "vllm"}, f"0x{BUDGET_MIN + 30}"
        ),
        series("kube_deployment_spec_replicas", {"namespace": NS, "deployment": "vllm"}, f"1x{BUDGET_MIN + 30}"),
    ]
    ready_labels = {**POD, "condition": "true"}
    run_promtool(
        tmp_path,
        never_ready,
        [
            expect("VllmEngineDown", f"{BUDGET_MIN - 10}m"),  # still loading: not an outage yet
            expect("VllmColdStartOverBudget", f"{BUDGET_MIN - 10}m"),
            expect("VllmReplicaNotReady", f"{BUDGET_MIN - 10}m"),
            expect("VllmColdStartOverBudget", f"{BUDGET_MIN + 5}m", [ready_labels]),
            expect("VllmEngineDown", f"{BUDGET_MIN + 10}m", [{}]),
            expect("VllmReplicaNotReady", f"{BUDGET_MIN + 10}m"),  # never was Ready: the cold-start alert covers it
        ],
    )


def test_a_replica_that_stops_being_ready_alerts_as_not_ready_not_as_a_slow_start(tmp_path):
    minutes = 3 * BUDGET_MIN
    ready_then_not = f"1x{2 * BUDGET_MIN} 0x{BUDGET_MIN}"
    run_promtool(
        tmp_path,
        [
            series("kube_pod_start_time", POD, f"0x{minutes}"),
            series("kube_pod_status_ready", {**POD, "condition": "true"}, ready_then_not),
            series("kube_deployment_status_replicas_available", {"namespace": NS, "deployment": "vllm"}, "1x300"),
            series("kube_deployment_spec_replicas", {"namespace": NS, "deployment": "vllm"}, "2x300"),
        ],
        [
            expect("VllmReplicaNotReady", f"{2 * BUDGET_MIN + 3}m"),  # not yet 5 minutes
            expect("VllmReplicaNotReady", f"{2 * BUDGET_MIN + 7}m", [{**POD, "condition": "true"}]),
            expect("VllmColdStartOverBudget", f"{2 * BUDGET_MIN + 7}m"),
            expect("VllmEngineDown", f"{2 * BUDGET_MIN + 7}m"),  # the other replica still serves
        ],
    )


def test_scale_to_zero_is_not_an_outage(tmp_path):
    run_promtool(
        tmp_path,
        [
            series("kube_deployment_status_replicas_available", {"namespace": NS, "deployment": "vllm"}, "0x30"),
            series("kube_deployment_spec_replicas", {"namespace": NS, "deployment": "vllm"}, "0x30"),
        ],
        [expect("VllmEngineDown", "20m")],
    )


def test_saturation_alerts_fire_on_sustained_pressure_only(tmp_path):
    run_promtool(
        tmp_path,
        [
            series("vllm:kv_cache_usage_perc", VLLM, "0.95x30"),
            series("vllm:num_requests_waiting", VLLM, "40x3 0x3 40x30"),  # a short burst, then a queue
            series("vllm:num_preemptions_total", VLLM, "0+2x30"),
            # one refusal, quiet for 10 minutes, then refusals every minute
            series(alerts.ADMISSION_REJECTIONS, {**VLLM, "reason": "max_num_queued_reqs"}, "0 1 1x10 1+5x20"),
            series(
                alerts.ADMISSION_REJECTIONS, {**VLLM, "pod": "vllm-other", "reason": "max_num_queued_tokens"}, "0+5x30"
            ),
        ],
        [
            expect("VllmKvCacheNearlyFull", "10m"),
            expect("VllmKvCacheNearlyFull", "16m", [{"namespace": NS, "pod": VLLM["pod"]}]),
            expect("VllmRequestsWaiting", "5m"),
            expect("VllmRequestsWaiting", "13m", [{"namespace": NS, "pod": VLLM["pod"]}]),
            expect("VllmPreemptionsRising", "25m", [{"namespace": NS, "pod": VLLM["pod"]}]),
            expect("VllmRefusingRequests", "4m"),
            expect("VllmRefusingRequests", "11m"),
            expect("VllmRefusingRequests", "20m", [{"namespace": NS, "pod": VLLM["pod"]}]),
        ],
    )


def test_latency_alerts_compare_p95_with_the_slo(tmp_path):
    # Every first token between 1 s and 20 s: p95 about 19 s, above the 10 s SLO. Every
    # inter-token gap under 0.1 s: p95 below the 0.2 s SLO.
    ttft = "vllm:time_to_first_token_seconds_bucket"
    itl = "vllm:inter_token_latency_seconds_bucket"
    run_promtool(
        tmp_path,
        [
            series(ttft, {**VLLM, "le": "1.0"}, "0x40"),
            series(ttft, {**VLLM, "le": "20.0"}, "0+10x40"),
            series(ttft, {**VLLM, "le": "+Inf"}, "0+10x40"),
            series(itl, {**VLLM, "le": "0.1"}, "0+100x40"),
            series(itl, {**VLLM, "le": "+Inf"}, "0+100x40"),
        ],
        [
            expect("VllmTimeToFirstTokenSlow", "20m", [{}]),
            expect("VllmInterTokenLatencySlow", "20m"),
        ],
    )


def test_gpu_and_disk_alerts(tmp_path):
    gpu = {"job": alerts.DCGM_JOB, "node": "ip-10-42-1-5", "gpu": "3"}
    fs = {"instance": "10.42.1.5:9100", "mountpoint": gpu_pool.NVME_MOUNT, "device": "/dev/md0", "fstype": "xfs"}
    root = {**fs, "mountpoint": "/", "device": "/dev/nvme0n1p1"}
    run_promtool(
        tmp_path,
        [
            series("DCGM_FI_DEV_XID_ERRORS", gpu, "0x5 79 0x10"),
            # 300 ms of each second thermally throttled: 30% of the time.
            series("DCGM_FI_DEV_THERMAL_VIOLATION", gpu, "0+18000000000x30"),
            series("DCGM_FI_DEV_POWER_VIOLATION", gpu, "0x30"),
            series("node_filesystem_avail_bytes", fs, "5x30"),
            series("node_filesystem_size_bytes", fs, "100x30"),
            series("node_filesystem_avail_bytes", root, "5x30"),  # the root disk is not the model cache
            series("node_filesystem_size_bytes", root, "100x30"),
        ],
        [
            expect("GpuXidError", "7m", [{"node": gpu["node"], "gpu": gpu["gpu"]}]),
            expect("GpuXidError", "15m"),  # the last XID is older than the 5-minute window
            expect("GpuThermalThrottling", "20m", [{"node": gpu["node"], "gpu": gpu["gpu"]}]),
            expect("GpuPowerThrottling", "20m"),
            expect("ModelCacheDiskFilling", "20m", [fs]),
        ],
    )


def test_a_restart_in_a_watched_namespace_alerts(tmp_path):
    watched = {"namespace": NS, "pod": "vllm-7d9f-abcde", "container": "vllm"}
    other = {"namespace": "default", "pod": "web-1", "container": "web"}
    run_promtool(
        tmp_path,
        [
            series("kube_pod_container_status_restarts_total", watched, "0x5 1x20"),
            series("kube_pod_container_status_restarts_total", other, "0x5 3x20"),
        ],
        [expect("PodRestarting", "10m", [watched])],
    )


def test_promtool_accepts_the_rule_file_with_its_annotation_templates(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": alerts.rule_groups(SETTINGS, BUDGET_S)}, sort_keys=True))
    done = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(alerts.serving_alerts(SETTINGS, BUDGET_S))} rules found" in done.stdout
    broken = tmp_path / "broken.yaml"
    groups = alerts.rule_groups(SETTINGS, BUDGET_S)
    groups[0]["rules"][0]["annotations"]["summary"] = "{{ $labels.pod "  # an unclosed template
    broken.write_text(yaml.safe_dump({"groups": groups}))
    assert subprocess.run([PROMTOOL, "check", "rules", str(broken)], capture_output=True, timeout=60).returncode != 0
