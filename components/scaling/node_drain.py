"""Will a GPU node update finish? EKS's drain, the PodDisruptionBudget and the cold start, simulated.

A managed node group update drains each old node through the eviction API, which honours the
vLLM PodDisruptionBudget (maxUnavailable 1). "If the pods don't leave the node within 15
minutes and there's no force flag, the upgrade phase fails with a PodEvictionFailure error"
(EKS user guide, "Understand each phase of node updates", upgrade phase); with
`force_update_version` EKS deletes the pods that are left instead. With updateStrategy MINIMAL
the replacement node is launched only after the old one is gone, so an evicted replica whose
node held no free GPUs elsewhere stays Pending until then, and the budget stays spent on it.

Two replicas on one node (tp4 on a p5) therefore never drain: the second eviction waits for
the first replica, which waits for the node being drained. One replica per node on several
nodes fails too when a replica's cold start outlasts 15 minutes, as the next node's drain
waits for the previous node's replica. `needs_force` decides `force_update_version` from this
simulation, so the update strategy, the budget and the rollout agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.facts import timeline
from components.scaling.policy import NODE_PROVISION_SECONDS
from components.serving import workload
from components.settings.stack import Settings

EKS_DRAIN_LIMIT_SECONDS = 15 * 60  # EKS managed node update: pods must leave a node within 15 minutes


@dataclass(frozen=True)
class Drain:
    finished: bool  # every node updated, no PodEvictionFailure
    forced: int  # replicas EKS deleted past the budget (force_update_version)
    seconds: int  # from the first eviction until every replica is Ready again (0 when it failed)
    most_down: int  # most replicas not Ready at one time


def simulate(
    replicas: int,
    per_node: int,
    cold_seconds: int,
    *,
    max_unavailable: int = workload.PDB_MAX_UNAVAILABLE,
    provision_seconds: int = NODE_PROVISION_SECONDS,
    force: bool = False,
    limit: int = EKS_DRAIN_LIMIT_SECONDS,
) -> Drain:
    """A rolling node update (one node at a time, MINIMAL) of `replicas` packed `per_node`."""
    nodes = math.ceil(replicas / per_node)
    home = {p: p // per_node for p in range(replicas)}
    down_from = {p: 0.0 for p in range(replicas)}
    ready_at = {p: 0.0 for p in range(replicas)}  # Ready since / again at
    t, forced = 0.0, 0

    def unavailable(x: float) -> int:
        return sum(1 for p in home if down_from[p] <= x < ready_at[p])

    for node in range(nodes):
        deadline = t + limit
        for p in [q for q in home if home[q] == node]:
            waits = sorted({t, *(r for r in ready_at.values() if t < r < math.inf)})
            x = next((w for w in waits if unavailable(w) < max_unavailable), math.inf)
            if x > deadline:
                if not force:
                    return Drain(False, forced, 0, _most_down(down_from, ready_at))
                x, forced = deadline, forced + 1
            down_from[p], t = x, x
            free = [m for m in range(nodes) if m != node and sum(1 for q in home if home[q] == m) < per_node]
            if free:  # another node has free GPUs: the replica cold-starts there at once
                home[p], ready_at[p] = free[0], x + cold_seconds
            else:  # Pending until the drained node's replacement joins
                ready_at[p] = math.inf
        node_ready = t + provision_seconds
        for p in home:
            if home[p] == node and ready_at[p] == math.inf:
                ready_at[p] = node_ready + cold_seconds
        t = node_ready  # EKS moves on once the new node is Ready
    return Drain(True, forced, int(max(ready_at.values())), _most_down(down_from, ready_at))


def _most_down(down_from: dict[int, float], ready_at: dict[int, float]) -> int:
    return max((sum(1 for q in down_from if down_from[q] <= x < ready_at[q]) for x in down_from.values()), default=0)


def update_replicas(settings: Settings) -> int:
    """The most replicas a node update can meet: the autoscaler's maximum when it is on."""
    scaling = settings.scaling
    return max(settings.serving.replicas, scaling.max_replicas if scaling.enabled else 0)


def cold_seconds(settings: Settings) -> int:
    """A replica's start on a new node (empty NVMe cache) from the stack's weight source."""
    return timeline.new_node(settings.serving.model_facts.weights_gb, source=settings.weights.source).total


def node_update(settings: Settings, force: bool = False) -> Drain:
    """A GPU node update of the stack at its most replicas, with or without the force flag."""
    return simulate(update_replicas(settings), settings.replicas_per_node, cold_seconds(settings), force=force)


def needs_force(settings: Settings) -> bool:
    """True when, under the budget, EKS's drain would give up (PodEvictionFailure)."""
    return not node_update(settings).finished
