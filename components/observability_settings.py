"""The stack's `observability` section: where metrics go and the serving SLOs the alerts enforce.

A pydantic v2 model, so the rules live beside the fields; `parse` turns pydantic's errors into
the project's message shape (key, value, rule, fix) for the settings layer to report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

PROJECT = "minimax-vllm"
SECTION = "observability"

# in-cluster: kube-prometheus-stack (Prometheus, Alertmanager, Grafana) on the system nodes.
# amp: Prometheus in agent mode remote-writes to an Amazon Managed Service for Prometheus
#      workspace, which evaluates the same alert rules; Grafana queries the workspace.
# off: nothing is collected (a dev stack that only needs the endpoint).
MODES = ("in-cluster", "amp", "off")


class ObservabilitySettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    mode: Literal["in-cluster", "amp", "off"] = "in-cluster"
    # p95 time to first token; MiniMax-M2.5 thinks before it answers, and a long prompt's
    # prefill on 4 GPUs takes seconds, so the default leaves room for both.
    ttft_p95_slo_seconds: float = Field(default=10.0, gt=0, le=600)
    # p95 time between two streamed tokens: what a reader of a streaming answer feels.
    itl_p95_slo_seconds: float = Field(default=0.2, gt=0, le=10)
    # Requests queued (not running) per replica before the queue alert counts the minutes.
    waiting_requests_threshold: int = Field(default=16, ge=1, le=10_000)
    waiting_minutes: int = Field(default=5, ge=1, le=120)
    # In-cluster Prometheus keeps samples on the node's disk (emptyDir): a bound on both.
    retention_days: int = Field(default=7, ge=1, le=30)
    scrape_interval_seconds: int = Field(default=30, ge=10, le=300)

    @property
    def enabled(self) -> bool:
        return self.mode != "off"


FIXES = {
    "mode": "in-cluster",
    "ttftP95SloSeconds": 10,
    "itlP95SloSeconds": 0.2,
    "waitingRequestsThreshold": 16,
    "waitingMinutes": 5,
    "retentionDays": 7,
    "scrapeIntervalSeconds": 30,
}


def parse(raw: Any) -> tuple[ObservabilitySettings, list[str]]:
    """The section from raw stack config, and one problem line per bad field (empty when valid)."""
    if raw is None:
        return ObservabilitySettings(), []
    if not isinstance(raw, Mapping):
        return ObservabilitySettings(), [
            f"{PROJECT}:{SECTION} = {raw!r} must be an object. "
            f"Fix: pulumi config set --path '{SECTION}.mode' in-cluster"
        ]
    try:
        return ObservabilitySettings.model_validate(dict(raw)), []
    except ValidationError as err:
        return ObservabilitySettings(), [_problem(e, raw) for e in err.errors()]


def _problem(error: Mapping[str, Any], raw: Mapping[str, Any]) -> str:
    field = str(error["loc"][0]) if error["loc"] else "?"
    key = f"{SECTION}.{field}"
    if error["type"] == "extra_forbidden":
        known = ", ".join(to_camel(name) for name in ObservabilitySettings.model_fields)
        return (
            f"{PROJECT}:{key} = {raw.get(field)!r} is not a known setting; known fields of {SECTION}: {known}. "
            f"Fix: pulumi config rm --path '{key}'"
        )
    rule = error["msg"]
    if field == "mode":
        rule = f"is not a collection mode; choose one of: {', '.join(MODES)}"
    example = FIXES.get(field, "<value>")
    return f"{PROJECT}:{key} = {raw.get(field)!r} {rule}. Fix: pulumi config set --path '{key}' {example}"
