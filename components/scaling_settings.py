"""The `scaling` section of a stack: replica and GPU-node autoscaling, schedule, scale to zero.

Off unless a stack enables it: the prod stacks run a fixed size. A bad value fails here, before
any resource, with the key, the value, the rule and the `pulumi config set` fix, like every
other setting.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from components.settings import PROJECT, Settings, SettingsError, read_stack_file, split_stack_config

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
        if not _DAYS.match(value):
            raise ValueError("must be cron days of the week such as 1-5 (Monday-Friday) or 0-6")
        return value

    @model_validator(mode="after")
    def _window(self) -> ScheduleSettings:
        if self.start_hour == self.end_hour:
            raise ValueError("startHour and endHour must differ (a window of 0 or 24 hours)")
        return self

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

    @model_validator(mode="after")
    def _bounds(self) -> ScalingSettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) is above maxReplicas ({self.max_replicas})")
        if self.schedule and self.schedule.replicas > self.max_replicas:
            raise ValueError(f"schedule.replicas ({self.schedule.replicas}) is above maxReplicas ({self.max_replicas})")
        return self

    @property
    def scale_to_zero(self) -> bool:
        return self.enabled and self.min_replicas == 0


def parse_scaling(raw: Mapping[str, Any] | None) -> ScalingSettings:
    """The section from raw config, or SettingsError naming each bad key with its fix."""
    if raw is None:
        return ScalingSettings()
    if not isinstance(raw, Mapping):
        raise SettingsError(
            [f"{PROJECT}:{SECTION} = {raw!r} must be an object. Fix: pulumi config set --path '{SECTION}.enabled' true"]
        )
    try:
        return ScalingSettings.model_validate(dict(raw))
    except ValidationError as err:
        raise SettingsError([_problem(e, raw) for e in err.errors()]) from None


def _problem(error: Mapping[str, Any], raw: Mapping[str, Any]) -> str:
    path = ".".join(str(p) for p in (SECTION, *error["loc"]))
    value = error.get("input")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        known = ", ".join(to_camel(f) for f in _fields_at(error["loc"][:-1]))
        return f"{PROJECT}:{path} = {value!r} is not a known setting; known fields: {known}. Fix: pulumi config rm --path '{path}'"
    if not error["loc"]:  # a rule across fields
        return (
            f"{PROJECT}:{SECTION} = {dict(raw)!r}: {message}. Fix: pulumi config set --path '{SECTION}.maxReplicas' <n>"
        )
    return f"{PROJECT}:{path} = {value!r} {message}. Fix: pulumi config set --path '{path}' <value>"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = ScalingSettings
    for part in loc:
        if part == "schedule":
            model = ScheduleSettings
    return list(model.model_fields)


def replicas_per_node(settings: Settings) -> int:
    """vLLM replicas one GPU node holds: 2 for the 4-GPU profile on a p5, 1 when spread."""
    if settings.serving.spread_across_nodes:
        return 1
    return settings.gpu_nodes.instance.gpus // settings.serving.gpus_per_replica


def replica_capacity(settings: Settings) -> int:
    """The most replicas the GPU node group can hold at its maximum size."""
    return settings.gpu_nodes.max_size * replicas_per_node(settings)


def check(scaling: ScalingSettings, settings: Settings) -> list[str]:
    """Rules between the scaling section and the rest of the stack."""
    if not scaling.enabled:
        if scaling.schedule:
            return [
                f"{PROJECT}:{SECTION}.schedule is set but {SECTION}.enabled is false, so no schedule would apply. "
                f"Fix: pulumi config set --path '{SECTION}.enabled' true"
            ]
        return []
    problems = []
    g, sv = settings.gpu_nodes, settings.serving
    capacity = replica_capacity(settings)
    if scaling.max_replicas > capacity:
        per_node = replicas_per_node(settings)
        problems.append(
            f"{PROJECT}:{SECTION}.maxReplicas = {scaling.max_replicas} exceeds what the GPU node group holds: "
            f"gpuNodes.maxSize {g.max_size} x {per_node} replica(s) of the {sv.profile} profile per {g.instance_type} = {capacity}. "
            f"Fix: pulumi config set --path '{SECTION}.maxReplicas' {capacity} "
            f"(or raise gpuNodes.maxSize to {-(-scaling.max_replicas // per_node)})"
        )
    if not scaling.min_replicas <= sv.replicas <= scaling.max_replicas:
        problems.append(
            f"{PROJECT}:serving.replicas = {sv.replicas} is the starting replica count of an autoscaled stack and must lie "
            f"between {SECTION}.minReplicas ({scaling.min_replicas}) and {SECTION}.maxReplicas ({scaling.max_replicas}). "
            f"Fix: pulumi config set --path 'serving.replicas' {max(1, min(sv.replicas, scaling.max_replicas))}"
        )
    if scaling.scale_to_zero and g.min_size > 0:
        problems.append(
            f"{PROJECT}:gpuNodes.minSize = {g.min_size} keeps {g.min_size} {g.instance_type} running while "
            f"{SECTION}.minReplicas 0 scales vLLM to zero: the idle hours would still be paid. "
            f"Fix: pulumi config set --path 'gpuNodes.minSize' 0"
        )
    return problems


def scaling_from_stack_file(stack: str, settings: Settings) -> ScalingSettings:
    """The scaling section of a stack file, checked against the stack's settings (no Pulumi engine)."""
    raw, _ = split_stack_config(read_stack_file(stack))
    return validated(parse_scaling(raw.get(SECTION)), settings)


def load_scaling(settings: Settings) -> ScalingSettings:
    """The scaling section of the running Pulumi program's config."""
    import pulumi

    return validated(parse_scaling(pulumi.Config(PROJECT).get_object(SECTION)), settings)


def validated(scaling: ScalingSettings, settings: Settings) -> ScalingSettings:
    problems = check(scaling, settings)
    if problems:
        raise SettingsError(problems)
    return scaling
