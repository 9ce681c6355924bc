"""The cold start as a graph: what overlaps, what the node's shared network and disks cost, the
critical path the plan prints, the load balancer's health check chosen from it, the timers that
outlast every start, and the pictures drawn from it."""

from __future__ import annotations

import dataclasses
import functools

import pytest

from components.facts import catalog, timeline
from components.facts.timeline_graph import Step, schedule
from components.platform import config
from components.serving import endpoint

WEIGHTS_GB = catalog.MODEL_CATALOG[catalog.MODELS[0]].weights_gb  # 230 GB, what the docs quote
A = timeline.Assumptions()
ANNOTATION = "alb.ingress.kubernetes.io"


@functools.cache
def starts(routing: str = "direct") -> list[timeline.Timeline]:
    return timeline.scenarios(WEIGHTS_GB, routing=routing)


# --- the graph ---------------------------------------------------------------------------------


def test_the_staging_pod_copies_while_the_image_pulls_and_the_total_is_the_longest_path():
    s3 = timeline.new_node(WEIGHTS_GB, source="s3", compile_cache=True)
    pull, copy = s3.phase(timeline.IMAGE_PULL), s3.phase(timeline.DOWNLOAD)
    assert copy.start < pull.end  # the copy starts before the image is in
    # vLLM starts once its image is in and the weights are staged, and loads once its processes run.
    assert s3.phase(timeline.ENGINE_START).start == max(s3.phase(timeline.UNPACK).end, copy.end)
    assert s3.phase(timeline.LOAD).start == s3.phase(timeline.ENGINE_START).end
    assert s3.total < sum(p.seconds for p in s3.phases)  # not a sum of the phases
    path = s3.critical_path
    assert path[-1].end == s3.total and path[0].start == 0
    assert all(a.end == b.start for a, b in zip(path, path[1:], strict=False))  # no gap on the path
    assert sum(p.seconds for p in path) == s3.total


def test_transfers_at_once_share_the_node_as_sagemaker_measured():
    """77 s alone, 168 s beside an image pull (the published figure the contention comes from)."""
    alone = schedule("alone", [Step("download", "x", "", mb=77, mb_s=1)], A.contention)
    beside = schedule(
        "beside",
        [Step("download", "x", "", mb=77, mb_s=1), Step("image", "y", "", mb=1000, mb_s=1)],
        A.contention,
    )
    assert alone.total == 77
    assert beside.phase("download").seconds == 168
    fixed = schedule("fixed", [Step("compile", "x", "", seconds=77), Step("image", "y", "", mb=1000, mb_s=1)], 2)
    assert fixed.phase("compile").seconds == 77  # only transfers share the node


def test_a_graph_that_waits_on_itself_or_on_nothing_known_is_refused():
    with pytest.raises(ValueError, match="unknown"):
        schedule("x", [Step("a", "l", "", ("b",), seconds=1)], 1)
    with pytest.raises(ValueError, match="one another"):
        schedule("x", [Step("a", "l", "", ("b",), seconds=1), Step("b", "l", "", ("a",), seconds=1)], 1)


def test_the_image_unpacks_onto_the_raid0_not_the_gp3_root_volume():
    unpack = timeline.new_node(WEIGHTS_GB, source="s3").phase(timeline.UNPACK)
    assert (
        "RAID0" in unpack.basis
        and "/var/lib/containerd"
        in dataclasses.fields(A)[[f.name for f in dataclasses.fields(A)].index("unpack_mb_s")].metadata["source"]
    )
    assert A.unpack_mb_s > A.root_volume_mb_s


def test_the_image_comes_from_ecr_in_region_unless_asked_otherwise():
    ecr = timeline.new_node(WEIGHTS_GB, source="s3")
    hub = timeline.new_node(WEIGHTS_GB, source="s3", image_source="docker-hub")
    assert "ECR" in ecr.phase(timeline.IMAGE_PULL).basis
    assert ecr.phase(timeline.IMAGE_PULL).seconds < hub.phase(timeline.IMAGE_PULL).seconds
    with pytest.raises(ValueError, match="image_source"):
        timeline.new_node(WEIGHTS_GB, image_source="quay")


def test_the_shared_compile_cache_is_a_phase_of_its_own_and_only_when_warm():
    cold = timeline.new_node(WEIGHTS_GB, source="s3")
    warm = timeline.new_node(WEIGHTS_GB, source="s3", compile_cache=True)
    assert cold.has(timeline.COMPILE) and not cold.has(timeline.COMPILE_SHARED)
    assert warm.has(timeline.COMPILE_SHARED) and warm.has(timeline.CACHE_DOWNLOAD)
    assert warm.phase(timeline.COMPILE_SHARED).seconds == A.compile_warm_s < A.compile_cold_s
    assert warm.phase(timeline.LOAD).start >= warm.phase(timeline.CACHE_DOWNLOAD).end


def test_the_router_starts_beside_vllm_and_is_off_the_critical_path():
    direct, router = starts("direct"), starts("router")
    for t in router:
        start = t.phase(timeline.ROUTER_START)
        assert start.start == 0 and not start.critical
        assert t.phase(timeline.ROUTER_SEES).critical
        assert not t.has(timeline.LB_READY)  # the ALB targets the router, not vLLM
    assert [t.start for t in direct] == [t.start for t in router]


# --- the targets and the sources ---------------------------------------------------------------


def test_a_new_node_with_the_warm_shared_cache_answers_within_twelve_minutes():
    s3_warm = starts()[2]
    assert s3_warm.start == "new node, S3, warm compile cache"
    assert s3_warm.total <= 12 * 60
    hub, s3_cold, _, warm = starts()
    assert warm.total < s3_warm.total < s3_cold.total < hub.total


# The planning figures the timeline had before it became a graph. Changing one needs a new named
# source in its metadata (and this list updated with it): the plan's figures are not to be tuned.
KEPT = {
    "image_compressed_gb": 12,
    "image_unpacked_gb": 30,
    "registry_mb_s": 100,
    "root_volume_mb_s": 125,
    "hub_mb_s": 125,
    "nvme_load_gb_s": 1.0,
    "compile_cold_s": 600,
    "stream_drain_s": 300,
    "deregistration_propagation_s": 60,
    "vllm_exit_s": 60,
    "s3_gb_s": 1.6,
    "prefill_tokens_s": 2000,
    "prefills_ahead": 1,
}


def test_no_planning_figure_changed_without_a_new_source():
    assert {k: getattr(A, k) for k in KEPT} == KEPT
    # The load balancer's old 180 s: registration (150 s) + 3 checks at 10 s.
    assert A.target_registration_s + 3 * 10 == 180


def test_every_assumption_names_its_source_or_says_it_is_one():
    for f in dataclasses.fields(A):
        source = f.metadata["source"]
        assert source and f.metadata["unit"], f.name
    assert (
        "168 s" in dataclasses.fields(A)[[f.name for f in dataclasses.fields(A)].index("contention")].metadata["source"]
    )
    for t in starts() + starts("router"):
        assert all(p.basis for p in t.phases), t.start


# --- the load balancer ------------------------------------------------------------------------


def test_the_alb_health_check_is_the_timelines_and_within_the_albs_limits():
    hc = timeline.HEALTH_CHECK
    s = config.from_stack_file("prod-8gpu")
    out = endpoint.annotations(s.endpoint, {}, 300, "lb")
    assert out[f"{ANNOTATION}/healthcheck-interval-seconds"] == str(hc.interval_s)
    assert out[f"{ANNOTATION}/healthcheck-timeout-seconds"] == str(hc.timeout_s)
    assert out[f"{ANNOTATION}/healthy-threshold-count"] == str(hc.healthy)
    assert out[f"{ANNOTATION}/unhealthy-threshold-count"] == str(hc.unhealthy)
    assert 5 <= hc.interval_s <= 300 and 2 <= hc.timeout_s < hc.interval_s  # ELB target group limits
    assert 2 <= hc.healthy <= 10 and 2 <= hc.unhealthy <= 10
    assert hc.out_s < A.deregistration_propagation_s  # a dead replica leaves before a draining one would


def test_the_target_registers_while_vllm_loads_and_only_the_checks_follow_the_api_server():
    for t in starts():
        register, ready = t.phase(timeline.REGISTER), t.phase(timeline.LB_READY)
        assert register.start == 0 and not register.critical
        assert ready.start == t.phase(timeline.API).end
        assert ready.seconds == timeline.HEALTH_CHECK.ready_s
        assert ready.end == t.total


# --- the timers ----------------------------------------------------------------------------


@pytest.mark.parametrize("source", timeline.SOURCES)
@pytest.mark.parametrize("routing", timeline.ROUTING)
def test_every_timer_outlasts_every_start_it_may_meet(source, routing):
    t = timeline.timers(1, WEIGHTS_GB, source=source)
    assert [g for g in timeline.guards(t, 1, WEIGHTS_GB, source=source) if g.short] == []
    # A stack's own starts: its weight source's new nodes, and the warm restart.
    mine = [
        s
        for s in timeline.scenarios(WEIGHTS_GB, routing=routing)
        if ("Hub" in s.start) == (source == "hub") or s.start == "warm restart"
    ]
    for start in mine:
        assert t.progress_deadline >= start.total, start.start
        assert t.cold_start_alert == t.progress_deadline
        assert t.create_timeout >= t.progress_deadline
    worst = timeline.worst(WEIGHTS_GB, source=source)
    if routing == "direct":
        assert worst.total == max(s.total for s in mine)
    assert t.engine_ready_timeout >= worst.seconds(timeline.ENGINE_START, timeline.LOAD, timeline.COMPILE)


def test_the_guards_fail_when_a_timer_is_cut_below_its_phase():
    t = timeline.timers(1, WEIGHTS_GB, source="s3")
    worst = timeline.worst(WEIGHTS_GB, source="s3")
    short = dataclasses.replace(t, progress_deadline=worst.total - 1, cold_start_alert=worst.total - 1)
    names = {g.timer for g in timeline.guards(short, 1, WEIGHTS_GB, source="s3") if g.short}
    assert {"progressDeadlineSeconds", "VllmColdStartOverBudget"} <= names


# --- what the plan prints ----------------------------------------------------------------------


def test_the_plan_prints_each_starts_critical_path_and_its_total():
    from components.facts import timeline_text

    lines = "\n".join(timeline_text.describe(1, WEIGHTS_GB, source="s3"))
    for t in starts():
        path = " -> ".join(f"{p.name} {timeline.duration(p.seconds)}" for p in t.critical_path)
        assert f"{t.start}: {path} = {timeline.duration(t.total)}" in lines
    assert "healthy after 2" in lines and "contention" in lines
