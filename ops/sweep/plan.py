"""What a sweep finds and deletes: the planner of this stack's leftover load balancers,
target groups, security groups and ENIs (`ops.sweep.run` gates and runs it; `ops.sweep.network`
adds the network)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from ops.awsclients import Sleep, call, error_code
from ops.report import Check, failed, info, passed
from ops.sweep.errors import AWS_ERRORS, IN_USE_CODES, NOT_FOUND_CODES, explain, iam_action
from ops.sweep.rows import (
    elb_eni_description,
    eni_in_use_row,
    eni_label,
    group_label,
    protection_fix,
    rules_referencing,
    tags_of,
    verdict_row,
)
from ops.sweep.scope import Scope

LIVE_CLUSTER_OVERRIDE = "--i-know-the-cluster-may-be-live"
ELB = "elasticloadbalancing"


@dataclass
class Step:
    """One row of the plan: `act` deletes (apply only); `row` is a finding shown in both modes."""

    name: str
    plan: str = "would delete"
    act: Callable[[], Check] | None = None
    row: Check | None = None


@dataclass
class Sweeper:
    """Discovery, planning and deletion; sleep is injectable so tests run retries instantly."""

    scope: Scope
    ec2: Any
    elbv2: Any
    sleep: Sleep = time.sleep
    attempts: int = 6
    base_delay: float = 5.0
    rows: list[Check] = field(default_factory=list)  # discovery failures, shown first

    # --- calls ----------------------------------------------------------------------

    def client(self, service: str) -> Any:
        return self.ec2 if service == "ec2" else self.elbv2

    def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        return call(fn, sleep=self.sleep, **kwargs)

    def pages(self, service: str, method: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paged Describe call (EC2 pages with NextToken, ELBv2 with Marker)."""
        token, reply = ("Marker", "NextMarker") if service == ELB else ("NextToken", "NextToken")
        fn = getattr(self.client(service), method)
        while True:
            page = self._call(fn, **kwargs)
            yield from page.get(key, [])
            if not page.get(reply):
                return
            kwargs[token] = page[reply]

    def listing(self, what: str, service: str, method: str, key: str, **kwargs: Any) -> list[dict[str, Any]] | None:
        """A whole listing, or None after recording a failed row (the rest of the sweep goes on)."""
        try:
            return list(self.pages(service, method, key, **kwargs))
        except AWS_ERRORS as err:
            self.rows.append(failed(f"list {what}", *explain(err, iam_action(service, method))))
            return None

    def delete(
        self,
        name: str,
        service: str,
        method: str,
        *,
        in_use_by: Callable[[], str] | None = None,
        protected_fix: str = "",
        **kwargs: Any,
    ) -> Check:
        """One delete; in-use errors are retried with bounded backoff (dependents take minutes to go)."""
        fn = getattr(self.client(service), method)
        action = iam_action(service, method)
        for attempt in range(1, self.attempts + 1):
            try:
                self._call(fn, **kwargs)
                return passed(name, "deleted")
            except ClientError as err:
                code = error_code(err)
                if code in NOT_FOUND_CODES:
                    return passed(name, "already gone")
                if code in IN_USE_CODES and attempt < self.attempts:
                    self.sleep(self.backoff(attempt))
                    continue
                users = in_use_by() if in_use_by and code in IN_USE_CODES else ""
                detail, fix = explain(err, action, in_use_by=users, protected_fix=protected_fix)
                tail = f" after {attempt} attempts" if code in IN_USE_CODES else ""
                return failed(name, detail + tail, fix)
            except AWS_ERRORS as err:
                return failed(name, *explain(err, action))
        raise AssertionError("unreachable")

    def backoff(self, attempt: int) -> float:
        return min(self.base_delay * 2 ** (attempt - 1), 60.0)

    def enis_using(self, filter_name: str, value: str) -> str:
        """What still holds a group or subnet, for a DependencyViolation's fix."""
        filters = [{"Name": filter_name, "Values": [value]}]
        try:
            enis = list(self.pages("ec2", "describe_network_interfaces", "NetworkInterfaces", Filters=filters))
        except AWS_ERRORS:
            enis = None
        if enis:
            return ", ".join(sorted(eni_label(e) for e in enis))
        return f"whatever `aws ec2 describe-network-interfaces --filters Name={filter_name},Values={value}` lists"

    # --- planning ---------------------------------------------------------------------

    def plan(self) -> Plan:
        lbs = self.listing("load balancers", ELB, "describe_load_balancers", "LoadBalancers")
        tgs = self.listing("target groups", ELB, "describe_target_groups", "TargetGroups")
        groups = self.listing("security groups", "ec2", "describe_security_groups", "SecurityGroups")
        enis = self.listing("network interfaces", "ec2", "describe_network_interfaces", "NetworkInterfaces")
        plan = Plan(all_lbs=lbs or [], all_groups=groups or [], all_enis=enis or [])
        self._plan_load_balancers(plan, lbs or [])
        self._plan_target_groups(plan, tgs or [])
        self._plan_enis(plan, enis or [])
        self._plan_groups(plan, groups or [])
        return plan

    def _elb_tags(self, arns: list[str], what: str) -> dict[str, dict[str, str]] | None:
        tags: dict[str, dict[str, str]] = {}
        try:
            for i in range(0, len(arns), 20):  # DescribeTags takes at most 20 ARNs
                reply = self._call(self.elbv2.describe_tags, ResourceArns=arns[i : i + 20])
                for d in reply["TagDescriptions"]:
                    tags[d["ResourceArn"]] = tags_of(d.get("Tags"))
        except AWS_ERRORS as err:
            self.rows.append(failed(f"tags of {what}", *explain(err, iam_action(ELB, "describe_tags"))))
            return None
        return tags

    def _plan_load_balancers(self, plan: Plan, lbs: list[dict[str, Any]]) -> None:
        tags = self._elb_tags([lb["LoadBalancerArn"] for lb in lbs], "load balancers") or {}
        for lb in lbs:
            arn, name = lb["LoadBalancerArn"], f"load balancer {lb['LoadBalancerName']}"
            lb_tags = tags.get(arn, {})
            own = self.scope.judge(lb_tags)
            if own.kind != "ours":
                if own.kind == "conflict" or self.scope.mentions(lb_tags):
                    plan.steps.append(Step(name, row=verdict_row(name, own)))
                continue
            kept = self._protection(name, arn)
            if kept:
                plan.steps.append(Step(name, row=kept))
                continue
            plan.deleted_lbs[arn] = lb
            plan.steps.append(
                Step(
                    name,
                    "would delete (with its listeners)",
                    act=lambda n=name, a=arn: self.delete(
                        n, ELB, "delete_load_balancer", protected_fix=protection_fix(a), LoadBalancerArn=a
                    ),
                )
            )
        if plan.deleted_lbs:
            plan.steps.append(
                Step(
                    "load balancer ENIs",
                    "would wait until AWS releases the deleted load balancers' ENIs",
                    act=lambda: self.wait_for_released_enis(plan),
                )
            )

    def _protection(self, name: str, arn: str) -> Check | None:
        """A row when the load balancer must be kept: deletion protection on, or not checkable."""
        try:
            reply = self._call(self.elbv2.describe_load_balancer_attributes, LoadBalancerArn=arn)
        except AWS_ERRORS as err:
            detail, fix = explain(err, iam_action(ELB, "describe_load_balancer_attributes"))
            return failed(name, f"left alone with everything it uses: deletion protection not checkable: {detail}", fix)
        attrs = {a["Key"]: a.get("Value", "") for a in reply.get("Attributes", [])}
        if attrs.get("deletion_protection.enabled") == "true":
            return failed(
                name,
                "left alone with its listeners, target groups and security groups: deletion protection is on",
                "someone turned it on to keep this load balancer; only if it must go: " + protection_fix(arn),
            )
        return None

    def _plan_target_groups(self, plan: Plan, tgs: list[dict[str, Any]]) -> None:
        tags = self._elb_tags([tg["TargetGroupArn"] for tg in tgs], "target groups") or {}
        lb_names = {lb["LoadBalancerArn"]: lb["LoadBalancerName"] for lb in plan.all_lbs}
        for tg in tgs:
            arn, name = tg["TargetGroupArn"], f"target group {tg['TargetGroupName']}"
            tg_tags = tags.get(arn, {})
            own = self.scope.judge(tg_tags)
            if own.kind != "ours":
                if own.kind == "conflict" or self.scope.mentions(tg_tags):
                    plan.steps.append(Step(name, row=verdict_row(name, own)))
                continue
            users = [lb_names.get(a, a) for a in tg.get("LoadBalancerArns", []) if a not in plan.deleted_lbs]
            if users:
                row = failed(
                    name,
                    f"left alone: used by load balancer {', '.join(users)}, which sweep keeps",
                    "it goes once that load balancer is deleted (see its row)",
                )
                plan.steps.append(Step(name, row=row))
                continue
            plan.steps.append(
                Step(name, act=lambda n=name, a=arn: self.delete(n, ELB, "delete_target_group", TargetGroupArn=a))
            )

    def _plan_enis(self, plan: Plan, enis: list[dict[str, Any]]) -> None:
        released = {elb_eni_description(lb): lb["LoadBalancerName"] for lb in plan.deleted_lbs.values()}
        for eni in enis:
            eni_id = eni["NetworkInterfaceId"]
            if eni.get("Description") in released:
                plan.going_enis.add(eni_id)
            name = f"network interface {eni_id}"
            eni_tags = tags_of(eni.get("TagSet"))
            own = self.scope.judge(eni_tags)
            if own.kind != "ours":
                if own.kind == "conflict" or self.scope.mentions(eni_tags):
                    plan.steps.append(Step(name, row=verdict_row(name, own)))
                continue
            if eni_id in plan.going_enis:
                lb = released[eni["Description"]]
                plan.steps.append(Step(name, row=info(name, f"AWS releases it with load balancer {lb}")))
            elif eni.get("RequesterManaged") or eni.get("Status") != "available":
                plan.steps.append(Step(name, row=eni_in_use_row(name, eni)))
            else:
                plan.going_enis.add(eni_id)
                plan.steps.append(
                    Step(
                        name,
                        f"would delete ({eni.get('Status')})",
                        act=lambda n=name, i=eni_id: self.delete(
                            n, "ec2", "delete_network_interface", NetworkInterfaceId=i
                        ),
                    )
                )

    def _plan_groups(self, plan: Plan, groups: list[dict[str, Any]]) -> None:
        candidates: dict[str, dict[str, Any]] = {}
        for sg in groups:
            if sg.get("GroupName") == "default":  # every VPC's default group; deleted with the VPC
                continue
            gid, sg_tags = sg["GroupId"], tags_of(sg.get("Tags"))
            own = self.scope.judge(sg_tags)
            if own.kind == "ours":
                candidates[gid] = sg
            elif own.kind == "conflict" or self.scope.mentions(sg_tags):
                name = group_label(sg)
                plan.steps.append(Step(name, row=verdict_row(name, own)))
        blockers = self._group_blockers(plan, candidates)
        for gid, why in blockers.items():
            name = group_label(candidates.pop(gid))
            fix = "sweep deletes it once that is gone: run sweep again then"
            plan.steps.append(Step(name, row=failed(name, f"left alone: in use by {why}", fix)))
        plan.deleted_groups = candidates
        for sg in candidates.values():
            for key, direction, method in (
                ("IpPermissions", "ingress", "revoke_security_group_ingress"),
                ("IpPermissionsEgress", "egress", "revoke_security_group_egress"),
            ):
                rules = rules_referencing(sg.get(key, []), set(candidates))
                if rules:
                    name = f"{direction} rules of {sg['GroupId']} naming groups being deleted"
                    plan.steps.append(
                        Step(name, f"would revoke {len(rules)}", act=self._revoker(name, method, sg["GroupId"], rules))
                    )
        for sg in candidates.values():
            name, gid = group_label(sg), sg["GroupId"]
            plan.steps.append(
                Step(
                    name,
                    act=lambda n=name, g=gid: self.delete(
                        n,
                        "ec2",
                        "delete_security_group",
                        in_use_by=lambda: self.enis_using("group-id", g),
                        GroupId=g,
                    ),
                )
            )

    def _group_blockers(self, plan: Plan, candidates: dict[str, dict[str, Any]]) -> dict[str, str]:
        """Groups that something sweep keeps still uses: deleting them would only fail."""
        blocked: dict[str, str] = {}
        for lb in plan.all_lbs:
            if lb["LoadBalancerArn"] not in plan.deleted_lbs:
                for gid in lb.get("SecurityGroups", []):
                    if gid in candidates:
                        blocked.setdefault(gid, f"load balancer {lb['LoadBalancerName']} (kept)")
        for eni in plan.all_enis:
            if eni["NetworkInterfaceId"] in plan.going_enis:
                continue
            for g in eni.get("Groups", []):
                if g.get("GroupId") in candidates:
                    blocked.setdefault(g["GroupId"], eni_label(eni))
        while True:  # a kept group's rule naming a candidate keeps it; that may keep more
            kept = {
                sg["GroupId"] for sg in plan.all_groups if sg["GroupId"] not in candidates or sg["GroupId"] in blocked
            }
            more = {
                ref: f"a rule of {sg['GroupId']}"
                for sg in plan.all_groups
                if sg["GroupId"] in kept
                for key in ("IpPermissions", "IpPermissionsEgress")
                for perm in sg.get(key, [])
                for pair in perm.get("UserIdGroupPairs", [])
                if (ref := pair.get("GroupId")) in candidates and ref not in blocked and ref != sg["GroupId"]
            }
            if not more:
                return blocked
            blocked.update(more)

    def _revoker(self, name: str, method: str, gid: str, rules: list[dict[str, Any]]) -> Callable[[], Check]:
        def revoke() -> Check:
            try:
                self._call(getattr(self.ec2, method), GroupId=gid, IpPermissions=rules)
                return passed(name, f"revoked {len(rules)}")
            except AWS_ERRORS as err:
                return failed(name, *explain(err, iam_action("ec2", method)))

        return revoke

    # --- waiting ----------------------------------------------------------------------

    def wait_for_released_enis(self, plan: Plan) -> Check:
        """An NLB's ENIs belong to AWS and vanish after the NLB is deleted; wait (bounded) so groups can go."""
        names = sorted(elb_eni_description(lb) for lb in plan.deleted_lbs.values())
        filters = [{"Name": "description", "Values": names}]
        left: list[str] = []
        for attempt in range(1, self.attempts + 1):
            try:
                enis = self.pages("ec2", "describe_network_interfaces", "NetworkInterfaces", Filters=filters)
                left = [e["NetworkInterfaceId"] for e in enis]
            except AWS_ERRORS as err:
                return failed("load balancer ENIs", *explain(err, "ec2:DescribeNetworkInterfaces"))
            if not left:
                return passed("load balancer ENIs", "released")
            if attempt < self.attempts:
                self.sleep(self.backoff(attempt))
        return failed(
            "load balancer ENIs",
            f"still present: {', '.join(left)}",
            "AWS releases them within minutes of the load balancer's deletion: run sweep --apply again",
        )


@dataclass
class Plan:
    """What sweep found, in the order `--apply` acts on it."""

    all_lbs: list[dict[str, Any]]
    all_groups: list[dict[str, Any]]
    all_enis: list[dict[str, Any]]
    steps: list[Step] = field(default_factory=list)
    deleted_lbs: dict[str, dict[str, Any]] = field(default_factory=dict)  # ARN -> load balancer
    deleted_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    going_enis: set[str] = field(default_factory=set)  # deleted by sweep or released by AWS

    @property
    def actions(self) -> list[Step]:
        return [s for s in self.steps if s.act is not None]
