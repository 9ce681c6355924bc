"""A restart on a node that served: what it reads, from where, and why the figures hold.

The warm restart loads the weights from the node's page cache (the vLLM process that served
there read them), a new node's first start from the NVMe (the staging pod wrote them under a
memory limit far below their size); every figure that changed names the published measurement
it comes from."""

from __future__ import annotations

import dataclasses

import pytest

from components.facts import catalog, timeline
from components.serving import workload
from components.weights import staging

WEIGHTS_GB = catalog.MODEL_CATALOG[catalog.MODELS[0]].weights_gb  # 230 GB, what the docs quote
A = timeline.Assumptions()
GIB = 2**30 / 1e9  # GB in a GiB


def _gib(quantity: str) -> float:
    assert quantity.endswith("Gi"), quantity
    return float(quantity[:-2])


def _source(name: str) -> str:
    return {f.name: f.metadata["source"] for f in dataclasses.fields(A)}[name]


def test_a_warm_restart_answers_within_five_minutes_through_the_load_balancer():
    starts = timeline.scenarios(WEIGHTS_GB)
    warm = starts[3]
    assert warm.start == "warm restart"
    assert warm.total <= 5 * 60
    assert warm.total < min(s.total for s in starts[:3])
    # Its critical path: the engine, the weights, the cached compile, the API server, the checks.
    assert [p.name for p in warm.critical_path] == [
        timeline.ENGINE_START,
        timeline.LOAD_CACHED,
        timeline.COMPILE_NODE,
        timeline.API,
        timeline.LB_READY,
    ]


def test_a_warm_restart_reads_the_page_cache_and_a_new_node_the_nvme():
    warm = timeline.warm_restart(WEIGHTS_GB)
    assert warm.has(timeline.LOAD_CACHED) and not warm.has(timeline.LOAD)
    assert warm.phase(timeline.LOAD_CACHED).seconds == pytest.approx(WEIGHTS_GB / A.page_cache_load_gb_s, abs=1)
    for source in timeline.SOURCES:
        for cache in (False, True):
            new = timeline.new_node(WEIGHTS_GB, source=source, compile_cache=cache)
            assert new.has(timeline.LOAD) and not new.has(timeline.LOAD_CACHED), new.start
            assert new.phase(timeline.LOAD).seconds == pytest.approx(WEIGHTS_GB / A.nvme_load_gb_s, abs=1)
    assert A.page_cache_load_gb_s > A.nvme_load_gb_s


def test_every_start_starts_vllms_processes_before_it_loads():
    for t in timeline.scenarios(WEIGHTS_GB) + timeline.scenarios(WEIGHTS_GB, routing="router"):
        engine = t.phase(timeline.ENGINE_START)
        load = t.phase(timeline.LOAD if t.has(timeline.LOAD) else timeline.LOAD_CACHED)
        assert engine.seconds == A.engine_start_s and load.start == engine.end, t.start
    # vLLM's front end waits for the engine from its processes' start: the timer covers that too.
    t = timeline.timers(1, WEIGHTS_GB, source="s3")
    (guard,) = [g for g in timeline.guards(t, 1, WEIGHTS_GB, source="s3") if g.timer == "VLLM_ENGINE_READY_TIMEOUT_S"]
    worst = timeline.worst(WEIGHTS_GB, source="s3")
    assert guard.needed == worst.seconds(timeline.ENGINE_START, timeline.LOAD, timeline.COMPILE)


@pytest.mark.parametrize("instance", sorted(catalog.INSTANCE_TYPES), ids=str)
@pytest.mark.parametrize("profile", sorted(catalog.PROFILES))
def test_the_vllm_pods_memory_keeps_every_models_weights_in_the_page_cache(instance, profile):
    """The warm restart's premise: the files the last vLLM process read stay cached. They are
    charged to the vLLM pod's memory (requests equal limits), beside its /dev/shm; both together
    take at most half of it, so the process keeps the rest."""
    itype, prof = catalog.INSTANCE_TYPES[instance], catalog.PROFILES[profile]
    if prof.gpus_per_replica > itype.gpus:
        pytest.skip("the profile does not fit this instance")
    limit = _gib(workload.pod_resources(itype, prof.gpus_per_replica)["limits"]["memory"])
    largest = max(m.weights_gb for m in catalog.MODEL_CATALOG.values()) / GIB
    assert largest + _gib(workload.SHM_SIZE) <= limit / 2


def test_a_new_nodes_stager_cannot_leave_the_weights_in_the_page_cache():
    """The new node's first load reads the NVMe: the staging pod writes the files under a memory
    limit far below their size, so the kernel reclaims its page cache as it writes."""
    smallest = min(m.weights_gb for m in catalog.MODEL_CATALOG.values()) / GIB
    assert _gib(staging.RESOURCES["memory"]) < smallest / 4


@pytest.mark.parametrize("name", ["engine_start_s", "page_cache_load_gb_s", "compile_warm_s", "api_server_s"])
def test_the_restart_figures_name_the_published_measurements_they_come_from(name):
    source = _source(name)
    assert "github.com/" in source, name
    if name != "engine_start_s":  # partly an assumption, and says so
        assert not source.startswith("assumption"), name
    else:
        assert "assumption" in source


@pytest.mark.parametrize("source", ["hub", "s3"])
def test_a_rolling_update_fetches_only_what_it_moved(source):
    """The upgrade preview's per-replica time: what the update moved is fetched again, the rest is
    on the node; either move compiles from empty (a new compile-cache key)."""
    gb = 230
    phases = {
        (i, w): {p.name for p in timeline.rollout(gb, source=source, new_image=i, new_weights=w).phases}
        for i in (False, True)
        for w in (False, True)
    }
    assert timeline.rollout(gb, source=source, new_image=False, new_weights=False) == timeline.warm_restart(gb)
    assert timeline.IMAGE_PULL in phases[True, False] and timeline.DOWNLOAD not in phases[True, False]
    assert timeline.LOAD_CACHED in phases[True, False]
    assert timeline.DOWNLOAD in phases[False, True] and timeline.IMAGE_PULL not in phases[False, True]
    assert all(timeline.COMPILE in phases[k] for k in ((True, False), (False, True), (True, True)))
    new = timeline.new_node(gb, source=source).total
    for k in ((True, False), (False, True), (True, True)):
        rolled = timeline.rollout(gb, source=source, new_image=k[0], new_weights=k[1]).total
        assert timeline.warm_restart(gb).total < rolled <= new, (k, rolled, new)
