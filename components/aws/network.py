"""The VPC the cluster lives in: public subnets for the load balancer, private ones for nodes.

NAT: one NAT gateway per zone. A zone's nodes then never depend on another zone's NAT
(an AZ outage does not cut the surviving zone's image and weight downloads), and the extra
gateway (~$0.045/h) is noise next to a p5.48xlarge (~$55/h), so every stack gets the same
resilient shape instead of a cheaper dev variant that behaves differently.

S3: a gateway endpoint on the private route tables, so traffic to S3 in the region (the weight
mirror; ECR's image layers) never passes a NAT gateway: a gateway endpoint costs nothing, while
NAT processing costs $0.045/GB (VPC pricing).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws import s3_endpoint
from components.facts.catalog import BY_POSITION, BY_ZONE

# EKS needs subnets in at least two zones for the control plane's network interfaces.
MIN_ZONES = 2
MAX_ZONES = 6


class ZoneError(ValueError):
    """No usable zone layout: names the zones involved and the setting that fixes it."""


@dataclass(frozen=True)
class ZonePlan:
    network: tuple[str, ...]  # zones with a public and a private subnet
    gpu: tuple[str, ...]  # the subset whose private subnets the GPU node group may use


def plan_zones(
    region_zones: Sequence[str],
    offering_zones: Sequence[str] | None,
    network_zones: Sequence[str] = (),
    gpu_zones: Sequence[str] = (),
) -> ZonePlan:
    """Pick network and GPU zones; pure, so the rules are tested without AWS. With lookups, this
    is a first choice only: preflight records it (ops/aws_checks/zone_record.py), and a real deploy needs it
    recorded, so no later lookup moves a subnet.

    offering_zones: zones that offer the GPU instance type (None when gpu_zones is given,
    which is then authoritative, e.g. the one zone of a Capacity Block).
    Without network_zones: the GPU zones first, then other offering zones, then any zone,
    until there are two, so the node group always has a subnet the instance can launch in.
    """
    offering = set(offering_zones or ())
    if network_zones:
        network = tuple(network_zones)
    else:
        ranked = [*gpu_zones, *(z for z in region_zones if z in offering), *region_zones]
        network = tuple(dict.fromkeys(ranked))[: max(MIN_ZONES, len(gpu_zones))]
    if len(network) < MIN_ZONES:
        raise ZoneError(
            f"EKS needs subnets in at least {MIN_ZONES} zones, found {list(network)}; set network.availabilityZones"
        )
    if len(network) > MAX_ZONES:
        raise ZoneError(
            f"at most {MAX_ZONES} zones are supported, got {list(network)}; shorten network.availabilityZones"
        )
    gpu = tuple(gpu_zones) or tuple(z for z in network if z in offering)
    if not gpu:
        raise ZoneError(
            f"none of the zones {list(network)} offers the GPU instance type (offered in {sorted(offering)}); "
            "set network.availabilityZones to include one of those, or gpuNodes.availabilityZones"
        )
    stray = [z for z in gpu if z not in network]
    if stray:
        raise ZoneError(
            f"GPU zones {stray} have no subnet (network zones: {list(network)}); add them to network.availabilityZones"
        )
    return ZonePlan(network, gpu)


# How subnet CIDRs are laid out in the VPC. A stack records its layout (network.subnetLayout)
# with its zones, because `cidr_block` and `availability_zone` force a subnet's replacement,
# and EC2 refuses the new subnet while the old one still holds the range (InvalidSubnet.Conflict).
# byZone: the VPC in 8 equal blocks; private subnet of zone letter i = block i (a-g), and the
# last block in 8 public subnets, zone i = piece i. A /16 gives /19 private, /22 public.
_BY_ZONE_SPLIT = 3
ZONE_LETTERS = "abcdefg"


def zone_index(zone: str) -> int:
    """The zone's fixed slot: its letter (us-east-2b -> 1). Within an account a zone name
    always names the same physical zone, so the slot never changes."""
    letter = zone[-1:]
    if letter not in ZONE_LETTERS:
        raise ZoneError(f"zone {zone!r} has no subnet slot: zones a to {ZONE_LETTERS[-1]} are supported")
    return ZONE_LETTERS.index(letter)


def zone_cidrs(vpc_cidr: str, zone: str) -> tuple[str, str]:
    """(private, public) CIDR of one zone in the byZone layout: a function of the zone alone."""
    vpc = ipaddress.ip_network(vpc_cidr)
    blocks = list(vpc.subnets(prefixlen_diff=_BY_ZONE_SPLIT))
    publics = list(blocks[-1].subnets(prefixlen_diff=_BY_ZONE_SPLIT))
    i = zone_index(zone)
    return str(blocks[i]), str(publics[i])


def subnet_cidrs(vpc_cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """(private, public) CIDRs by position (the byPosition layout, kept for stacks deployed with
    it): large private blocks, because the VPC CNI gives every pod a VPC address; the public
    ones only hold NAT gateways and load balancer ENIs."""
    vpc = ipaddress.ip_network(vpc_cidr)
    bits = zones.bit_length()  # 2^bits >= zones + 1 blocks: one per zone, one split for publics
    blocks = list(vpc.subnets(prefixlen_diff=bits))
    private = [str(b) for b in blocks[:zones]]
    public = [str(s) for s in list(blocks[-1].subnets(prefixlen_diff=max(1, (zones - 1).bit_length())))[:zones]]
    return private, public


def layout_cidrs(vpc_cidr: str, zones: Sequence[str], layout: str) -> tuple[list[str], list[str]]:
    """(private, public) CIDRs of the zones, in their order, under the stack's layout."""
    if layout == BY_POSITION:
        return subnet_cidrs(vpc_cidr, len(zones))
    pairs = [zone_cidrs(vpc_cidr, z) for z in zones]
    return [p for p, _ in pairs], [q for _, q in pairs]


def detect_layout(vpc_cidr: str, private: Mapping[str, str]) -> tuple[str, tuple[str, ...]] | None:
    """The layout and zone order that reproduce a deployed VPC's private subnets (zone -> CIDR),
    so preflight can record them before the first run of this version; None: neither does."""
    by_block = tuple(sorted(private, key=lambda z: ipaddress.ip_network(private[z])))
    for layout, zones in ((BY_ZONE, by_block), (BY_POSITION, by_block)):
        try:
            cidrs, _ = layout_cidrs(vpc_cidr, zones, layout)
        except (ZoneError, ValueError):
            continue
        if cidrs == [private[z] for z in zones]:
            return layout, zones
    return None


@dataclass(frozen=True)
class ExistingVpc:
    """A VPC made elsewhere: its subnets must already carry the EKS and load balancer tags."""

    vpc_id: str
    public_subnet_ids: tuple[str, ...]
    private_subnets: tuple[tuple[str, str], ...]  # (subnet id, zone)
    public_subnet_cidrs: tuple[str, ...] = ()  # of public_subnet_ids, in that order


@dataclass(frozen=True)
class NetworkArgs:
    cluster_name: str
    zones: ZonePlan
    tags: Mapping[str, str]
    vpc_cidr: str = "10.42.0.0/16"
    subnet_layout: str = BY_ZONE
    existing: ExistingVpc | None = None
    region: str = "us-east-2"  # the S3 gateway endpoint's service is regional
    partition: str = "aws"
    # The stack's own buckets the nodes and pods use through the S3 gateway endpoint (its policy
    # admits only these and the image registries' layer buckets: components/aws/s3_endpoint.py).
    s3_buckets: tuple[str, ...] = ()


class Network(pulumi.ComponentResource):
    """A new VPC across the planned zones, or the ids of an existing one (nothing created)."""

    vpc_id: pulumi.Output[str]
    # The load balancer's subnets (the ALB is placed in exactly these, whatever its scheme: they
    # hold no node and so no pod) and their CIDRs, known before anything is created.
    public_subnet_ids: pulumi.Output[list[str]]
    public_subnet_cidrs: tuple[str, ...]
    private_subnet_ids: pulumi.Output[list[str]]
    gpu_subnet_ids: pulumi.Output[list[str]]
    # The path from the subnets to the internet (gateways, routes, route-table associations).
    # Nodes need it to bootstrap (images, EKS and ECR APIs), the load balancer controller to
    # reach the ELB and EC2 APIs: both depend on it, so it is created before and deleted after
    # them. Empty for an existing VPC, whose routing is not ours.
    egress: list[pulumi.Resource]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("minimax-vllm:aws:Network", name, None, opts)
        self.egress = []
        if args.existing:
            ex = args.existing
            self.vpc_id = pulumi.Output.from_input(ex.vpc_id)
            self.public_subnet_ids = pulumi.Output.from_input(list(ex.public_subnet_ids))
            self.public_subnet_cidrs = ex.public_subnet_cidrs
            self.private_subnet_ids = pulumi.Output.from_input([sid for sid, _ in ex.private_subnets])
            self.gpu_subnet_ids = pulumi.Output.from_input(
                [sid for sid, z in ex.private_subnets if z in args.zones.gpu]
            )
        else:
            self._create(name, args)
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "publicSubnetIds": self.public_subnet_ids,
                "privateSubnetIds": self.private_subnet_ids,
                "gpuSubnetIds": self.gpu_subnet_ids,
            }
        )

    def _create(self, name: str, args: NetworkArgs) -> None:
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        cluster_tag = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}

        def named(label: str) -> dict[str, str]:
            return {**tags, "Name": f"{args.cluster_name}-{label}"}

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.vpc_cidr,
            # EKS private endpoint and node registration need VPC DNS hostnames.
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags=named("vpc"),
            opts=child,
        )
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=named("igw"), opts=child)
        public_rt = aws.ec2.RouteTable(f"{name}-public-rt", vpc_id=vpc.id, tags=named("public"), opts=child)
        public_default = aws.ec2.Route(
            f"{name}-public-default",
            route_table_id=public_rt.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.id,
            opts=child,
        )
        self.egress += [igw, public_default]

        private_cidrs, public_cidrs = layout_cidrs(args.vpc_cidr, args.zones.network, args.subnet_layout)
        self.public_subnet_cidrs = tuple(public_cidrs)
        public_ids, private_ids, gpu_ids, private_tables = [], [], [], []
        for zone, private_cidr, public_cidr in zip(args.zones.network, private_cidrs, public_cidrs, strict=True):
            public = aws.ec2.Subnet(
                f"{name}-public-{zone}",
                vpc_id=vpc.id,
                availability_zone=zone,
                cidr_block=public_cidr,
                # Nothing launches here but NAT gateways and load balancer ENIs, which get their own IPs.
                map_public_ip_on_launch=False,
                tags={**named(f"public-{zone}"), **cluster_tag, "kubernetes.io/role/elb": "1"},
                opts=child,
            )
            public_assoc = aws.ec2.RouteTableAssociation(
                f"{name}-public-{zone}", subnet_id=public.id, route_table_id=public_rt.id, opts=child
            )
            eip = aws.ec2.Eip(f"{name}-nat-{zone}", domain="vpc", tags=named(f"nat-{zone}"), opts=child)
            nat = aws.ec2.NatGateway(
                f"{name}-nat-{zone}",
                allocation_id=eip.id,
                subnet_id=public.id,
                tags=named(f"nat-{zone}"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
            )
            private = aws.ec2.Subnet(
                f"{name}-private-{zone}",
                vpc_id=vpc.id,
                availability_zone=zone,
                cidr_block=private_cidr,
                tags={**named(f"private-{zone}"), **cluster_tag, "kubernetes.io/role/internal-elb": "1"},
                opts=child,
            )
            rt = aws.ec2.RouteTable(f"{name}-private-{zone}", vpc_id=vpc.id, tags=named(f"private-{zone}"), opts=child)
            private_default = aws.ec2.Route(
                f"{name}-private-{zone}-default",
                route_table_id=rt.id,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nat.id,
                opts=child,
            )
            private_assoc = aws.ec2.RouteTableAssociation(
                f"{name}-private-{zone}", subnet_id=private.id, route_table_id=rt.id, opts=child
            )
            self.egress += [public_assoc, nat, private_default, private_assoc]
            private_tables.append(rt.id)
            public_ids.append(public.id)
            private_ids.append(private.id)
            if zone in args.zones.gpu:
                gpu_ids.append(private.id)

        s3 = aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=private_tables,
            policy=s3_endpoint.policy_json(args.region, args.partition, args.s3_buckets),
            tags=named("s3"),
            opts=child,
        )
        # Part of the path the nodes use: created before and deleted after them.
        self.egress.append(s3)
        self.vpc_id = vpc.id
        self.public_subnet_ids = pulumi.Output.all(*public_ids)
        self.private_subnet_ids = pulumi.Output.all(*private_ids)
        self.gpu_subnet_ids = pulumi.Output.all(*gpu_ids)
