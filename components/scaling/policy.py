"""The replica autoscaling policy and the KEDA objects that carry it (pure: no Pulumi).

The policy is derived from how long a replica takes to come up, so that a model that needs
most of an hour to load is never scaled away before it served, and the queue that builds while
it loads does not buy one p5 after another. ops/scaling_sim.py runs exactly this policy (the
same triggers, targets and behavior) through the HPA algorithm on traffic traces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from components.facts import timeline
from components.serving import workload
from components.settings.scaling import ScalingSettings, ScheduleSettings

# --- cold start ---------------------------------------------------------------------------

# Before the cold-start timeline's first phase (the image pull on a node that exists): a
# p5.48xlarge launches, joins the cluster and advertises its GPUs (device plugin) in about ten
# minutes (assumption: EC2 launch plus the AL2023 NVIDIA AMI's bootstrap and RAID0 of the NVMe).
NODE_PROVISION_SECONDS = 600


@dataclass(frozen=True)
class ColdStart:
    node_provision_seconds: int  # a new GPU node until pods can use its GPUs
    first_start_seconds: int  # a replica on a node with an empty cache, until ready
    warm_start_seconds: int  # a replica on a node with a warm cache (a restart), until ready

    @property
    def new_node_replica_seconds(self) -> int:
        """The slowest way a replica comes up: a new node, then a first start on it."""
        return self.node_provision_seconds + self.first_start_seconds


def cold_start_inputs(weights_gb: float, source: str = "hub") -> ColdStart:
    """The one place the scaling policy and its simulator read cold-start durations from, for a
    model of `weights_gb` (the catalogue's figure for the stack's model) staged from `source`."""
    return ColdStart(
        node_provision_seconds=NODE_PROVISION_SECONDS,
        # components/facts/timeline.py: the critical path from the node joining to the first answer,
        # on a node with an empty cache and a cold compile cache (the longest a replica waits).
        first_start_seconds=timeline.new_node(weights_gb, source=source).total,
        # ... and on a node whose NVMe cache holds the weights and the compile cache.
        warm_start_seconds=timeline.warm_restart(weights_gb).total,
    )


# --- policy -------------------------------------------------------------------------------

# Limits of the autoscaling/v2 API (HPAScalingRules): stabilizationWindowSeconds <= 3600,
# periodSeconds in 1..1800.
HPA_MAX_WINDOW_SECONDS = 3600
HPA_MAX_PERIOD_SECONDS = 1800
# How often KEDA checks its triggers (activation, 0 <-> 1). The HPA syncs every 15 s.
POLLING_INTERVAL_SECONDS = 15
# A spike has to last a minute before it buys GPU capacity.
SCALE_UP_WINDOW_SECONDS = 60
# Replicas leave one at a time, at most one per ten minutes.
SCALE_DOWN_STEP_SECONDS = 600
# The Cluster Autoscaler removes a GPU node this long after it became empty.
CLUSTER_AUTOSCALER_UNNEEDED_MINUTES = 10

NAMESPACE = workload.NAMESPACE
SCALED_OBJECT = workload.APP
AWS_TRIGGER_AUTH = "keda-aws"
# The wake trigger only has to make KEDA active at zero replicas; with this target its
# AverageValue metric never asks the HPA for more than one replica.
WAKE_TARGET = 1_000_000
# vLLM's own metric names in the pinned release (vllm/v1/metrics/loggers.py).
WAITING_METRIC = "vllm:num_requests_waiting"
KV_CACHE_METRIC = "vllm:kv_cache_usage_perc"


@dataclass(frozen=True)
class Policy:
    type: str  # Pods | Percent
    value: int
    period_seconds: int


@dataclass(frozen=True)
class Rules:
    stabilization_window_seconds: int
    policies: tuple[Policy, ...]
    select_policy: str = "Max"

    def manifest(self) -> dict[str, Any]:
        return {
            "stabilizationWindowSeconds": self.stabilization_window_seconds,
            "selectPolicy": self.select_policy,
            "policies": [{"type": p.type, "value": p.value, "periodSeconds": p.period_seconds} for p in self.policies],
        }


@dataclass(frozen=True)
class Behavior:
    scale_up: Rules
    scale_down: Rules


def behavior(cold: ColdStart, replicas_per_node: int) -> Behavior:
    """HPA behavior from the cold start.

    Up: at most one node's worth of replicas per period, the period as long as a new replica
    takes (capped by the API): the queue stays high while replicas load, and without the limit
    every sync would add more. Down: keep every recommendation of the last cold start in view
    (capped at the API's hour), and remove one replica at a time.
    """
    return Behavior(
        scale_up=Rules(
            SCALE_UP_WINDOW_SECONDS,
            (Policy("Pods", replicas_per_node, min(HPA_MAX_PERIOD_SECONDS, cold.new_node_replica_seconds)),),
        ),
        scale_down=Rules(
            min(HPA_MAX_WINDOW_SECONDS, cold.new_node_replica_seconds),
            (Policy("Pods", 1, SCALE_DOWN_STEP_SECONDS),),
        ),
    )


@dataclass(frozen=True)
class Trigger:
    """One KEDA trigger; `signal` names what it measures, so the simulator can feed it."""

    name: str
    type: str  # KEDA scaler type
    signal: str  # waiting | kv_cache | loading | schedule | wake
    target: float  # AverageValue target: desired replicas = ceil(value / target)
    activation: float  # active (keeps at least one replica) when value > activation
    metadata: dict[str, str]
    authentication: str | None = None

    def manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "metricType": "AverageValue",
            "metadata": dict(sorted(self.metadata.items())),
        }
        if self.authentication:
            out["authenticationRef"] = {"name": self.authentication, "kind": "TriggerAuthentication"}
        return out


@dataclass(frozen=True)
class ReplicaPolicy:
    """Everything the ScaledObject says, as data the simulator runs."""

    min_replicas: int  # 0: scale to zero when no trigger is active
    max_replicas: int
    polling_interval_seconds: int
    cooldown_seconds: int  # last trigger inactive -> 0 replicas (scale to zero only)
    initial_cooldown_seconds: int  # a new ScaledObject never goes to 0 before this
    behavior: Behavior
    triggers: tuple[Trigger, ...]
    replicas_per_node: int
    notes: tuple[str, ...] = field(default=())

    @property
    def scale_to_zero(self) -> bool:
        return self.min_replicas == 0

    def trigger(self, signal: str) -> Trigger | None:
        return next((t for t in self.triggers if t.signal == signal), None)


def _pods(metric: str) -> str:
    return f'{metric}{{namespace="{NAMESPACE}"}}'


def _prometheus(name: str, signal: str, query: str, target: float, activation: float, url: str) -> Trigger:
    return Trigger(
        name=name,
        type="prometheus",
        signal=signal,
        target=target,
        activation=activation,
        metadata={
            "serverAddress": url,
            "query": query,
            "threshold": num(target),
            "activationThreshold": num(activation),
            # No series (no replica yet, or Prometheus restarted): read 0, not an error.
            "ignoreNullValues": "true",
        },
    )


def loading_query() -> str:
    """Replicas in total while any replica is not ready, else 0 (kube-state-metrics).

    With target 1 it holds the current count while a replica loads: the ReplicaSet removes
    not-ready pods first, so any scale-down during a load would take the loading replica.
    """
    sel = f'namespace="{NAMESPACE}",pod=~"{workload.APP}-.+",condition="false"'
    return f"count(kube_pod_status_ready{{{sel}}}) * (sum(kube_pod_status_ready{{{sel}}}) > bool 0)"


def replica_policy(
    scaling: ScalingSettings,
    replicas_per_node: int,
    cold: ColdStart,
    *,
    region: str,
    load_balancer: Any = None,
    prometheus_url: str,
) -> ReplicaPolicy:
    """The policy for a stack with scaling enabled.

    load_balancer: the ALB's name (endpoint.load_balancer_name, set on the Ingress), for waking
    from zero on requests; None when the endpoint cannot provide it.
    """
    triggers = [
        _prometheus(
            "queue",
            "waiting",
            f"sum({_pods(WAITING_METRIC)})",
            scaling.target_waiting_requests,
            0,
            prometheus_url,
        ),
        # Per replica the mean over its engines (data-parallel ranks), summed over replicas.
        _prometheus(
            "kv-cache",
            "kv_cache",
            f"sum(avg by (pod) ({_pods(KV_CACHE_METRIC)}))",
            scaling.target_kv_cache_usage,
            0,
            prometheus_url,
        ),
        _prometheus("loading", "loading", loading_query(), 1, 0, prometheus_url),
    ]
    notes = []
    if scaling.schedule:
        s = scaling.schedule
        start, end = schedule_window(s, cold)
        triggers.append(
            Trigger(
                name="working-hours",
                type="cron",
                signal="schedule",
                target=1,
                activation=0,
                metadata={
                    "timezone": s.timezone,
                    "start": f"{start % 60} {start // 60} * * {s.days}",
                    "end": f"{end % 60} {end // 60} * * {s.days}",
                    "desiredReplicas": str(s.replicas),
                },
            )
        )
    if scaling.scale_to_zero and scaling.wake_on_requests:
        if load_balancer:
            triggers.append(wake_trigger(load_balancer, region))
        else:
            notes.append(
                "wake on requests needs the ALB's name; until the endpoint provides it, "
                "replicas come back from zero by schedule or by hand (docs/operations.md)"
            )
    behave = behavior(cold, replicas_per_node)
    return ReplicaPolicy(
        min_replicas=scaling.min_replicas,
        max_replicas=scaling.max_replicas,
        polling_interval_seconds=POLLING_INTERVAL_SECONDS,
        cooldown_seconds=scaling.idle_minutes * 60,
        initial_cooldown_seconds=cold.new_node_replica_seconds,
        behavior=behave,
        triggers=tuple(triggers),
        replicas_per_node=replicas_per_node,
        notes=tuple(notes),
    )


def schedule_window(schedule: ScheduleSettings, cold: ColdStart) -> tuple[int, int]:
    """Minutes of the day the cron window opens and closes. It opens one cold start (a new node
    and a first start, rounded up to 5 minutes) before startHour, so replicas serve at startHour."""
    lead = -(-cold.new_node_replica_seconds // 300) * 5
    return (schedule.start_hour * 60 - lead) % 1440, schedule.end_hour * 60


def scheduled_node_hours(scaling: ScalingSettings, replicas_per_node: int, cold: ColdStart) -> tuple[float, float]:
    """GPU node-hours per day with no traffic outside the schedule: (a scheduled day, another day).

    Scale to zero: nodes run from the window's opening to its end, plus the idle time before the
    last replica goes and the Cluster Autoscaler's unneeded time. Otherwise minReplicas' nodes run
    all day.
    """
    floor_nodes = -(-scaling.min_replicas // replicas_per_node)
    if not scaling.scale_to_zero or not scaling.schedule:
        return floor_nodes * 24.0, floor_nodes * 24.0
    start, end = schedule_window(scaling.schedule, cold)
    open_minutes = (end - start) % 1440 + scaling.idle_minutes + CLUSTER_AUTOSCALER_UNNEEDED_MINUTES
    nodes = -(-scaling.schedule.replicas // replicas_per_node)
    return min(24.0, open_minutes / 60) * nodes, 0.0


# CloudWatch metric math, not Metrics Insights: Metrics Insights' WHERE has only `=`, `!=` and
# AND (CloudWatch user guide, "Metrics Insights query components and syntax"), so it needs the
# ALB's id, which the controller assigns. Quoting follows the user guide's "CloudWatch search
# expression syntax" (docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/search-expression-syntax.html):
# - schema and search term together in one pair of single quotes, the statistic in its own;
# - a namespace or dimension name with a non-alphanumeric character in double quotes inside the
#   schema ("AWS/ApplicationELB" has a slash);
# - the metric name as an exact match, in double quotes (nothing to escape: only `" \ ( )` are);
# - the load balancer as a partial match, unquoted: an exact match compares the whole dimension
#   value, `app/<name>/<id>`, and the id is not known before the controller creates the ALB.
#   Section "Non-alphanumeric characters": a search term may hold any of them, and then names a
#   composite token, so `app/<name>/` matches the tokens of `app/<name>/<id>` in order. The name
#   ends in a hash (endpoint.load_balancer_name), so no other ALB's value holds the same run.
# SUM folds what it finds into one series.
WAKE_METRIC = "HTTPCode_ELB_503_Count"
WAKE_PERIOD_SECONDS = 60


def wake_expression(load_balancer_name: str) -> str:
    """GetMetricData expression: the 503s the named ALB answered itself, one-minute sums."""
    return (
        f'SUM(SEARCH(\'{{"AWS/ApplicationELB",LoadBalancer}} MetricName="{WAKE_METRIC}" '
        f"LoadBalancer=app/{load_balancer_name}/', 'Sum', {WAKE_PERIOD_SECONDS}))"
    )


def wake_load_balancer_name(expression: str) -> str | None:
    """The ALB name a wake expression selects (the inverse of `wake_expression`)."""
    found = re.search(r"LoadBalancer=app/([A-Za-z0-9-]+)/'", expression)
    return found.group(1) if found else None


def wake_trigger(load_balancer_name: str, region: str) -> Trigger:
    """Active when the ALB answered 503 in the last five minutes.

    With no replica the target group has no registered target: the ALB answers 503 itself and
    counts it in HTTPCode_ELB_503_Count (RequestCount counts only requests it could send to a
    target). Engine metrics do not exist at zero replicas, so this is what wakes the stack. A
    replica's own 503 over its admission cap is a target's code (HTTPCode_Target_5XX_Count) and
    wakes nothing.
    KEDA sends `expression` as the GetMetricData query with metricStatPeriod as its period and
    reads the newest value; no data (no 503s) gives minMetricValue, 0.
    """
    return Trigger(
        name="wake-on-requests",
        type="aws-cloudwatch",
        signal="wake",
        target=WAKE_TARGET,
        activation=0,
        metadata={
            "expression": wake_expression(load_balancer_name),
            "metricStatPeriod": str(WAKE_PERIOD_SECONDS),
            "metricCollectionTime": "300",
            "targetMetricValue": num(WAKE_TARGET),
            "activationTargetMetricValue": "0",
            "minMetricValue": "0",
            "awsRegion": region,
        },
        authentication=AWS_TRIGGER_AUTH,
    )


def num(value: float) -> str:
    """KEDA reads trigger metadata as strings."""
    return str(int(value)) if float(value).is_integer() else str(value)
