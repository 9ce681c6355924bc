"""Delete what an interrupted `pulumi destroy` left behind, and nothing else.

The AWS Load Balancer Controller creates the NLB, its target groups and security groups
outside Pulumi's state; if the cluster goes before the Service, they stay and block the
VPC's deletion. Sweep finds them by this cluster's tags only, deletes them in dependency
order (load balancers, target groups, released ENIs, security groups), and is a dry run
unless `--apply` is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from components.settings import PROJECT, Settings
from ops import awsclients
from ops.awsclients import Sleep, Throttled, call, error_code, error_message
from ops.report import Check, failed, info, passed

# Errors that clear once a dependent resource finishes deleting (ENIs of a deleted NLB
# take a minute or two to be released).
RETRY_CODES = frozenset({"DependencyViolation", "ResourceInUse", "InvalidNetworkInterface.InUse"})
NOT_FOUND_CODES = frozenset(
    {
        "LoadBalancerNotFound",
        "TargetGroupNotFound",
        "ListenerNotFound",
        "InvalidGroup.NotFound",
        "InvalidNetworkInterfaceID.NotFound",
    }
)


@dataclass(frozen=True)
class Scope:
    """Which tags mark a resource as this stack's. Anything else is never touched."""

    cluster: str
    stack: str

    def owns(self, tags: dict[str, str]) -> bool:
        return (
            tags.get("elbv2.k8s.aws/cluster") == self.cluster  # AWS Load Balancer Controller
            or tags.get(f"kubernetes.io/cluster/{self.cluster}") == "owned"  # EKS, in-tree controller
            or tags.get("cluster.k8s.amazonaws.com/name") == self.cluster  # VPC CNI ENIs
            or (tags.get("stack") == self.stack and tags.get("project") == PROJECT)  # this project's tags
        )

    def shares(self, tags: dict[str, str]) -> bool:
        """`shared` marks resources the cluster uses but another owner created: never deleted."""
        return tags.get(f"kubernetes.io/cluster/{self.cluster}") == "shared" and not self.owns(tags)


@dataclass
class Found:
    """This stack's leftovers, discovered before anything is deleted."""

    load_balancers: list[dict[str, Any]] = field(default_factory=list)
    listeners: dict[str, list[str]] = field(default_factory=dict)  # load balancer ARN -> listener ARNs
    target_groups: list[dict[str, Any]] = field(default_factory=list)
    security_groups: list[dict[str, Any]] = field(default_factory=list)
    network_interfaces: list[dict[str, Any]] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.load_balancers or self.target_groups or self.security_groups or self.network_interfaces)


def _tags(items: Iterable[dict[str, Any]] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in items or []}


@dataclass
class Sweeper:
    """Discovery and deletion with injectable sleep, so tests run the retry paths instantly."""

    scope: Scope
    ec2: Any
    elbv2: Any
    sleep: Sleep = time.sleep
    attempts: int = 6
    base_delay: float = 5.0
    checks: list[Check] = field(default_factory=list)

    def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        return call(fn, sleep=self.sleep, **kwargs)

    def _pages(
        self, fn: Callable[..., Any], key: str, token: str = "NextToken", **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        """Every item of a paged Describe call (EC2 pages with NextToken, ELBv2 with Marker)."""
        reply_token = "NextMarker" if token == "Marker" else token
        while True:
            page = self._call(fn, **kwargs)
            yield from page.get(key, [])
            if not page.get(reply_token):
                return
            kwargs[token] = page[reply_token]

    def _elb_tags(self, arns: list[str]) -> dict[str, dict[str, str]]:
        tags: dict[str, dict[str, str]] = {}
        for i in range(0, len(arns), 20):  # DescribeTags takes at most 20 ARNs
            for d in self._call(self.elbv2.describe_tags, ResourceArns=arns[i : i + 20])["TagDescriptions"]:
                tags[d["ResourceArn"]] = _tags(d.get("Tags"))
        return tags

    # --- discovery -------------------------------------------------------------------

    def find(self) -> Found:
        found = Found()
        for kind, finder in (
            ("load balancers", self._find_elb),
            ("security groups", self._find_groups),
            ("network interfaces", self._find_enis),
        ):
            try:
                finder(found)
            except (ClientError, Throttled, BotoCoreError) as err:
                self.checks.append(
                    failed(
                        f"list {kind}", _reason(err), "grant the Describe* permissions for elasticloadbalancing and ec2"
                    )
                )
        return found

    def _find_elb(self, found: Found) -> None:
        lbs = list(self._pages(self.elbv2.describe_load_balancers, "LoadBalancers", token="Marker"))
        tags = self._elb_tags([lb["LoadBalancerArn"] for lb in lbs])
        for lb in lbs:
            arn = lb["LoadBalancerArn"]
            if self.scope.owns(tags.get(arn, {})):
                found.load_balancers.append(lb)
                listeners = self._pages(self.elbv2.describe_listeners, "Listeners", token="Marker", LoadBalancerArn=arn)
                found.listeners[arn] = [ls["ListenerArn"] for ls in listeners]
            elif self.scope.shares(tags.get(arn, {})):
                found.shared.append(lb["LoadBalancerName"])
        tgs = list(self._pages(self.elbv2.describe_target_groups, "TargetGroups", token="Marker"))
        tg_tags = self._elb_tags([tg["TargetGroupArn"] for tg in tgs])
        found.target_groups = [tg for tg in tgs if self.scope.owns(tg_tags.get(tg["TargetGroupArn"], {}))]

    def _find_groups(self, found: Found) -> None:
        for sg in self._pages(self.ec2.describe_security_groups, "SecurityGroups"):
            tags = _tags(sg.get("Tags"))
            if sg.get("GroupName") == "default":  # every VPC's default group; deleted with the VPC
                continue
            if self.scope.owns(tags):
                found.security_groups.append(sg)
            elif self.scope.shares(tags):
                found.shared.append(sg["GroupId"])

    def _find_enis(self, found: Found) -> None:
        for eni in self._pages(self.ec2.describe_network_interfaces, "NetworkInterfaces"):
            if self.scope.owns(_tags(eni.get("TagSet"))):
                found.network_interfaces.append(eni)

    # --- deletion ----------------------------------------------------------------------

    def _delete(self, what: str, fn: Callable[..., Any], fix: str = "", **kwargs: Any) -> bool:
        """One delete, retrying dependency errors with bounded backoff; a row either way."""
        for attempt in range(1, self.attempts + 1):
            try:
                self._call(fn, **kwargs)
                self.checks.append(passed(what, "deleted"))
                return True
            except (Throttled, BotoCoreError) as err:
                self.checks.append(failed(what, str(err), "run sweep again in a minute"))
                return False
            except ClientError as err:
                code = error_code(err)
                if code in NOT_FOUND_CODES:
                    self.checks.append(passed(what, "already gone"))
                    return True
                if code not in RETRY_CODES or attempt == self.attempts:
                    tail = f" after {attempt} attempts" if code in RETRY_CODES else ""
                    self.checks.append(
                        failed(
                            what,
                            f"{code}: {error_message(err)}{tail}",
                            fix or "run sweep again once its dependents are gone",
                        )
                    )
                    return False
                self.sleep(min(self.base_delay * 2 ** (attempt - 1), 60.0))
        return False

    def delete_load_balancers(self, found: Found) -> None:
        for lb in found.load_balancers:
            arn, name = lb["LoadBalancerArn"], lb["LoadBalancerName"]
            for listener in found.listeners.get(arn, []):
                self._delete(
                    f"listener {listener.rsplit('/', 1)[-1]} of {name}",
                    self.elbv2.delete_listener,
                    ListenerArn=listener,
                )
            fix = f"aws elbv2 modify-load-balancer-attributes --load-balancer-arn {arn} --attributes Key=deletion_protection.enabled,Value=false"
            self._delete(f"load balancer {name}", self.elbv2.delete_load_balancer, fix=fix, LoadBalancerArn=arn)

    def delete_target_groups(self, found: Found) -> None:
        for tg in found.target_groups:
            self._delete(
                f"target group {tg['TargetGroupName']}",
                self.elbv2.delete_target_group,
                TargetGroupArn=tg["TargetGroupArn"],
            )

    def wait_for_released_enis(self, found: Found) -> None:
        """An NLB's ENIs belong to AWS and vanish after the NLB is deleted; wait (bounded) so groups can go."""
        names = [_elb_eni_description(lb) for lb in found.load_balancers]
        if not names:
            return
        for attempt in range(1, self.attempts + 1):
            try:
                left = [
                    e["NetworkInterfaceId"]
                    for e in self._pages(
                        self.ec2.describe_network_interfaces,
                        "NetworkInterfaces",
                        Filters=[{"Name": "description", "Values": names}],
                    )
                ]
            except (ClientError, Throttled, BotoCoreError) as err:
                self.checks.append(failed("load balancer ENIs", _reason(err)))
                return
            if not left:
                self.checks.append(passed("load balancer ENIs", "released"))
                return
            if attempt < self.attempts:
                self.sleep(min(self.base_delay * 2 ** (attempt - 1), 60.0))
        self.checks.append(
            failed(
                "load balancer ENIs",
                f"still present: {', '.join(left)}",
                "AWS releases them within minutes of the NLB's deletion: run sweep --apply again",
            )
        )

    def delete_network_interfaces(self, found: Found) -> None:
        for eni in found.network_interfaces:
            eni_id = eni["NetworkInterfaceId"]
            if eni.get("Status") != "available":
                owner = (eni.get("Attachment") or {}).get("InstanceId", "an attachment")
                self.checks.append(
                    failed(
                        f"network interface {eni_id}",
                        f"in use by {owner}",
                        f"terminate {owner} first (or detach the ENI), then run sweep again",
                    )
                )
                continue
            self._delete(f"network interface {eni_id}", self.ec2.delete_network_interface, NetworkInterfaceId=eni_id)

    def revoke_cross_references(self, found: Found) -> None:
        """Rules in one of our groups that name another of ours block its deletion: revoke them first."""
        ours = {sg["GroupId"] for sg in found.security_groups}
        for sg in found.security_groups:
            for key, revoke in (
                ("IpPermissions", self.ec2.revoke_security_group_ingress),
                ("IpPermissionsEgress", self.ec2.revoke_security_group_egress),
            ):
                rules = _rules_referencing(sg.get(key, []), ours)
                if not rules:
                    continue
                what = f"{'ingress' if key == 'IpPermissions' else 'egress'} rules of {sg['GroupId']} naming our groups"
                try:
                    self._call(revoke, GroupId=sg["GroupId"], IpPermissions=rules)
                    self.checks.append(passed(what, f"revoked {len(rules)}"))
                except (ClientError, Throttled, BotoCoreError) as err:
                    self.checks.append(failed(what, _reason(err)))

    def delete_security_groups(self, found: Found) -> None:
        for sg in found.security_groups:
            gid = sg["GroupId"]
            fix = f"something outside this stack still uses {gid}: `aws ec2 describe-network-interfaces --filters Name=group-id,Values={gid}`"
            self._delete(
                f"security group {gid} ({sg.get('GroupName', '')})",
                self.ec2.delete_security_group,
                fix=fix,
                GroupId=gid,
            )

    def apply(self, found: Found) -> None:
        self.delete_load_balancers(found)
        self.delete_target_groups(found)
        self.wait_for_released_enis(found)
        self.delete_network_interfaces(found)
        self.revoke_cross_references(found)
        self.delete_security_groups(found)


def _elb_eni_description(lb: dict[str, Any]) -> str:
    """`arn:...:loadbalancer/net/name/id` -> `ELB net/name/id`, the description of that NLB's ENIs."""
    return "ELB " + lb["LoadBalancerArn"].split(":loadbalancer/", 1)[-1]


def _rules_referencing(permissions: list[dict[str, Any]], groups: set[str]) -> list[dict[str, Any]]:
    """The parts of rules whose source/destination is one of `groups`, shaped for Revoke*."""
    rules = []
    for perm in permissions:
        pairs = [{"GroupId": p["GroupId"]} for p in perm.get("UserIdGroupPairs", []) if p.get("GroupId") in groups]
        if pairs:
            rule = {k: perm[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in perm}
            rules.append({**rule, "UserIdGroupPairs": pairs})
    return rules


def _reason(err: Exception) -> str:
    return f"{error_code(err)}: {error_message(err)}" if isinstance(err, ClientError) else str(err)


def plan_rows(found: Found) -> list[Check]:
    """The dry run's table: what `--apply` would delete, in the order it would."""
    rows = []
    for lb in found.load_balancers:
        n = len(found.listeners.get(lb["LoadBalancerArn"], []))
        rows.append(info(f"load balancer {lb['LoadBalancerName']}", f"would delete ({n} listener(s))"))
    rows += [info(f"target group {tg['TargetGroupName']}", "would delete") for tg in found.target_groups]
    rows += [
        info(f"network interface {e['NetworkInterfaceId']}", f"would delete ({e.get('Status')})")
        for e in found.network_interfaces
    ]
    rows += [
        info(f"security group {sg['GroupId']} ({sg.get('GroupName', '')})", "would delete")
        for sg in found.security_groups
    ]
    return rows


def cluster_still_exists(eks: Any, cluster: str, sleep: Sleep = time.sleep) -> bool:
    try:
        call(eks.describe_cluster, sleep=sleep, name=cluster)
        return True
    except ClientError as err:
        if error_code(err) == "ResourceNotFoundException":
            return False
        raise


def run(
    settings: Settings, ec2: Any, elbv2: Any, eks: Any = None, apply: bool = False, sleep: Sleep = time.sleep
) -> list[Check]:
    """Find this stack's leftovers; list them (dry run) or delete them (`apply`)."""
    sweeper = Sweeper(Scope(settings.cluster_name, settings.stack), ec2, elbv2, sleep)
    if eks is not None:
        try:
            if cluster_still_exists(eks, settings.cluster_name, sleep):
                sweeper.checks.append(
                    info(
                        "cluster",
                        f"{settings.cluster_name} still exists: its controller may recreate load balancers; finish `pulumi destroy` first",
                    )
                )
        except (ClientError, Throttled) as err:
            sweeper.checks.append(info("cluster", f"could not check: {_reason(err)}"))
    found = sweeper.find()
    sweeper.checks += [info(f"shared {name}", "tagged shared with the cluster: left alone") for name in found.shared]
    if found.empty:
        sweeper.checks.append(
            passed(
                "leftovers", f"nothing tagged for {settings.cluster_name} / stack {settings.stack} in {settings.region}"
            )
        )
    elif apply:
        sweeper.apply(found)
    else:
        sweeper.checks += plan_rows(found)
        sweeper.checks.append(info("dry run", "nothing deleted; run again with --apply to delete the rows above"))
    return sweeper.checks


def main(
    settings: Settings, apply: bool = False, session: Any = None, sleep: Sleep = time.sleep
) -> tuple[str, list[Check]]:
    ec2, elbv2, eks = awsclients.clients(settings.region, "ec2", "elbv2", "eks", session=session)
    mode = "apply" if apply else "dry run"
    title = f"sweep ({mode}): cluster {settings.cluster_name}, stack {settings.stack}, {settings.region}"
    return title, run(settings, ec2, elbv2, eks, apply=apply, sleep=sleep)
