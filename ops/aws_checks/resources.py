"""preflight rows for settings that name an AWS resource by an id that carries no region.

ARNs are judged offline (components/platform/arn_rules.py). A VPC id, a subnet id or a bucket name says
nothing of its region, so `pulumi up` would fail only once it reaches them (a VPC or subnet
unknown in the stack's region), or worse, succeed across regions (a weight mirror in another
region: every new node's copy crosses regions, paid, past the S3 gateway endpoint, which
reaches only its own region's buckets). These rows look them up in the stack's region.
The capacity reservation is looked up by preflight's own `capacity reservation` row.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from components.settings.schema import set_command
from components.settings.stack import Settings
from ops.awsclients import Sleep, error_code
from ops.awsclients import call_checked as _aws
from ops.report import Check, failed, passed, skipped

VPC_ROW, BUCKET_ROW = "existing VPC", "existing bucket"


def existing_network(settings: Settings, ec2: Any, sleep: Sleep) -> list[Check]:
    """`network.existingVpcId` exists in the stack's region and holds every configured subnet."""
    net, region = settings.network, settings.region
    if not net.existing_vpc_id:
        return [skipped(VPC_ROW, "none configured (network.existingVpcId): the stack makes its own VPC")]
    vpc = net.existing_vpc_id
    try:
        _aws(ec2.describe_vpcs, sleep, VpcIds=[vpc])
    except ClientError as err:
        if not error_code(err).startswith("InvalidVpcID"):
            raise
        return [
            failed(
                VPC_ROW,
                f"{vpc} does not exist in {region} (aws:region)",
                f"`aws ec2 describe-vpcs --region {region}`, then {set_command('network.existingVpcId', 'vpc-...')}",
            )
        ]
    wanted = [*net.public_subnet_ids, *net.private_subnet_ids]
    found = {s["SubnetId"]: s for s in _subnets(ec2, sleep, wanted)}
    problems = [f"{s} is not in {region}" for s in wanted if s not in found]
    problems += [f"{s} is in {found[s]['VpcId']}, not {vpc}" for s in wanted if s in found and found[s]["VpcId"] != vpc]
    if problems:
        return [
            failed(
                VPC_ROW,
                "; ".join(problems),
                f"`aws ec2 describe-subnets --region {region} --filters Name=vpc-id,Values={vpc}`, then"
                f" {set_command('network.privateSubnetIds', ['subnet-...'])} (and publicSubnetIds)",
            )
        ]
    return [passed(VPC_ROW, f"{vpc} in {region} holds the {len(wanted)} configured subnets")]


def _subnets(ec2: Any, sleep: Sleep, ids: list[str]) -> list[dict[str, Any]]:
    """The subnets of `ids` that exist in the client's region (an unknown id is simply absent)."""
    found = _aws(ec2.describe_subnets, sleep, Filters=[{"Name": "subnet-id", "Values": ids}])
    return list(found.get("Subnets", []))


def bucket_region(head: dict[str, Any]) -> str | None:
    headers = head.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return head.get("BucketRegion") or headers.get("x-amz-bucket-region")


def existing_bucket(settings: Settings, s3: Any, sleep: Sleep) -> list[Check]:
    """`weights.existingBucket` exists and is in the stack's region."""
    w, region = settings.weights, settings.region
    if w.source != "s3" or not w.existing_bucket:
        return [skipped(BUCKET_ROW, "none configured (weights.existingBucket)")]
    bucket = w.existing_bucket
    try:
        head = _aws(s3.head_bucket, sleep, Bucket=bucket)
    except ClientError as err:
        if error_code(err) not in ("404", "NoSuchBucket", "NotFound"):
            raise
        return [
            failed(
                BUCKET_ROW,
                f"bucket {bucket} does not exist",
                f"{set_command('weights.existingBucket', '<bucket>')}, or unset it and let the stack make one",
            )
        ]
    found = bucket_region(head)
    if found and found != region:
        return [
            failed(
                BUCKET_ROW,
                f"bucket {bucket} is in {found}, not the stack's aws:region {region}: every new node would copy"
                " the weights across regions, paid, past the S3 gateway endpoint (it reaches only its own region)",
                f"mirror into a bucket of {region}: {set_command('weights.existingBucket', '<bucket in ' + region + '>')}",
            )
        ]
    return [passed(BUCKET_ROW, f"bucket {bucket} in {found or region}")]


def run(settings: Settings, ec2: Any, s3: Any, sleep: Sleep) -> list[Check]:
    return [*existing_network(settings, ec2, sleep), *existing_bucket(settings, s3, sleep)]
