"""vLLM's router between the ALB and the replicas (routing.mode router), as the stack renders it."""

from __future__ import annotations

import copy
import functools

import pytest

from components.aws import image_registry
from components.platform import config
from components.serving import endpoint, profiles, routing, workload
from ops.offline.engine import Rendering, render
from policies import rules
from tests import hops
from tests.test_policies import TLS_ARN, check

ROUTED = {"routing": {"mode": "router"}}
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


@functools.cache
def routed(stack: str) -> Rendering:
    """The stack with the router, as deployed (its endpoint gets its certificate, internal or not)."""
    section = dict(config.read_stack_file(stack).get("minimax-vllm:endpoint") or {})
    return render(stack, overrides={**ROUTED, "endpoint": {**section, "certificateArn": TLS_ARN}})


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


def _dp8_ep() -> config.Settings:
    s = config.from_stack_file("prod-8gpu")
    raw = config.split_stack_config(config.read_stack_file("prod-8gpu"))[0]
    return config.parse(
        {**raw, "serving": {**raw["serving"], "profile": "dp8-ep", "maxModelLen": 131072}}, "prod-8gpu", s.region
    )


def test_dp8_ep_routes_to_each_data_parallel_rank_with_no_key_in_the_args() -> None:
    """Each rank holds its own prefix cache: the router addresses as many ranks as vLLM runs."""
    launch = pytest.importorskip("vllm_router.launch_router")
    dp = _dp8_ep()
    assert dp.routing_mode == "router"  # one replica, but eight prefix caches
    args = routing.args(dp.routing, dp.serving, dp.endpoint)
    parsed = launch.parse_router_args(args)
    vllm = profiles.vllm_argv(dp.serving)
    assert parsed.intra_node_data_parallel_size == int(hops.flag(vllm, "--data-parallel-size")) == 8
    assert parsed.api_key is None and not any("api-key" in a for a in args)


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
    (routed_line,) = routing_lines(s, render("prod-4gpu"))  # the router by default: two replicas
    assert routed_line.startswith(f"  ALB -> Service {routing.APP} (2 router pods, policy consistent-hash")
    raw = config.split_stack_config(config.read_stack_file("prod-4gpu"))[0]
    direct = config.parse({**raw, "routing": {"mode": "direct"}}, "prod-4gpu", s.region)
    (direct_line,) = routing_lines(direct, render("prod-4gpu", overrides={"routing": {"mode": "direct"}}))
    assert "(no router)" in direct_line and "routing.mode" in direct_line
    (single,) = routing_lines(config.from_stack_file("prod-8gpu"), render("prod-8gpu"))
    assert "(no router)" in single and "scatter" not in single


def _alb_idle_timeout(r: Rendering) -> int:
    annotations = r.one("kubernetes:networking.k8s.io/v1:Ingress").inputs["metadata"]["annotations"]
    attributes = dict(kv.split("=") for kv in annotations[f"{endpoint.ANNOTATION}/load-balancer-attributes"].split(","))
    return int(attributes["idle_timeout.timeout_seconds"])


@pytest.mark.parametrize("stack", ["dev", "prod-4gpu"])
def test_no_hop_behind_the_alb_gives_up_on_a_connection_before_the_alb_does(stack: str) -> None:
    """A long silent prefill holds the connection for up to the ALB's idle timeout: the router's
    request timeout and vLLM's keep-alive behind it must last at least as long, read from what renders."""
    r = render(stack)
    idle = _alb_idle_timeout(r)
    router = hops.container(hops.front(r))
    assert int(hops.flag(router["args"], "--request-timeout-secs")) >= idle
    env = {e["name"]: e.get("value") for e in hops.container(r.vllm_deployment())["env"]}
    keep_alive = int(env[workload.KEEP_ALIVE_ENV])
    # vLLM never closes an idle connection the router's pool (50 s) or the ALB may still reuse.
    assert keep_alive >= idle and keep_alive > routing.ROUTER_POOL_IDLE_S


@pytest.mark.parametrize("stack", ["dev", "prod-4gpu"])
def test_the_routers_own_parser_reads_the_rendered_args_as_meant(stack: str) -> None:
    """The wheel's argument parser (the one the image runs) finds the vLLM pods by their labels,
    in their namespace, on their port."""
    launch = pytest.importorskip("vllm_router.launch_router")
    r = render(stack)
    router = hops.container(hops.front(r))
    parsed = launch.parse_router_args(router["args"])
    assert parsed.service_discovery and parsed.selector == hops.labels(r.vllm_deployment())
    assert parsed.service_discovery_namespace == r.vllm_deployment().inputs["metadata"]["namespace"]
    vllm = hops.container(r.vllm_deployment())
    assert parsed.service_discovery_port == int(hops.flag(vllm["args"], "--port"))
    assert parsed.port == routing.PORT and parsed.host == "0.0.0.0"
    assert parsed.policy == routing.router_flags.POLICIES[config.from_stack_file(stack).routing.policy]


def _resources(stack: str) -> list[tuple[str, dict]]:
    return [(r.type, copy.deepcopy(r.inputs)) for r in routed(stack).resources]


def _policy(resources: list[tuple[str, dict]], name: str) -> dict:
    return next(p for t, p in resources if t == NETPOL and p["metadata"]["name"] == name)


@pytest.mark.parametrize("stack", ["dev", "prod-4gpu"])
def test_the_policy_pack_judges_the_router_hop(stack: str) -> None:
    for rule in rules.STACK_RULES:
        assert rule.check(_resources(stack)) == [], rule.name
    vpc = next(p["cidrBlock"] for t, p in _resources(stack) if t == "aws:ec2/vpc:Vpc")
    # The ALB straight to vLLM again, past the router.
    bypass = _resources(stack)
    router_sources = _policy(bypass, routing.APP)["spec"]["ingress"][0]["from"]
    _policy(bypass, workload.APP)["spec"]["ingress"][0]["from"].extend(router_sources)
    assert any("requests must come through the router" in m for m in rules.vllm_admits_only_the_router(bypass))
    # Every pod of the namespace may call vLLM.
    anyone = _resources(stack)
    _policy(anyone, workload.APP)["spec"]["ingress"][0]["from"] = [{"podSelector": {}}]
    assert any("other than the router's" in m for m in rules.vllm_admits_only_the_router(anyone))
    # Prometheus, or the whole VPC, on the router's serving port (it forwards /tokenize and /metrics).
    for peer, says in (
        ({"namespaceSelector": {}}, "admits pods to the router's port"),
        ({"ipBlock": {"cidr": vpc}}, f"the whole VPC {vpc}"),
    ):
        wide = _resources(stack)
        _policy(wide, routing.APP)["spec"]["ingress"][0]["from"].append(peer)
        assert any(says in m for m in rules.router_port_admits_only_the_load_balancer(wide)), says
