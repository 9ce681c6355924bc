"""What the VPC may reach in S3, and which security groups the load balancer controller may change.

The S3 gateway endpoint's policy is read back from the rendered endpoint and listed: exactly the
image registries' layer buckets (read) and the stack's own buckets. The controller's policy is
the published one with every security-group-changing statement held to the stack's VPC.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_policies import STACKS, rendered

from components.aws import s3_endpoint
from components.kubernetes import load_balancer_controller as lbc
from components.weights import mirror as weight_mirror

VPC_ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
IAM_POLICY = "aws:iam/policy:Policy"
VPC = "aws:ec2/vpc:Vpc"
ACCOUNT, REGION = "123456789012", "us-east-2"
IAM_MANAGED_POLICY_MAX = 6144  # characters, whitespace excluded (IAM quotas)


def endpoint_policy(stack: str) -> dict[str, Any]:
    (ep,) = [e for e in rendered(stack).of_type(VPC_ENDPOINT) if e.inputs["serviceName"].endswith(".s3")]
    assert ep.inputs["vpcEndpointType"] == "Gateway"
    return json.loads(ep.inputs["policy"])


def admitted_buckets(document: dict[str, Any]) -> dict[str, set[str]]:
    """{bucket: actions} as the policy's Allow statements name them."""
    found: dict[str, set[str]] = {}
    for st in document["Statement"]:
        assert st["Effect"] == "Allow" and st["Principal"] == "*"
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        for resource in st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]:
            assert resource != "*", "the endpoint admits every bucket"
            bucket = resource.split(":::", 1)[1].split("/", 1)[0]
            found.setdefault(bucket, set()).update(actions)
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_the_s3_endpoint_admits_only_the_registries_and_the_stacks_buckets(stack: str) -> None:
    expected = {
        f"prod-{REGION}-starport-layer-bucket": {"s3:GetObject"},  # ECR image layers
        f"prod-registry-k8s-io-{REGION}": {"s3:GetObject"},  # registry.k8s.io's copy in the region
    }
    mirrors = [
        b.inputs["bucket"] for b in rendered(stack).of_type("aws:s3/bucket:Bucket") if "-weights-" in b.inputs["bucket"]
    ]
    if mirrors:  # weights.source s3 (the prod stacks): the mirror, read by the stager, written by its Job
        assert mirrors == [weight_mirror.bucket_name(f"minimax-vllm-{stack}", ACCOUNT, REGION)]
        expected[mirrors[0]] = {"s3:*"}
    assert admitted_buckets(endpoint_policy(stack)) == expected


@pytest.mark.parametrize("stack", ["dev", "prod-8gpu"])
def test_a_bucket_of_anyone_else_is_refused(stack: str) -> None:
    doc = endpoint_policy(stack)
    assert not s3_endpoint.admitted(doc, "attacker-exfil-bucket", "s3:PutObject")
    assert not s3_endpoint.admitted(doc, f"prod-{REGION}-starport-layer-bucket", "s3:PutObject")
    assert s3_endpoint.admitted(doc, f"prod-{REGION}-starport-layer-bucket", "s3:GetObject")


def test_an_existing_shared_mirror_is_admitted_by_name() -> None:
    from ops.offline.engine import render

    r = render("prod-8gpu", overrides={"weights": {"source": "s3", "existingBucket": "team-weights"}})
    (ep,) = [e for e in r.of_type(VPC_ENDPOINT) if e.inputs["serviceName"].endswith(".s3")]
    assert "team-weights" in admitted_buckets(json.loads(ep.inputs["policy"]))


# --- the load balancer controller's security-group statements ------------------------------------


def controller_policy(stack: str) -> dict[str, Any]:
    (p,) = [p for p in rendered(stack).of_type(IAM_POLICY) if p.name.endswith("-lbc-policy")]
    return json.loads(p.inputs["policy"])


def _actions(st: dict[str, Any]) -> set[str]:
    return set(st["Action"] if isinstance(st["Action"], list) else [st["Action"]])


@pytest.mark.parametrize("stack", STACKS)
def test_every_security_group_change_is_held_to_the_stacks_vpc(stack: str) -> None:
    (vpc,) = rendered(stack).of_type(VPC)
    vpc_arn = f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc/{vpc.id}"
    changing = [st for st in controller_policy(stack)["Statement"] if _actions(st) & lbc.SECURITY_GROUP_ACTIONS]
    assert changing
    for st in changing:
        if st["Resource"] == vpc_arn:  # CreateSecurityGroup's `vpc` resource: this VPC only
            assert _actions(st) == {"ec2:CreateSecurityGroup"}
            continue
        assert st["Resource"].endswith(":security-group/*"), st
        assert st["Condition"]["ArnEquals"]["ec2:Vpc"] == vpc_arn, st


def test_the_rest_of_the_published_policy_is_unchanged() -> None:
    published = [st for st in lbc.published_policy()["Statement"] if not _actions(st) & lbc.SECURITY_GROUP_ACTIONS]
    scoped = [st for st in controller_policy("dev")["Statement"] if not _actions(st) & lbc.SECURITY_GROUP_ACTIONS]
    assert scoped == published
    # and every published security-group action is still granted (within the VPC)
    granted = set().union(*(_actions(st) for st in controller_policy("dev")["Statement"]))
    assert lbc.SECURITY_GROUP_ACTIONS <= granted


def test_the_scoped_policy_fits_a_managed_policy() -> None:
    document = lbc.iam_policy_document("aws", REGION, ACCOUNT, "vpc-0123456789abcdef0")
    assert len("".join(document.split())) <= IAM_MANAGED_POLICY_MAX
