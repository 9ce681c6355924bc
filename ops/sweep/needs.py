"""What the network sweep keeps because something it keeps still needs it.

A machine that stays (an instance's ENI, a load balancer that is not ours, a subnet or NAT
gateway that is not this stack's) needs the whole path its traffic takes: its subnet, the
route table that subnet uses, the NAT gateway, internet gateway or S3 gateway endpoint that
table routes to, the NAT gateway's own subnet and Elastic IP, and that subnet's route table
to the internet gateway. Deleting any of them would cut the machine's egress and gain nothing: the VPC stays
for the machine anyway. `needed` follows those edges from every kept resource; whatever it
reaches is kept, with the chain that explains why.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ops.sweep.rows import eni_label

Item = dict[str, Any]
GONE_NAT_STATES = frozenset({"deleted"})
DELETING_NAT_STATES = frozenset({"deleting"})


@dataclass(frozen=True)
class Need:
    """`root` (labelled) is kept and needs this resource through `path` (ids, root first)."""

    root: str
    path: tuple[str, ...]

    @property
    def detail(self) -> str:
        return f"left alone: {self.root} needs it ({' -> '.join(self.path)})"

    @property
    def fix(self) -> str:
        return (
            f"it goes once {self.path[0]} is gone or no longer routes through it: remove that first if it is "
            "not needed (see its row), then run sweep --include-network again"
        )


def edges(
    vpcs: Iterable[str],
    found: Mapping[str, list[Item]],
    kept_enis: Iterable[Item],
    vpc_of_eni: Mapping[str, str],
) -> dict[str, list[str]]:
    """resource id -> the ids it needs: ENI -> subnet (and the internet gateway when it has a
    public address), subnet -> its route table (the VPC's main table when it has none),
    route table -> the NAT gateways, internet gateways and gateway endpoints its routes target,
    NAT gateway -> its subnet and Elastic IPs, Elastic IP -> the internet gateway of the VPC
    its address is mapped in (AWS refuses to detach a gateway while addresses are mapped)."""
    ours = set(vpcs)
    igws: dict[str, list[str]] = defaultdict(list)
    for igw in found["internet gateways"]:
        for attachment in igw.get("Attachments", []):
            igws[attachment.get("VpcId", "")].append(igw["InternetGatewayId"])
    main: dict[str, str] = {}
    table_of: dict[str, str] = {}
    out: dict[str, list[str]] = {}
    for table in found["route tables"]:
        rtb = table["RouteTableId"]
        for assoc in table.get("Associations", []):
            if assoc.get("Main"):
                main[table.get("VpcId", "")] = rtb
            elif assoc.get("SubnetId"):
                table_of[assoc["SubnetId"]] = rtb
        out[rtb] = sorted(
            target
            for route in table.get("Routes", [])
            if (target := route.get("NatGatewayId") or route.get("GatewayId") or "").startswith(
                ("nat-", "igw-", "vpce-")
            )
        )
    for subnet in found["subnets"]:
        sid = subnet["SubnetId"]
        table = table_of.get(sid) or main.get(subnet.get("VpcId", ""))
        out[sid] = [table] if table else []
    for nat in found["NAT gateways"]:
        allocations = [a["AllocationId"] for a in nat.get("NatGatewayAddresses", []) if a.get("AllocationId")]
        out[nat["NatGatewayId"]] = [nat.get("SubnetId", ""), *sorted(allocations)]
    for eip in found["Elastic IPs"]:
        vpc = vpc_of_eni.get(eip.get("NetworkInterfaceId") or "", "")
        if eip.get("AllocationId") and eip.get("AssociationId") and vpc in ours:
            out[eip["AllocationId"]] = sorted(igws[vpc])
    for eni in kept_enis:
        public = (eni.get("Association") or {}).get("PublicIp")
        out[eni["NetworkInterfaceId"]] = [
            eni.get("SubnetId", ""),
            *(sorted(igws[eni.get("VpcId", "")]) if public else []),
        ]
    return out


def needed(seeds: Mapping[str, str], graph: Mapping[str, list[str]]) -> dict[str, Need]:
    """Everything the seeds (id -> label of a kept resource) need, each by its shortest chain."""
    found: dict[str, Need] = {}
    queue: deque[tuple[str, Need]] = deque()
    for seed in sorted(seeds):
        need = Need(seeds[seed], (seed,))
        found[seed] = need
        queue.append((seed, need))
    while queue:
        node, need = queue.popleft()
        for nxt in graph.get(node, []):
            if nxt and nxt not in found:
                found[nxt] = Need(need.root, (*need.path, nxt))
                queue.append((nxt, found[nxt]))
    return found


def kept_network(
    vpcs: Iterable[str],
    found: Mapping[str, list[Item]],
    all_enis: list[Item],
    going_enis: set[str],
    ours: Callable[[str, Item], bool],
) -> dict[str, Need]:
    """What the network of `vpcs` must keep: every ENI that stays (a NAT gateway's own ENI
    stands for its gateway), every subnet and NAT gateway that is not ours, and all they need.
    A NAT gateway AWS is already deleting keeps nothing."""
    vpcs = set(vpcs)
    nats = [n for n in found["NAT gateways"] if n.get("VpcId") in vpcs and n.get("State") not in GONE_NAT_STATES]
    nat_enis = {a.get("NetworkInterfaceId") for n in nats for a in n.get("NatGatewayAddresses", [])}
    kept_enis = [e for e in all_enis if e.get("VpcId") in vpcs and e["NetworkInterfaceId"] not in going_enis | nat_enis]
    seeds = {e["NetworkInterfaceId"]: eni_label(e) for e in kept_enis}
    for subnet in found["subnets"]:
        if subnet.get("VpcId") in vpcs and not ours("subnet", subnet):
            seeds[subnet["SubnetId"]] = f"subnet {subnet['SubnetId']} (not provably this stack's)"
    for nat in nats:
        if not ours("NAT gateway", nat):
            seeds[nat["NatGatewayId"]] = f"NAT gateway {nat['NatGatewayId']} (not provably this stack's)"
    graph = edges(vpcs, found, kept_enis, {e["NetworkInterfaceId"]: e.get("VpcId", "") for e in all_enis})
    for nat in nats:
        if nat.get("State") in DELETING_NAT_STATES:
            graph[nat["NatGatewayId"]] = []
    return needed(seeds, graph)
