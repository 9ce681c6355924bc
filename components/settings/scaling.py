"""The `scaling` section of a stack: replica and GPU-node autoscaling, schedule, scale to zero.

Off unless a stack enables it: the prod stacks run a fixed size. A section of the settings
schema (`Settings.scaling`); its rules against the rest of the stack are in
components/scaling/rules.py. A bad value fails before any resource, with the key, the value,
the rule and the `pulumi config set` fix, like every other setting.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Annotated

from pydantic.dataclasses import dataclass

from components.settings.schema import SECTION as SECTION_CONFIG
from components.settings.schema import Bool, Float, Int, Str, holds, matches, rule

SECTION = "scaling"
# Cron day-of-week field: 0-6 (Sunday 0), ranges and lists, as KEDA's cron scaler reads it.
_DAYS = re.compile(r"^[0-6](-[0-6])?(,[0-6](-[0-6])?)*$")


@dataclass(frozen=True, config=SECTION_CONFIG)
class ScheduleSettings:
    """Hours in which replicas are kept warm; outside them the stack may scale to zero."""

    timezone: Annotated[Str, holds(zoneinfo.available_timezones().__contains__)] = rule(
        "UTC", "must be an IANA time zone such as Europe/Berlin or America/New_York"
    )
    start_hour: Int = rule(8, "must be an hour from 0 to 23", ge=0, le=23)
    end_hour: Int = rule(20, "must be an hour from 0 to 23", ge=0, le=23)
    days: Annotated[Str, matches(_DAYS.pattern)] = rule(  # Monday to Friday
        "1-5", "must be cron days of the week such as 1-5 (Monday-Friday) or 0-6"
    )
    replicas: Int = rule(1, "must be from 1 to 64", ge=1, le=64)  # kept running inside the hours

    @property
    def hours_per_day(self) -> int:
        return (self.end_hour - self.start_hour) % 24

    def day_numbers(self) -> frozenset[int]:
        """Cron day numbers (0 = Sunday) the window is open on."""
        found: set[int] = set()
        for part in self.days.split(","):
            lo, _, hi = part.partition("-")
            found.update(range(int(lo), int(hi or lo) + 1))
        return frozenset(found)


@dataclass(frozen=True, config=SECTION_CONFIG)
class ScalingSettings:
    """minReplicas 0 means scale to zero when idle (KEDA wakes it to one replica)."""

    enabled: Bool = rule(False, "must be true or false")
    min_replicas: Int = rule(1, "must be from 0 to 64", ge=0, le=64)
    max_replicas: Int = rule(1, "must be from 1 to 64", ge=1, le=64)
    # vLLM's production-stack scales on 5 waiting requests per replica.
    target_waiting_requests: Float = rule(5.0, "must be from 0 (exclusive) to 1000", gt=0, le=1000)
    target_kv_cache_usage: Float = rule(0.8, "must be from 0 (exclusive) to 1", gt=0, le=1)
    # Minutes without any active trigger before the last replica goes (scale to zero only).
    idle_minutes: Int = rule(30, "must be from 5 to 1440 minutes", ge=5, le=1440)
    # Wake from zero on requests to the load balancer (its CloudWatch 503 count).
    wake_on_requests: Bool = rule(True, "must be true or false")
    schedule: ScheduleSettings | None = None

    @property
    def scale_to_zero(self) -> bool:
        return self.enabled and self.min_replicas == 0
