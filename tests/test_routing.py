"""vLLM's router between the ALB and the replicas (routing.mode router), as the stack renders it."""

from __future__ import annotations

import functools

import pytest

from components.aws import image_registry
from components.platform import config
from components.serving import routing, workload
from ops.offline.engine import Rendering, render
from policies import rules
from tests.test_policies import TLS_ARN, check

ROUTED = {"routing": {"mode": "router"}}
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


@functools.cache
def routed(stack: str) -> Rendering:
    """The stack with the router, as deployed (an internet-facing endpoint gets its certificate)."""
    section = dict(config.read_stack_file(stack).get("minimax-vllm:endpoint") or {})
    if section.get("scheme") == "internet-facing":
        return render(stack, overrides={**ROUTED, "endpoint": {**section, "certificateArn": TLS_ARN}})
    return render(stack, overrides=ROUTED)


@pytest.mark.parametrize("stack", ["dev", "prod-4gpu"])
def test_the_ingress_sends_traffic_to_the_router_and_only_the_router_reaches_vllm(stack: str) -> None:
    r = routed(stack)
    ingress = r.one("kubernetes:networking.k8s.io/v1:Ingress").inputs
    backends = {p["backend"]["service"]["name"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert backends == {routing.APP}
    vllm = next(p for p in r.of_type(NETPOL) if p.inputs["metadata"]["name"] == workload.APP).inputs["spec"]
    sources = [peer for rule in vllm["ingress"] for peer in rule["from"]]
    assert not any("ipBlock" in peer for peer in sources), "the ALB still reaches vLLM past the router"
    assert routing.router_peer() in sources
    router = next(p for p in r.of_type(NETPOL) if p.inputs["metadata"]["name"] == routing.APP).inputs["spec"]
    assert router["ingress"][0]["ports"] == [{"protocol": "TCP", "port": routing.PORT}]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod-4gpu", "prod-8gpu"])
def test_the_router_never_times_out_a_request_the_alb_still_holds(stack: str) -> None:
    s = config.from_stack_file(stack)
    args = routing.args(s.routing, s.serving, s.endpoint)
    timeout = int(next(a for a in args if a.startswith("--request-timeout-secs=")).split("=", 1)[1])
    assert timeout >= s.endpoint.idle_timeout_seconds


def test_the_router_may_only_read_pods_in_its_namespace() -> None:
    (account, role, binding) = routing.rbac()
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == workload.NAMESPACE
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": workload.NAMESPACE}
    ]


def test_dp8_ep_routes_to_a_data_parallel_rank_without_the_key_in_the_manifest() -> None:
    s = config.from_stack_file("prod-8gpu")
    dp = config.parse(
        {"owner": "ml-platform", "serving": {"profile": "dp8-ep", "maxModelLen": 131072}}, "test", s.region
    )
    args = routing.args(dp.routing, dp.serving, dp.endpoint)
    assert "--intra-node-data-parallel-size=8" in args
    assert f"--api-key=$({routing.API_KEY_ENV})" in args  # expanded by the kubelet from the Secret


@pytest.mark.parametrize("stack", ["dev", "prod-4gpu"])
def test_the_policy_pack_passes_with_the_router_in_the_path(stack: str) -> None:
    violations = [
        f"{r.type} {r.name}: {m}"
        for r in routed(stack).resources
        for rule in rules.RESOURCE_RULES
        for m in check(rule.name, r.type, r.inputs)
    ]
    assert violations == []


def test_the_policy_pack_knows_the_router_image_repository() -> None:
    assert (rules.STACK_REPOSITORY_PREFIX, rules.API_READER_IMAGE) == (image_registry.PREFIX, image_registry.ROUTER)


def test_make_plan_shows_the_routing_path() -> None:
    from ops.routing.plan_lines import routing_lines

    s = config.from_stack_file("prod-4gpu")
    (routed_line,) = routing_lines(s, routed("prod-4gpu"))
    assert routed_line.startswith(f"  ALB -> Service {routing.APP} (2 router pods, policy cache-aware")
    (direct_line,) = routing_lines(s, render("prod-4gpu"))
    assert "(no router)" in direct_line and "routing.mode' router" in direct_line
