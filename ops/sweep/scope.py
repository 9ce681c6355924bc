"""Whose is this resource? Sweep touches it only when every ownership tag on it agrees.

One tag naming this cluster is not enough: a resource may carry this stack's project tags
and another cluster's controller tag, or be marked `shared`. The verdicts:

- `ours`: at least one tag proves it is this cluster's or this stack's, and no ownership tag
  names anything else;
- `shared`: some `kubernetes.io/cluster/<name>` tag says `shared` (a cluster uses it, another
  owner made it): always left alone;
- `conflict`: tags prove it is ours and also name another cluster, stack or project: reported,
  never deleted;
- `foreign`: nothing proves it is ours: not touched and not reported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from components.settings.stack import PROJECT
from ops.report import UsageError

K8S_CLUSTER = "kubernetes.io/cluster/"  # `owned` or `shared`: EKS, the in-tree cloud provider
# Tags whose value is the name of the cluster that made the resource.
CLUSTER_NAME_TAGS = (
    "elbv2.k8s.aws/cluster",  # AWS Load Balancer Controller: load balancers, target groups, security groups
    "cluster.k8s.amazonaws.com/name",  # VPC CNI: pod ENIs
    "aws:eks:cluster-name",  # EKS: the cluster security group
    "eks:cluster-name",  # EKS managed node groups
    "eks:eks-cluster-name",  # EKS-launched instances and their volumes
)
CONTROLLER_CLUSTER = "elbv2.k8s.aws/cluster"
# The controller's per-object tags name a Service or Ingress (group) of the cluster its
# `elbv2.k8s.aws/cluster` tag names; without that tag they prove nothing.
CONTROLLER_STACK_TAGS = ("service.k8s.aws/stack", "ingress.k8s.aws/stack")

_STACK_NAME = re.compile(r"^[A-Za-z0-9-]{1,87}$")  # len("minimax-vllm-") + 87 = 100, EKS's limit

Kind = Literal["ours", "shared", "conflict", "foreign"]


@dataclass(frozen=True)
class Ownership:
    kind: Kind
    reason: str  # the tags behind the verdict, for the report row


@dataclass(frozen=True)
class Scope:
    """This cluster and stack; `judge` is the only place ownership is decided."""

    cluster: str
    stack: str

    def judge(
        self, tags: Mapping[str, str], *, need_project_tags: bool = False, own_shared_ok: bool = False
    ) -> Ownership:
        """need_project_tags: only `project`/`stack` prove it (the network this stack created).
        own_shared_ok: `kubernetes.io/cluster/<this cluster>=shared` is what this stack's network
        puts on its own subnets (so controllers use them but never delete them)."""
        proofs: list[str] = []
        conflicts: list[str] = []
        shared: list[str] = []
        for key, value in sorted(tags.items()):
            if key.startswith(K8S_CLUSTER):
                name = key[len(K8S_CLUSTER) :]
                if value == "shared":
                    if not (own_shared_ok and name == self.cluster):
                        shared.append(f"{key}=shared")
                elif value == "owned" and name == self.cluster:
                    proofs.append(f"{key}=owned")
                else:
                    conflicts.append(f"{key}={value}")
            elif key in CLUSTER_NAME_TAGS:
                (proofs if value == self.cluster else conflicts).append(f"{key}={value}")
        project, stack = tags.get("project"), tags.get("stack")
        if project == PROJECT and stack == self.stack:
            proofs.append(f"project={project}, stack={stack}")
        elif project is not None and project != PROJECT:
            conflicts.append(f"project={project}")
        elif stack is not None and stack != self.stack:
            conflicts.append(f"stack={stack}")
        elif project == PROJECT:
            conflicts.append("project tag without this stack's stack tag")
        if CONTROLLER_CLUSTER not in tags:
            conflicts += [f"{k} without {CONTROLLER_CLUSTER}" for k in CONTROLLER_STACK_TAGS if k in tags]
        if need_project_tags and not any(p.startswith("project=") for p in proofs):
            return Ownership("foreign", "no project/stack tags of this stack")
        if shared:
            return Ownership("shared", ", ".join(shared))
        if not proofs:
            return Ownership("foreign", "no tag of this cluster or stack")
        if conflicts:
            return Ownership("conflict", f"{', '.join(proofs)} but {', '.join(conflicts)}")
        return Ownership("ours", ", ".join(proofs))

    def owns(self, tags: Mapping[str, str]) -> bool:
        return self.judge(tags).kind == "ours"

    def mentions(self, tags: Mapping[str, str]) -> bool:
        """Carries any tag naming this cluster or stack: worth a row when left alone."""
        return (
            f"{K8S_CLUSTER}{self.cluster}" in tags
            or any(tags.get(k) == self.cluster for k in CLUSTER_NAME_TAGS)
            or (tags.get("project") == PROJECT and tags.get("stack") == self.stack)
        )


def check_stack_name(stack: str, cluster: str) -> None:
    """Refuse a stack whose cluster name does not map back to it one-to-one.

    `prod_8gpu` and `prod.8gpu` both become cluster `minimax-vllm-prod-8gpu`; sweeping either
    would match the other stack's resources by their cluster tags.
    """
    if not _STACK_NAME.fullmatch(stack) or cluster != f"{PROJECT}-{stack}":
        raise UsageError(
            f"sweep refuses stack '{stack}': its cluster name '{cluster}' is not '{PROJECT}-{stack}', so its "
            "cluster tags could name another stack's resources; stack names for sweep must be 1-87 letters, "
            "digits and hyphens"
        )
