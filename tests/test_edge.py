"""In front of the ALB: the web ACL keeps keyless requests from waking a GPU node, access logs
land in a bucket the stack owns and `destroy` empties, and TLS is asked of internal endpoints too.

The web ACL is judged by evaluating the rendered rules on requests (WAF's semantics for the
statements used: a byte match after its text transformation, a size constraint, NOT, a
rate-based count per client IP), then feeding what reaches the ALB into the wake trigger.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from test_policies import STACKS, rendered

from components.aws import edge
from components.scaling import policy as scaling_policy
from components.serving import endpoint
from ops.offline.engine import render

WEB_ACL = "aws:wafv2/webAcl:WebAcl"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
KEY = "Bearer " + "k" * 64  # a stack key: `openssl rand -hex 32`


@dataclass(frozen=True)
class Request:
    client_ip: str
    headers: Mapping[str, str]
    path: str = "/v1/chat/completions"


# --- a WAF evaluator for the statements the stack uses ----------------------------------------


def _header(request: Request, field: Mapping[str, Any]) -> str | None:
    name = field["singleHeader"]["name"]
    return next((v for k, v in request.headers.items() if k.lower() == name), None)


def _transform(value: str, transformations: list[Mapping[str, Any]]) -> str:
    for t in sorted(transformations, key=lambda t: t["priority"]):
        if t["type"] == "LOWERCASE":
            value = value.lower()
        elif t["type"] != "NONE":
            raise AssertionError(f"text transformation {t['type']} not modelled")
    return value


def _matches(statement: Mapping[str, Any], request: Request, rate: Counter) -> bool:
    if "notStatement" in statement:
        return not _matches(statement["notStatement"]["statement"], request, rate)
    if "byteMatchStatement" in statement:
        s = statement["byteMatchStatement"]
        value = _header(request, s["fieldToMatch"])
        if value is None:
            return False  # WAF: a missing header does not match
        value = _transform(value, s["textTransformations"])
        assert s["positionalConstraint"] == "STARTS_WITH", s
        return value.startswith(s["searchString"])
    if "sizeConstraintStatement" in statement:
        s = statement["sizeConstraintStatement"]
        value = _header(request, s["fieldToMatch"])
        if value is None:
            return False
        size = len(_transform(value, s["textTransformations"]).encode())
        return {"LT": size < s["size"], "LE": size <= s["size"], "GT": size > s["size"]}[s["comparisonOperator"]]
    if "rateBasedStatement" in statement:
        s = statement["rateBasedStatement"]
        assert s["aggregateKeyType"] == "IP"
        rate[request.client_ip] += 1
        return rate[request.client_ip] > s["limit"]
    raise AssertionError(f"statement not modelled: {sorted(statement)}")


def waf_verdict(acl: Mapping[str, Any], request: Request, rate: Counter) -> tuple[str, int | None]:
    """('block', status) or ('allow', None): rules by priority, the first terminating action wins."""
    for rule in sorted(acl["rules"], key=lambda r: r["priority"]):
        if _matches(rule["statement"], request, rate):
            if "block" in rule["action"]:
                return "block", (rule["action"]["block"].get("customResponse") or {}).get("responseCode", 403)
    return ("allow", None) if "allow" in acl["defaultAction"] else ("block", 403)


def web_acl(stack: str) -> dict[str, Any]:
    (acl,) = rendered(stack).of_type(WEB_ACL)
    return acl.inputs


def wake_metric(stack: str, requests: list[Request]) -> int:
    """HTTPCode_ELB_503_Count while no replica runs: every request the web ACL lets through to a
    forwarded path finds an empty target group and is answered 503 by the ALB itself. A request
    the web ACL blocks is answered by WAF (401 here) and never reaches the listener rules."""
    acl, rate = web_acl(stack), Counter()
    return sum(1 for r in requests if waf_verdict(acl, r, rate)[0] == "allow" and endpoint.reaches_vllm(r.path))


def wakes(stack: str, metric: int) -> bool:
    """KEDA's wake trigger: active when the metric is above its activation value."""
    (obj,) = rendered(stack).of_type(SCALED_OBJECT)
    (trigger,) = [t for t in obj.inputs["spec"]["triggers"] if t["type"] == "aws-cloudwatch"]
    return metric > float(trigger["metadata"]["activationTargetMetricValue"])


SCALE_TO_ZERO = [s for s in STACKS if rendered(s).of_type(SCALED_OBJECT)]


def test_the_scale_to_zero_stacks_are_the_ones_checked() -> None:
    assert SCALE_TO_ZERO == ["dev", "staging"]


@pytest.mark.parametrize("stack", SCALE_TO_ZERO)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-the-key"},  # ops verify's wrong key: short
        {"X-Api-Key": "k" * 64},
    ],
    ids=["none", "empty", "basic", "bare-scheme", "short", "other-header"],
)
def test_a_keyless_flood_never_wakes_a_gpu_node(stack: str, headers: dict[str, str]) -> None:
    """10,000 requests from 50 addresses over an hour, on every exposed path: no 503 reaches
    CloudWatch, so the wake trigger stays inactive and no p5 starts, however often it is tried."""
    flood = [
        Request(f"10.1.{i % 50}.7", headers, path) for i in range(5000) for path in ("/v1/chat/completions", "/health")
    ]
    metric = wake_metric(stack, flood)
    assert metric == 0
    assert not wakes(stack, metric)


@pytest.mark.parametrize("stack", SCALE_TO_ZERO)
def test_a_request_with_a_key_still_wakes_the_stack(stack: str) -> None:
    """The guard must not lock clients out: one request carrying a key wakes replicas from zero,
    the scheme in any case, as vLLM accepts it."""
    for value in (KEY, "bearer " + "k" * 32, "BEARER " + "k" * 40):
        metric = wake_metric(stack, [Request("10.1.2.3", {"Authorization": value})])
        assert metric == 1 and wakes(stack, metric), value


@pytest.mark.parametrize("stack", STACKS)
def test_keyless_requests_are_refused_with_vllms_own_status(stack: str) -> None:
    acl = web_acl(stack)
    assert waf_verdict(acl, Request("10.1.2.3", {}), Counter()) == ("block", 401)
    assert waf_verdict(acl, Request("10.1.2.3", {"Authorization": KEY}), Counter()) == ("allow", None)


@pytest.mark.parametrize("stack", STACKS)
def test_one_client_ip_is_rate_limited(stack: str) -> None:
    acl, rate = web_acl(stack), Counter()
    (limit,) = [
        r["statement"]["rateBasedStatement"]["limit"] for r in acl["rules"] if "rateBasedStatement" in r["statement"]
    ]
    assert limit == 2000  # endpoint.wafRateLimit's default
    verdicts = [waf_verdict(acl, Request("10.9.9.9", {"Authorization": KEY}), rate)[0] for _ in range(limit + 1)]
    assert verdicts[:limit] == ["allow"] * limit and verdicts[-1] == "block"
    assert waf_verdict(acl, Request("10.9.9.10", {"Authorization": KEY}), rate)[0] == "allow"


def test_the_key_length_the_web_acl_asks_is_the_settings_minimum() -> None:
    from components.serving import exposure

    assert edge.MIN_AUTHORIZATION_BYTES == len("Bearer ") + exposure.MIN_API_KEY_CHARS


# --- the Ingress names the stack's web ACL and log bucket --------------------------------------


def _annotations(stack: str) -> dict[str, str]:
    ingresses = [r for r in rendered(stack).of_type(INGRESS) if r.inputs["metadata"]["name"] == endpoint.workload.APP]
    (ing,) = ingresses
    return ing.inputs["metadata"]["annotations"]


def _attributes(annotations: Mapping[str, str]) -> dict[str, str]:
    raw = annotations[f"{endpoint.ANNOTATION}/load-balancer-attributes"]
    return dict(item.split("=", 1) for item in raw.split(","))


@pytest.mark.parametrize("stack", STACKS)
def test_the_alb_is_associated_with_the_stacks_web_acl(stack: str) -> None:
    (acl,) = rendered(stack).of_type(WEB_ACL)
    assert _annotations(stack)[f"{endpoint.ANNOTATION}/wafv2-acl-arn"] == acl.outputs["arn"]
    assert acl.inputs["scope"] == "REGIONAL"


@pytest.mark.parametrize("stack", STACKS)
def test_access_logs_go_to_the_stacks_own_bucket(stack: str) -> None:
    attributes = _attributes(_annotations(stack))
    (bucket,) = [
        b for b in rendered(stack).of_type(BUCKET) if b.inputs["bucket"].endswith(attributes["access_logs.s3.bucket"])
    ]
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["access_logs.s3.prefix"] == edge.LOG_PREFIX
    # `pulumi destroy` empties the bucket and deletes it: nothing is left behind.
    assert bucket.inputs["forceDestroy"] is True
    (policy,) = [p for p in rendered(stack).of_type(BUCKET_POLICY) if "logs" in p.name]
    doc = json.loads(policy.inputs["policy"])
    (grant,) = [s for s in doc["Statement"] if s["Effect"] == "Allow"]
    assert grant["Principal"] == {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}
    assert grant["Action"] == "s3:PutObject"
    account = bucket.inputs["bucket"].split("-alb-logs-")[1].split("-")[0]
    assert grant["Resource"] == f"{bucket.outputs['arn']}/{edge.LOG_PREFIX}/AWSLogs/{account}/*"


def test_an_operators_web_acl_replaces_the_stacks_own() -> None:
    arn = "arn:aws:wafv2:us-east-2:123456789012:regional/webacl/corp/0f2b4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
    r = render("dev", overrides={"endpoint": {"scheme": "internal", "sourceRanges": ["10.0.0.0/8"], "wafAclArn": arn}})
    assert r.of_type(WEB_ACL) == []
    ing = [i for i in r.of_type(INGRESS) if i.inputs["metadata"]["name"] == endpoint.workload.APP][0]
    assert ing.inputs["metadata"]["annotations"][f"{endpoint.ANNOTATION}/wafv2-acl-arn"] == arn


@pytest.mark.parametrize("stack", STACKS)
def test_the_ingress_waits_for_the_web_acl_and_the_log_bucket(stack: str) -> None:
    """Created after them, so deleted before them: the ALB is gone before the web ACL (still
    associated, it could not be deleted) and before the bucket is emptied."""
    r = rendered(stack)
    (ing,) = [i for i in r.of_type(INGRESS) if i.inputs["metadata"]["name"] == endpoint.workload.APP]
    needed = {x.urn for x in r.of_type(WEB_ACL)} | {x.urn for x in r.of_type(BUCKET_POLICY) if "logs" in x.name}
    assert needed and needed <= set(ing.dependencies)


def test_the_logs_bucket_name_fits_s3() -> None:
    name = edge.logs_bucket_name("x" * 70, "123456789012", "ap-southeast-3")
    assert len(name) <= 63 and name.endswith("-alb-logs-123456789012-ap-southeast-3")
    assert edge.logs_bucket_name("x" * 70, "1", "r") != edge.logs_bucket_name("x" * 69 + "y", "1", "r")


def test_the_wake_trigger_reads_the_503s_of_this_alb() -> None:
    """What the web ACL guards is what wakes: the trigger counts this ALB's own 503s."""
    (obj,) = rendered("dev").of_type(SCALED_OBJECT)
    (trigger,) = [t for t in obj.inputs["spec"]["triggers"] if t["type"] == "aws-cloudwatch"]
    name = _annotations("dev")[f"{endpoint.ANNOTATION}/load-balancer-name"]
    assert scaling_policy.wake_load_balancer_name(trigger["metadata"]["expression"]) == name
    assert scaling_policy.WAKE_METRIC in trigger["metadata"]["expression"]
