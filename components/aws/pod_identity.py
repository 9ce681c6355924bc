"""An IAM role for one Kubernetes service account, through EKS Pod Identity.

Every component that calls AWS from a pod (the load balancer controller, the autoscalers, the
monitoring stack in AMP mode, the weight mirror) gets its permissions this way and never from
the node role: the role trusts only that service account of this cluster
(`iam_trust.pod_identity_role`), and the association waits for the role's grant, so a pod
that starts after it finds working credentials.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws import iam_trust


@dataclass(frozen=True)
class WorkloadIdentity:
    role: aws.iam.Role
    association: aws.eks.PodIdentityAssociation  # created after the grant: depend on this alone


def workload_identity(
    name: str,
    parent: pulumi.Resource,
    *,
    cluster_name: pulumi.Input[str],
    cluster_arn: pulumi.Input[str],
    namespace: str,
    service_account: str,
    tags: dict[str, str],
    policy_arn: pulumi.Input[str] | None = None,
    policy_document: pulumi.Input[str] | None = None,
    depends_on: Sequence[pulumi.Resource] = (),
) -> WorkloadIdentity:
    """`<name>-role`, its `<name>-policy` (a managed policy's ARN, or an inline document) and the
    `<name>-identity` association for `namespace/service_account`."""
    if (policy_arn is None) == (policy_document is None):
        raise ValueError("give exactly one of policy_arn and policy_document")
    child = pulumi.ResourceOptions(parent=parent)
    trust = pulumi.Output.from_input(cluster_arn).apply(
        lambda arn: iam_trust.pod_identity_role(arn, namespace, service_account)
    )
    role = aws.iam.Role(f"{name}-role", assume_role_policy=trust, tags=tags, opts=child)
    grant: pulumi.Resource
    if policy_arn is not None:
        grant = aws.iam.RolePolicyAttachment(f"{name}-policy", role=role.name, policy_arn=policy_arn, opts=child)
    else:
        grant = aws.iam.RolePolicy(f"{name}-policy", role=role.name, policy=policy_document, opts=child)
    association = aws.eks.PodIdentityAssociation(
        f"{name}-identity",
        cluster_name=cluster_name,
        namespace=namespace,
        service_account=service_account,
        role_arn=role.arn,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[grant, *depends_on]),
    )
    return WorkloadIdentity(role, association)
