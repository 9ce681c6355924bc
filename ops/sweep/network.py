"""`sweep --include-network`: this stack's own VPC, once Pulumi's state of it is lost.

`components/aws/network.py` tags everything it creates with the stack's tags (`project`,
`stack`, ...) and its subnets also with `kubernetes.io/cluster/<cluster>=shared`, so only
those project/stack tags prove a network resource is this stack's; a `shared` tag for any
other cluster, or any tag naming another cluster, stack or project, keeps it. Only resources
inside a VPC proven this stack's are removed, in dependency order: NAT gateways (then a
bounded wait while they are `deleting`), their Elastic IPs, the internet gateway, gateway
endpoints (`endpoints.py`), subnets, route tables, the VPC. What something the sweep keeps
still routes through or sits in stays, with all it needs in turn (`needs.py`), and is
reported as blocked by it, in the dry run too; a cluster that may be live keeps its whole network, whatever the override says.
NAT gateways bill by the hour, which is why this exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ops.report import Check, failed, info, passed
from ops.sweep.endpoints import live_endpoints, plan_endpoints
from ops.sweep.errors import AWS_ERRORS, explain, iam_action
from ops.sweep.needs import DELETING_NAT_STATES, GONE_NAT_STATES, Need, kept_network
from ops.sweep.plan import LIVE_CLUSTER_OVERRIDE, Plan, Step, Sweeper
from ops.sweep.rows import eni_label, group_label, tags_of, verdict_row
from ops.sweep.scope import Ownership


@dataclass
class Network:
    """What the network part of the plan found; `pending` holds why dependents must wait."""

    vpcs: dict[str, dict[str, Any]] = field(default_factory=dict)  # proven this stack's
    pending: list[str] = field(default_factory=list)


def plan_network(sweeper: Sweeper, plan: Plan, existing_vpc_id: str | None, live: str | None = None) -> None:
    """Append the network steps to `plan` (after the load balancers and security groups).

    live: why the stack's cluster may still exist (None once it is provably gone); then
    every network row is blocked, in the dry run and with --apply alike."""
    if existing_vpc_id:
        plan.steps.append(
            Step(
                f"VPC {existing_vpc_id}",
                row=info(f"VPC {existing_vpc_id}", "left alone: the stack uses it as network.existingVpcId"),
            )
        )
        return
    ec2 = "ec2"
    vpcs = sweeper.listing("VPCs", ec2, "describe_vpcs", "Vpcs")
    if vpcs is None:
        return
    net = Network()
    for vpc in vpcs:
        name = f"VPC {vpc['VpcId']}{_name_suffix(vpc)}"
        own = sweeper.scope.judge(tags_of(vpc.get("Tags")), need_project_tags=True)
        if own.kind == "ours":
            net.vpcs[vpc["VpcId"]] = vpc
        elif own.kind != "foreign":
            plan.steps.append(Step(name, row=verdict_row(name, own)))
    if not net.vpcs:
        return
    ids = sorted(net.vpcs)
    vpc_filter = [{"Name": "vpc-id", "Values": ids}]
    listings = {
        "subnets": sweeper.listing("subnets", ec2, "describe_subnets", "Subnets", Filters=vpc_filter),
        "route tables": sweeper.listing(
            "route tables", ec2, "describe_route_tables", "RouteTables", Filters=vpc_filter
        ),
        "internet gateways": sweeper.listing(
            "internet gateways", ec2, "describe_internet_gateways", "InternetGateways"
        ),
        "NAT gateways": sweeper.listing("NAT gateways", ec2, "describe_nat_gateways", "NatGateways", Filter=vpc_filter),
        "Elastic IPs": sweeper.listing("Elastic IPs", ec2, "describe_addresses", "Addresses"),
        "VPC endpoints": sweeper.listing(
            "VPC endpoints", ec2, "describe_vpc_endpoints", "VpcEndpoints", Filters=vpc_filter
        ),
    }
    missing = [k for k, v in listings.items() if v is None]
    if missing:
        for vpc_id in ids:
            name = f"VPC {vpc_id}{_name_suffix(net.vpcs[vpc_id])}"
            row = failed(name, f"left alone: its {', '.join(missing)} could not be listed (see above)", "fix that row")
            plan.steps.append(Step(name, row=row))
        return
    _Planner(sweeper, plan, net, {k: v or [] for k, v in listings.items()}, live).build()


@dataclass
class _Planner:
    sweeper: Sweeper
    plan: Plan
    net: Network
    found: dict[str, list[dict[str, Any]]]
    live: str | None = None
    needs: dict[str, Need] = field(default_factory=dict)
    subnets_going: set[str] = field(default_factory=set)
    tables_going: set[str] = field(default_factory=set)
    igws_going: set[str] = field(default_factory=set)
    endpoints_going: set[str] = field(default_factory=set)
    nats_going: dict[str, dict[str, Any]] = field(default_factory=dict)

    def judge(self, item: dict[str, Any], key: str = "Tags", subnet: bool = False) -> Ownership:
        return self.sweeper.scope.judge(tags_of(item.get(key)), need_project_tags=True, own_shared_ok=subnet)

    def add(self, name: str, act: Callable[[], Check] | None = None, row: Check | None = None, plan: str = "") -> None:
        self.plan.steps.append(Step(name, plan or "would delete", act=act, row=row))

    def keep(self, name: str, own: Ownership) -> None:
        if own.kind != "foreign":
            self.add(name, row=verdict_row(name, own))

    def blocked(self, name: str, resource_id: str) -> Check | None:
        """The row of a resource of this stack that must stay: its cluster may be live, or a
        kept resource needs it."""
        if self.live:
            return failed(
                name,
                f"left alone: {self.live}",
                f"a network whose cluster may be live is never swept, not even with {LIVE_CLUSTER_OVERRIDE}:"
                f" finish `pulumi destroy --stack {self.sweeper.scope.stack}` first",
            )
        if need := self.needs.get(resource_id):
            return failed(name, need.detail, need.fix)
        return None

    def _needs(self) -> dict[str, Need]:
        def ours(kind: str, item: dict[str, Any]) -> bool:
            return self.judge(item, subnet=kind == "subnet").kind == "ours"

        return kept_network(self.net.vpcs, self.found, self.plan.all_enis, self.plan.going_enis, ours)

    def build(self) -> None:
        self.needs = self._needs()
        self._nat_gateways()
        self._addresses()
        self._internet_gateways()
        plan_endpoints(self)
        self._subnets()
        self._route_tables()
        self._vpcs()

    def _nat_gateways(self) -> None:
        waiting: list[str] = []
        for nat in self.found["NAT gateways"]:
            nat_id, state = nat["NatGatewayId"], nat.get("State", "")
            if state in GONE_NAT_STATES or nat.get("VpcId") not in self.net.vpcs:
                continue
            name = f"NAT gateway {nat_id}{_name_suffix(nat)}"
            own = self.judge(nat)
            if own.kind != "ours":
                self.keep(name, own)
                continue
            if state in DELETING_NAT_STATES:
                self.add(name, row=info(name, "already deleting (AWS is removing it)"))
            elif row := self.blocked(name, nat_id):
                self.add(name, row=row)
                continue
            else:
                self.add(
                    name,
                    act=lambda n=name, i=nat_id: self.sweeper.delete(n, "ec2", "delete_nat_gateway", NatGatewayId=i),
                )
            self.nats_going[nat_id] = nat
            waiting.append(nat_id)
        for nat in self.nats_going.values():
            self.plan.going_enis.update(
                a["NetworkInterfaceId"] for a in nat.get("NatGatewayAddresses", []) if "NetworkInterfaceId" in a
            )
        if waiting:
            self.add(
                "NAT gateways deleted",
                plan="would wait until they are deleted (about a minute)",
                act=lambda: self._wait_nats(waiting),
            )

    def _wait_nats(self, nat_ids: list[str]) -> Check:
        name, sweeper = "NAT gateways deleted", self.sweeper
        left: list[str] = []
        for attempt in range(1, sweeper.attempts + 1):
            try:
                nats = sweeper.pages("ec2", "describe_nat_gateways", "NatGateways", NatGatewayIds=nat_ids)
                left = sorted(
                    f"{n['NatGatewayId']} ({n.get('State')})" for n in nats if n.get("State") not in GONE_NAT_STATES
                )
            except AWS_ERRORS as err:
                self.net.pending.append("the NAT gateways' state is unknown")
                return failed(name, *explain(err, "ec2:DescribeNatGateways"))
            if not left:
                return passed(name, f"{len(nat_ids)} deleted")
            if attempt < sweeper.attempts:
                sweeper.sleep(sweeper.backoff(attempt))
        self.net.pending.append(f"NAT gateway(s) {', '.join(left)} not deleted yet")
        return failed(
            name,
            f"still there: {', '.join(left)}",
            "AWS takes a few minutes to delete a NAT gateway: run sweep --apply --include-network again",
        )

    def _after_nats(self, name: str, act: Callable[[], Check]) -> Callable[[], Check]:
        """Everything after the NAT gateways waits for them; failing fast beats six retries each."""

        def guarded() -> Check:
            if self.net.pending:
                return failed(
                    name,
                    f"not attempted: {'; '.join(self.net.pending)}",
                    "run sweep --apply --include-network again in a few minutes",
                )
            return act()

        return guarded

    def _deletion(self, name: str, method: str, **kwargs: Any) -> Callable[[], Check]:
        return self._after_nats(name, partial(self.sweeper.delete, name, "ec2", method, **kwargs))

    def _addresses(self) -> None:
        nat_enis = {
            a.get("NetworkInterfaceId") for n in self.nats_going.values() for a in n.get("NatGatewayAddresses", [])
        }
        for eip in self.found["Elastic IPs"]:
            alloc = eip.get("AllocationId")
            if not alloc:
                continue
            name = f"Elastic IP {alloc} ({eip.get('PublicIp', '')})"
            own = self.judge(eip)
            if own.kind != "ours":
                self.keep(name, own)
                continue
            user = eip.get("NetworkInterfaceId") or eip.get("InstanceId")
            if row := self.blocked(name, alloc):
                self.add(name, row=row)
                continue
            if eip.get("AssociationId") and user not in nat_enis:
                row = failed(
                    name,
                    f"left alone: associated with {user}",
                    f"disassociate it from {user} if that is not needed, then run sweep again",
                )
                self.add(name, row=row)
                continue
            self.add(name, plan="would release", act=self._deletion(name, "release_address", AllocationId=alloc))

    def _internet_gateways(self) -> None:
        for igw in self.found["internet gateways"]:
            attached = [a["VpcId"] for a in igw.get("Attachments", []) if a.get("VpcId")]
            if not any(v in self.net.vpcs for v in attached):
                continue
            igw_id = igw["InternetGatewayId"]
            name = f"internet gateway {igw_id}{_name_suffix(igw)}"
            own = self.judge(igw)
            if own.kind != "ours":
                self.keep(name, own)
                continue
            others = [v for v in attached if v not in self.net.vpcs]
            if others:
                self.add(
                    name, row=failed(name, f"left alone: also attached to {', '.join(others)}", "detach it there first")
                )
                continue
            if row := self.blocked(name, igw_id):
                self.add(name, row=row)
                continue
            self.igws_going.add(igw_id)
            self.add(
                name,
                plan="would detach and delete",
                act=self._after_nats(name, lambda n=name, i=igw_id, v=attached: self._drop_igw(n, i, v)),
            )

    def _drop_igw(self, name: str, igw_id: str, vpcs: list[str]) -> Check:
        for vpc in vpcs:
            try:
                self.sweeper._call(self.sweeper.ec2.detach_internet_gateway, InternetGatewayId=igw_id, VpcId=vpc)
            except AWS_ERRORS as err:
                detail, fix = explain(
                    err,
                    iam_action("ec2", "detach_internet_gateway"),
                    in_use_by="public addresses still mapped in the VPC (Elastic IPs, load balancers)",
                )
                if "Gateway.NotAttached" not in detail:
                    return failed(name, f"detach from {vpc}: {detail}", fix)
        return self.sweeper.delete(name, "ec2", "delete_internet_gateway", InternetGatewayId=igw_id)

    def _enis_left_in(self, key: str, value: str) -> list[str]:
        return sorted(
            eni_label(e)
            for e in self.plan.all_enis
            if e.get(key) == value and e["NetworkInterfaceId"] not in self.plan.going_enis
        )

    def _subnets(self) -> None:
        for subnet in self.found["subnets"]:
            sid = subnet["SubnetId"]
            name = f"subnet {sid}{_name_suffix(subnet)}"
            own = self.judge(subnet, subnet=True)
            if own.kind != "ours":
                self.keep(name, own)
                continue
            if row := self.blocked(name, sid):
                self.add(name, row=row)
                continue
            self.subnets_going.add(sid)
            users_now = partial(self.sweeper.enis_using, "subnet-id", sid)
            self.add(name, act=self._deletion(name, "delete_subnet", in_use_by=users_now, SubnetId=sid))

    def _route_tables(self) -> None:
        for table in self.found["route tables"]:
            assocs = table.get("Associations", [])
            if any(a.get("Main") for a in assocs):
                continue  # the VPC's main table goes with the VPC
            rtb = table["RouteTableId"]
            name = f"route table {rtb}{_name_suffix(table)}"
            own = self.judge(table)
            if own.kind != "ours":
                self.keep(name, own)
                continue
            if row := self.blocked(name, rtb):
                self.add(name, row=row)
                continue
            self.tables_going.add(rtb)
            self.add(name, act=self._deletion(name, "delete_route_table", RouteTableId=rtb))

    def _vpcs(self) -> None:
        for vpc_id, vpc in sorted(self.net.vpcs.items()):
            name = f"VPC {vpc_id}{_name_suffix(vpc)}"
            if self.live and (row := self.blocked(name, vpc_id)):
                self.add(name, row=row)
                continue
            users = [
                s["SubnetId"]
                for s in self.found["subnets"]
                if s.get("VpcId") == vpc_id and s["SubnetId"] not in self.subnets_going
            ]
            users += [
                t["RouteTableId"]
                for t in self.found["route tables"]
                if t.get("VpcId") == vpc_id
                and t["RouteTableId"] not in self.tables_going
                and not any(a.get("Main") for a in t.get("Associations", []))
            ]
            users += [
                g["InternetGatewayId"]
                for g in self.found["internet gateways"]
                if g["InternetGatewayId"] not in self.igws_going
                and any(a.get("VpcId") == vpc_id for a in g.get("Attachments", []))
            ]
            users += [
                group_label(g)
                for g in self.plan.all_groups
                if g.get("VpcId") == vpc_id
                and g.get("GroupName") != "default"
                and g["GroupId"] not in self.plan.deleted_groups
            ]
            users += self._enis_left_in("VpcId", vpc_id)
            users += [
                e["VpcEndpointId"]
                for e in live_endpoints(self.found["VPC endpoints"], vpc_id)
                if e["VpcEndpointId"] not in self.endpoints_going
            ]
            users += [
                n["NatGatewayId"]
                for n in self.found["NAT gateways"]
                if n.get("VpcId") == vpc_id
                and n["NatGatewayId"] not in self.nats_going
                and n.get("State") not in GONE_NAT_STATES
            ]
            # Name what holds the VPC, not what stays for it (those rows name it already).
            kept_for = {i for i, need in self.needs.items() if len(need.path) > 1}
            kept_for |= {
                a.get("NetworkInterfaceId", "")
                for n in self.found["NAT gateways"]
                if n["NatGatewayId"] in kept_for
                for a in n.get("NatGatewayAddresses", [])
            }
            users = [u for u in users if u.split(" ")[0] not in kept_for]
            if users:
                self.add(
                    name,
                    row=failed(
                        name,
                        f"left alone: still holds {', '.join(sorted(set(users)))}",
                        "those are not provably this stack's: remove them by hand if they are, then run sweep again",
                    ),
                )
                continue
            users_now = partial(self.sweeper.enis_using, "vpc-id", vpc_id)
            self.add(name, act=self._deletion(name, "delete_vpc", in_use_by=users_now, VpcId=vpc_id))


def _name_suffix(item: dict[str, Any]) -> str:
    name = tags_of(item.get("Tags")).get("Name")
    return f" ({name})" if name else ""
