"""Preflight's "zones recorded" row: the zones and subnet layout a stack keeps for its life.

A stack decides its zones once. Before the first `pulumi up` (or the first one with this
version of the program), preflight prints the `pulumi config set` commands that record them:
for a stack whose VPC exists, the zones and layout its subnets already have, so nothing
moves; for a new stack, the zones the instance type is offered in now, in the byZone layout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from components.facts.catalog import BY_ZONE
from components.settings.schema import set_command
from components.settings.stack import Settings
from ops.awsclients import Sleep
from ops.awsclients import call_checked as _aws
from ops.report import Check, failed, passed

NAME = "zones recorded"


def recorded(settings: Settings) -> bool:
    """True when nothing about the subnets is left to a lookup at deploy time."""
    net, gpu = settings.network, settings.gpu_nodes
    return bool(net.existing_vpc_id) or bool(net.availability_zones and net.subnet_layout and gpu.availability_zones)


def commands(layout: str, network: Sequence[str], gpu: Sequence[str]) -> list[str]:
    """The `pulumi config set` lines that record a zone decision."""
    lines = [set_command("network.subnetLayout", layout)]
    lines += [f"pulumi config set --path 'network.availabilityZones[{i}]' {z}" for i, z in enumerate(network)]
    lines += [f"pulumi config set --path 'gpuNodes.availabilityZones[{i}]' {z}" for i, z in enumerate(gpu)]
    return lines


def decide(
    settings: Settings,
    deployed_private: Mapping[str, str],
    region_zones: Sequence[str],
    offering: Iterable[str],
) -> tuple[str, list[str]]:
    """(what was decided, the commands) from the live facts: deployed private subnets
    (zone -> CIDR, empty for a new stack), the region's zones and the zones offering the type."""
    from components.aws import network  # pulls in the Pulumi SDK: only when a decision is needed

    offered = set(offering)
    if deployed_private:
        found = network.detect_layout(settings.network.vpc_cidr, deployed_private)
        if found is None:
            raise network.ZoneError(
                f"the VPC's private subnets {dict(sorted(deployed_private.items()))} match no layout of "
                f"{settings.network.vpc_cidr}; record them by hand (network.availabilityZones, network.subnetLayout)"
            )
        layout, zones = found
        gpu = [z for z in zones if z in offered] or list(zones)
        return f"the deployed VPC's subnets ({layout})", commands(layout, zones, gpu)
    plan = network.plan_zones(
        region_zones, sorted(offered), settings.network.availability_zones, settings.gpu_nodes.availability_zones
    )
    return "chosen now from the zones offering the instance type", commands(BY_ZONE, plan.network, plan.gpu)


def check(settings: Settings, ec2: Any, offering: Iterable[str], sleep: Sleep) -> list[Check]:
    """PASS when the zones are recorded; else FAIL with the commands that record them."""
    if recorded(settings):
        return [passed(NAME, "network.availabilityZones, network.subnetLayout and gpuNodes.availabilityZones are set")]
    subnets = _aws(
        ec2.describe_subnets,
        sleep,
        Filters=[
            {"Name": f"tag:kubernetes.io/cluster/{settings.cluster_name}", "Values": ["shared"]},
            {"Name": "tag-key", "Values": ["kubernetes.io/role/internal-elb"]},
        ],
    )["Subnets"]
    deployed = {s["AvailabilityZone"]: s["CidrBlock"] for s in subnets}
    zones = _aws(
        ec2.describe_availability_zones, sleep, Filters=[{"Name": "opt-in-status", "Values": ["opt-in-not-required"]}]
    )
    region_zones = [z["ZoneName"] for z in zones["AvailabilityZones"] if z.get("State") == "available"]
    try:
        how, lines = decide(settings, deployed, region_zones, offering)
    except ValueError as err:  # ZoneError: no layout fits, or no zone offers the type
        return [failed(NAME, str(err), "record network.availabilityZones and network.subnetLayout by hand")]
    return [
        failed(
            NAME,
            "the zones and subnet layout are not recorded: every run would look them up, and a changed answer "
            f"(an instance type, a zone AWS adds or drops) would replace subnets and the GPU node group; {how}",
            " && ".join(lines),
        )
    ]
