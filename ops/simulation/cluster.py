"""The cluster the HPA drives, every STEP_SECONDS: KEDA's activation and cooldown, the ReplicaSet's
choice of pod to remove, the Cluster Autoscaler's nodes, replicas that load before they serve, one
FIFO queue of requests bounded by vLLM's admission cap, and the load balancer's 503s while no
replica is ready."""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Sequence

from components.scaling import policy as scaling
from ops.simulation.hpa import TOLERANCE, Hpa, external_average_value_replicas
from ops.simulation.model import (
    CLOUDWATCH_DELAY_SECONDS,
    SERVICE_SECONDS,
    STEP_SECONDS,
    Node,
    Pod,
    Result,
    ScaleEvent,
    Stack,
    Trace,
    clock,
)


class Simulation:
    """One trace. The ScaledObject exists from before the trace (its initial cooldown is over,
    its triggers were last active at the start) unless `new_scaled_object`, as after `pulumi up`."""

    def __init__(self, stack: Stack, trace: Trace, new_scaled_object: bool = False):
        self.s, self.t = stack, trace
        p = stack.policy
        self.hpa = Hpa(p.behavior, max(1, p.min_replicas), p.max_replicas)
        self.nodes: list[Node] = []
        self.pods: list[Pod] = []
        self.ids = 0
        self.queue: deque[list[float]] = deque()  # [arrival time, requests]
        self.running = 0.0
        self.rejections: deque[tuple[float, float]] = deque()  # (time, requests) for the wake metric
        self.last_active: float | None = None if new_scaled_object else 0.0
        self.last_scale_up_node: float = -math.inf
        self.r = Result(trace.name)
        self.had_nodes = False
        for _ in range(trace.start_replicas):
            self._add_pod(0.0, ready_now=True)

    # local hour of day at simulation time `now`
    def hour(self, now: float) -> float:
        return self.t.start_hour + now / 3600

    def _new_id(self) -> int:
        self.ids += 1
        return self.ids

    def _add_pod(self, now: float, ready_now: bool = False) -> None:
        pod = Pod(self._new_id(), now)
        self.pods.append(pod)
        if ready_now:
            node = self._node_with_room(now) or self._add_node(now, ready_now=True)
            node.warm = True
            pod.node, pod.ready_at = node, now

    def _add_node(self, now: float, ready_now: bool = False) -> Node:
        node = Node(self._new_id(), now if ready_now else now + self.s.cold.node_provision_seconds, warm=ready_now)
        self.nodes.append(node)
        return node

    def _pods_on(self, node: Node) -> list[Pod]:
        return [p for p in self.pods if p.node is node]

    def _node_with_room(self, now: float) -> Node | None:
        fits = [n for n in self.nodes if len(self._pods_on(n)) < self.s.replicas_per_node]
        fits.sort(key=lambda n: (n.ready_at > now, n.ready_at))
        return fits[0] if fits else None

    # -- one step -----------------------------------------------------------------------

    def step(self, now: float) -> None:
        self._serve(now)
        values = self._trigger_values(now)
        self._keda(now, values)
        current = len(self.pods)
        if current > 0:
            proposals = [
                external_average_value_replicas(current, values[t.signal], t.target, TOLERANCE)
                for t in self.s.policy.triggers
            ]
            desired = self.hpa.reconcile(now, current, max(proposals))
            self._scale_to(now, desired, "hpa")
        self._schedule_pods(now)
        self._cluster_autoscaler(now)
        self._account(now)

    def _ready(self, now: float) -> list[Pod]:
        return [p for p in self.pods if p.ready(now)]

    def _serve(self, now: float) -> None:
        rate = self.t.rate(self.hour(now))
        arriving = rate * STEP_SECONDS
        slots = len(self._ready(now)) * self.s.in_flight_per_replica
        if slots == 0:
            self.rejections.append((now, arriving))
            self.r.rejected += arriving
            # In-flight and queued requests of removed replicas are answered with errors too.
            self.r.rejected += self.running + sum(b[1] for b in self.queue)
            self.queue.clear()
            self.running = 0.0
            return
        if arriving > 0:
            self.queue.append([now, arriving])
        self.running = min(self.running, slots)
        done = self.running * STEP_SECONDS / SERVICE_SECONDS
        if self.running - done < 0.5:  # requests are whole: the last one finishes
            done = self.running
        self.running -= done
        self.r.served += done
        free = slots - self.running
        while free > 1e-9 and self.queue:
            batch = self.queue[0]
            take = min(free, batch[1])
            self.r.peak_wait_seconds = max(self.r.peak_wait_seconds, now - batch[0])
            batch[1] -= take
            free -= take
            self.running += take
            if batch[1] < 1e-6:
                self.queue.popleft()
        self._refuse_over_cap(now)
        if self.queue:  # the oldest still waiting has waited at least this long
            self.r.peak_wait_seconds = max(self.r.peak_wait_seconds, now - self.queue[0][0])

    def _refuse_over_cap(self, now: float) -> None:
        """vLLM's admission cap: each ready replica holds at most `admission_cap` requests, waiting
        and running; the newest beyond them are answered 503 at once. The replica answers them, not
        the ALB, so they are not the wake trigger's 503s."""
        if self.s.admission_cap is None:
            return
        over = self.running + sum(b[1] for b in self.queue) - len(self._ready(now)) * self.s.admission_cap
        while over > 1e-9 and self.queue:
            newest = self.queue[-1]
            take = min(over, newest[1])
            newest[1] -= take
            over -= take
            self.r.rejected += take
            self.r.over_cap += take
            if newest[1] < 1e-6:
                self.queue.pop()

    def _trigger_values(self, now: float) -> dict[str, float]:
        pods = self.pods
        loading = any(not p.ready(now) for p in pods)
        slots_per_replica = self.s.in_flight_per_replica
        ready = len(self._ready(now))
        waiting = sum(b[1] for b in self.queue) if ready else 0.0
        delayed = now - CLOUDWATCH_DELAY_SECONDS
        while self.rejections and self.rejections[0][0] < delayed - 60:
            self.rejections.popleft()
        wake = sum(n for at, n in self.rejections if delayed - 60 <= at < delayed)
        return {
            "waiting": waiting,
            "kv_cache": self.running / slots_per_replica if ready else 0.0,
            "loading": float(len(pods)) if loading else 0.0,
            "schedule": float(self._schedule_replicas(now)),
            "wake": wake,
        }

    @functools.cached_property
    def _cron(self) -> tuple[int, int, int] | None:
        """(start minute, end minute, replicas) of the cron trigger, from its own metadata."""
        cron = self.s.policy.trigger("schedule")
        if cron is None or not self.s.schedule_days_open:
            return None
        start_m, start_h = (int(x) for x in cron.metadata["start"].split()[:2])
        end_m, end_h = (int(x) for x in cron.metadata["end"].split()[:2])
        return start_h * 60 + start_m, end_h * 60 + end_m, int(cron.metadata["desiredReplicas"])

    def _schedule_replicas(self, now: float) -> int:
        if self._cron is None:
            return 0
        start, end, replicas = self._cron
        minute = (self.hour(now) * 60) % 1440
        inside = start <= minute < end if start < end else (minute >= start or minute < end)
        return replicas if inside else 0

    def _keda(self, now: float, values: dict[str, float]) -> None:
        p = self.s.policy
        active = any(values[t.signal] > t.activation for t in p.triggers)
        current = len(self.pods)
        if active:
            self.last_active = now
            if current == 0:
                self._scale_to(now, max(1, p.min_replicas), "keda")
        elif current > 0 and p.min_replicas == 0:
            since = self.last_active if self.last_active is not None else 0.0
            wait = p.cooldown_seconds if self.last_active is not None else p.initial_cooldown_seconds
            if now - since > wait:
                self._scale_to(now, 0, "keda")

    def _scale_to(self, now: float, desired: int, by: str) -> None:
        current = len(self.pods)
        if desired == current:
            return
        self.r.events.append(ScaleEvent(now, current, desired, by))
        if desired > self.s.capacity:
            self.r.violations.append(
                f"{clock(self.hour(now))}: {desired} replicas asked for, the GPU node group holds {self.s.capacity}"
            )
        for _ in range(desired - current):
            self._add_pod(now)
        for _ in range(current - desired):
            self._remove_pod(now)

    def _remove_pod(self, now: float) -> None:
        """The ReplicaSet's choice: not ready first, then the fullest node, then the newest."""

        def rank(p: Pod) -> tuple[int, int, float]:
            colocated = len(self._pods_on(p.node)) if p.node else 0
            return (p.ready(now), -colocated, -p.created)

        victim = min(self.pods, key=rank)
        if not victim.ready(now):
            self.r.violations.append(
                f"{clock(self.hour(now))}: replica {victim.id} removed while loading "
                f"(created {clock(self.hour(victim.created))}, never served)"
            )
        self.pods.remove(victim)

    def _schedule_pods(self, now: float) -> None:
        for pod in self.pods:
            if pod.node is None:
                node = self._node_with_room(now)
                if node is None:
                    continue
                pod.node = node
                start = self.s.cold.warm_start_seconds if node.warm else self.s.cold.first_start_seconds
                pod.ready_at = max(now, node.ready_at) + start
        for pod in self._ready(now):
            pod.node.warm = True

    def _cluster_autoscaler(self, now: float) -> None:
        pending = [p for p in self.pods if p.node is None]
        room = len(self.nodes) < self.s.max_nodes
        if pending and room:
            for _ in range(min(self.s.max_nodes - len(self.nodes), -(-len(pending) // self.s.replicas_per_node))):
                self._add_node(now)
            self.last_scale_up_node = now
            self._schedule_pods(now)
        unneeded = scaling.CLUSTER_AUTOSCALER_UNNEEDED_MINUTES * 60
        for node in list(self.nodes):
            if self._pods_on(node):
                node.empty_since = None
                continue
            if node.empty_since is None:
                node.empty_since = now
            removable = len(self.nodes) > self.s.min_nodes and now - self.last_scale_up_node >= unneeded
            if removable and now - node.empty_since >= unneeded:
                self.nodes.remove(node)

    def _account(self, now: float) -> None:
        hours = STEP_SECONDS / 3600
        self.r.replica_hours += len(self.pods) * hours
        self.r.node_hours += len(self.nodes) * hours
        self.r.cost_usd += (len(self.nodes) * self.s.node_price + self.s.fixed_hourly) * hours
        self.r.fixed_size_cost_usd += (self.s.fixed_nodes * self.s.node_price + self.s.fixed_hourly) * hours
        self.r.max_replicas = max(self.r.max_replicas, len(self.pods))
        self.r.max_nodes = max(self.r.max_nodes, len(self.nodes))
        if not self.nodes and self.had_nodes and self.r.zero_nodes_at is None:
            self.r.zero_nodes_at = self.hour(now)
        self.had_nodes = bool(self.nodes)
        if now % 60 == 0:
            waiting = sum(b[1] for b in self.queue)
            self.r.series.append((self.hour(now), len(self.pods), len(self._ready(now)), round(waiting, 3)))

    def run(self) -> Result:
        now = 0.0
        end = self.t.hours * 3600
        while now <= end:
            self.step(now)
            now += STEP_SECONDS
        self.r.violations += flapping(self.r.events, self.s)
        if self.s.policy.max_replicas > self.s.capacity:
            self.r.violations.append(
                f"maxReplicas {self.s.policy.max_replicas} exceeds the GPU node group's {self.s.capacity} replicas"
            )
        if self.t.idle_night and allows_zero(self.s) and self.r.zero_nodes_at is None:
            self.r.violations.append("the idle night never reached zero GPU nodes")
        return self.r


def allows_zero(stack: Stack) -> bool:
    return stack.policy.scale_to_zero and stack.min_nodes == 0


def flapping(events: Sequence[ScaleEvent], stack: Stack) -> list[str]:
    """A reversal sooner than the cold start it throws away (capped at the HPA's longest
    window) after a scale-up, or sooner than the scale-up window after a scale-down."""
    after_up = min(scaling.HPA_MAX_WINDOW_SECONDS, stack.cold.new_node_replica_seconds)
    after_down = stack.policy.behavior.scale_up.stabilization_window_seconds
    found = []
    for a, b in zip(events, events[1:], strict=False):
        up_a, up_b = a.after > a.before, b.after > b.before
        if up_a == up_b:
            continue
        window = after_up if up_a else after_down
        if b.at - a.at < window:
            found.append(
                f"flapping: {a.before}->{a.after} then {b.before}->{b.after} within {int(b.at - a.at)}s (< {window}s)"
            )
    return found
