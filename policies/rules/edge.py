"""Edge and AWS-scoping rules: TLS on every ALB (internal ones too), access logs and a web ACL on
every ALB, a web ACL that refuses keyless requests and rate-limits each client, an S3 gateway
endpoint that admits named buckets only, security-group changes held to one VPC, and a weight
mirror whose bucket refuses every writer but the fill Job."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .common import ALB, PLAIN_HTTP_ACCEPTED_ANNOTATION, Props, _map, _object_name, _seq

# The EC2 actions that change a security group, and the condition keys that hold them to one VPC
# (Service Authorization Reference, Amazon EC2: `ec2:Vpc` on the security-group resource type).
SECURITY_GROUP_ACTIONS = frozenset(
    {
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:AuthorizeSecurityGroupEgress",
        "ec2:RevokeSecurityGroupIngress",
        "ec2:RevokeSecurityGroupEgress",
        "ec2:DeleteSecurityGroup",
        "ec2:CreateSecurityGroup",
        "ec2:ModifySecurityGroupRules",
    }
)
VPC_CONDITION_KEYS = ("ec2:Vpc", "ec2:vpc")
MIN_BEARER_BYTES = len("bearer ") + 32
# A stack's weight mirror: `<cluster>-weights-<account>-<region>` (components/aws/bucket_name.py);
# its object writes outside compile-cache/ (components/weights/mirror.py NOT_WEIGHTS).
WEIGHT_MIRROR_BUCKET = re.compile(r"-weights-\d{12}-[a-z]{2}(-[a-z]+)+-\d$")
MIRROR_WRITES = frozenset({"s3:PutObject", "s3:DeleteObject"})
COMPILE_CACHE_FOLDER = "compile-cache/"


def _alb_annotations(resource_type: str, props: Props) -> Mapping[str, Any] | None:
    if resource_type != "kubernetes:networking.k8s.io/v1:Ingress":
        return None
    spec = _map(props.get("spec"))
    annotations = _map(_map(props.get("metadata")).get("annotations"))
    if spec.get("ingressClassName") != "alb" and not any(k.startswith(f"{ALB}/") for k in annotations):
        return None
    return annotations


def alb_tls_on_every_scheme(resource_type: str, props: Props) -> list[str]:
    """The key and the prompts cross the client networks of an internal ALB too."""
    annotations = _alb_annotations(resource_type, props)
    if annotations is None or annotations.get(f"{ALB}/scheme") == "internet-facing":
        return []  # internet-facing: public-endpoint-tls-and-ranges
    if annotations.get(PLAIN_HTTP_ACCEPTED_ANNOTATION) == "true":
        return []
    try:
        listeners = json.loads(annotations.get(f"{ALB}/listen-ports") or '[{"HTTP": 80}]')
    except ValueError:
        listeners = [{"HTTP": "?"}]
    plain = [f"{p} {port}" for item in _seq(listeners) for p, port in _map(item).items() if p != "HTTPS"]
    problems = []
    if plain or not annotations.get(f"{ALB}/certificate-arn"):
        problems.append(
            f"Ingress {_object_name(props)} is an internal load balancer without TLS (plain listeners {plain}, "
            f"certificate-arn {'set' if annotations.get(f'{ALB}/certificate-arn') else 'missing'}): the API key "
            "would cross the client networks in clear (set endpoint.certificateArn, or the loud opt-out)"
        )
    policy = str(annotations.get(f"{ALB}/ssl-policy") or "")
    if annotations.get(f"{ALB}/certificate-arn") and "-Res-" not in policy:
        problems.append(
            f"Ingress {_object_name(props)} TLS policy {policy or '(ELB default)'} is not a restricted (-Res-) one"
        )
    return problems


def _attributes(annotations: Mapping[str, Any]) -> dict[str, str]:
    raw = str(annotations.get(f"{ALB}/load-balancer-attributes") or "")
    return dict(item.split("=", 1) for item in raw.split(",") if "=" in item)


def alb_access_logs_and_web_acl(resource_type: str, props: Props) -> list[str]:
    """Who called is recorded, and a web ACL stands in front: keyless requests never reach the
    targets (nor wake a GPU node from zero), each client is rate-limited."""
    annotations = _alb_annotations(resource_type, props)
    if annotations is None:
        return []
    what = f"Ingress {_object_name(props)}"
    problems = []
    attributes = _attributes(annotations)
    if attributes.get("access_logs.s3.enabled") != "true" or not attributes.get("access_logs.s3.bucket"):
        problems.append(
            f"{what} has no ALB access logs (load-balancer-attributes access_logs.s3.enabled=true and a bucket)"
        )
    if not annotations.get(f"{ALB}/wafv2-acl-arn"):
        problems.append(f"{what} has no WAFv2 web ACL (annotation {ALB}/wafv2-acl-arn)")
    return problems


def _statements(rule: Mapping[str, Any]) -> Mapping[str, Any]:
    return _map(rule.get("statement"))


def _blocks(rule: Mapping[str, Any]) -> bool:
    return "block" in _map(rule.get("action"))


def _refuses_missing_bearer(rule: Mapping[str, Any]) -> bool:
    inner = _map(_map(_statements(rule).get("notStatement")).get("statement"))
    match = _map(inner.get("byteMatchStatement"))
    header = _map(_map(match.get("fieldToMatch")).get("singleHeader")).get("name")
    lowered = any(_map(t).get("type") == "LOWERCASE" for t in _seq(match.get("textTransformations")))
    return (
        _blocks(rule)
        and header == "authorization"
        and match.get("positionalConstraint") == "STARTS_WITH"
        and match.get("searchString") == "bearer "
        and lowered
    )


def web_acl_guards_the_endpoint(resource_type: str, props: Props) -> list[str]:
    """The stack's web ACL blocks requests without a bearer key and rate-limits each client IP."""
    if resource_type != "aws:wafv2/webAcl:WebAcl":
        return []
    rules = [_map(r) for r in _seq(props.get("rules"))]
    problems = []
    if not any(_refuses_missing_bearer(r) for r in rules):
        problems.append(
            "web ACL has no blocking rule for requests without `Authorization: Bearer ...`: a keyless request"
            " would reach the ALB, and at zero replicas its 503 wakes a GPU node"
        )
    if not any(
        _blocks(r) and _map(_statements(r).get("rateBasedStatement")).get("aggregateKeyType") == "IP" for r in rules
    ):
        problems.append("web ACL has no blocking rate-based rule per client IP")
    return problems


def _policy(value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return None  # unknown at preview


def s3_gateway_endpoint_policy(resource_type: str, props: Props) -> list[str]:
    """Without a policy the S3 gateway endpoint admits every bucket of every account: a pod could
    copy what it reads anywhere."""
    if resource_type != "aws:ec2/vpcEndpoint:VpcEndpoint" or not str(props.get("serviceName") or "").endswith(".s3"):
        return []
    if props.get("policy") is None:
        return ["S3 gateway endpoint has no policy: it admits every bucket of every account"]
    doc = _policy(props.get("policy"))
    if doc is None:
        return []
    wide = [
        r
        for st in _seq(doc.get("Statement"))
        if _map(st).get("Effect") == "Allow"
        for r in (
            _seq(_map(st).get("Resource")) if not isinstance(_map(st).get("Resource"), str) else [_map(st)["Resource"]]
        )
        if r in ("*", "arn:aws:s3:::*", "arn:aws:s3:::*/*")
    ]
    if wide:
        return [f"S3 gateway endpoint policy allows every bucket ({', '.join(sorted(set(wide)))})"]
    return []


def _actions(statement: Mapping[str, Any]) -> set[str]:
    action = statement.get("Action")
    return {action} if isinstance(action, str) else set(_seq(action))


def _held_to_a_vpc(statement: Mapping[str, Any]) -> bool:
    conditions = _map(statement.get("Condition"))
    for operator in ("ArnEquals", "ArnLike", "StringEquals", "StringLike"):
        if any(k in _map(conditions.get(operator)) for k in VPC_CONDITION_KEYS):
            return True
    resources = statement.get("Resource")
    resources = [resources] if isinstance(resources, str) else list(_seq(resources))
    # CreateSecurityGroup's `vpc` resource named exactly: that VPC only
    return bool(resources) and all(":vpc/vpc-" in str(r) for r in resources)


def security_group_changes_held_to_a_vpc(resource_type: str, props: Props) -> list[str]:
    """An identity that may change security groups may change them in its own VPC only."""
    if resource_type not in ("aws:iam/policy:Policy", "aws:iam/rolePolicy:RolePolicy"):
        return []
    doc = _policy(props.get("policy"))
    if doc is None:
        return []
    loose = [
        sorted(_actions(_map(st)) & SECURITY_GROUP_ACTIONS)
        for st in _seq(doc.get("Statement"))
        if _map(st).get("Effect") == "Allow"
        and _actions(_map(st)) & SECURITY_GROUP_ACTIONS
        and not _held_to_a_vpc(_map(st))
    ]
    return [
        f"IAM policy allows {actions} without an ec2:Vpc condition (any security group in the account)"
        for actions in loose
    ]


def _denies_to_all(statement: Mapping[str, Any]) -> bool:
    return statement.get("Effect") == "Deny" and statement.get("Principal") in ("*", {"AWS": "*"})


def _only_the_writer_excepted(statement: Mapping[str, Any]) -> bool:
    """No condition (nobody writes), or one ArnNotEquals on aws:PrincipalArn naming one role."""
    condition = _map(statement.get("Condition"))
    if not condition:
        return True
    arn = _map(condition.get("ArnNotEquals")).get("aws:PrincipalArn")
    return (
        set(condition) == {"ArnNotEquals"}
        and set(_map(condition["ArnNotEquals"])) == {"aws:PrincipalArn"}
        and isinstance(arn, str)
    )


def _covers_the_weights(statement: Mapping[str, Any], bucket: str) -> bool:
    if "NotResource" in statement:
        return all(str(r).endswith(f":::{bucket}/{COMPILE_CACHE_FOLDER}*") for r in _seq(statement["NotResource"]))
    resources = statement.get("Resource")
    resources = [resources] if isinstance(resources, str) else list(_seq(resources))
    return any(str(r).endswith(f":::{bucket}/*") for r in resources)


def weight_mirror_refuses_other_writers(resource_type: str, props: Props) -> list[str]:
    """The weights are code the GPU nodes run (--trust-remote-code): the mirror's own bucket policy,
    not each principal's IAM, decides who writes them."""
    bucket = str(props.get("bucket") or "")
    if resource_type != "aws:s3/bucketPolicy:BucketPolicy" or not WEIGHT_MIRROR_BUCKET.search(bucket):
        return []
    doc = _policy(props.get("policy"))
    if doc is None:
        return []
    statements = [_map(st) for st in _seq(doc.get("Statement"))]
    problems = []
    tls_only = any(
        _denies_to_all(st)
        and "s3:*" in _actions(st)
        and _map(_map(st.get("Condition")).get("Bool")).get("aws:SecureTransport") in ("false", False)
        for st in statements
    )
    if not tls_only:
        problems.append(f"weight mirror {bucket}: the bucket policy does not deny requests without TLS")
    guarded = [
        st
        for st in statements
        if _denies_to_all(st) and MIRROR_WRITES <= _actions(st) and _covers_the_weights(st, bucket)
    ]
    if not guarded or not all(_only_the_writer_excepted(st) for st in guarded):
        problems.append(
            f"weight mirror {bucket}: the bucket policy does not deny object writes under the weights to every"
            " principal but the fill Job's role (ArnNotEquals aws:PrincipalArn, or no exception at all)"
        )
    return problems
