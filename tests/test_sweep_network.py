"""sweep --include-network: this stack's own VPC goes (NAT gateways first), nothing else's does."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ops.sweep import run as sweep
from tests.sweep_world import CONTROLLER, OURS, SETTINGS, SIBLING, SIBLING_TAGS, World, tag_spec

pytestmark = pytest.mark.slow  # a mock AWS account: `make test`, not `make test-fast`


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        w = World(boto3.client)
        ours = w.network("10.42.0.0/16", OURS, SETTINGS.cluster_name)
        w.ids.update({f"ours_{k}": v for k, v in ours.items() if isinstance(v, str)})
        w.ids["ours"] = ours  # type: ignore[assignment]
        w.ids["sibling"] = w.network("10.43.0.0/16", SIBLING_TAGS, SIBLING)  # type: ignore[assignment]
        w.vpc("10.44.0.0/16", {"Name": f"{SETTINGS.cluster_name}-vpc"})  # same name, no tags: not ours
        public = ours["subnets"][0]
        lb_sg = w.group(ours["vpc"], "k8s-minimaxv-vllm", CONTROLLER)
        w.nlb("k8s-minimaxv-vllm", ours["vpc"], [public, ours["subnets"][2]], CONTROLLER, [lb_sg])
        yield w


def run(w: World, apply: bool, include_network: bool = True, sleeps: list[float] | None = None, **kw: Any) -> list[Any]:
    record = sleeps if sleeps is not None else []
    return sweep.run(
        kw.pop("settings", SETTINGS),
        w.ec2,
        w.elbv2,
        w.eks,
        apply=apply,
        sleep=record.append,
        include_network=include_network,
    )


def test_the_stacks_network_goes_in_dependency_order_and_only_with_the_flag(world: World) -> None:
    ours, sibling = world.ids["ours"], world.ids["sibling"]
    before = world.inventory()
    run(world, apply=True, include_network=False)
    kept = world.inventory()
    assert kept["vpcs"] == before["vpcs"] and kept["nats"] == before["nats"] and kept["subnets"] == before["subnets"]
    dry = run(world, apply=False)
    assert world.inventory() == kept
    world.nat_polls_while_deleting = 2  # AWS takes a while: `deleting` twice, then `deleted`
    sleeps: list[float] = []
    applied = run(world, apply=True, sleeps=sleeps)
    assert [r.name for r in dry if r.name != "dry run"] == [r.name for r in applied]
    assert not [r for r in applied if r.failed], [r for r in applied if r.failed]
    after = world.inventory()
    assert before["vpcs"] - after["vpcs"] == {ours["vpc"]}
    assert before["nats"] - after["nats"] == set(ours["nats"])
    assert before["eips"] - after["eips"] == set(ours["eips"])
    assert before["igws"] - after["igws"] == {ours["igw"]}
    assert before["subnets"] - after["subnets"] == set(ours["subnets"])
    assert set(ours["rtbs"]) <= before["rtbs"] - after["rtbs"]
    assert (
        set(sibling["nats"]) <= after["nats"]
        and sibling["vpc"] in after["vpcs"]
        and set(sibling["eips"]) <= after["eips"]
    )
    names = [r.name for r in applied]
    first = {
        kind: next(i for i, n in enumerate(names) if n.startswith(kind))
        for kind in (
            "NAT gateway ",
            "NAT gateways deleted",
            "Elastic IP",
            "internet gateway",
            "subnet",
            "route table",
            "VPC",
        )
    }
    assert list(first.values()) == sorted(first.values())
    assert sleeps.count(5.0) >= 1 and max(sleeps) <= 60.0  # waited for the NAT gateways, bounded


def test_what_the_stack_does_not_own_keeps_its_vpc_and_nothing_waits_forever(world: World) -> None:
    ours = world.ids["ours"]
    foreign = world.subnet(ours["vpc"], "10.42.200.0/24", "a", {})
    lent = world.subnet(ours["vpc"], "10.42.201.0/24", "b", {**OURS, "kubernetes.io/cluster/someone-else": "shared"})
    stranger = world.raw_ec2.allocate_address(Domain="vpc", TagSpecifications=tag_spec("elastic-ip", OURS))[
        "AllocationId"
    ]
    holder = world.eni(foreign, {})
    world.raw_ec2.associate_address(AllocationId=stranger, NetworkInterfaceId=holder)
    world.nat_polls_while_deleting = 100  # never finishes within the bound
    rows = {r.name: r for r in run(world, apply=True)}
    vpc = next(r for n, r in rows.items() if n.startswith(f"VPC {ours['vpc']}"))
    assert vpc.failed and foreign in vpc.detail and lent in vpc.detail
    shared = next(r for n, r in rows.items() if n.startswith(f"subnet {lent}"))
    assert shared.status == "INFO" and "someone-else" in shared.detail
    eip = rows[next(n for n in rows if n.startswith(f"Elastic IP {stranger}"))]
    assert eip.failed and holder in eip.detail
    wait = rows["NAT gateways deleted"]
    assert wait.failed and "run sweep --apply --include-network again" in wait.fix
    later = [r for n, r in rows.items() if n.startswith(("subnet", "route table", "internet gateway"))]
    assert later and all(
        r.failed and ("not attempted" in r.detail or "left alone" in r.detail or "shared" in r.detail)
        for r in later
        if r.status != "INFO"
    )
    after = world.inventory()
    assert set(ours["subnets"]) <= after["subnets"] and ours["vpc"] in after["vpcs"] and stranger in after["eips"]


def test_an_existing_vpc_is_never_the_stacks_to_remove(world: World) -> None:
    network = dataclasses.replace(SETTINGS.network, existing_vpc_id=world.ids["ours_vpc"])
    rows = run(world, apply=True, settings=dataclasses.replace(SETTINGS, network=network))
    row = next(r for r in rows if r.name.startswith("VPC"))
    assert "existingVpcId" in row.detail and world.ids["ours_vpc"] in world.inventory()["vpcs"]
    assert world.ids["ours"]["nats"][0] in world.inventory()["nats"]


def test_network_is_region_scoped(world: World) -> None:
    far = boto3.client("ec2", region_name="us-west-2")
    vpc = far.create_vpc(CidrBlock="10.42.0.0/16", TagSpecifications=tag_spec("vpc", OURS))["Vpc"]["VpcId"]
    run(world, apply=True)
    assert vpc in {v["VpcId"] for v in far.describe_vpcs()["Vpcs"]}
