"""EKS access entries: the deployer's cluster-admin, and each principal of `cluster.accessEntries`
with its own access policy and scope (components/settings/access.py). Nobody else is let in."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

CLUSTER_ADMIN_POLICY = "AmazonEKSClusterAdminPolicy"
# (principal ARN, access policy name, namespaces; empty: the whole cluster)
Grants = tuple[tuple[str, str, tuple[str, ...]], ...]


def associations(deployer_arn: str, granted: Grants) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """principal -> [(access policy, namespaces)]: the deployer's cluster-admin first, then the
    settings' entries (the deployer listed there too gets that association as well)."""
    found: dict[str, list[tuple[str, tuple[str, ...]]]] = {deployer_arn: [(CLUSTER_ADMIN_POLICY, ())]}
    for arn, policy, namespaces in granted:
        found.setdefault(arn, [])
        if (policy, tuple(namespaces)) not in found[arn]:
            found[arn].append((policy, tuple(namespaces)))
    return found


def entries(
    name: str,
    parent: pulumi.Resource,
    cluster_name: pulumi.Input[str],
    deployer_arn: str,
    granted: Grants,
    partition: str,
    tags: Mapping[str, str],
) -> list[aws.eks.AccessPolicyAssociation]:
    """One access entry per principal, one policy association per (policy, scope) it is given."""
    made = []
    for arn, grants in associations(deployer_arn, granted).items():
        label = "deployer" if arn == deployer_arn else f"admin-{hashlib.sha256(arn.encode()).hexdigest()[:8]}"
        entry = aws.eks.AccessEntry(
            f"{name}-{label}",
            cluster_name=cluster_name,
            principal_arn=arn,
            type="STANDARD",
            tags=dict(tags),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for policy, namespaces in grants:
            # The deployer's and earlier admins' association keep their resource names.
            suffix = (
                "admin"
                if policy == CLUSTER_ADMIN_POLICY
                else policy.removeprefix("AmazonEKS").removesuffix("Policy").lower()
            )
            if namespaces:
                suffix += "-" + hashlib.sha256(",".join(namespaces).encode()).hexdigest()[:8]
            scope = aws.eks.AccessPolicyAssociationAccessScopeArgs(
                type="namespace" if namespaces else "cluster", namespaces=list(namespaces) if namespaces else None
            )
            made.append(
                aws.eks.AccessPolicyAssociation(
                    f"{name}-{label}-{suffix}",
                    cluster_name=cluster_name,
                    principal_arn=arn,
                    policy_arn=f"arn:{partition}:eks::aws:cluster-access-policy/{policy}",
                    access_scope=scope,
                    opts=pulumi.ResourceOptions(parent=parent, depends_on=[entry]),
                )
            )
    return made
