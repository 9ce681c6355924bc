"""Who may use the cluster's Kubernetes API, and how far: `cluster.accessEntries`.

Each entry names an IAM role or user, one EKS access policy and its scope: the whole cluster, or
a list of namespaces. The deployer (the principal `pulumi up` runs as) always holds
AmazonEKSClusterAdminPolicy on the cluster: it installs the charts and the cluster-wide objects.
Nobody else gets anything unless listed here. The policies are EKS's own
(EKS user guide, "Review access policy permissions"): AmazonEKSClusterAdminPolicy is
cluster-admin; AmazonEKSAdminPolicy is admin, without the right to change who has access at the
cluster level; AmazonEKSEditPolicy edits most namespaced objects; AmazonEKSViewPolicy reads them,
Secrets excluded.

    cluster:
      accessEntries:
        - principalArn: arn:aws:iam::123456789012:role/platform-oncall
          policy: AmazonEKSClusterAdminPolicy
        - principalArn: arn:aws:iam::123456789012:role/ml-engineers
          policy: AmazonEKSViewPolicy
          namespaces: [minimax-vllm, monitoring]
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from components.settings.schema import SECTION, Str, StrList, closed, each, matches, rule

CLUSTER_ADMIN = "AmazonEKSClusterAdminPolicy"
ACCESS_POLICIES = (CLUSTER_ADMIN, "AmazonEKSAdminPolicy", "AmazonEKSEditPolicy", "AmazonEKSViewPolicy")
PRINCIPAL = r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{12}:.+$"  # arn_rules checks it names an IAM role or user
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$").fullmatch
EXAMPLE_ARN = "arn:aws:iam::123456789012:role/Admin"
LEGACY_KEY = "cluster.adminPrincipalArns"


@dataclass(frozen=True, config=SECTION)
class AccessEntry:
    principal_arn: Annotated[Str, matches(PRINCIPAL)] = Field(
        description="must be an IAM role or user ARN",
        json_schema_extra={"example": EXAMPLE_ARN, "required": "the IAM role or user the entry gives access to"},
    )
    # Empty: the whole cluster.
    namespaces: Annotated[StrList, each(_NAMESPACE)] = rule(
        (), "must be a list of namespace names (lowercase letters, digits and '-')", ["minimax-vllm"]
    )
    policy: Str = Field(
        description=closed("an EKS access policy", ACCESS_POLICIES),
        json_schema_extra={"example": "AmazonEKSViewPolicy", "required": "the entry's EKS access policy"},
    )

    @field_validator("policy")
    @classmethod
    def _known_and_scoped(cls, value: str, info: ValidationInfo) -> str:
        if value not in ACCESS_POLICIES:
            raise PydanticCustomError(
                "rule", closed("an EKS access policy", ACCESS_POLICIES), {"example": "AmazonEKSViewPolicy"}
            )
        if value == CLUSTER_ADMIN and info.data.get("namespaces"):
            raise PydanticCustomError(
                "rule",
                "is cluster-wide whatever the scope; with namespaces, choose AmazonEKSAdminPolicy, AmazonEKSEditPolicy"
                " or AmazonEKSViewPolicy",
                {"example": "AmazonEKSAdminPolicy"},
            )
        return value

    @property
    def scope(self) -> str:
        return "namespace" if self.namespaces else "cluster"


def unique_principals(entries: tuple[AccessEntry, ...]) -> tuple[AccessEntry, ...]:
    """One entry per principal: EKS holds one access entry per principal."""
    seen: dict[str, int] = {}
    for i, e in enumerate(entries):
        if e.principal_arn in seen:
            raise PydanticCustomError(
                "rule",
                f"names {e.principal_arn} twice (entries {seen[e.principal_arn]} and {i}): give each principal one entry",
                {"fix": f"pulumi config rm --path 'cluster.accessEntries[{i}]'"},
            )
        seen[e.principal_arn] = i
    return entries


def refuse_legacy_admins(value: object) -> tuple[str, ...]:
    """`cluster.adminPrincipalArns` made every listed principal cluster-admin; accessEntries says so per principal."""
    if value in (None, (), []):
        return ()
    first = value[0] if isinstance(value, (list, tuple)) and value else "<arn>"
    raise PydanticCustomError(
        "rule",
        "was replaced by cluster.accessEntries, which names each principal's access policy and scope;"
        " AmazonEKSClusterAdminPolicy keeps the access it gave",
        {
            "fix": f"pulumi config rm --path '{LEGACY_KEY}' && pulumi config set --path"
            f" 'cluster.accessEntries[0].principalArn' {first} && pulumi config set --path"
            f" 'cluster.accessEntries[0].policy' {CLUSTER_ADMIN} (one entry per ARN)"
        },
    )
