"""The stack's images in its own region: ECR repositories it owns, and what the node roles may pull.

Why a mirror the stack owns, not an ECR pull-through cache rule: a Docker Hub upstream needs a
Docker Hub access token kept in Secrets Manager (`ecr-pullthroughcache/` secret), and a cache
miss during a scale-up still goes to Docker Hub, rate limit included. Copying the pinned digest
once (`python -m ops image copy`) takes Docker Hub out of every node start; preflight checks that
the digest is there (ops/aws_checks/images.py).

Repositories: `minimax-vllm/<cluster>/<image>`, one set per stack (repository names are unique per
account and region, and two stacks may share both). Tags are immutable, every push is scanned,
the images are encrypted with ECR's KMS key. `force_delete`: destroy removes the repositories with
their images. That is right for a mirror: it holds copies of public or rebuildable images, pinned
by digest, which the copy step puts back in minutes (the weight mirror is different: it holds an
hour of copying and can be kept, weights.retainOnDestroy).

The node roles read only these repositories and the EKS add-on registry of the region
(components/facts/data/eks-addon-registries.json, from the EKS user guide), never ECR on `*`;
`ecr:GetAuthorizationToken` has no resource to scope, so it stays on `*`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from components.facts import DATA

PREFIX = "minimax-vllm"
VLLM = "vllm-openai"  # a copy of the pinned vllm/vllm-openai image (versions.VLLM_IMAGE)
STAGER = "stage-weights"  # built from images/stage-weights/
ROUTER = "vllm-router"  # built from the router's pinned wheel
IMAGES = (ROUTER, STAGER, VLLM)
TAG_MUTABILITY = "IMMUTABLE"
ENCRYPTION = "KMS"  # ECR's AWS managed key (aws/ecr); every use of it is in CloudTrail
REGISTRIES_FILE = DATA / "eks-addon-registries.json"
# What pulling an image takes (the managed AmazonEC2ContainerRegistryReadOnly also lists and
# describes every repository of the account: nodes never need that).
PULL_ACTIONS = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")


@dataclass(frozen=True)
class Registry:
    """The account's ECR registry in the stack's region, and the stack's repositories in it."""

    host: str  # <account>.dkr.ecr.<region>.amazonaws.com
    cluster_name: str

    def repository(self, image: str) -> str:
        return f"{PREFIX}/{self.cluster_name}/{image}"

    def url(self, image: str) -> str:
        return f"{self.host}/{self.repository(image)}"


def registry_host(account_id: str, region: str) -> str:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account_id}.dkr.ecr.{region}.{suffix}"


@cache
def _registries() -> dict[str, str]:
    return json.loads(REGISTRIES_FILE.read_text())["registries"]


def eks_addon_account(region: str) -> str:
    """The account whose ECR serves the EKS add-on images in this region."""
    try:
        return _registries()[region]
    except KeyError:
        raise ValueError(
            f"no EKS add-on registry recorded for region {region!r} in {REGISTRIES_FILE.name}: add it from "
            "https://docs.aws.amazon.com/eks/latest/userguide/add-ons-images.html"
        ) from None


def node_pull_policy(partition: str, region: str, account_id: str, cluster_name: str) -> str:
    """The node roles' ECR access: pull from the stack's repositories and the EKS add-on registry."""
    own = f"arn:{partition}:ecr:{region}:{account_id}:repository/{Registry('', cluster_name).repository('*')}"
    addons = f"arn:{partition}:ecr:{region}:{eks_addon_account(region)}:repository/*"
    statements = [
        {"Sid": "RegistryLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {"Sid": "StackImages", "Effect": "Allow", "Action": list(PULL_ACTIONS), "Resource": own},
        {"Sid": "EksAddonImages", "Effect": "Allow", "Action": list(PULL_ACTIONS), "Resource": addons},
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)
