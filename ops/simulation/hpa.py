"""The HPA KEDA creates (kubernetes pkg/controller/podautoscaler), step by step: each external
AverageValue metric proposes ceil(value / target) replicas outside the tolerance, stabilization
windows, and the scaling policies' limits against the count at the start of each period."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from components.scaling.policy import Behavior, Rules

TOLERANCE = 0.1  # the HPA's default --horizontal-pod-autoscaler-tolerance


Events = Sequence[tuple[float, int]]  # (time, replicas) of past scale events


def ratio_replicas(current: int, metric: float, target: float, tolerance: float = TOLERANCE) -> int:
    """The documented rule: desired = ceil(current x metric / target), unless within tolerance."""
    ratio = metric / target
    if abs(1.0 - ratio) <= tolerance:
        return current
    return math.ceil(current * ratio)


def external_average_value_replicas(current: int, usage: float, target: float, tolerance: float = TOLERANCE) -> int:
    """An External metric with an AverageValue target (what KEDA's triggers are)."""
    if current == 0:
        return 0
    if abs(1.0 - usage / (target * current)) <= tolerance:
        return current
    return math.ceil(usage / target)


@dataclass
class Hpa:
    """One HorizontalPodAutoscaler with behavior: recommendations and scale events over time."""

    behavior: Behavior
    min_replicas: int
    max_replicas: int
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[tuple[float, int]] = field(default_factory=list)
    down_events: list[tuple[float, int]] = field(default_factory=list)

    def reconcile(self, now: float, current: int, metric_desired: int) -> int:
        if current == 0:
            return 0  # scaling disabled at zero; KEDA brings it back
        if current > self.max_replicas:
            desired = self.max_replicas
        elif current < self.min_replicas:
            desired = self.min_replicas
        else:
            stabilized = self._stabilize(now, current, metric_desired)
            desired = self._rate_limit(now, current, stabilized)
        if desired > current:
            self.up_events.append((now, desired - current))
        elif desired < current:
            self.down_events.append((now, current - desired))
        return desired

    def _stabilize(self, now: float, current: int, desired: int) -> int:
        """stabilizeRecommendationWithBehaviors: the current count, raised to the lowest
        recommendation of the scale-up window and lowered to the highest of the scale-down window."""
        up, down = self.behavior.scale_up, self.behavior.scale_down
        up_cut, down_cut = now - up.stabilization_window_seconds, now - down.stabilization_window_seconds
        upper = lower = desired
        for at, rec in self.recommendations:
            if at > up_cut:
                upper = min(upper, rec)
            if at > down_cut:
                lower = max(lower, rec)
        recommendation = min(max(current, upper), lower)
        keep = min(up_cut, down_cut)
        while self.recommendations and self.recommendations[0][0] < keep:
            self.recommendations.pop(0)
        # A run of equal recommendations is kept as its latest one: the same answer, less work.
        if self.recommendations and self.recommendations[-1][1] == desired:
            self.recommendations[-1] = (now, desired)
        else:
            self.recommendations.append((now, desired))
        return recommendation

    def _rate_limit(self, now: float, current: int, desired: int) -> int:
        events = (self.up_events, self.down_events)
        if desired > current:
            limit = max(current, scale_up_limit(now, current, *events, self.behavior.scale_up))
            return min(desired, self.max_replicas, limit)
        if desired < current:
            limit = min(current, scale_down_limit(now, current, *events, self.behavior.scale_down))
            return max(desired, self.min_replicas, limit)
        return desired


def _changed_within(now: float, period: int, events: Sequence[tuple[float, int]]) -> int:
    return sum(n for at, n in events if at > now - period)


def _period_start(now: float, current: int, period: int, ups: Events, downs: Events) -> int:
    """The replica count at the start of a policy's period: changes within it are undone."""
    return current - _changed_within(now, period, ups) + _changed_within(now, period, downs)


def scale_up_limit(now: float, current: int, ups: Events, downs: Events, rules: Rules) -> int:
    """calculateScaleUpLimitWithScalingRules: the most replicas the policies allow right now."""
    if rules.select_policy == "Disabled":
        return current
    pick = min if rules.select_policy == "Min" else max
    result: int | None = None
    for p in rules.policies:
        start = _period_start(now, current, p.period_seconds, ups, downs)
        proposed = start + p.value if p.type == "Pods" else math.ceil(start * (1 + p.value / 100))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def scale_down_limit(now: float, current: int, ups: Events, downs: Events, rules: Rules) -> int:
    """calculateScaleDownLimitWithBehaviors: the fewest replicas the policies allow right now."""
    if rules.select_policy == "Disabled":
        return current
    pick = max if rules.select_policy == "Min" else min
    result: int | None = None
    for p in rules.policies:
        start = _period_start(now, current, p.period_seconds, ups, downs)
        proposed = start - p.value if p.type == "Pods" else int(start * (1 - p.value / 100))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result
