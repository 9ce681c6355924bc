"""The S3 gateway endpoint's policy: which buckets the VPC may reach through it (pure: no Pulumi).

A gateway endpoint routes every request to S3 in the stack's region that leaves the private
subnets; without a policy it admits any bucket of any account, so a pod (or the model's own
code) could copy what it reads to a bucket of its choosing. With this policy the endpoint admits
only the buckets below; S3 in other regions does not use the endpoint (it goes out through NAT).

Who needs S3 in the region, and why (each with its source):
- the stack's own buckets (`weights.source: s3`: the weight mirror, read by the stager and
  written by the mirror Job), every action: the roles' IAM policies narrow them further;
- Amazon ECR image layers, for the account's private registry (the router image) and the EKS
  add-on images (602401143452.dkr.ecr.<region>.amazonaws.com): ECR serves layers from
  `prod-<region>-starport-layer-bucket` (Amazon ECR User Guide, "Amazon ECR interface VPC
  endpoints (AWS PrivateLink)", section "Minimum Amazon S3 bucket permissions for Amazon ECR");
- registry.k8s.io, which redirects clients inside AWS to a copy of its blobs in S3 in their
  region, `prod-registry-k8s-io-<region>` (kubernetes/registry.k8s.io, the registry's own
  infrastructure repository: its S3 sync scripts and CloudFront origins), for the Cluster
  Autoscaler and kube-state-metrics images.
Not listed, on purpose: the AL2023 package repositories (`al2023-repos-<region>-*`): the nodes
run the EKS AL2023 AMIs as built and install nothing at boot (components/aws/launch_template.py
has no package step), and the containers are not AL2023. The other registries the charts pull
from (Docker Hub, nvcr.io, ghcr.io, quay.io, public.ecr.aws) serve their blobs from CDNs, not
from S3 in the stack's region.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

ECR_LAYER_BUCKET = "prod-{region}-starport-layer-bucket"
REGISTRY_K8S_IO_BUCKET = "prod-registry-k8s-io-{region}"


def registry_buckets(region: str) -> tuple[str, ...]:
    """Buckets of AWS and of registry.k8s.io that serve image layers in the region (read only)."""
    return (ECR_LAYER_BUCKET.format(region=region), REGISTRY_K8S_IO_BUCKET.format(region=region))


def policy_document(region: str, partition: str, stack_buckets: Sequence[str]) -> dict:
    """Registry buckets: GetObject only. The stack's buckets: any action (IAM decides who)."""
    statements = [
        {
            "Sid": "ImageLayers",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": [f"arn:{partition}:s3:::{b}/*" for b in registry_buckets(region)],
        }
    ]
    if stack_buckets:
        owned = sorted(set(stack_buckets))
        statements.append(
            {
                "Sid": "StackBuckets",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [r for b in owned for r in (f"arn:{partition}:s3:::{b}", f"arn:{partition}:s3:::{b}/*")],
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def policy_json(region: str, partition: str, stack_buckets: Sequence[str]) -> str:
    return json.dumps(policy_document(region, partition, stack_buckets), sort_keys=True)


def admitted(document: dict, bucket: str, action: str) -> bool:
    """Whether the policy lets `action` on an object of `bucket` through (an Allow names both;
    no Deny statements are used). For the tests and the policy pack's reading of it."""
    for st in document.get("Statement", []):
        if st.get("Effect") != "Allow":
            continue
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if not any(a in ("s3:*", action) for a in actions):
            continue
        if any(r == "*" or r.split(":::", 1)[-1] in (f"{bucket}/*", bucket) for r in resources):
            return True
    return False
