"""What the offline engine answers in place of AWS and Kubernetes.

Resources echo their inputs plus the computed outputs a real provider would add (ids, ARNs,
endpoints). Invokes are answered only when listed in INVOKES: an unknown lookup raises,
so a new data source cannot silently return nothing.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

import pulumi

ACCOUNT_ID = "123456789012"
PARTITION = "aws"


def _hex(name: str, n: int = 17) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:n]


def _region(args: pulumi.runtime.MockResourceArgs | pulumi.runtime.MockCallArgs) -> str:
    return OfflineMocks.region


def _arn(service: str, resource: str, region: bool = True) -> str:
    return f"arn:{PARTITION}:{service}:{OfflineMocks.region if region else ''}:{ACCOUNT_ID}:{resource}"


def _physical_name(args: pulumi.runtime.MockResourceArgs) -> str:
    return args.inputs.get("name") or f"{args.name}-{_hex(args.name, 7)}"


# Computed outputs by resource type token: inputs are echoed, these are added.
Computed = Callable[[pulumi.runtime.MockResourceArgs], dict[str, Any]]
COMPUTED: dict[str, Computed] = {
    "aws:ec2/vpc:Vpc": lambda a: {"arn": _arn("ec2", f"vpc/vpc-{_hex(a.name)}")},
    "aws:iam/role:Role": lambda a: {"arn": _arn("iam", f"role/{_physical_name(a)}", region=False), "name": _physical_name(a)},
    "aws:iam/policy:Policy": lambda a: {"arn": _arn("iam", f"policy/{_physical_name(a)}", region=False)},
    "aws:kms/key:Key": lambda a: {"arn": _arn("kms", f"key/{_hex(a.name, 32)}"), "keyId": _hex(a.name, 32)},
    "aws:eks/cluster:Cluster": lambda a: {
        "name": _physical_name(a),
        "arn": _arn("eks", f"cluster/{_physical_name(a)}"),
        "endpoint": f"https://{_hex(a.name, 32).upper()}.gr7.{OfflineMocks.region}.eks.amazonaws.com",
        "certificateAuthority": {"data": base64.b64encode(b"offline-ca").decode()},
        "vpcConfig": {**(a.inputs.get("vpcConfig") or {}), "clusterSecurityGroupId": f"sg-{_hex(a.name)}", "vpcId": f"vpc-{_hex('vpc')}"},
        "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{OfflineMocks.region}.amazonaws.com/id/{_hex(a.name, 32).upper()}"}]}],
        "status": "ACTIVE",
    },
    "aws:eks/nodeGroup:NodeGroup": lambda a: {"arn": _arn("eks", f"nodegroup/{a.name}"), "status": "ACTIVE"},
    "aws:ec2/launchTemplate:LaunchTemplate": lambda a: {"latestVersion": 1, "arn": _arn("ec2", f"launch-template/lt-{_hex(a.name)}")},
    "aws:lb/loadBalancer:LoadBalancer": lambda a: {"dnsName": f"{a.name}-{_hex(a.name, 10)}.elb.{OfflineMocks.region}.amazonaws.com"},
    "kubernetes:core/v1:Service": lambda a: {
        "status": {"loadBalancer": {"ingress": [{"hostname": f"k8s-{_hex(a.name, 10)}.elb.{OfflineMocks.region}.amazonaws.com"}]}}
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
}

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
INVOKES: dict[str, Invoke] = {
    "aws:index/getCallerIdentity:getCallerIdentity": lambda _: {
        "accountId": ACCOUNT_ID,
        "arn": f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/deployer",
        "userId": "AROAOFFLINEDEPLOYER",
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
    "aws:iam/getSessionContext:getSessionContext": lambda args: {
        "arn": args.get("arn"),
        "issuerArn": f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/deployer",
        "issuerName": "deployer",
        "issuerId": "AROAOFFLINEDEPLOYER",
        "id": args.get("arn"),
    },
}


class UnknownInvokeError(RuntimeError):
    """A data source the offline engine has no answer for: add it to ops/mocks.py INVOKES."""


class OfflineMocks(pulumi.runtime.Mocks):
    region = "us-east-2"

    def __init__(self, region: str):
        OfflineMocks.region = region or "us-east-2"

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        outputs = dict(args.inputs)
        extra = COMPUTED.get(args.typ)
        if extra:
            outputs.update(extra(args))
        resource_id = args.resource_id or f"{ID_PREFIX.get(args.typ, '')}{_hex(args.typ + args.name)}"
        if args.typ in ID_PREFIX:
            outputs.setdefault("arn", _arn("ec2", f"{resource_id}"))
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, None]:
        answer = INVOKES.get(args.token)
        if answer is None:
            raise UnknownInvokeError(f"offline engine has no answer for invoke {args.token}; add one to ops/mocks.py INVOKES")
        return answer(args.args), None
