"""Node updates that finish: EKS's drain (15 minutes per node), the vLLM PodDisruptionBudget and
the cold start from the timeline, simulated for every profile and replica count."""

from __future__ import annotations

import pytest

from components.facts.catalog import INSTANCE_TYPES, PROFILES
from components.platform.config import from_stack_file, parse
from components.scaling import node_drain
from components.serving import workload
from ops.offline.engine import render

GPU_GROUP = "minimax-vllm:aws:GpuNodeGroup"


def settings_for(profile: str, replicas: int, instance: str, source: str = "hub"):
    per_replica = PROFILES[profile].gpus_per_replica
    nodes = -(-replicas * per_replica // INSTANCE_TYPES[instance].gpus)
    raw = {
        "owner": "ml-platform",
        "serving": {"profile": profile, "replicas": replicas, "maxModelLen": 32768, "revision": "a" * 40},
        "gpuNodes": {"instanceType": instance, "minSize": nodes, "desiredSize": nodes, "maxSize": nodes},
        "weights": {"source": source},
    }
    return parse(raw, "drain", "us-east-2")


def test_two_replicas_on_one_node_never_drain_under_the_budget() -> None:
    """prod-4gpu before the fix: the second eviction waits for the first replica, which waits
    for the node being drained, and EKS gives up after 15 minutes."""
    cold = node_drain.cold_seconds(from_stack_file("prod-4gpu"))
    assert cold > node_drain.EKS_DRAIN_LIMIT_SECONDS
    assert not node_drain.simulate(2, 2, cold).finished
    forced = node_drain.simulate(2, 2, cold, force=True)
    assert forced.finished and forced.forced == 1 and forced.most_down == 2
    assert node_drain.simulate(1, 1, cold).finished  # one replica: evicted at once, no failure
    assert workload.disruption_budget()["spec"]["maxUnavailable"] == workload.PDB_MAX_UNAVAILABLE


@pytest.mark.parametrize("instance", sorted(INSTANCE_TYPES))
@pytest.mark.parametrize("replicas", [1, 2, 3, 4])
@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("source", ["hub", "s3"])
def test_every_profile_and_replica_count_finishes_its_node_update(
    profile: str, replicas: int, instance: str, source: str
) -> None:
    try:
        settings = settings_for(profile, replicas, instance, source)
    except ValueError:
        pytest.skip("a shape the settings refuse (the capacity check) is never deployed")
    force = node_drain.needs_force(settings)
    unforced = node_drain.node_update(settings)
    assert node_drain.node_update(settings, force=force).finished
    # Forced only when the budget cannot be honoured within EKS's limit: otherwise it holds.
    assert force == (not unforced.finished)
    if not force:
        assert unforced.most_down <= workload.PDB_MAX_UNAVAILABLE


@pytest.mark.parametrize("stack", ["dev", "staging", "prod-4gpu", "prod-8gpu"])
def test_the_gpu_node_group_forces_its_update_exactly_when_the_drain_needs_it(stack: str) -> None:
    r = render(stack)
    (group,) = [g for g in r.of_type("aws:eks/nodeGroup:NodeGroup") if g.parent == r.one(GPU_GROUP).urn]
    expected = {"dev": True, "staging": False, "prod-4gpu": True, "prod-8gpu": False}[stack]  # dev: KEDA runs 2
    assert bool(group.inputs.get("forceUpdateVersion")) is expected
    assert expected == node_drain.needs_force(from_stack_file(stack))
