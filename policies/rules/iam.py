"""IAM rules: roles read images only where the stack's images live.

The managed ECR policies grant their reads on every repository of the account (and, cross-account,
every repository that trusts it); a node role that holds one lets any host-network pod pull any
image of the account. The stack scopes its node roles to its own repositories and the region's
EKS add-on registry (components/aws/image_registry.py); `ecr:GetAuthorizationToken` has no resource
and is allowed on `*`.
"""

from __future__ import annotations

import json
from typing import Any

from .common import Props

ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
POLICY_TYPES = ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy")
# AWS managed policies whose ECR reads are on `*`.
BROAD_ECR_POLICIES = (
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonEC2ContainerRegistryPowerUser",
    "AmazonEC2ContainerRegistryFullAccess",
)
UNSCOPED_ECR_ACTIONS = frozenset({"ecr:GetAuthorizationToken"})


def _list(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else list(value or [])


def _reads_ecr(action: str) -> bool:
    return action in ("*", "ecr:*") or (action.startswith("ecr:") and action not in UNSCOPED_ECR_ACTIONS)


def no_ecr_read_on_every_repository(resource_type: str, props: Props) -> list[str]:
    """No AmazonEC2ContainerRegistry* managed policy, and no ECR read allowed on Resource `*`."""
    if resource_type == ATTACHMENT:
        arn = str(props.get("policyArn") or "")
        name = arn.rsplit("/", 1)[-1]
        if name in BROAD_ECR_POLICIES:
            return [f"attaches {name}, which reads every ECR repository; scope the pulls to the stack's repositories"]
        return []
    if resource_type not in POLICY_TYPES or not isinstance(props.get("policy"), str):
        return []  # a policy known only after `up` is checked on the next preview
    doc = json.loads(props["policy"])
    out = []
    for st in _list(doc.get("Statement")):
        if st.get("Effect") != "Allow" or "*" not in _list(st.get("Resource")):
            continue
        broad = sorted(a for a in _list(st.get("Action")) if _reads_ecr(str(a)))
        if broad:
            out.append(f"allows {', '.join(broad)} on Resource *: name the repositories (arn:...:repository/<name>)")
    return out
