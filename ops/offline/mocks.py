"""What the offline engine answers in place of AWS and Kubernetes.

Resources echo their inputs plus the computed outputs a real provider would add (ids, ARNs,
endpoints). Invokes are answered only when listed in INVOKES: an unknown lookup raises,
so a new data source cannot silently return nothing.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Callable
from typing import Any

import pulumi

ACCOUNT_ID = "123456789012"
PARTITION = "aws"
# The primary CIDR an existing VPC reports (network.existingVpcId stacks).
EXISTING_VPC_CIDR = "10.60.0.0/16"


# Every stand-in the mocks invent for a value AWS (or Pulumi's auto-naming) assigns at
# `pulumi up`, and who assigns it, so the plan can show it as unknown instead of as real.
INVENTED: dict[str, str] = {}


def _hex(name: str, n: int = 17, by: str = "AWS") -> str:
    token = hashlib.sha256(name.encode()).hexdigest()[:n]
    if n >= 7:  # shorter ones only pick a zone, they never appear in a value
        INVENTED[token] = by
    return token


def _arn(service: str, resource: str, region: bool = True) -> str:
    return f"arn:{PARTITION}:{service}:{OfflineMocks.region if region else ''}:{ACCOUNT_ID}:{resource}"


def _uuid(name: str) -> str:
    h = _hex(name, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _physical_name(args: pulumi.runtime.MockResourceArgs) -> str:
    if args.inputs.get("name"):
        return args.inputs["name"]
    if args.inputs.get("namePrefix"):  # AWS appends a 26-character unique suffix
        return f"{args.inputs['namePrefix']}{_hex(args.name, 26)}"
    return f"{args.name}-{_hex(args.name, 7, by='Pulumi')}"


# Computed outputs by resource type token: inputs are echoed, these are added.
Computed = Callable[[pulumi.runtime.MockResourceArgs], dict[str, Any]]
COMPUTED: dict[str, Computed] = {
    "aws:ec2/vpc:Vpc": lambda a: {"arn": _arn("ec2", f"vpc/vpc-{_hex(a.name)}")},
    "aws:iam/role:Role": lambda a: {
        "arn": _arn("iam", f"role/{_physical_name(a)}", region=False),
        "name": _physical_name(a),
    },
    "aws:iam/policy:Policy": lambda a: {"arn": _arn("iam", f"policy/{_physical_name(a)}", region=False)},
    "aws:kms/key:Key": lambda a: {"arn": _arn("kms", f"key/{_hex(a.name, 32)}"), "keyId": _hex(a.name, 32)},
    "aws:eks/cluster:Cluster": lambda a: {
        "name": _physical_name(a),
        "arn": _arn("eks", f"cluster/{_physical_name(a)}"),
        "endpoint": f"https://{_hex(a.name, 32).upper()}.gr7.{OfflineMocks.region}.eks.amazonaws.com",
        "certificateAuthority": {"data": base64.b64encode(b"offline-ca").decode()},
        "vpcConfig": {
            **(a.inputs.get("vpcConfig") or {}),
            "clusterSecurityGroupId": f"sg-{_hex(a.name)}",
            "vpcId": f"vpc-{_hex('vpc')}",
        },
        "identities": [
            {
                "oidcs": [
                    {"issuer": f"https://oidc.eks.{OfflineMocks.region}.amazonaws.com/id/{_hex(a.name, 32).upper()}"}
                ]
            }
        ],
        "status": "ACTIVE",
    },
    "aws:eks/nodeGroup:NodeGroup": lambda a: {
        "arn": _arn("eks", f"nodegroup/{a.name}"),
        "status": "ACTIVE",
        "nodeGroupName": a.inputs.get("nodeGroupName")
        or f"{a.inputs.get('nodeGroupNamePrefix', a.name)}{_hex(a.name, 26)}",
        # EKS names the node group's Auto Scaling group eks-<node group>-<uuid>.
        "resources": [{"autoscalingGroups": [{"name": f"eks-{a.name}-{_hex(a.name, 8)}"}]}],
    },
    "aws:eks/addon:Addon": lambda a: {"arn": _arn("eks", f"addon/{a.name}")},
    # A bucket's id is its name (the weight mirror names it up front).
    "aws:s3/bucket:Bucket": lambda a: {
        "arn": f"arn:{PARTITION}:s3:::{a.inputs['bucket']}",
        "bucketRegionalDomainName": f"{a.inputs['bucket']}.s3.{OfflineMocks.region}.amazonaws.com",
    },
    "aws:cloudwatch/logGroup:LogGroup": lambda a: {"arn": _arn("logs", f"log-group:{a.inputs.get('name', a.name)}")},
    "aws:ec2/launchTemplate:LaunchTemplate": lambda a: {
        "latestVersion": 1,
        "arn": _arn("ec2", f"launch-template/lt-{_hex(a.name)}"),
    },
    "aws:lb/loadBalancer:LoadBalancer": lambda a: {
        "dnsName": f"{a.name}-{_hex(a.name, 10)}.elb.{OfflineMocks.region}.amazonaws.com"
    },
    # AMP returns the workspace's query/remote-write base URL, ending in a slash.
    "aws:amp/workspace:Workspace": lambda a: {
        "arn": _arn("aps", f"workspace/ws-{_hex(a.typ + a.name)}"),
        "prometheusEndpoint": f"https://aps-workspaces.{OfflineMocks.region}.amazonaws.com/workspaces/ws-{_hex(a.typ + a.name)}/",
    },
    # WAFv2 web ACL ARNs: regional/webacl/<name>/<uuid>; AWS assigns the uuid.
    "aws:wafv2/webAcl:WebAcl": lambda a: {
        "arn": _arn("wafv2", f"regional/webacl/{_physical_name(a)}/{_uuid(a.name)}"),
        "id": _uuid(a.name),
    },
    # The controller publishes the ALB's DNS name in the Ingress status.
    "kubernetes:networking.k8s.io/v1:Ingress": lambda a: {
        "status": {
            "loadBalancer": {
                "ingress": [{"hostname": f"k8s-{_hex(a.name, 10)}.{OfflineMocks.region}.elb.amazonaws.com"}]
            }
        }
    },
}
# Ids that must look like the real thing because other resources validate or parse them.
ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc-",
    "aws:ec2/subnet:Subnet": "subnet-",
    "aws:ec2/securityGroup:SecurityGroup": "sg-",
    "aws:ec2/internetGateway:InternetGateway": "igw-",
    "aws:ec2/natGateway:NatGateway": "nat-",
    "aws:ec2/eip:Eip": "eipalloc-",
    "aws:ec2/routeTable:RouteTable": "rtb-",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt-",
    "aws:amp/workspace:Workspace": "ws-",
}

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
INVOKES: dict[str, Invoke] = {
    "aws:index/getCallerIdentity:getCallerIdentity": lambda _: {
        "accountId": ACCOUNT_ID,
        # An assumed role, as with SSO or CI: access entries need the IAM role behind it.
        "arn": f"arn:{PARTITION}:sts::{ACCOUNT_ID}:assumed-role/deployer/offline-session",
        "userId": "AROAOFFLINEDEPLOYER:offline-session",
        "id": ACCOUNT_ID,
    },
    "aws:index/getPartition:getPartition": lambda _: {
        "partition": PARTITION,
        "dnsSuffix": "amazonaws.com",
        "id": PARTITION,
        "reverseDnsPrefix": "com.amazonaws",
    },
    "aws:index/getAvailabilityZones:getAvailabilityZones": lambda _: {
        "names": [f"{OfflineMocks.region}{z}" for z in "abc"],
        "zoneIds": [f"use2-az{i}" for i in (1, 2, 3)],
        "id": OfflineMocks.region,
    },
    "aws:iam/getSessionContext:getSessionContext": lambda args: _session_context(args["arn"]),
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": lambda args: _offerings(args),
    # The account has no buckets yet: a first `pulumi up` (tests/test_second_life.py walks the next).
    "aws:s3/getBuckets:getBuckets": lambda args: {"buckets": [], "region": OfflineMocks.region, "id": "buckets"},
    # A shared weight mirror's manifest key (made by the stack that owns the bucket).
    "aws:kms/getAlias:getAlias": lambda args: {
        "name": args["name"],
        "arn": _arn("kms", args["name"]),
        "targetKeyId": _hex(args["name"], 32),
        "targetKeyArn": _arn("kms", f"key/{_hex(args['name'], 32)}"),
        "id": args["name"],
    },
    "aws:ec2/getVpc:getVpc": lambda args: {"id": args["id"], "cidrBlock": EXISTING_VPC_CIDR},
    "aws:ec2/getSubnet:getSubnet": lambda args: {
        "id": args["id"],
        "availabilityZone": subnet_zone(args["id"]),
        "cidrBlock": subnet_cidr(args["id"]),
        "vpcId": f"vpc-{_hex('existing-vpc')}",
        "state": "available",
    },
}

# The GPU types are offered in zones b and c only, so the zone filtering is exercised.
GPU_OFFERING_ZONE_SUFFIXES = ("b", "c")


def _offerings(args: dict[str, Any]) -> dict[str, Any]:
    if args.get("locationType") != "availability-zone":
        raise UnknownInvokeError(
            f"getInstanceTypeOfferings answered only for locationType availability-zone, got {args!r}"
        )
    types = [v for f in args.get("filters") or [] if f["name"] == "instance-type" for v in f["values"]]
    zones = [f"{OfflineMocks.region}{z}" for z in GPU_OFFERING_ZONE_SUFFIXES]
    pairs = [(t, z) for t in types for z in zones]
    return {
        "instanceTypes": [t for t, _ in pairs],
        "locations": [z for _, z in pairs],
        "locationTypes": ["availability-zone"] * len(pairs),
        "id": OfflineMocks.region,
    }


def subnet_cidr(subnet_id: str) -> str:
    """The CIDR of an existing subnet: a /24 of the existing VPC, stable per id."""
    vpc = ipaddress.ip_network(EXISTING_VPC_CIDR)
    blocks = 2 ** (24 - vpc.prefixlen)
    return str(list(vpc.subnets(new_prefix=24))[int(hashlib.sha256(subnet_id.encode()).hexdigest(), 16) % blocks])


def subnet_zone(subnet_id: str) -> str:
    """The zone an existing subnet is in: stable per id, spread over zones a-c."""
    return f"{OfflineMocks.region}{'abc'[int(_hex(subnet_id, 4), 16) % 3]}"


def _session_context(arn: str) -> dict[str, Any]:
    """Like IAM: an STS assumed-role ARN maps to its role; any other ARN passes through."""
    parts = arn.split(":")
    if parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        role = parts[5].split("/")[1]
        issuer = f"arn:{parts[1]}:iam::{parts[4]}:role/{role}"
        return {
            "arn": arn,
            "issuerArn": issuer,
            "issuerName": role,
            "issuerId": "AROAOFFLINEDEPLOYER",
            "sessionName": parts[5].split("/")[2],
            "id": arn,
        }
    return {
        "arn": arn,
        "issuerArn": arn,
        "issuerName": arn.rsplit("/", 1)[-1],
        "issuerId": "",
        "sessionName": "",
        "id": arn,
    }


class UnknownInvokeError(RuntimeError):
    """A data source the offline engine has no answer for: add it to ops/offline/mocks.py INVOKES."""


class OfflineMocks(pulumi.runtime.Mocks):
    region = "us-east-2"

    def __init__(self, region: str):
        OfflineMocks.region = region or "us-east-2"
        INVENTED.clear()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        outputs = dict(args.inputs)
        extra = COMPUTED.get(args.typ)
        if extra:
            outputs.update(extra(args))
        resource_id = args.resource_id or f"{ID_PREFIX.get(args.typ, '')}{_hex(args.typ + args.name)}"
        if args.typ == "aws:s3/bucket:Bucket":
            resource_id = args.inputs["bucket"]
        if args.typ == "aws:kms/alias:Alias":  # the provider's id of an alias is its name
            resource_id = args.inputs["name"]
        if args.typ in ID_PREFIX:
            outputs.setdefault("arn", _arn("ec2", f"{resource_id}"))
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        answer = INVOKES.get(args.token)
        if answer is None:
            raise UnknownInvokeError(
                f"offline engine has no answer for invoke {args.token}; add one to ops/offline/mocks.py INVOKES"
            )
        return answer(args.args), []
