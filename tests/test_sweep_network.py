"""sweep --include-network: this stack's own VPC goes (NAT gateways first), nothing else's does."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ops.sweep import run as sweep
from tests.sweep_world import CONTROLLER, OURS, SETTINGS, SIBLING, SIBLING_TAGS, World, aws_error, tag_spec

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
        **kw,
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
    assert before["endpoints"] - after["endpoints"] == {ours["s3"]}  # else DeleteVpc refuses
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
            "VPC endpoint",
            "subnet",
            "route table",
            "VPC vpc-",
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


# --- dependencies: what something kept routes through stays ------------------------------------


def verdicts(rows: list[Any]) -> dict[str, str]:
    """Each network row's verdict, comparable across modes: `goes`, or why it stays."""
    kinds = ("NAT gateway", "Elastic IP", "internet gateway", "VPC endpoint", "subnet", "route table", "VPC ")
    return {
        r.name: r.detail if r.detail.startswith("left alone") else "goes"
        for r in rows
        if r.name.startswith(kinds) and r.name != "NAT gateways deleted"
    }


def row_of(rows: list[Any], resource_id: str) -> Any:
    return next(r for r in rows if resource_id in r.name.split(" (")[0].split())


def test_a_foreign_instance_in_the_private_subnet_keeps_its_whole_egress_path(world: World) -> None:
    ours = world.ids["ours"]
    public_a, private_a, public_b, private_b = ours["subnets"]
    public_rt, private_rt_a, private_rt_b = ours["rtbs"]
    instance_eni = world.eni(private_a, {})  # someone's instance, not tagged as the stack's
    world.attached[instance_eni] = "i-0f00ba4"
    dry = run(world, apply=False)
    before = world.inventory()
    applied = run(world, apply=True)
    after = world.inventory()
    path = {
        "subnets": {private_a, public_a},
        "rtbs": {private_rt_a, public_rt},
        "nats": {ours["nats"][0]},
        "eips": {ours["eips"][0]},
        "igws": {ours["igw"]},
        "vpcs": {ours["vpc"]},
        "endpoints": {ours["s3"]},  # the private route table routes S3 through it
    }
    for kind, kept in path.items():
        assert kept <= after[kind], (kind, kept - after[kind])
    for resource_id in set().union(*path.values()):
        row = row_of(applied, resource_id)
        assert row.failed and "i-0f00ba4" in row.detail, row
    nat_row = row_of(applied, ours["nats"][0])
    assert f"{instance_eni} -> {private_a} -> {private_rt_a} -> {ours['nats'][0]}" in nat_row.detail
    # What zone b's machines would use, nothing kept needs: it goes (NAT gateways bill by the hour).
    assert not {ours["nats"][1], ours["eips"][1], private_b, public_b, private_rt_b} & (
        after["nats"] | after["eips"] | after["subnets"] | after["rtbs"]
    )
    assert before["nats"] - after["nats"] == {ours["nats"][1]}
    assert verdicts(dry) == verdicts(applied)
    assert not [r for r in applied if r.failed and "i-0f00ba4" not in r.detail and "still holds" not in r.detail]


@pytest.mark.parametrize("cluster", ["live", "uncheckable"], ids=["live cluster", "DescribeCluster denied"])
def test_a_live_cluster_loses_nothing_of_its_network_even_with_the_override(world: World, cluster: str) -> None:
    if cluster == "live":
        world.eks.create_cluster(
            name=SETTINGS.cluster_name,
            roleArn="arn:aws:iam::123456789012:role/eks",
            resourcesVpcConfig={"subnetIds": world.ids["ours"]["subnets"], "securityGroupIds": []},
        )
        why = "minimax-vllm-prod-8gpu still exists"
    else:

        def denied(**_: Any) -> Any:
            raise aws_error("AccessDeniedException", "DescribeCluster")

        world.eks.describe_cluster = denied
        why = "cannot tell whether minimax-vllm-prod-8gpu still exists"
    network = ("vpcs", "subnets", "rtbs", "nats", "eips", "igws", "endpoints")
    before = world.inventory()
    dry = run(world, apply=False, live_cluster_override=True)
    applied = run(world, apply=True, live_cluster_override=True)
    after = world.inventory()
    assert {k: after[k] for k in network} == {k: before[k] for k in network}
    assert "k8s-minimaxv-vllm" not in after["lbs"]  # the override still sweeps its load balancers
    rows = verdicts(applied)
    assert len(rows) >= 12 and all(why in v for v in rows.values()), rows
    assert all("--i-know-the-cluster-may-be-live" in r.fix for r in applied if r.name in rows)
    assert verdicts(dry) == rows


def test_when_everything_is_gone_the_dry_run_and_apply_agree_and_all_of_it_goes(world: World) -> None:
    ours = world.ids["ours"]
    dry = run(world, apply=False)
    applied = run(world, apply=True)
    assert verdicts(dry) == verdicts(applied) and set(verdicts(applied).values()) == {"goes"}
    after = world.inventory()
    mine = {ours["vpc"], ours["igw"], ours["s3"], *ours["subnets"], *ours["rtbs"], *ours["nats"], *ours["eips"]}
    assert not mine & set().union(*after.values())


def test_a_kept_load_balancer_keeps_its_subnets_and_the_internet_gateway_but_not_the_nat_gateways(
    world: World,
) -> None:
    ours = world.ids["ours"]
    public_a, private_a, public_b, private_b = ours["subnets"]
    group = world.group(ours["vpc"], "k8s-minimaxv-keep", CONTROLLER)
    world.nlb("k8s-minimaxv-keep", ours["vpc"], [public_a, public_b], CONTROLLER, [group], protected=True)
    dry = run(world, apply=False)
    applied = run(world, apply=True)
    after = world.inventory()
    assert {public_a, public_b} <= after["subnets"] and ours["rtbs"][0] in after["rtbs"]
    assert ours["igw"] in after["igws"] and ours["vpc"] in after["vpcs"]
    assert "k8s-minimaxv-keep" in row_of(applied, ours["igw"]).detail  # the kept load balancer's ENI
    # Nothing kept routes through the NAT gateways: they, their addresses and the private side go.
    assert not set(ours["nats"]) & after["nats"] and not set(ours["eips"]) & after["eips"]
    assert not {private_a, private_b} & after["subnets"] and not set(ours["rtbs"][1:]) & after["rtbs"]
    assert verdicts(dry) == verdicts(applied)
