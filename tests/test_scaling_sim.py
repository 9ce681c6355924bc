"""The scaling simulator: the HPA arithmetic as documented, and each check it makes, proven to fail
on a policy that breaks it."""

from __future__ import annotations

import dataclasses
import functools

import pytest

from components.platform.config import from_stack_file
from components.scaling import policy as scaling
from components.scaling.policy import Behavior, Policy, Rules
from ops import scaling_sim as sim
from ops.simulation import cluster
from ops.simulation import hpa as hpa_model

SCALED_STACKS = ("dev", "staging")

# The HPA's defaults when a behavior is not given (Kubernetes docs, "Default Behavior").
DEFAULT_UP = Rules(0, (Policy("Percent", 100, 15), Policy("Pods", 4, 15)), "Max")
DEFAULT_DOWN = Rules(300, (Policy("Percent", 100, 15),), "Max")


@functools.cache
def model(stack: str) -> cluster.Stack:
    settings = from_stack_file(stack)
    return sim.stack_model(settings, settings.scaling)


@functools.cache
def results(stack: str) -> dict[str, cluster.Result]:
    return {r.trace: r for r in sim.simulate(model(stack))}


# --- the algorithm, against the documented examples -----------------------------------------


def test_ratio_rule_doubles_and_halves_as_documented():
    # "if the current metric value is 200m, and the desired value is 100m, the number of
    # replicas will be doubled ... If the current value is instead 50m, you'll halve"
    assert hpa_model.ratio_replicas(3, 200, 100) == 6
    assert hpa_model.ratio_replicas(4, 50, 100) == 2
    assert hpa_model.ratio_replicas(3, 250, 100) == 8  # ceil(7.5)


def test_tolerance_of_ten_percent_skips_small_changes():
    assert hpa_model.ratio_replicas(10, 109, 100) == 10
    assert hpa_model.ratio_replicas(10, 91, 100) == 10
    assert hpa_model.ratio_replicas(10, 111, 100) == 12
    assert hpa_model.external_average_value_replicas(4, 21, 5) == 4  # 21 / (5 x 4) = 1.05
    assert hpa_model.external_average_value_replicas(4, 30, 5) == 6  # ceil(30 / 5)
    assert hpa_model.external_average_value_replicas(4, 0, 5) == 0


def test_default_scale_up_allows_double_or_four_pods_whichever_is_more():
    assert hpa_model.scale_up_limit(0, 1, [], [], DEFAULT_UP) == 5
    assert hpa_model.scale_up_limit(0, 10, [], [], DEFAULT_UP) == 20


def test_scale_down_example_uses_percent_only_above_40_replicas():
    # Docs: Pods 4 / 60 s and Percent 10 / 60 s; "the second policy will only be used when the
    # number of pod replicas is more than 40".
    rules = Rules(300, (Policy("Pods", 4, 60), Policy("Percent", 10, 60)), "Max")
    assert hpa_model.scale_down_limit(0, 80, [], [], rules) == 72
    assert hpa_model.scale_down_limit(0, 40, [], [], rules) == 36
    assert hpa_model.scale_down_limit(0, 20, [], [], rules) == 16
    assert hpa_model.scale_down_limit(0, 80, [], [], dataclasses.replace(rules, select_policy="Min")) == 76
    assert hpa_model.scale_down_limit(0, 80, [], [], dataclasses.replace(rules, select_policy="Disabled")) == 80


def test_changes_within_a_policy_period_count_against_it():
    rules = Rules(0, (Policy("Pods", 2, 600),))
    assert hpa_model.scale_up_limit(1000, 5, [(500, 2)], [], rules) == 5  # 2 added 500 s ago: none left
    assert hpa_model.scale_up_limit(1000, 5, [(300, 2)], [], rules) == 7  # that change left the period
    assert hpa_model.scale_up_limit(1000, 5, [(500, 2)], [(700, 1)], rules) == 6  # a removal in the period frees one


def test_scale_down_stabilization_keeps_the_highest_recent_recommendation():
    hpa = hpa_model.Hpa(Behavior(DEFAULT_UP, DEFAULT_DOWN), 1, 10)
    assert hpa.reconcile(0, 5, 5) == 5
    assert hpa.reconcile(60, 5, 2) == 5  # 5 was recommended within 300 s
    assert hpa.reconcile(290, 5, 2) == 5
    assert hpa.reconcile(301, 5, 2) == 2  # the 5 left the window; Percent 100 allows it all


def test_a_recommendation_equal_to_the_current_count_does_not_bypass_the_scale_down_window():
    # The HPA clamps the current count between both windows' limits, so a lower recommendation
    # seen within the scale-up window alone never scales down.
    behavior = Behavior(Rules(60, (Policy("Pods", 1, 60),)), Rules(3600, (Policy("Pods", 1, 60),)))
    hpa = hpa_model.Hpa(behavior, 1, 10)
    assert hpa.reconcile(0, 4, 4) == 4
    assert hpa.reconcile(15, 4, 3) == 4  # 4 within the scale-down window
    assert hpa.reconcile(30, 4, 4) == 4  # the 3 within the scale-up window must not pull it down
    assert hpa.reconcile(45, 4, 6) == 4  # nor may 6 raise it while the 3 is in the scale-up window
    assert hpa.reconcile(91, 4, 6) == 5  # the 3 left it: up, one pod per minute


def test_hpa_keeps_min_and_max():
    hpa = hpa_model.Hpa(Behavior(DEFAULT_UP, Rules(0, (Policy("Percent", 100, 15),))), 2, 6)
    assert hpa.reconcile(0, 4, 50) == 6
    assert hpa.reconcile(15, 6, 0) == 2
    assert hpa.reconcile(30, 0, 50) == 0  # at zero the HPA does nothing; KEDA wakes the target


# --- KEDA's 0 <-> 1 --------------------------------------------------------------------------


def _quiet(hours: float, start_replicas: int = 1) -> cluster.Trace:
    return cluster.Trace("quiet", 22.0, hours, lambda h: 0.0, start_replicas, idle_night=True)


def test_keda_scales_to_zero_only_after_the_cooldown():
    m = model("dev")
    r = cluster.Simulation(m, _quiet(2)).run()
    (to_zero,) = [e for e in r.events if e.after == 0]
    assert to_zero.by == "keda" and m.policy.cooldown_seconds < to_zero.at <= m.policy.cooldown_seconds + 30


def test_a_new_scaled_object_waits_its_initial_cooldown_before_zero():
    m = model("dev")
    r = cluster.Simulation(m, _quiet(2), new_scaled_object=True).run()
    (to_zero,) = [e for e in r.events if e.after == 0]
    assert m.policy.initial_cooldown_seconds < to_zero.at <= m.policy.initial_cooldown_seconds + 30
    assert m.policy.initial_cooldown_seconds >= m.cold.new_node_replica_seconds


def test_keda_wakes_from_zero_on_503s_when_requests_arrive():
    m = model("dev")
    trace = cluster.Trace("wake", 22.0, 2, lambda h: 0.2 if h >= 23 else 0.0, 0)
    r = cluster.Simulation(m, trace).run()
    (wake,) = [e for e in r.events if e.before == 0]
    assert wake.by == "keda" and wake.after == 1
    assert 3600 + cluster.CLOUDWATCH_DELAY_SECONDS <= wake.at <= 3600 + cluster.CLOUDWATCH_DELAY_SECONDS + 90
    assert r.rejected > 0  # until a replica is ready the ALB answers 503


def test_without_the_wake_trigger_requests_at_zero_wake_nothing():
    m = model("dev")
    no_wake = dataclasses.replace(m.policy, triggers=tuple(t for t in m.policy.triggers if t.signal != "wake"))
    trace = cluster.Trace("wake", 22.0, 2, lambda h: 0.2 if h >= 23 else 0.0, 0)
    r = cluster.Simulation(dataclasses.replace(m, policy=no_wake), trace).run()
    assert r.events == []


# --- every shipped stack with scaling on passes every trace ----------------------------------


@pytest.mark.parametrize("stack", SCALED_STACKS)
def test_every_trace_passes_every_check(stack):
    for name, r in results(stack).items():
        assert r.violations == [], (stack, name, r.violations)
        assert r.max_replicas <= model(stack).capacity


@pytest.mark.parametrize("stack", SCALED_STACKS)
def test_idle_night_reaches_zero_gpu_nodes_and_saves_money(stack):
    night = results(stack)["idle night"]
    assert (
        night.zero_nodes_at is not None and 20 <= night.zero_nodes_at <= 21
    )  # cron ends 20:00, 30 min idle, 10 min CA
    assert night.cost_usd < 0.5 * night.fixed_size_cost_usd


@pytest.mark.parametrize("stack", SCALED_STACKS)
def test_replicas_serve_at_the_schedule_start(stack):
    day = results(stack)["working day"]
    assert day.rejected == 0  # the cron window opened one cold start before 08:00
    assert day.peak_wait_seconds < 300


def test_the_burst_scales_up_within_node_capacity_and_back_down():
    r = results("dev")["sudden burst"]
    ups = [e for e in r.events if e.after > e.before]
    downs = [e for e in r.events if e.after < e.before]
    assert ups and downs and max(e.after for e in ups) == model("dev").capacity
    assert downs[0].at - ups[-1].at >= scaling.HPA_MAX_WINDOW_SECONDS


@pytest.mark.parametrize("stack", ["dev", "prod-8gpu"])
def test_make_scaling_prints_the_report_or_says_scaling_is_off(stack, capsys):
    assert sim.main(["--stack", stack]) == 0
    out = capsys.readouterr().out
    if stack in SCALED_STACKS:
        for trace in ("working day", "sudden burst", "idle night", "slow ramp"):
            assert trace in out
        assert "idle night: $" in out and "saving $" in out and "4 trace(s) pass, 0 fail" in out
    else:
        assert "scaling is off" in out


# --- vLLM's admission cap (serving.maxQueuedRequests) ---------------------------------------

BURST_WAIT_BOUND_SECONDS = 15 * 60


def _uncapped(stack: str) -> dict[str, cluster.Result]:
    return {r.trace: r for r in sim.simulate(dataclasses.replace(model(stack), admission_cap=None))}


def test_the_simulated_cap_is_the_stacks_setting():
    for stack in SCALED_STACKS:
        assert model(stack).admission_cap == from_stack_file(stack).serving.max_queued_requests
    assert from_stack_file("dev").serving.max_queued_requests > 0  # the shipped default caps


def test_the_cap_bounds_devs_burst_wait_and_counts_what_it_refuses():
    capped, uncapped = results("dev")["sudden burst"], _uncapped("dev")["sudden burst"]
    assert uncapped.peak_wait_seconds > BURST_WAIT_BOUND_SECONDS and uncapped.over_cap == 0
    assert capped.peak_wait_seconds <= BURST_WAIT_BOUND_SECONDS
    assert capped.over_cap > 0 and capped.rejected == capped.over_cap  # a replica is ready all along
    assert capped.served + capped.rejected == pytest.approx(uncapped.served + uncapped.rejected, rel=1e-3)


@pytest.mark.parametrize("stack", SCALED_STACKS)
def test_the_cap_changes_nothing_where_no_replica_fills(stack):
    capped, uncapped = results(stack), _uncapped(stack)
    for name in ("working day", "idle night", "slow ramp"):
        assert capped[name].over_cap == 0
        assert capped[name].peak_wait_seconds == uncapped[name].peak_wait_seconds
        assert capped[name].rejected == uncapped[name].rejected


def test_a_full_replica_refuses_the_newest_and_its_503s_wake_nothing():
    m = dataclasses.replace(model("dev"), admission_cap=20)  # 16 in flight + 4 waiting
    trace = cluster.Trace("full", 11.0, 0.5, lambda h: 2.0, 1)
    s = cluster.Simulation(m, trace)
    s.run()
    assert s.r.over_cap > 0 and s.r.rejected == s.r.over_cap
    assert not s.rejections  # the wake trigger's ALB 503s: none, a replica answered
    held = s.running + sum(b[1] for b in s.queue)
    assert held <= len(s._ready(trace.hours * 3600)) * 20 + 1e-6
    arrived = 2.0 * cluster.STEP_SECONDS * (int(trace.hours * 3600 / cluster.STEP_SECONDS) + 1)
    assert s.r.served + s.r.rejected + held == pytest.approx(arrived)


def test_the_report_says_what_the_cap_refuses():
    settings = from_stack_file("dev")
    text = sim.report(settings, settings.scaling, list(results("dev").values()), model("dev"))
    assert f"admission: at most {settings.serving.max_queued_requests} requests per ready replica" in text
    assert "over cap" in text
    none = sim.admission_line(dataclasses.replace(model("dev"), admission_cap=None))
    assert "no cap (serving.maxQueuedRequests 0)" in none


# --- each check catches a policy that breaks it ----------------------------------------------

SPIKE = cluster.Trace("spike", 10.0, 3, lambda h: 1.5 if 10.0 <= h < 10.0 + 1 / 60 else 0.1, 1)  # a 1-minute spike
# Quick windows and no loading guard: the usual default-like policy.
HASTY = Behavior(
    Rules(0, (Policy("Percent", 100, 15),)),
    Rules(60, (Policy("Percent", 100, 15),)),
)


def _hasty(m: cluster.Stack) -> cluster.Stack:
    triggers = tuple(t for t in m.policy.triggers if t.signal != "loading")
    return dataclasses.replace(m, policy=dataclasses.replace(m.policy, behavior=HASTY, triggers=triggers))


def test_a_hasty_policy_removes_a_loading_replica_and_flaps():
    r = cluster.Simulation(_hasty(model("dev")), SPIKE).run()
    assert any("removed while loading" in v for v in r.violations), r.violations
    assert any(v.startswith("flapping") for v in r.violations), r.violations


def test_the_derived_policy_survives_the_same_spike():
    assert cluster.Simulation(model("dev"), SPIKE).run().violations == []


def test_the_loading_guard_alone_keeps_a_loading_replica():
    m = model("dev")
    quick = dataclasses.replace(m.policy, behavior=HASTY)  # loading trigger kept
    r = cluster.Simulation(dataclasses.replace(m, policy=quick), SPIKE).run()
    assert not any("removed while loading" in v for v in r.violations), r.violations


def test_more_replicas_than_the_node_group_holds_is_caught():
    m = model("dev")
    greedy = dataclasses.replace(m, policy=dataclasses.replace(m.policy, max_replicas=m.capacity + 2))
    r = cluster.Simulation(greedy, SPIKE).run()
    assert any("the GPU node group holds" in v for v in r.violations), r.violations
    assert any("exceeds the GPU node group" in v for v in r.violations)


def test_an_idle_night_that_never_reaches_zero_is_caught():
    m = model("dev")
    sleepless = dataclasses.replace(m, policy=dataclasses.replace(m.policy, cooldown_seconds=20 * 3600))
    r = cluster.Simulation(sleepless, _quiet(8)).run()
    assert r.violations == ["the idle night never reached zero GPU nodes"]


def test_zero_nodes_is_not_expected_where_the_stack_keeps_a_node():
    m = dataclasses.replace(model("dev"), min_nodes=1)
    assert not cluster.allows_zero(m)
    assert cluster.Simulation(m, _quiet(8)).run().violations == []


def test_flapping_is_a_reversal_inside_the_window():
    m = model("dev")
    up, down = cluster.ScaleEvent(0, 1, 2, "hpa"), cluster.ScaleEvent(600, 2, 1, "hpa")
    assert cluster.flapping([up, down], m)
    assert not cluster.flapping([up, dataclasses.replace(down, at=scaling.HPA_MAX_WINDOW_SECONDS)], m)
    assert not cluster.flapping([up, cluster.ScaleEvent(60, 2, 3, "hpa")], m)  # same direction


def test_a_larger_always_on_policy_passes_too():
    from components.platform.config import parse

    settings = parse(
        {
            "owner": "me",
            "serving": {"profile": "tp8-ep"},
            "gpuNodes": {"minSize": 1, "desiredSize": 1, "maxSize": 3},
            "scaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3},
        },
        "big",
        "us-east-2",
    )
    sc = settings.scaling
    for r in sim.simulate(sim.stack_model(settings, sc)):
        assert r.violations == [], (r.trace, r.violations)
        assert r.max_nodes <= 3 and r.zero_nodes_at is None  # minReplicas 1 keeps a node
