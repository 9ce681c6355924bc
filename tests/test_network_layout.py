"""Zones and subnet CIDRs are decided once and kept: no lookup made at a later run moves a subnet.

`cidr_block` and `availability_zone` force a subnet's replacement, and EC2 refuses the new
subnet while the old one holds the range (InvalidSubnet.Conflict); the GPU node group's
`subnet_ids` forces its replacement too.
"""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from components.aws.network import ZONE_LETTERS, ZoneError, detect_layout, layout_cidrs, subnet_cidrs, zone_cidrs
from components.facts.catalog import BY_POSITION, BY_ZONE
from components.platform.config import parse
from components.platform.deploy_gate import zone_problems
from components.settings.stack import SettingsError
from ops.aws_checks import zone_record
from ops.offline import mocks
from ops.offline.engine import render, zones_recorded

SUBNET = "aws:ec2/subnet:Subnet"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
REGION = "us-east-2"
TLS_ARN = "arn:aws:acm:us-east-2:123456789012:certificate/0f2b4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
READY = {
    "cluster": {"publicAccessCidrs": ["52.1.2.3/32"]},
    "endpoint": {"scheme": "internet-facing", "sourceRanges": ["52.0.0.0/16"], "certificateArn": TLS_ARN},
}


def zone(letter: str) -> str:
    return f"{REGION}{letter}"


@pytest.mark.parametrize("vpc", ["10.43.0.0/16", "10.0.16.0/20"])
def test_a_zones_cidrs_depend_on_the_zone_alone_and_never_overlap(vpc: str) -> None:
    every = [zone(z) for z in ZONE_LETTERS]
    for n in range(2, len(every) + 1):
        for chosen in itertools.permutations(every, n) if n == 2 else [tuple(every[:n]), tuple(reversed(every[:n]))]:
            private, public = layout_cidrs(vpc, chosen, BY_ZONE)
            assert [(p, q) for p, q in zip(private, public, strict=True)] == [zone_cidrs(vpc, z) for z in chosen]
    nets = [ipaddress.ip_network(c) for z in every for c in zone_cidrs(vpc, z)]
    assert all(n.subnet_of(ipaddress.ip_network(vpc)) for n in nets)
    assert not any(a.overlaps(b) for a, b in itertools.combinations(nets, 2))
    with pytest.raises(ZoneError, match="no subnet slot"):
        zone_cidrs(vpc, zone("h"))


def test_a_stack_deployed_by_position_keeps_its_subnets() -> None:
    """Before byZone, prod-8gpu (p5 offered in b and c) got b = 10.43.0.0/18, c = 10.43.64.0/18."""
    deployed = {zone("c"): "10.43.64.0/18", zone("b"): "10.43.0.0/18"}
    assert detect_layout("10.43.0.0/16", deployed) == (BY_POSITION, (zone("b"), zone("c")))
    assert layout_cidrs("10.43.0.0/16", (zone("b"), zone("c")), BY_POSITION) == subnet_cidrs("10.43.0.0/16", 2)
    assert layout_cidrs("10.43.0.0/16", (zone("b"), zone("c")), BY_POSITION)[0] == ["10.43.0.0/18", "10.43.64.0/18"]
    fresh = {z: zone_cidrs("10.43.0.0/16", z)[0] for z in (zone("b"), zone("c"))}
    assert detect_layout("10.43.0.0/16", fresh) == (BY_ZONE, (zone("b"), zone("c")))
    assert detect_layout("10.43.0.0/16", {zone("b"): "10.43.128.0/20"}) is None


def test_preflight_records_the_deployed_layout_or_a_new_choice() -> None:
    settings = parse({"owner": "ml-platform", "network": {"vpcCidr": "10.43.0.0/16"}}, "edge", REGION)
    how, lines = zone_record.decide(
        settings, {zone("b"): "10.43.0.0/18", zone("c"): "10.43.64.0/18"}, [zone(z) for z in "abc"], [zone("c")]
    )
    assert "deployed" in how
    assert lines == [
        "pulumi config set --path 'network.subnetLayout' byPosition",
        f"pulumi config set --path 'network.availabilityZones[0]' {zone('b')}",
        f"pulumi config set --path 'network.availabilityZones[1]' {zone('c')}",
        f"pulumi config set --path 'gpuNodes.availabilityZones[0]' {zone('c')}",
    ]
    _, lines = zone_record.decide(settings, {}, [zone(z) for z in "abc"], [zone("c")])
    assert lines[0].endswith(BY_ZONE) and f"'network.availabilityZones[0]' {zone('c')}" in lines[1]


def test_a_real_deploy_stops_until_the_zones_are_recorded() -> None:
    settings = parse({"owner": "ml-platform"}, "edge", REGION)
    (problem,) = zone_problems(settings)
    assert "python -m ops preflight --stack edge" in problem.fix
    with pytest.raises(SettingsError, match="network.availabilityZones"):
        render("prod-8gpu", overrides=READY, as_deploy=True)
    assert render("prod-8gpu", overrides={**READY, **zones_recorded("prod-8gpu")}, as_deploy=True).of_type(SUBNET)


def _subnets_and_gpu_group(r) -> tuple[list[tuple[str, str, str]], list[str]]:
    subnets = sorted((s.name, s.inputs["cidrBlock"], s.inputs["availabilityZone"]) for s in r.of_type(SUBNET))
    (gpu,) = [g for g in r.of_type(NODE_GROUP) if g.parent == r.one("minimax-vllm:aws:GpuNodeGroup").urn]
    return subnets, gpu.inputs["subnetIds"]


@pytest.mark.parametrize("stack", ["prod-8gpu", "prod-4gpu"])
def test_no_subnet_moves_when_the_offerings_or_the_instance_type_change(
    stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = {**READY, **zones_recorded(stack)}
    before = _subnets_and_gpu_group(render(stack, overrides=recorded, as_deploy=True))
    monkeypatch.setattr(mocks, "GPU_OFFERING_ZONE_SUFFIXES", ("a", "c"))  # AWS adds zone a, drops b
    other_type = {**recorded, "gpuNodes": {**recorded["gpuNodes"], "instanceType": "p5e.48xlarge"}}
    after = _subnets_and_gpu_group(render(stack, overrides=other_type, as_deploy=True))
    assert before[0] and after == before
