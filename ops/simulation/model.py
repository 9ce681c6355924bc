"""What the scaling simulation is about: the stack it runs, the traces it replays, the nodes and
pods it moves, what it records, and the server model (an assumption) that turns replicas into
requests served."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from components.scaling.policy import ColdStart, ReplicaPolicy

STEP_SECONDS = 15  # HPA sync period and KEDA polling interval


DAY = 86400


# Server model, an assumption: a MiniMax-M2.5 request of ~1K output tokens streams for about
# 20 s, and a replica keeps 4 requests per GPU in flight at that speed.
SERVICE_SECONDS = 20.0


CONCURRENCY_PER_GPU = 4


# The wake trigger reads the 503 count of the last complete minute (CloudWatch publishes ELB
# metrics per 60 s, about a minute late).
CLOUDWATCH_DELAY_SECONDS = 60


@dataclass
class Node:
    id: int
    ready_at: float
    warm: bool = False  # its NVMe cache holds the weights (a replica became ready on it)
    empty_since: float | None = None


@dataclass
class Pod:
    id: int
    created: float
    node: Node | None = None
    ready_at: float | None = None  # known once placed

    def ready(self, now: float) -> bool:
        return self.ready_at is not None and now >= self.ready_at


@dataclass(frozen=True)
class ScaleEvent:
    at: float
    before: int
    after: int
    by: str  # hpa | keda


@dataclass(frozen=True)
class Trace:
    name: str
    start_hour: float  # local time of day the trace starts (the schedule's time zone)
    hours: float
    rate: Callable[[float], float]  # requests/s at a local hour of day (may exceed 24)
    start_replicas: int
    idle_night: bool = False  # the stack should reach zero GPU nodes in it, where allowed


@dataclass
class Result:
    trace: str
    peak_wait_seconds: float = 0.0
    served: float = 0.0
    rejected: float = 0.0  # every 503: the ALB's with no replica ready, and the replicas' over the cap
    over_cap: float = 0.0  # of which the replicas refused over their admission cap
    replica_hours: float = 0.0
    node_hours: float = 0.0
    cost_usd: float = 0.0
    fixed_size_cost_usd: float = 0.0
    max_replicas: int = 0
    max_nodes: int = 0
    zero_nodes_at: float | None = None  # local hour the GPU nodes first went down to zero
    events: list[ScaleEvent] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    # Once a minute: (local hour, replicas asked for, replicas ready, requests waiting), for the pictures.
    series: list[tuple[float, int, int, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Stack:
    """What the simulation needs from a stack's settings."""

    policy: ReplicaPolicy
    cold: ColdStart
    replicas_per_node: int
    min_nodes: int
    max_nodes: int
    gpus_per_replica: int
    node_price: float
    fixed_hourly: float
    fixed_nodes: int  # GPU nodes of the same stack without autoscaling
    schedule_days_open: bool = True  # the traces run on a scheduled day
    admission_cap: int | None = None  # serving.maxQueuedRequests: requests a ready replica holds, or None

    @property
    def replica_rate(self) -> float:
        """Requests per second one saturated replica completes."""
        return self.in_flight_per_replica / SERVICE_SECONDS

    @property
    def in_flight_per_replica(self) -> int:
        """Requests one replica runs at once (the server model); the rest wait."""
        return CONCURRENCY_PER_GPU * self.gpus_per_replica

    @property
    def capacity(self) -> int:
        return self.max_nodes * self.replicas_per_node


def clock(hour: float) -> str:
    h = hour % 24
    return f"{int(h):02d}:{int(round((h % 1) * 60)) % 60:02d}"
