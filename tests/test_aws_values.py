"""Every enumerated value the program sends to AWS is one the AWS API accepts.

The Pulumi SDK checks argument names, not values: these are checked against botocore's copy
of the EKS and EC2 service models, for every stack and for the Capacity Block path.
"""

from __future__ import annotations

import functools

import botocore.session
import pytest

from ops.offline.engine import Rendering, render

STACKS = ("dev", "staging", "prod-4gpu", "prod-8gpu")
CAPACITY_BLOCK = {
    "gpuNodes": {
        "capacityType": "CAPACITY_BLOCK",
        "capacityReservationId": "cr-0123456789abcdef0",
        "availabilityZones": ["us-east-2b"],
    }
}


@functools.cache
def enum(service: str, shape: str) -> frozenset[str]:
    model = botocore.session.get_session().get_service_model(service)
    values = model.shape_for(shape).enum
    assert values, f"{service} {shape} has no enum"
    return frozenset(values)


@functools.cache
def rendered(stack: str, capacity_block: bool = False) -> Rendering:
    return render(stack, overrides=CAPACITY_BLOCK if capacity_block else None)


CASES = [(s, False) for s in STACKS] + [("prod-8gpu", True)]


@pytest.mark.parametrize(("stack", "capacity_block"), CASES)
def test_node_group_values_are_valid_eks_enums(stack, capacity_block):
    groups = rendered(stack, capacity_block).of_type("aws:eks/nodeGroup:NodeGroup")
    assert len(groups) == 2
    for g in groups:
        i = g.inputs
        assert i["amiType"] in enum("eks", "AMITypes")
        assert i["capacityType"] in enum("eks", "CapacityTypes")
        for taint in i.get("taints", []):
            assert taint["effect"] in enum("eks", "TaintEffect")
        strategy = i["updateConfig"].get("updateStrategy")
        assert strategy is None or strategy in enum("eks", "NodegroupUpdateStrategies")
        for t in i.get("instanceTypes", []):
            assert t in enum("ec2", "InstanceType")


@pytest.mark.parametrize("stack", STACKS)
def test_cluster_values_are_valid_eks_enums(stack):
    r = rendered(stack)
    cluster = r.one("aws:eks/cluster:Cluster").inputs
    assert set(cluster["enabledClusterLogTypes"]) <= enum("eks", "LogType")
    assert cluster["accessConfig"]["authenticationMode"] in enum("eks", "AuthenticationMode")
    for addon in r.of_type("aws:eks/addon:Addon"):
        assert addon.inputs["resolveConflictsOnCreate"] in enum("eks", "ResolveConflicts")
        assert addon.inputs["resolveConflictsOnUpdate"] in enum("eks", "ResolveConflicts")
    for assoc in r.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation"):
        assert assoc.inputs["accessScope"]["type"] in enum("eks", "AccessScopeType")


@pytest.mark.parametrize(("stack", "capacity_block"), CASES)
def test_launch_template_values_are_valid_ec2_enums(stack, capacity_block):
    for lt in rendered(stack, capacity_block).of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        i = lt.inputs
        assert i["metadataOptions"]["httpTokens"] in enum("ec2", "LaunchTemplateHttpTokensState")
        assert i["metadataOptions"]["httpEndpoint"] in enum("ec2", "LaunchTemplateInstanceMetadataEndpointState")
        for bdm in i["blockDeviceMappings"]:
            assert bdm["ebs"]["volumeType"] in enum("ec2", "VolumeType")
        for spec in i["tagSpecifications"]:
            assert spec["resourceType"] in enum("ec2", "ResourceType")
        if "instanceType" in i:
            assert i["instanceType"] in enum("ec2", "InstanceType")
        if "instanceMarketOptions" in i:
            assert i["instanceMarketOptions"]["marketType"] in enum("ec2", "MarketType")


def test_capacity_block_launch_template_targets_the_reservation_with_the_capacity_block_market():
    (lt,) = [
        t
        for t in rendered("prod-8gpu", True).of_type("aws:ec2/launchTemplate:LaunchTemplate")
        if "instanceType" in t.inputs
    ]
    assert lt.inputs["instanceMarketOptions"]["marketType"] == "capacity-block"
    target = lt.inputs["capacityReservationSpecification"]["capacityReservationTarget"]
    assert target["capacityReservationId"] == "cr-0123456789abcdef0"


def test_the_enum_check_rejects_a_value_aws_would_reject():
    assert "NoSchedule" not in enum("eks", "TaintEffect")  # Kubernetes spelling, not the EKS API's
    assert "AL2023_x86_64_GPU" not in enum("eks", "AMITypes")
