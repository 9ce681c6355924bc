"""Capacity reservations are zonal, and a Capacity Block node group upgrades only at size 0."""

from __future__ import annotations

import dataclasses

import pytest

from components.aws import reservations
from components.facts import gpu_pool
from components.platform.config import parse
from components.settings.node_update import CAPACITY_BLOCK_UPDATES
from components.settings.stack import SettingsError
from ops.offline.engine import render

REGION = "us-east-2"
RESERVATION = "cr-0123456789abcdef0"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


def raw(**gpu) -> dict:
    return {
        "owner": "ml-platform",
        "serving": {"profile": "tp8-ep", "maxModelLen": 131072},
        "gpuNodes": {"minSize": 1, "desiredSize": 1, "maxSize": 1, **gpu},
    }


def problems(**gpu) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        parse(raw(**gpu), "test", REGION)
    return caught.value.problems


@pytest.mark.parametrize("zones", [None, ["us-east-2a", "us-east-2b"]])
def test_an_on_demand_capacity_reservation_needs_exactly_one_gpu_zone(zones):
    gpu = {"capacityReservationId": RESERVATION} | ({"availabilityZones": zones} if zones else {})
    (problem,) = problems(**gpu)
    assert problem.startswith(
        f"minimax-vllm:gpuNodes.availabilityZones = {zones or []!r} must name exactly the one zone"
    )
    assert RESERVATION in problem and "a launch in any other zone misses it" in problem
    assert "Fix: pulumi config rm --path 'gpuNodes.availabilityZones' && pulumi config set --path" in problem


def test_a_reservation_with_its_one_zone_is_accepted():
    s = parse(raw(capacityReservationId=RESERVATION, availabilityZones=["us-east-2b"]), "test", REGION)
    assert s.gpu_nodes.availability_zones == ("us-east-2b",)
    assert parse(raw(availabilityZones=["us-east-2a", "us-east-2b"]), "test", REGION)  # no reservation: any zones


def test_the_update_setting_reads_camel_case_and_refuses_unknown_modes():
    cb = {"capacityType": "CAPACITY_BLOCK", "capacityReservationId": RESERVATION, "availabilityZones": ["us-east-2a"]}
    assert parse(raw(capacityBlockUpdate="scaleToZero", **cb), "test", REGION).gpu_nodes.capacity_block_update == (
        "scaleToZero"
    )
    (problem,) = problems(capacityBlockUpdate="now", **cb)
    assert "gpuNodes.capacityBlockUpdate = 'now' is not a Capacity Block update mode; choose one of: hold" in problem
    (problem,) = problems(capacityBlockUpgrade="apply", **cb)
    assert "did you mean capacityBlockUpdate?" in problem


def test_capacity_block_update_modes_are_refused_for_on_demand_with_the_fix():
    (problem,) = problems(capacityBlockUpdate="apply")
    assert problem.startswith("minimax-vllm:gpuNodes.capacityBlockUpdate = 'apply' applies only to CAPACITY_BLOCK")
    assert problem.endswith("Fix: pulumi config rm --path 'gpuNodes.capacityBlockUpdate'")


def capacity_block(desired: int = 1):
    return parse(
        raw(
            capacityType="CAPACITY_BLOCK",
            capacityReservationId=RESERVATION,
            availabilityZones=["us-east-2a"],
            desiredSize=desired,
        ),
        "test",
        REGION,
    ).gpu_nodes


@pytest.mark.parametrize("mode", CAPACITY_BLOCK_UPDATES)
def test_a_capacity_block_node_group_never_takes_an_upgrade_above_zero_nodes(mode):
    shape = reservations.node_group_shape(dataclasses.replace(capacity_block(), capacity_block_update=mode))
    held = set(reservations.UPGRADE_INPUTS) <= set(shape.ignore_changes)
    assert held or shape.desired_size == shape.min_size == 0
    assert (mode == "hold") == (shape.desired_size == 1)
    assert (mode == "apply") == (not held)


def test_on_demand_node_groups_update_in_place_at_their_size():
    s = parse(raw(), "test", REGION)
    assert reservations.node_group_shape(s.gpu_nodes) == reservations.NodeGroupShape(1, 1, ())


CB_STACK = {
    "gpuNodes": {
        "instanceType": "p5.48xlarge",
        "minSize": 1,
        "desiredSize": 1,
        "maxSize": 1,
        "capacityType": "CAPACITY_BLOCK",
        "capacityReservationId": RESERVATION,
        "availabilityZones": [f"{REGION}a"],
    }
}


def gpu_group(r):
    (group,) = [g for g in r.of_type(NODE_GROUP) if g.inputs.get("capacityType") == "CAPACITY_BLOCK"]
    return group


@pytest.mark.parametrize("mode", CAPACITY_BLOCK_UPDATES)
def test_the_rendered_capacity_block_group_holds_upgrades_unless_it_is_at_zero(mode):
    stack = {"gpuNodes": {**CB_STACK["gpuNodes"], "capacityBlockUpdate": mode}}
    group = gpu_group(render("prod-8gpu", overrides=stack))
    ignored = set(group.options["ignoreChanges"])
    desired = group.inputs["scalingConfig"]["desiredSize"]
    assert {"version", "launchTemplate"} <= ignored or desired == 0
    assert desired == (1 if mode == "hold" else 0)


def test_an_on_demand_gpu_group_holds_nothing():
    key, value = gpu_pool.POOL_LABEL
    (group,) = [g for g in render("prod-8gpu").of_type(NODE_GROUP) if g.inputs["labels"].get(key) == value]
    assert group.inputs["capacityType"] == "ON_DEMAND" and group.options["ignoreChanges"] == []


def test_plan_says_that_a_capacity_block_group_holds_its_upgrades():
    from ops import plan

    settings = parse(raw(**CB_STACK["gpuNodes"]), "cb-test", REGION)
    text = plan.summary(settings, render("prod-8gpu", overrides=CB_STACK))
    assert "upgrades only at 0 nodes" in text and "gpuNodes.capacityBlockUpdate" in text


CB = {"capacityType": "CAPACITY_BLOCK", "capacityReservationId": RESERVATION, "availabilityZones": ["us-east-2a"]}
CB_SCALED = {**CB, "minSize": 0}
AUTOSCALED = {"enabled": True, "minReplicas": 0, "maxReplicas": 1}


@pytest.mark.parametrize("mode", ["scaleToZero", "apply"])
def test_scale_to_zero_with_autoscaling_is_refused_because_the_group_never_reaches_zero(mode: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse({**raw(capacityBlockUpdate=mode, **CB_SCALED), "scaling": AUTOSCALED}, "test", REGION)
    (problem,) = caught.value.problems
    assert problem.startswith(f"minimax-vllm:gpuNodes.capacityBlockUpdate = '{mode}' cannot take the Capacity Block")
    assert "Cluster Autoscaler owns the group's desired size" in problem
    assert "Fix: turn autoscaling off for the upgrade: pulumi config set --path 'scaling.enabled' false" in problem
    assert parse({**raw(capacityBlockUpdate="hold", **CB_SCALED), "scaling": AUTOSCALED}, "test", REGION)


def test_without_autoscaling_scale_to_zero_really_sets_zero_and_nothing_holds_it() -> None:
    """The reason for the rule: with autoscaling the program leaves desiredSize to the autoscaler."""
    overrides = {"gpuNodes": {**raw()["gpuNodes"], **CB, "capacityBlockUpdate": "scaleToZero"}}
    r = render("prod-8gpu", overrides=overrides)
    (group,) = [g for g in r.of_type(NODE_GROUP) if g.name.endswith("-gpu-ng")]
    assert group.inputs["scalingConfig"]["desiredSize"] == 0
    assert "scalingConfig.desiredSize" not in group.options["ignoreChanges"]
