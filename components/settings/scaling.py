"""The `scaling` section of a stack: replica and GPU-node autoscaling, schedule, scale to zero.

Off unless a stack enables it: the prod stacks run a fixed size. A section of the settings
schema (`Settings.scaling`); its rules against the rest of the stack are in
components/scaling/rules.py. A bad value fails before any resource, with the key, the value,
the rule and the `pulumi config set` fix, like every other setting.
"""

from __future__ import annotations

import re
import zoneinfo

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

SECTION = "scaling"
# Cron day-of-week field: 0-6 (Sunday 0), ranges and lists, as KEDA's cron scaler reads it.
_DAYS = re.compile(r"^[0-6](-[0-6])?(,[0-6](-[0-6])?)*$")
_MODEL = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


class ScheduleSettings(BaseModel):
    """Hours in which replicas are kept warm; outside them the stack may scale to zero."""

    model_config = _MODEL

    timezone: str = "UTC"
    start_hour: int = Field(8, ge=0, le=23)
    end_hour: int = Field(20, ge=0, le=23)
    days: str = "1-5"  # Monday to Friday
    replicas: int = Field(1, ge=1, le=64)  # kept running inside the hours

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in zoneinfo.available_timezones():
            raise ValueError("must be an IANA time zone such as Europe/Berlin or America/New_York")
        return value

    @field_validator("days")
    @classmethod
    def _cron_days(cls, value: str) -> str:
        if not _DAYS.fullmatch(value):
            raise ValueError("must be cron days of the week such as 1-5 (Monday-Friday) or 0-6")
        return value

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


class ScalingSettings(BaseModel):
    """minReplicas 0 means scale to zero when idle (KEDA wakes it to one replica)."""

    model_config = _MODEL

    enabled: bool = False
    min_replicas: int = Field(1, ge=0, le=64)
    max_replicas: int = Field(1, ge=1, le=64)
    # vLLM's production-stack scales on 5 waiting requests per replica.
    target_waiting_requests: float = Field(5.0, gt=0, le=1000)
    target_kv_cache_usage: float = Field(0.8, gt=0, le=1)
    # Minutes without any active trigger before the last replica goes (scale to zero only).
    idle_minutes: int = Field(30, ge=5, le=1440)
    # Wake from zero on requests to the load balancer (its CloudWatch 503 count).
    wake_on_requests: bool = True
    schedule: ScheduleSettings | None = None

    @property
    def scale_to_zero(self) -> bool:
        return self.enabled and self.min_replicas == 0
