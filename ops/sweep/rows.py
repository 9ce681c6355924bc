"""How a sweep names and reports what it finds: a resource's tags, its label in a row, the verdict
row of its ownership, and the rows and fixes for what blocks a delete (deletion protection, an ENI
in use, security-group rules that reference a group)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ops.report import Check, failed, info
from ops.sweep.scope import Ownership


def tags_of(items: Iterable[dict[str, Any]] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in items or []}


def verdict_row(name: str, own: Ownership) -> Check:
    """The row for something left alone: `shared` is expected, a conflict needs a person."""
    if own.kind == "shared":
        return info(name, f"left alone: shared ({own.reason})")
    return failed(
        name,
        f"left alone: conflicting ownership tags ({own.reason})",
        "its tags name this stack and something else: find out whose it is; delete it by hand only if it is this stack's",
    )


def protection_fix(arn: str) -> str:
    return (
        f"aws elbv2 modify-load-balancer-attributes --load-balancer-arn {arn} "
        "--attributes Key=deletion_protection.enabled,Value=false, then run sweep again"
    )


def elb_eni_description(lb: dict[str, Any]) -> str:
    """`arn:...:loadbalancer/net/name/id` -> `ELB net/name/id`, the description of that NLB's ENIs."""
    return "ELB " + lb["LoadBalancerArn"].split(":loadbalancer/", 1)[-1]


def eni_label(eni: dict[str, Any]) -> str:
    what = eni.get("Description") or (eni.get("Attachment") or {}).get("InstanceId") or eni.get("Status", "")
    return f"{eni['NetworkInterfaceId']} ({what})" if what else eni["NetworkInterfaceId"]


def eni_in_use_row(name: str, eni: dict[str, Any]) -> Check:
    attachment = eni.get("Attachment") or {}
    if eni.get("RequesterManaged"):
        owner = eni.get("Description") or eni.get("InterfaceType") or "an AWS service"
        return failed(
            name,
            f"left alone: managed by AWS for {owner}",
            "AWS deletes it with its owner: delete that owner first, then run sweep again",
        )
    owner = attachment.get("InstanceId") or attachment.get("InstanceOwnerId") or "an attachment"
    return failed(
        name,
        f"left alone: {eni.get('Status')}, attached to {owner}",
        f"terminate {owner} or detach the interface, then run sweep again",
    )


def group_label(sg: dict[str, Any]) -> str:
    return f"security group {sg['GroupId']} ({sg.get('GroupName', '')})"


def rules_referencing(permissions: list[dict[str, Any]], groups: set[str]) -> list[dict[str, Any]]:
    """The parts of rules whose source/destination is one of `groups`, shaped for Revoke*."""
    rules = []
    for perm in permissions:
        pairs = [{"GroupId": p["GroupId"]} for p in perm.get("UserIdGroupPairs", []) if p.get("GroupId") in groups]
        if pairs:
            rule = {k: perm[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in perm}
            rules.append({**rule, "UserIdGroupPairs": pairs})
    return rules
