"""`make scaling STACK=...`: a stack's scaling policy, run on traffic traces, with its checks.

A pure-Python model of what the cluster would do, every 15 s:
- KEDA (pkg/scaling/executor): any trigger above its activation value keeps at least one
  replica; at zero an active trigger scales to max(1, minReplicaCount); with minReplicaCount 0
  the last replica goes once no trigger was active for cooldownPeriod (initialCooldownPeriod
  after creation).
- The HPA KEDA creates (pkg/controller/podautoscaler): each external AverageValue metric
  proposes ceil(value / target) replicas unless value / (target x current) is within the 0.1
  tolerance of 1; the largest proposal wins; stabilization keeps the current count between the
  lowest recommendation of the scale-up window and the highest of the scale-down window; the
  scaling policies limit the change against the count at the start of each policy's period
  (select policy Max / Min / Disabled).
- The ReplicaSet removes not-ready pods first, then pods on the fullest node, newest first.
- The Cluster Autoscaler adds a node for pods that fit nowhere (up to gpuNodes.maxSize) and
  removes a node that has been empty for its unneeded time (down to gpuNodes.minSize).
- A replica on a new node is ready after the node's provisioning plus a first start; on a
  node that already served, after a warm start (components/scaling/policy.py cold_start_inputs).
- The server: each ready replica runs up to CONCURRENCY_PER_GPU x GPUs requests at once, each
  taking SERVICE_SECONDS; the rest wait in one FIFO queue (vLLM's num_requests_waiting). With no
  ready replica the load balancer answers 503 (counted, and the wake trigger's metric). With
  serving.maxQueuedRequests, requests beyond it per ready replica (waiting + running) are refused
  at once with vLLM's 503 (counted; not the wake trigger's).

Per trace: peak queue wait, rejected requests, replica-hours, GPU-node hours, cost, and the
checks: no replica removed while loading, replicas never above node capacity, no flapping,
and zero GPU nodes in the idle night where the stack allows it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from components.observability.values import PROMETHEUS_URL
from components.platform.config import from_stack_file
from components.scaling import manifests as scaling_manifests
from components.scaling import policy as scaling
from components.scaling.policy import ColdStart, ReplicaPolicy
from components.scaling.rules import replica_capacity, replicas_per_node
from components.serving import endpoint
from components.settings.scaling import ScalingSettings
from components.settings.stack import Settings, SettingsError
from ops.simulation.cluster import Simulation
from ops.simulation.model import SERVICE_SECONDS, Result, Stack, Trace, clock

# --- traces -----------------------------------------------------------------------------


def traces(stack: Stack) -> list[Trace]:
    """Four synthetic days, in requests/s scaled to the stack's capacity."""
    one = stack.replica_rate
    full = stack.policy.max_replicas * one
    warm = max(stack.policy.min_replicas, 1 if stack.policy.trigger("schedule") else 0)

    def working_day(h: float) -> float:
        peak = 0.7 * full
        if 8 <= h < 9:
            return peak * (h - 8)
        if 9 <= h < 12 or 13 <= h < 17:
            return peak
        if 12 <= h < 13:
            return 0.8 * peak
        if 17 <= h < 19:
            return peak * (19 - h) / 2
        return 0.0

    def burst(h: float) -> float:
        return 1.5 * full if 11 <= h < 11.75 else 0.3 * one

    def idle_night(h: float) -> float:
        return 0.3 * one if h < 19 else 0.0

    def slow_ramp(h: float) -> float:
        return 0.9 * full * min(1.0, max(0.0, (h - 8) / 8))

    floor = max(stack.policy.min_replicas, 1)
    return [
        Trace("working day", 0.0, 24.0, working_day, stack.policy.min_replicas),
        Trace("sudden burst", 10.0, 6.0, burst, floor),
        Trace("idle night", 18.0, 14.0, idle_night, max(warm, 1), idle_night=True),
        Trace("slow ramp", 8.0, 10.0, slow_ramp, floor),
    ]


def simulate(stack: Stack) -> list[Result]:
    return [Simulation(stack, t).run() for t in traces(stack)]


# --- a stack ----------------------------------------------------------------------------


def stack_model(settings: Settings, sc: ScalingSettings, policy: ReplicaPolicy | None = None) -> Stack:
    from ops.plan_cost import fixed_hourly_cost  # the plan's list prices

    cold = scaling.cold_start_inputs(settings.serving.model_facts.weights_gb, settings.weights.source)
    per_node = replicas_per_node(settings)
    if policy is None:
        policy = scaling.replica_policy(
            sc,
            per_node,
            cold,
            region=settings.region,
            load_balancer=endpoint.load_balancer_name(settings.cluster_name),
            prometheus_url=PROMETHEUS_URL,
        )
    g = settings.gpu_nodes
    return Stack(
        policy=policy,
        cold=cold,
        replicas_per_node=per_node,
        min_nodes=g.min_size,
        max_nodes=g.max_size,
        gpus_per_replica=settings.serving.gpus_per_replica,
        node_price=g.instance.price_per_hour_usd,
        fixed_hourly=fixed_hourly_cost(settings),
        fixed_nodes=max(1, -(-settings.serving.replicas // per_node)),
        admission_cap=settings.serving.admission_cap,
    )


def report(settings: Settings, sc: ScalingSettings, results: list[Result], stack: Stack) -> str:
    p = stack.policy
    lines = [
        f"Scaling simulation: stack {settings.stack}",
        *(f"  {line}" for line in scaling_manifests.describe(p)),
        f"  capacity: {stack.capacity} replicas ({stack.max_nodes} x {settings.gpu_nodes.instance_type}, "
        f"{stack.replicas_per_node} per node); GPU nodes {stack.min_nodes}..{stack.max_nodes}",
        f"  cold start: new node {stack.cold.node_provision_seconds}s + first start {stack.cold.first_start_seconds}s; "
        f"warm start {stack.cold.warm_start_seconds}s",
        f"  server model: {stack.replica_rate:.2f} requests/s per replica "
        f"({stack.in_flight_per_replica} in flight x {SERVICE_SECONDS:.0f}s each)",
        f"  {admission_line(stack)}",
    ]
    if any(t.signal == "wake" for t in p.triggers):
        lines.append(
            f"  wake trigger simulated on the 503 count of ALB {endpoint.load_balancer_name(settings.cluster_name)}"
        )
    lines += [
        "",
        f"  {'trace':<13} {'peak wait':>9} {'rejected':>8} {'over cap':>8} {'replica-h':>9} {'GPU-node-h':>10} {'cost':>9} "
        f"{'fixed size':>10} {'max r/n':>7}  zero nodes  checks",
    ]
    for r in results:
        zero = clock(r.zero_nodes_at) if r.zero_nodes_at is not None else "-"
        lines.append(
            f"  {r.trace:<13} {_duration(r.peak_wait_seconds):>9} {r.rejected:>8.0f} {r.over_cap:>8.0f} {r.replica_hours:>9.1f} "
            f"{r.node_hours:>10.1f} ${r.cost_usd:>8,.0f} ${r.fixed_size_cost_usd:>9,.0f} "
            f"{r.max_replicas:>3}/{r.max_nodes:<3}  {zero:>10}  {'PASS' if not r.violations else 'FAIL'}"
        )
        lines += [f"      - {v}" for v in r.violations]
    night = next(r for r in results if r.trace == "idle night")
    saving = night.fixed_size_cost_usd - night.cost_usd
    lines += [
        "",
        f"  idle night: ${night.cost_usd:,.0f} against ${night.fixed_size_cost_usd:,.0f} at fixed size, "
        f"saving ${saving:,.0f}" + (" (GPU nodes reach zero)" if night.zero_nodes_at is not None else ""),
    ]
    failed = sum(bool(r.violations) for r in results)
    lines.append(f"  {len(results) - failed} trace(s) pass, {failed} fail")
    return "\n".join(lines)


def admission_line(stack: Stack) -> str:
    """What a ready replica holds before it refuses, and the wait that allows in the server model."""
    cap = stack.admission_cap
    if cap is None:
        return "admission: no cap (serving.maxQueuedRequests 0): requests wait in vLLM's queue without bound"
    slots = stack.in_flight_per_replica
    wait = max(0, cap - slots) / stack.replica_rate
    return (
        f"admission: at most {cap} requests per ready replica, waiting + running (serving.maxQueuedRequests, "
        f"vLLM --max-num-queued-reqs), about {_duration(wait)} of queue in the server model; beyond it the "
        "replica answers 503 at once ('over cap', part of 'rejected'; not the ALB 503s that wake the stack)"
    )


def instant_start_line(stack: Stack, results: list[Result]) -> str:
    """How much of each trace's peak wait is the cold start's: the same traces with replicas that
    are ready the moment they are placed (the rest is the trace asking for more than capacity)."""
    instant = dataclasses.replace(stack, cold=ColdStart(0, 0, 0))
    floors = {r.trace: r.peak_wait_seconds for r in simulate(instant)}
    return "  peak wait with an instant start (the traffic alone): " + ", ".join(
        f"{r.trace} {_duration(floors[r.trace])}" for r in results
    )


def pictures(results: list[Result], stack: Stack, out: Path) -> list[Path]:
    """Replicas and the queue over each trace, one SVG each (scaling-<trace>.svg)."""
    from ops import pictures as draw  # matplotlib: only when pictures are asked for

    return [
        draw.scaling(r.trace, r.series, stack.capacity, out / f"scaling-{r.trace.replace(' ', '-')}.svg")
        for r in results
    ]


def _duration(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}min"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.scaling_sim", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev", help="stack name: stacks/Pulumi.<stack>.yaml (default dev)")
    parser.add_argument("--out", help="folder for the SVG pictures of each trace (default: none drawn)")
    args = parser.parse_args(argv)
    try:
        settings = from_stack_file(args.stack)
        sc = settings.scaling
    except SettingsError as err:
        print(err, file=sys.stderr)
        return 2
    if not sc.enabled:
        nodes = -(-settings.serving.replicas // replicas_per_node(settings))
        print(
            f"Stack {args.stack}: scaling is off: {settings.serving.replicas} replica(s) on {nodes} "
            f"{settings.gpu_nodes.instance_type} around the clock (capacity {replica_capacity(settings)} replicas). "
            f"Enable with: pulumi config set --path 'scaling.enabled' true"
        )
        return 0
    stack = stack_model(settings, sc)
    results = simulate(stack)
    print(report(settings, sc, results, stack))
    print(instant_start_line(stack, results))
    if args.out:
        print("\n  pictures: " + ", ".join(str(p) for p in pictures(results, stack, Path(args.out))))
    return 1 if any(r.violations for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
