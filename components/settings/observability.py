"""The stack's `observability` section: where metrics go and the serving SLOs the alerts enforce.

A section of the settings schema (components/settings/stack.py `Settings.observability`), written
with the same helpers, so its errors read like every other setting's.
"""

from __future__ import annotations

from typing import Annotated

from pydantic.dataclasses import dataclass

from components.settings.schema import SECTION as SECTION_CONFIG
from components.settings.schema import Float, Int, Str, closed, one_of, rule

SECTION = "observability"

# in-cluster: kube-prometheus-stack (Prometheus, Alertmanager, Grafana) on the system nodes.
# amp: Prometheus in agent mode remote-writes to an Amazon Managed Service for Prometheus
#      workspace, which evaluates the same alert rules; Grafana queries the workspace.
# off: nothing is collected (a dev stack that only needs the endpoint).
MODES = ("in-cluster", "amp", "off")


@dataclass(frozen=True, config=SECTION_CONFIG)
class ObservabilitySettings:
    mode: Annotated[Str, one_of(MODES)] = rule("in-cluster", closed("a collection mode", MODES))
    # p95 time to first token; MiniMax-M2.5 thinks before it answers, and a long prompt's
    # prefill on 4 GPUs takes seconds, so the default leaves room for both.
    ttft_p95_slo_seconds: Float = rule(10.0, "must be from 0 (exclusive) to 600 seconds", gt=0, le=600)
    # p95 time between two streamed tokens: what a reader of a streaming answer feels.
    itl_p95_slo_seconds: Float = rule(0.2, "must be from 0 (exclusive) to 10 seconds", gt=0, le=10)
    # Requests queued (not running) per replica before the queue alert counts the minutes.
    waiting_requests_threshold: Int = rule(16, "must be an integer from 1 to 10000", ge=1, le=10_000)
    waiting_minutes: Int = rule(5, "must be from 1 to 120 minutes", ge=1, le=120)
    # In-cluster Prometheus keeps samples on the node's disk (emptyDir): a bound on both.
    retention_days: Int = rule(7, "must be from 1 to 30 days", ge=1, le=30)
    scrape_interval_seconds: Int = rule(30, "must be from 10 to 300 seconds", ge=10, le=300)

    @property
    def enabled(self) -> bool:
        return self.mode != "off"
