"""The endpoint objects: only the listed paths reach vLLM, with TLS and the hour-long idle timeout."""

from __future__ import annotations

import functools
import json

import kubernetes_validate
import pytest

from components.facts import versions
from components.serving import endpoint, workload
from components.settings.endpoint import EndpointSettings
from ops.offline.engine import render

TLS_ARN = "arn:aws:acm:us-east-2:123456789012:certificate/0f2b4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
WAF_ARN = "arn:aws:wafv2:us-east-2:123456789012:regional/webacl/minimax-rate/0f2b4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
SHAPES = {
    "internal": EndpointSettings(scheme="internal"),
    "internet-tls-waf": EndpointSettings(
        scheme="internet-facing", source_ranges=("52.0.0.0/16",), certificate_arn=TLS_ARN, waf_acl_arn=WAF_ARN
    ),
    "internet-plain-opt-out": EndpointSettings(
        scheme="internet-facing", source_ranges=("52.0.0.0/16",), insecure_allow_plain_http_on_internet=True
    ),
}


@functools.cache
def rendered_dev():
    return render("dev")


def ingress(ep: EndpointSettings) -> dict:
    return endpoint.ingress(
        ep,
        {"project": "minimax-vllm", "stack": "t"},
        name="vllm",
        namespace="minimax-vllm",
        labels={"app.kubernetes.io/name": "vllm"},
        service_name="vllm",
        service_port="http",
        drain_seconds=300,
        load_balancer_name="mmv-t-0123abcd",
    )


@pytest.mark.parametrize(
    "path",
    ["/v1", "/v1/models", "/v1/chat/completions", "/v1/completions?x=1", "/health"],
)
def test_the_openai_api_and_health_reach_vllm(path: str) -> None:
    assert endpoint.reaches_vllm(path)


@pytest.mark.parametrize(
    "path",
    [
        "/invocations",
        "/tokenize",
        "/detokenize",
        "/pooling",
        "/score",
        "/rerank",
        "/classify",
        "/metrics",
        "/docs",
        "/openapi.json",
        "/ping",
        "/version",
        "/v1x",
        "/v2/rerank",
        "/health/x",
        "/",
    ],
)
def test_every_other_path_is_refused_by_the_load_balancer(path: str) -> None:
    assert not endpoint.reaches_vllm(path)


def test_the_ingress_is_built_from_the_one_path_list() -> None:
    spec = ingress(SHAPES["internal"])["spec"]
    (rule,) = spec["rules"]
    assert [(p["path"], p["pathType"]) for p in rule["http"]["paths"]] == [
        (p.path, p.path_type) for p in endpoint.EXPOSED_PATHS
    ]
    assert "host" not in rule  # the path list holds for every host name


def test_the_controller_makes_alb_patterns_that_match_exactly_the_listed_paths() -> None:
    v1, health = endpoint.EXPOSED_PATHS
    assert v1.alb_patterns() == ("/v1", "/v1/*") and health.alb_patterns() == ("/health",)


def test_every_other_path_gets_the_explicit_fixed_404() -> None:
    ing = ingress(SHAPES["internal"])
    backend = ing["spec"]["defaultBackend"]["service"]
    assert backend == {"name": endpoint.REFUSE_ACTION, "port": {"name": "use-annotation"}}
    action = json.loads(ing["metadata"]["annotations"][f"alb.ingress.kubernetes.io/actions.{endpoint.REFUSE_ACTION}"])
    assert action["type"] == "fixed-response" and action["fixedResponseConfig"]["statusCode"] == "404"


def test_tls_listens_only_on_443_with_a_tls13_policy_and_the_hour_idle_timeout() -> None:
    a = ingress(SHAPES["internet-tls-waf"])["metadata"]["annotations"]
    assert json.loads(a["alb.ingress.kubernetes.io/listen-ports"]) == [{"HTTPS": 443}]
    assert a["alb.ingress.kubernetes.io/certificate-arn"] == TLS_ARN
    # A restricted (-Res-) TLS 1.3/1.2 policy: forward-secret AEAD ciphers only.
    assert a["alb.ingress.kubernetes.io/ssl-policy"] == "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"
    assert "alb.ingress.kubernetes.io/ssl-redirect" not in a  # no plain-HTTP listener to redirect from
    assert "idle_timeout.timeout_seconds=3600" in a["alb.ingress.kubernetes.io/load-balancer-attributes"]
    assert a["alb.ingress.kubernetes.io/inbound-cidrs"] == "52.0.0.0/16"
    assert a["alb.ingress.kubernetes.io/wafv2-acl-arn"] == WAF_ARN
    assert a["alb.ingress.kubernetes.io/target-group-attributes"] == "deregistration_delay.timeout_seconds=300"


def test_without_a_waf_acl_there_is_no_waf_annotation() -> None:
    assert not any("waf" in k for k in ingress(SHAPES["internal"])["metadata"]["annotations"])


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_endpoint_objects_validate_against_the_pinned_kubernetes_schemas(shape: str) -> None:
    service = endpoint.service(name="vllm", namespace="ns", labels={"a": "b"}, port=8000, target_port="http")
    for obj in (ingress(SHAPES[shape]), service):
        kubernetes_validate.validate(obj, f"{versions.KUBERNETES_VERSION}.0", strict=True)


def test_schema_validation_rejects_a_misspelt_ingress_field() -> None:
    obj = ingress(SHAPES["internal"])
    obj["spec"]["defaultbackend"] = obj["spec"].pop("defaultBackend")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(obj, f"{versions.KUBERNETES_VERSION}.0", strict=True)


def test_the_ingress_does_not_wait_for_the_pods_it_makes_ready() -> None:
    """Readiness gates wait for the ALB's target group, so the Ingress must not depend on the Deployment."""
    r = rendered_dev()
    ing = r.one("kubernetes:networking.k8s.io/v1:Ingress")
    deployment = r.vllm_deployment()
    assert deployment.urn not in ing.dependencies
    assert r.named("kubernetes:core/v1:Service", workload.APP).urn in ing.dependencies


def test_the_controller_chart_creates_the_ingress_class_the_ingress_names() -> None:
    r = rendered_dev()
    (release,) = [
        x for x in r.of_type("kubernetes:helm.sh/v3:Release") if x.inputs["chart"] == "aws-load-balancer-controller"
    ]
    values = release.inputs["values"]
    assert values["createIngressClassResource"] is True and values["ingressClass"] == endpoint.INGRESS_CLASS
    assert values["ingressClassConfig"] == {"default": False}
