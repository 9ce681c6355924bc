"""preflight looks up the ids that carry no region (existing VPC, subnets, bucket) in the stack's region."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from components.platform.config import parse
from components.settings.stack import Settings
from ops.aws_checks import resources
from tests.test_preflight import fake_credentials, no_sleep  # noqa: F401 (the fixture is autouse)

pytestmark = pytest.mark.slow  # a mock AWS account

REGION = "us-east-2"
REVISION = "5fb9455421adc47f561f139d4e925b4c88c44367"


def settings(**sections: Any) -> Settings:
    raw = {"owner": "ml-platform", "gpuNodes": {"minSize": 1, "desiredSize": 1, "maxSize": 1}, **sections}
    return parse(raw, "test", REGION)


def network(ec2: Any, cidr: str = "10.50.0.0/16") -> tuple[str, list[str]]:
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    base = cidr.rsplit(".", 2)[0]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"{base}.{i}.0/24")["Subnet"]["SubnetId"] for i in range(4)]
    return vpc, subnets


def with_vpc(vpc: str, subnets: list[str]) -> Settings:
    return settings(network={"existingVpcId": vpc, "publicSubnetIds": subnets[:2], "privateSubnetIds": subnets[2:]})


@mock_aws
def test_a_vpc_and_its_subnets_in_the_stacks_region_pass() -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc, subnets = network(ec2)
    (row,) = resources.existing_network(with_vpc(vpc, subnets), ec2, no_sleep)
    assert row.status == "PASS" and f"{vpc} in {REGION} holds the 4 configured subnets" in row.detail


@mock_aws
def test_a_vpc_of_another_region_fails_with_the_fix() -> None:
    vpc, subnets = network(boto3.client("ec2", region_name="eu-west-1"))
    (row,) = resources.existing_network(with_vpc(vpc, subnets), boto3.client("ec2", region_name=REGION), no_sleep)
    assert row.status == "FAIL" and f"{vpc} does not exist in {REGION}" in row.detail
    assert "pulumi config set --path 'network.existingVpcId'" in row.fix


@mock_aws
def test_subnets_of_another_vpc_or_region_fail_naming_each() -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc, subnets = network(ec2)
    other_vpc, other = network(ec2, "10.60.0.0/16")
    _, foreign = network(boto3.client("ec2", region_name="eu-west-1"))
    (row,) = resources.existing_network(with_vpc(vpc, [*subnets[:3], other[0]]), ec2, no_sleep)
    assert row.status == "FAIL" and f"{other[0]} is in {other_vpc}, not {vpc}" in row.detail
    (row,) = resources.existing_network(with_vpc(vpc, [*subnets[:3], foreign[0]]), ec2, no_sleep)
    assert row.status == "FAIL" and f"{foreign[0]} is not in {REGION}" in row.detail


def mirror(bucket: str) -> Settings:
    return settings(serving={"revision": REVISION}, weights={"source": "s3", "existingBucket": bucket})


@mock_aws
def test_a_bucket_in_the_stacks_region_passes_and_one_elsewhere_fails() -> None:
    here, there = boto3.client("s3", region_name=REGION), boto3.client("s3", region_name="eu-west-1")
    here.create_bucket(Bucket="mirror-here", CreateBucketConfiguration={"LocationConstraint": REGION})
    there.create_bucket(Bucket="mirror-there", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    (row,) = resources.existing_bucket(mirror("mirror-here"), here, no_sleep)
    assert row.status == "PASS" and f"in {REGION}" in row.detail
    (row,) = resources.existing_bucket(mirror("mirror-there"), here, no_sleep)
    assert row.status == "FAIL" and f"is in eu-west-1, not the stack's aws:region {REGION}" in row.detail
    assert "pulumi config set --path 'weights.existingBucket'" in row.fix


@mock_aws
def test_a_missing_bucket_fails() -> None:
    (row,) = resources.existing_bucket(mirror("no-such-mirror"), boto3.client("s3", region_name=REGION), no_sleep)
    assert row.status == "FAIL" and "does not exist" in row.detail


def test_nothing_configured_is_skipped_not_passed() -> None:
    rows = resources.run(settings(), None, None, no_sleep)
    assert [r.status for r in rows] == ["SKIP", "SKIP"]
