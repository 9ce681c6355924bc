"""Failing and passing fixtures of the edge rules (policies/rules/edge.py), made from the rendered
stacks and broken one way each; tests/test_policies.py runs them with every other rule's."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
VPC_ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
POLICY = "aws:iam/policy:Policy"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
A = "alb.ingress.kubernetes.io"


def _props(type_token: str, stack: str, name_part: str = "") -> dict[str, Any]:
    from test_policies import props  # at call time: test_policies imports this module

    return props(type_token, stack, name_part)


def _ingress(stack: str = "dev") -> dict[str, Any]:
    return _props(INGRESS, stack, "vllm-ingress")


def _annotations(p: dict[str, Any]) -> dict[str, Any]:
    return p["metadata"]["annotations"]


def _plain(stack: str, accepted: str | None) -> dict[str, Any]:
    p = _ingress(stack)
    a = _annotations(p)
    a[f"{A}/listen-ports"] = json.dumps([{"HTTP": 80}])
    a.pop(f"{A}/certificate-arn")
    a.pop(f"{A}/ssl-policy")
    if accepted is not None:
        a["minimax-vllm/plain-http-accepted"] = accepted
    return p


def _without_attribute(prefix: str) -> dict[str, Any]:
    p = _ingress()
    a = _annotations(p)
    key = f"{A}/load-balancer-attributes"
    a[key] = ",".join(x for x in a[key].split(",") if not x.startswith(prefix))
    return p


def _web_acl_without(rule_key: str) -> dict[str, Any]:
    p = _props(WEB_ACL, "dev")
    p["rules"] = [r for r in p["rules"] if rule_key not in json.dumps(r["statement"])]
    return p


def _web_acl_counting_keyless() -> dict[str, Any]:
    p = _props(WEB_ACL, "dev")
    for r in p["rules"]:
        if "notStatement" in r["statement"]:
            r["action"] = {"count": {}}  # labels, but lets it through to the ALB
    return p


def _s3_endpoint(policy: Any) -> dict[str, Any]:
    p = next(x for x in [_props(VPC_ENDPOINT, "dev")] if x["serviceName"].endswith(".s3"))  # the only VPC endpoint
    if policy is None:
        p.pop("policy")
    else:
        p["policy"] = json.dumps(policy)
    return p


def _published_controller_policy() -> dict[str, Any]:
    from components.kubernetes import load_balancer_controller

    p = _props(POLICY, "dev", "lbc-policy")
    p["policy"] = json.dumps(load_balancer_controller.published_policy())
    return p


FAILING: list[tuple[str, str, Callable[[], dict[str, Any]], str]] = [
    ("alb-tls-on-every-scheme", INGRESS, lambda: _plain("dev", None), "internal load balancer without TLS"),
    ("alb-tls-on-every-scheme", INGRESS, lambda: _plain("staging", "false"), "internal load balancer without TLS"),
    (
        "alb-tls-on-every-scheme",
        INGRESS,
        lambda: (lambda p: _annotations(p).update({f"{A}/ssl-policy": "ELBSecurityPolicy-2016-08"}) or p)(_ingress()),
        "not a restricted (-Res-) one",
    ),
    (
        "alb-access-logs-and-web-acl",
        INGRESS,
        lambda: _without_attribute("access_logs.s3.enabled"),
        "no ALB access logs",
    ),
    (
        "alb-access-logs-and-web-acl",
        INGRESS,
        lambda: (lambda p: _annotations(p).pop(f"{A}/wafv2-acl-arn") and p)(_ingress("prod-8gpu")),
        "no WAFv2 web ACL",
    ),
    ("web-acl-guards-the-endpoint", WEB_ACL, lambda: _web_acl_without("notStatement"), "Authorization: Bearer"),
    ("web-acl-guards-the-endpoint", WEB_ACL, _web_acl_counting_keyless, "Authorization: Bearer"),
    ("web-acl-guards-the-endpoint", WEB_ACL, lambda: _web_acl_without("rateBasedStatement"), "rate-based rule"),
    ("s3-gateway-endpoint-policy", VPC_ENDPOINT, lambda: _s3_endpoint(None), "has no policy"),
    (
        "s3-gateway-endpoint-policy",
        VPC_ENDPOINT,
        lambda: _s3_endpoint({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}]}),
        "allows every bucket",
    ),
    ("security-group-changes-held-to-a-vpc", POLICY, _published_controller_policy, "without an ec2:Vpc condition"),
]


def _mirror_policy(change: Callable[[list[dict[str, Any]]], None]) -> dict[str, Any]:
    """prod-8gpu's weight mirror bucket policy, its statements changed one way."""
    p = _props(BUCKET_POLICY, "prod-8gpu", "weights-policy")
    doc = json.loads(p["policy"])
    change(doc["Statement"])
    p["policy"] = json.dumps(doc)
    return p


def _writes_deny(statements: list[dict[str, Any]]) -> dict[str, Any]:
    (deny,) = [s for s in statements if "s3:PutObject" in s["Action"]]
    return deny


FAILING += [
    (
        "weight-mirror-refuses-other-writers",
        BUCKET_POLICY,
        lambda: _mirror_policy(lambda sts: sts.remove(_writes_deny(sts))),
        "does not deny object writes",
    ),
    (  # an exception for the whole account: any role of it could write the code the nodes run
        "weight-mirror-refuses-other-writers",
        BUCKET_POLICY,
        lambda: _mirror_policy(
            lambda sts: _writes_deny(sts).update(
                Condition={"StringNotEquals": {"aws:PrincipalAccount": "123456789012"}}
            )
        ),
        "does not deny object writes",
    ),
    (  # the Deny held to one folder leaves the rest writable
        "weight-mirror-refuses-other-writers",
        BUCKET_POLICY,
        lambda: _mirror_policy(lambda sts: _writes_deny(sts).update(NotResource=["arn:aws:s3:::x/MiniMaxAI/*"])),
        "does not deny object writes",
    ),
    (
        "weight-mirror-refuses-other-writers",
        BUCKET_POLICY,
        lambda: _mirror_policy(lambda sts: sts.remove(next(s for s in sts if s["Sid"] == "TlsOnly"))),
        "without TLS",
    ),
]

PASSING: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
    (
        "weight-mirror-refuses-other-writers",
        BUCKET_POLICY,
        lambda: _props(BUCKET_POLICY, "prod-8gpu", "weights-policy"),
    ),
    (  # a signed revision: nobody writes, no exception
        "weight-mirror-refuses-other-writers",
        BUCKET_POLICY,
        lambda: _mirror_policy(lambda sts: _writes_deny(sts).pop("Condition")),
    ),
    ("alb-tls-on-every-scheme", INGRESS, _ingress),
    ("alb-tls-on-every-scheme", INGRESS, lambda: _plain("dev", "true")),  # the loud opt-out
    ("alb-tls-on-every-scheme", INGRESS, lambda: _ingress("prod-8gpu")),  # internet-facing: the other rule's
    ("alb-access-logs-and-web-acl", INGRESS, _ingress),
    ("alb-access-logs-and-web-acl", INGRESS, lambda: _ingress("prod-4gpu")),
    ("web-acl-guards-the-endpoint", WEB_ACL, lambda: _props(WEB_ACL, "prod-8gpu")),
    ("s3-gateway-endpoint-policy", VPC_ENDPOINT, lambda: _props(VPC_ENDPOINT, "prod-8gpu")),
    ("security-group-changes-held-to-a-vpc", POLICY, lambda: _props(POLICY, "dev", "lbc-policy")),
    ("security-group-changes-held-to-a-vpc", POLICY, lambda: _props(POLICY, "dev", "cluster-autoscaler")),
]
