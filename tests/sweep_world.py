"""A moto account for sweep, with the AWS rules moto does not enforce emulated.

(Attachments are emulated too: a real instance would make moto serialise its AMI catalogue.)

moto deletes a security group that ENIs or other groups still use, deletes a load balancer
with deletion protection on, deletes a VPC that still has an endpoint, has no NLB-managed
ENIs and deletes NAT gateways instantly.
`Rules` wraps the boto3 clients so those answer as AWS does (DependencyViolation,
OperationNotPermitted, requester-managed in-use ENIs released with their NLB, NAT gateways
`deleting` for a while), and records every mutating call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from components.platform.config import from_stack_file

REGION = "us-east-2"
OTHER_REGION = "us-west-2"
SETTINGS = from_stack_file("prod-8gpu")
CLUSTER = SETTINGS.cluster_name  # minimax-vllm-prod-8gpu
SIBLING = "minimax-vllm-prod-4gpu"

OURS = {"project": "minimax-vllm", "stack": "prod-8gpu", "environment": "prod-8gpu", "owner": "ml-platform"}
SIBLING_TAGS = {"project": "minimax-vllm", "stack": "prod-4gpu"}
CONTROLLER = {"elbv2.k8s.aws/cluster": CLUSTER, "service.k8s.aws/stack": "minimax-vllm/vllm", **OURS}
EKS_OWNED = {f"kubernetes.io/cluster/{CLUSTER}": "owned"}
MUTATING = ("delete_", "revoke_", "release_", "detach_", "disassociate_", "modify_")


def aws_error(code: str, operation: str, message: str = "emulated") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def tag_spec(kind: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []


def as_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()] or [{"Key": "x", "Value": "y"}]


class Rules:
    """Wrap an ec2 or elbv2 client: AWS's refusals, NLB ENIs, slow NAT deletion, a call log."""

    def __init__(self, world: World, client: Any):
        self._world, self._client = world, client

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        world = self._world
        override = getattr(world, f"rule_{name}", None)

        def wrapped(**kwargs: Any) -> Any:
            if name in world.fail:
                error = world.fail[name]
                raise error() if callable(error) else error
            if name.startswith(MUTATING):
                world.calls.append((name, kwargs))
            return override(real, **kwargs) if override else real(**kwargs)

        return wrapped


class World:
    """The account: boto3 clients (moto), the ids of what was made, and the emulated rules."""

    def __init__(self, session_client: Callable[..., Any]):
        self.raw_ec2 = session_client("ec2", region_name=REGION)
        self.raw_elbv2 = session_client("elbv2", region_name=REGION)
        self.eks = session_client("eks", region_name=REGION)
        self.ec2 = Rules(self, self.raw_ec2)
        self.elbv2 = Rules(self, self.raw_elbv2)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail: dict[str, Any] = {}  # method -> exception (or factory) raised instead
        self.nlb_enis: dict[str, str] = {}  # ENI id -> load balancer ARN it belongs to
        self.attached: dict[str, str] = {}  # ENI id -> instance it is attached to
        self.nat_polls_while_deleting = 0  # describe_nat_gateways answers `deleting` this often
        self.ids: dict[str, str] = {}

    # --- emulated AWS rules -------------------------------------------------------------

    def rule_describe_network_interfaces(self, real: Any, **kwargs: Any) -> Any:
        reply = real(**kwargs)
        for eni in reply["NetworkInterfaces"]:
            if eni["NetworkInterfaceId"] in self.attached:
                instance = self.attached[eni["NetworkInterfaceId"]]
                eni.update(Status="in-use", Attachment={"InstanceId": instance, "DeviceIndex": 1, "Status": "attached"})
            if eni["NetworkInterfaceId"] in self.nlb_enis:
                eni.update(
                    RequesterManaged=True,
                    Status="in-use",
                    InterfaceType="network_load_balancer",
                    Attachment={"InstanceOwnerId": "amazon-elb", "Status": "attached"},
                )
        return reply

    def rule_delete_network_interface(self, real: Any, **kwargs: Any) -> Any:
        eni = self.raw_ec2.describe_network_interfaces(NetworkInterfaceIds=[kwargs["NetworkInterfaceId"]])
        eni_id = kwargs["NetworkInterfaceId"]
        if eni_id in self.nlb_enis or eni_id in self.attached or eni["NetworkInterfaces"][0]["Status"] != "available":
            raise aws_error("InvalidNetworkInterface.InUse", "DeleteNetworkInterface")
        return real(**kwargs)

    def rule_delete_load_balancer(self, real: Any, **kwargs: Any) -> Any:
        arn = kwargs["LoadBalancerArn"]
        attrs = self.raw_elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
        if {"Key": "deletion_protection.enabled", "Value": "true"} in attrs:
            raise aws_error("OperationNotPermitted", "DeleteLoadBalancer", "Load balancer has deletion protection")
        reply = real(**kwargs)
        for eni, lb in list(self.nlb_enis.items()):  # AWS releases the NLB's ENIs
            if lb == arn:
                del self.nlb_enis[eni]
                self.raw_ec2.delete_network_interface(NetworkInterfaceId=eni)
        return reply

    def rule_delete_security_group(self, real: Any, **kwargs: Any) -> Any:
        gid = kwargs["GroupId"]
        users = self.raw_ec2.describe_network_interfaces(Filters=[{"Name": "group-id", "Values": [gid]}])
        refs = [
            sg["GroupId"]
            for sg in self.raw_ec2.describe_security_groups()["SecurityGroups"]
            for perm in sg.get("IpPermissions", []) + sg.get("IpPermissionsEgress", [])
            for pair in perm.get("UserIdGroupPairs", [])
            if pair.get("GroupId") == gid and sg["GroupId"] != gid
        ]
        lbs = [
            lb
            for lb in self.raw_elbv2.describe_load_balancers()["LoadBalancers"]
            if gid in lb.get("SecurityGroups", [])
        ]
        if users["NetworkInterfaces"] or refs or lbs:
            raise aws_error("DependencyViolation", "DeleteSecurityGroup", f"resource {gid} has a dependent object")
        return real(**kwargs)

    def rule_delete_subnet(self, real: Any, **kwargs: Any) -> Any:
        sid = kwargs["SubnetId"]
        if self.raw_ec2.describe_network_interfaces(Filters=[{"Name": "subnet-id", "Values": [sid]}])[
            "NetworkInterfaces"
        ]:
            raise aws_error("DependencyViolation", "DeleteSubnet", f"The subnet '{sid}' has dependencies")
        tables = self.raw_ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [sid]}])
        for table in tables["RouteTables"]:  # AWS drops a deleted subnet's route table associations
            for assoc in table.get("Associations", []):
                if assoc.get("SubnetId") == sid:
                    self.raw_ec2.disassociate_route_table(AssociationId=assoc["RouteTableAssociationId"])
        return real(**kwargs)

    def rule_delete_vpc(self, real: Any, **kwargs: Any) -> Any:
        endpoints = self.raw_ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [kwargs["VpcId"]]}])
        if [e for e in endpoints["VpcEndpoints"] if e["State"].lower() not in ("deleted", "deleting")]:
            raise aws_error("DependencyViolation", "DeleteVpc", f"The vpc '{kwargs['VpcId']}' has dependencies")
        return real(**kwargs)

    def rule_delete_nat_gateway(self, real: Any, **kwargs: Any) -> Any:
        """AWS frees the NAT gateway's ENI and Elastic IP association as it deletes it."""
        nat = self.raw_ec2.describe_nat_gateways(NatGatewayIds=[kwargs["NatGatewayId"]])["NatGateways"][0]
        reply = real(**kwargs)
        for address in nat.get("NatGatewayAddresses", []):
            eips = self.raw_ec2.describe_addresses(AllocationIds=[address["AllocationId"]])["Addresses"]
            if eips and eips[0].get("AssociationId"):
                self.raw_ec2.disassociate_address(AssociationId=eips[0]["AssociationId"])
            self.raw_ec2.delete_network_interface(NetworkInterfaceId=address["NetworkInterfaceId"])
        return reply

    def rule_describe_nat_gateways(self, real: Any, **kwargs: Any) -> Any:
        reply = real(**kwargs)
        if kwargs.get("NatGatewayIds") and self.nat_polls_while_deleting > 0:
            self.nat_polls_while_deleting -= 1
            for nat in reply["NatGateways"]:
                if nat["State"] == "deleted":
                    nat["State"] = "deleting"
        return reply

    # --- building ------------------------------------------------------------------------

    def vpc(self, cidr: str, tags: dict[str, str]) -> str:
        return self.raw_ec2.create_vpc(CidrBlock=cidr, TagSpecifications=tag_spec("vpc", tags))["Vpc"]["VpcId"]

    def subnet(self, vpc: str, cidr: str, zone: str, tags: dict[str, str]) -> str:
        return self.raw_ec2.create_subnet(
            VpcId=vpc, CidrBlock=cidr, AvailabilityZone=f"{REGION}{zone}", TagSpecifications=tag_spec("subnet", tags)
        )["Subnet"]["SubnetId"]

    def group(self, vpc: str, name: str, tags: dict[str, str]) -> str:
        return self.raw_ec2.create_security_group(
            GroupName=name, Description=name, VpcId=vpc, TagSpecifications=tag_spec("security-group", tags)
        )["GroupId"]

    def eni(self, subnet: str, tags: dict[str, str], groups: list[str] | None = None, description: str = "") -> str:
        return self.raw_ec2.create_network_interface(
            SubnetId=subnet,
            Groups=groups or [],
            Description=description,
            TagSpecifications=tag_spec("network-interface", tags),
        )["NetworkInterface"]["NetworkInterfaceId"]

    def nlb(
        self,
        name: str,
        vpc: str,
        subnets: list[str],
        tags: dict[str, str],
        groups: list[str] | None = None,
        protected: bool = False,
    ) -> str:
        """An NLB with a listener, a target group and (like AWS) one managed ENI per subnet."""
        lb = self.raw_elbv2.create_load_balancer(
            Name=name, Subnets=subnets, Type="network", Tags=as_tags(tags), SecurityGroups=groups or []
        )["LoadBalancers"][0]
        arn = lb["LoadBalancerArn"]
        tg = self.raw_elbv2.create_target_group(
            Name=f"{name}-tg", Protocol="TCP", Port=8000, VpcId=vpc, TargetType="ip", Tags=as_tags(tags)
        )["TargetGroups"][0]["TargetGroupArn"]
        self.raw_elbv2.create_listener(
            LoadBalancerArn=arn, Protocol="TCP", Port=80, DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}]
        )
        if protected:
            self.raw_elbv2.modify_load_balancer_attributes(
                LoadBalancerArn=arn, Attributes=[{"Key": "deletion_protection.enabled", "Value": "true"}]
            )
        description = "ELB " + arn.split(":loadbalancer/", 1)[1]
        for subnet in subnets:
            self.nlb_enis[self.eni(subnet, {}, groups, description)] = arn
        return arn

    def network(self, cidr: str, tags: dict[str, str], name: str) -> dict[str, Any]:
        """What components/aws/network.py creates for two zones, tagged the way it tags them."""
        ec2, ids = self.raw_ec2, {"subnets": [], "nats": [], "eips": [], "rtbs": []}
        shared = {f"kubernetes.io/cluster/{name}": "shared"}
        ids["vpc"] = vpc = self.vpc(cidr, {**tags, "Name": f"{name}-vpc"})
        base = cidr.split(".0.0/")[0]
        igw = ec2.create_internet_gateway(
            TagSpecifications=tag_spec("internet-gateway", {**tags, "Name": f"{name}-igw"})
        )
        ids["igw"] = igw["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=ids["igw"], VpcId=vpc)
        public_rt = ec2.create_route_table(
            VpcId=vpc, TagSpecifications=tag_spec("route-table", {**tags, "Name": f"{name}-public"})
        )
        ids["rtbs"].append(public_rt["RouteTable"]["RouteTableId"])
        ec2.create_route(RouteTableId=ids["rtbs"][0], DestinationCidrBlock="0.0.0.0/0", GatewayId=ids["igw"])
        for i, zone in enumerate("ab"):
            public = self.subnet(
                vpc,
                f"{base}.{100 + i}.0/24",
                zone,
                {**tags, **shared, "Name": f"{name}-public-{zone}", "kubernetes.io/role/elb": "1"},
            )
            private = self.subnet(vpc, f"{base}.{i}.0/24", zone, {**tags, **shared, "Name": f"{name}-private-{zone}"})
            ids["subnets"] += [public, private]
            ec2.associate_route_table(RouteTableId=ids["rtbs"][0], SubnetId=public)
            eip = ec2.allocate_address(
                Domain="vpc", TagSpecifications=tag_spec("elastic-ip", {**tags, "Name": f"{name}-nat-{zone}"})
            )
            nat = ec2.create_nat_gateway(
                SubnetId=public,
                AllocationId=eip["AllocationId"],
                TagSpecifications=tag_spec("natgateway", {**tags, "Name": f"{name}-nat-{zone}"}),
            )["NatGateway"]["NatGatewayId"]
            ids["eips"].append(eip["AllocationId"])
            ids["nats"].append(nat)
            rt = ec2.create_route_table(
                VpcId=vpc, TagSpecifications=tag_spec("route-table", {**tags, "Name": f"{name}-private-{zone}"})
            )
            rtb = rt["RouteTable"]["RouteTableId"]
            ids["rtbs"].append(rtb)
            ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
            ec2.associate_route_table(RouteTableId=rtb, SubnetId=private)
        ids["s3"] = ec2.create_vpc_endpoint(
            VpcId=vpc,
            ServiceName=f"com.amazonaws.{REGION}.s3",
            VpcEndpointType="Gateway",
            RouteTableIds=ids["rtbs"][1:],
            TagSpecifications=tag_spec("vpc-endpoint", {**tags, "Name": f"{name}-s3"}),
        )["VpcEndpoint"]["VpcEndpointId"]
        return ids

    def inventory(self) -> dict[str, set[str]]:
        ec2, elbv2 = self.raw_ec2, self.raw_elbv2
        return {
            "lbs": {lb["LoadBalancerName"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]},
            "listeners": {
                ls["ListenerArn"]
                for lb in elbv2.describe_load_balancers()["LoadBalancers"]
                for ls in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
            },
            "tgs": {tg["TargetGroupName"] for tg in elbv2.describe_target_groups()["TargetGroups"]},
            "sgs": {sg["GroupId"] for sg in ec2.describe_security_groups()["SecurityGroups"]},
            "rules": {
                f"{sg['GroupId']}:{pair['GroupId']}"
                for sg in ec2.describe_security_groups()["SecurityGroups"]
                for perm in sg.get("IpPermissions", [])
                for pair in perm.get("UserIdGroupPairs", [])
            },
            "enis": {e["NetworkInterfaceId"] for e in ec2.describe_network_interfaces()["NetworkInterfaces"]},
            "vpcs": {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]},
            "subnets": {s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]},
            "nats": {n["NatGatewayId"] for n in ec2.describe_nat_gateways()["NatGateways"] if n["State"] != "deleted"},
            "eips": {a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]},
            "igws": {g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]},
            "rtbs": {t["RouteTableId"] for t in ec2.describe_route_tables()["RouteTables"]},
            "endpoints": {
                e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"] if e["State"] != "deleted"
            },
        }
