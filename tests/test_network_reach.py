"""Who can reach vLLM's serving port, computed from the rendered NetworkPolicies of every stack.

vLLM checks the API key only under /v1, /v2, /inference and /cohere; /invocations, /tokenize
and /metrics answer anyone who reaches the port. So only the load balancer (which forwards only
the listed paths, with the key checked by vLLM) and Prometheus may reach it. With vLLM's router
in front (routing.mode router) the hop is ALB -> router -> vLLM: the router forwards every path,
the unguarded ones included (tests/test_router_exposure.py runs the real binary), so its serving
port admits the load balancer alone, its metrics port Prometheus alone, and vLLM's serving port
the router's pods and Prometheus, no address.

The model: the stack's subnets, as the offline engine rendered them (or, for an existing VPC,
as its lookups answered). Nodes sit in the cluster's and the node groups' subnets; the VPC CNI
gives every pod an address of its node's subnet (no custom networking: asserted below), so those
subnets are the pod ranges too. The ALB's nodes sit in the subnets its Ingress names. Peers
chosen by label are evaluated against the pods that run in the cluster: the rendered pod
templates, and the monitoring charts' pods by the labels the charts give them.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from dataclasses import dataclass
from typing import Any

import pytest

from components.platform import config
from components.serving import endpoint, profiles, workload
from components.weights import staging as weight_staging
from ops.offline import mocks
from ops.offline.engine import Rendering, Resource, render
from tests import hops

STACKS = ("dev", "staging", "prod-4gpu", "prod-8gpu")
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SUBNET = "aws:ec2/subnet:Subnet"
VPC = "aws:ec2/vpc:Vpc"
EKS = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ADDON = "aws:eks/addon:Addon"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
POD_TEMPLATES = ("Deployment", "Job", "StatefulSet", "DaemonSet")
NS_LABEL = "kubernetes.io/metadata.name"
PORT = profiles.PORT
# An existing VPC with two subnets of each kind (their CIDRs are the offline lookups' answers).
EXISTING = {
    "existingVpcId": "vpc-0123456789abcdef0",
    "publicSubnetIds": ["subnet-0f0f0f0f0f0f0f0f0", "subnet-0e0e0e0e0e0e0e0e0"],
    "privateSubnetIds": ["subnet-0111aaaabbbbcccc", "subnet-0222aaaabbbbcccc"],
}
CASES = [(s, False) for s in STACKS] + [("prod-8gpu", True), ("staging", True)]
Net = ipaddress.IPv4Network


@dataclass(frozen=True)
class Pod:
    """A pod the cluster runs: who it is, where, its labels, and whether it uses the node's address."""

    who: str
    namespace: str
    labels: dict[str, str]
    host_network: bool = False
    scraper: bool = False  # one of the Prometheus pods that must reach /metrics


# The monitoring charts' pods, by the labels the charts give them. Prometheus: the labels the
# kube-prometheus-stack chart's own Service selects its pods by (templates/prometheus/service.yaml,
# `app.kubernetes.io/name` prometheus or, in agent mode, prometheus-agent, and
# `operator.prometheus.io/name` the custom resource `kps-prometheus`). node-exporter is modelled
# with its node's address, the chart's default (`hostNetwork: true` in prometheus-node-exporter
# 4.56.1): the stack turns it off (observability/values.py), and the policy must hold either way.
CLUSTER_PODS = (
    Pod(
        "prometheus",
        "monitoring",
        {"app.kubernetes.io/name": "prometheus", "operator.prometheus.io/name": "kps-prometheus"},
        scraper=True,
    ),
    Pod(
        "prometheus (agent mode)",
        "monitoring",
        {"app.kubernetes.io/name": "prometheus-agent", "operator.prometheus.io/name": "kps-prometheus"},
        scraper=True,
    ),
    Pod("alertmanager", "monitoring", {"app.kubernetes.io/name": "alertmanager", "alertmanager": "kps-alertmanager"}),
    Pod("grafana", "monitoring", {"app.kubernetes.io/name": "grafana"}),
    Pod("kube-state-metrics", "monitoring", {"app.kubernetes.io/name": "kube-state-metrics"}),
    Pod("node-exporter", "node-metrics", {"app.kubernetes.io/name": "prometheus-node-exporter"}, host_network=True),
    Pod("a debug pod in monitoring", "monitoring", {"run": "debug"}),
    Pod("dcgm-exporter", "node-metrics", {"app.kubernetes.io/name": "dcgm-exporter"}),
    Pod("aws-node", "kube-system", {"k8s-app": "aws-node"}, host_network=True),
    Pod("coredns", "kube-system", {"k8s-app": "kube-dns"}),
    Pod("any pod of any namespace", "default", {"app": "curious"}),
    Pod("keda operator", "keda", {"app.kubernetes.io/name": "keda-operator"}),
)


def overrides(existing: bool) -> dict[str, Any] | None:
    return {"network": EXISTING} if existing else None


@functools.cache
def rendered(stack: str, existing: bool) -> Rendering:
    return render(stack, overrides(existing))


@dataclass(frozen=True)
class Layout:
    vpc: Net
    node_subnets: dict[str, Net]  # nodes, and so pods: their addresses
    alb_subnets: dict[str, Net]  # where the ALB's nodes are


def layout(r: Rendering, existing: bool) -> Layout:
    if existing:
        cidr: dict[str, str] = {sid: mocks.subnet_cidr(sid) for sid in EXISTING["publicSubnetIds"]}
        cidr |= {sid: mocks.subnet_cidr(sid) for sid in EXISTING["privateSubnetIds"]}
        vpc = mocks.EXISTING_VPC_CIDR
    else:
        cidr = {s.id: s.inputs["cidrBlock"] for s in r.of_type(SUBNET)}
        vpc = r.one(VPC).inputs["cidrBlock"]
    node_ids = set(r.one(EKS).inputs["vpcConfig"]["subnetIds"])
    for group in r.of_type(NODE_GROUP):
        node_ids |= set(group.inputs["subnetIds"])
    annotations = r.one(INGRESS).inputs["metadata"]["annotations"]
    assert endpoint.SUBNETS_ANNOTATION in annotations, "the ALB's subnets are left to discovery: unknown to the policy"
    alb_ids = annotations[endpoint.SUBNETS_ANNOTATION].split(",")
    return Layout(
        ipaddress.ip_network(vpc),
        {i: ipaddress.ip_network(cidr[i]) for i in sorted(node_ids)},
        {i: ipaddress.ip_network(cidr[i]) for i in alb_ids},
    )


def pods_of(r: Rendering) -> list[Pod]:
    """The stack's own pods (rendered templates) and the charts' pods."""
    own = []
    for obj in r.kubernetes_objects():
        if obj.inputs["kind"] in POD_TEMPLATES:
            template = obj.inputs["spec"]["template"]
            own.append(
                Pod(
                    f"{obj.inputs['kind']} {obj.inputs['metadata']['name']}",
                    obj.inputs["metadata"]["namespace"],
                    dict(template["metadata"].get("labels", {})),
                    host_network=bool(template["spec"].get("hostNetwork")),
                )
            )
    return own + list(CLUSTER_PODS)


def selects(selector: dict | None, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        key, op, values = e["key"], e["operator"], e.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def covers_port(rule: dict, port: int) -> bool:
    ports = rule.get("ports") or []
    return not ports or any(p.get("port") in (None, port, workload.PORT_NAME) for p in ports)


@dataclass
class Admitted:
    everyone: bool
    networks: list[tuple[str, Net, tuple[Net, ...]]]  # (policy, cidr, except)
    pods: list[tuple[str, Pod]]  # (policy, pod chosen by a selector peer)


def admitted(r: Rendering, target: Pod, port: int) -> Admitted:
    """What the rendered policies let in to `target` on `port` (the union of every rule)."""
    out = Admitted(False, [], [])
    selecting = [
        p.inputs
        for p in r.of_type(NETPOL)
        if p.inputs["metadata"]["namespace"] == target.namespace
        and selects(p.inputs["spec"]["podSelector"], target.labels)
        and "Ingress" in p.inputs["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        out.everyone = True
        return out
    everything = pods_of(r)
    for policy in selecting:
        name = policy["metadata"]["name"]
        for rule in policy["spec"].get("ingress", []):
            if not covers_port(rule, port):
                continue
            peers = rule.get("from") or []
            if not peers:
                out.everyone = True
            for peer in peers:
                if "ipBlock" in peer:
                    block = peer["ipBlock"]
                    excluded = tuple(ipaddress.ip_network(e) for e in block.get("except", []))
                    out.networks.append((name, ipaddress.ip_network(block["cidr"]), excluded))
                    continue
                for pod in everything:
                    ns_ok = (
                        pod.namespace == policy["metadata"]["namespace"]
                        if "namespaceSelector" not in peer
                        else selects(peer["namespaceSelector"], {NS_LABEL: pod.namespace})
                    )
                    if ns_ok and selects(peer.get("podSelector"), pod.labels):
                        out.pods.append((name, pod))
    return out


def vllm_pod(r: Rendering) -> Pod:
    (pod,) = [p for p in pods_of(r) if p.who == f"Deployment {workload.APP}"]
    return pod


def front_pod(r: Rendering) -> tuple[Pod, int]:
    """The pods the Ingress's Service selects (vLLM's, or the router's), and their serving port."""
    front = hops.front(r)
    (pod,) = [p for p in pods_of(r) if p.who == f"Deployment {front.inputs['metadata']['name']}"]
    port = hops.front_service(r).inputs["spec"]["ports"][0]["targetPort"]
    (number,) = [p["containerPort"] for p in hops.container(front)["ports"] if port in (p["name"], p["containerPort"])]
    return pod, number


def load_balancer_only(r: Rendering, net: Layout, got: Admitted, port: int) -> None:
    """No node or pod address, nothing outside the ALB's subnets, and every ALB subnet."""
    assert not got.everyone, f"a rule admits every source to :{port}"
    for policy, cidr, excluded in got.networks:
        for sid, subnet in net.node_subnets.items():
            assert not overlap(cidr, excluded, subnet), (
                f"NetworkPolicy {policy} admits {cidr} to :{port}: it holds node subnet {sid} {subnet}, "
                "so every node and pod there reaches vLLM without the key"
            )
        # Nothing but the load balancer's addresses: the whole VPC or the internet never.
        assert any(cidr.subnet_of(s) for s in net.alb_subnets.values()), (
            f"NetworkPolicy {policy} admits {cidr}, outside the ALB's subnets {sorted(map(str, net.alb_subnets.values()))}"
        )
    # The load balancer itself reaches every pod from every subnet it is in.
    for sid, subnet in net.alb_subnets.items():
        assert any(subnet.subnet_of(c) for _, c, ex in got.networks if not ex), (
            f"ALB subnet {sid} {subnet} not admitted"
        )
        assert all(not subnet.overlaps(n) for n in net.node_subnets.values()), f"ALB subnet {sid} holds nodes"


def overlap(net: Net, excluded: tuple[Net, ...], other: Net) -> bool:
    """Whether `net` minus `excluded` holds any address of `other`."""
    if not net.overlaps(other):
        return False
    return not any(other.subnet_of(e) for e in excluded)


@pytest.mark.parametrize(("stack", "existing"), CASES, ids=[f"{s}{'-existing-vpc' if e else ''}" for s, e in CASES])
def test_only_the_load_balancer_and_prometheus_reach_the_serving_port(stack, existing):
    r = rendered(stack, existing)
    net = layout(r, existing)
    vllm = vllm_pod(r)
    got = admitted(r, vllm, PORT)
    front, front_port = front_pod(r)
    if front == vllm:
        load_balancer_only(r, net, got, PORT)
        allowed: set[str] = set()
    else:
        # ALB -> router: its serving port admits the load balancer and no pod at all (it would
        # forward /tokenize, /invocations or /metrics to vLLM for anyone).
        to_router = admitted(r, front, front_port)
        load_balancer_only(r, net, to_router, front_port)
        assert not to_router.pods, f"pods reach the router's port: {sorted({p.who for _, p in to_router.pods})}"
        # router -> vLLM: vLLM admits no address at all, only the router's pods (and Prometheus).
        assert not got.everyone and not got.networks, f"vLLM admits addresses past the router: {got.networks}"
        assert front.who in {pod.who for _, pod in got.pods}, "the router cannot reach vLLM"
        allowed = {front.who}
        metrics = {p["containerPort"] for p in hops.container(hops.front(r))["ports"]} - {front_port}
        for port in metrics:
            scrape = admitted(r, front, port)
            assert not scrape.everyone and not scrape.networks
            chosen = {pod.who: pod for _, pod in scrape.pods}
            assert {w for w, pod in chosen.items() if not pod.scraper or pod.host_network} == set()
            assert {p.who for p in CLUSTER_PODS if p.scraper} <= set(chosen), "Prometheus cannot scrape the router"
    # By label: Prometheus, the router and, with the shared compile cache, the node stager (it
    # reads /health before it publishes, and holds no API key); nothing else, never a pod with its
    # node's address.
    chosen = {pod.who: pod for _, pod in got.pods}
    stager = f"DaemonSet {weight_staging.NAME}"
    assert (stager in chosen) is config.from_stack_file(stack).weights.shares_compile_cache
    allowed.add(stager)
    strangers = sorted(w for w, pod in chosen.items() if (not pod.scraper and w not in allowed) or pod.host_network)
    assert not strangers, f"these pods reach vLLM's serving port without the key: {strangers}"
    assert {p.who for p in CLUSTER_PODS if p.scraper} <= set(chosen), "Prometheus cannot scrape /metrics"


@pytest.mark.parametrize(("stack", "existing"), CASES, ids=[f"{s}{'-existing-vpc' if e else ''}" for s, e in CASES])
def test_the_stager_reaches_vllm_on_the_serving_port_only(stack, existing):
    r = rendered(stack, existing)
    for port in (PORT - 1, PORT + 1, 22, 443):
        got = admitted(r, vllm_pod(r), port)
        assert not got.everyone and not got.networks and not got.pods, f"something reaches vLLM on :{port}"


@pytest.mark.parametrize(("stack", "existing"), CASES, ids=[f"{s}{'-existing-vpc' if e else ''}" for s, e in CASES])
def test_no_rendered_policy_admits_a_pod_range_or_the_vpc_to_the_serving_port(stack, existing):
    r = rendered(stack, existing)
    net = layout(r, existing)
    ports = {PORT, front_pod(r)[1]}  # vLLM's, and the router's when it is in front
    for p in r.of_type(NETPOL):
        for rule in p.inputs["spec"].get("ingress", []):
            if not any(covers_port(rule, port) for port in ports):
                continue
            for peer in rule.get("from") or []:
                if "ipBlock" not in peer:
                    continue
                cidr = ipaddress.ip_network(peer["ipBlock"]["cidr"])
                excluded = tuple(ipaddress.ip_network(e) for e in peer["ipBlock"].get("except", []))
                assert not net.vpc.subnet_of(cidr), f"{p.inputs['metadata']['name']} admits the whole VPC {net.vpc}"
                hit = [str(s) for s in net.node_subnets.values() if overlap(cidr, excluded, s)]
                assert not hit, f"{p.inputs['metadata']['name']} admits pod ranges {hit} to {sorted(ports)}"


@pytest.mark.parametrize("stack", STACKS)
def test_pods_take_addresses_from_their_nodes_subnets_so_node_subnets_are_the_pod_ranges(stack):
    # VPC CNI custom networking (ENIConfig) would give pods addresses of other subnets; the model
    # above, and the policy's reasoning, hold only without it.
    (cni,) = [a for a in rendered(stack, False).of_type(ADDON) if a.inputs["addonName"] == "vpc-cni"]
    values = json.loads(cni.inputs.get("configurationValues") or "{}")
    assert "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG" not in json.dumps(values)
    assert values.get("enableNetworkPolicy") == "true"


def test_the_model_sees_what_the_old_policy_let_in():
    """The checks above, on the policy this stack used to render: the whole VPC and the whole
    monitoring namespace. Every pod and node got in, any pod of monitoring too."""
    r = rendered("dev", False)
    net = layout(r, False)
    old = json.loads(json.dumps([p.inputs for p in r.of_type(NETPOL)]))
    (serving,) = [p for p in old if p["metadata"]["name"] == workload.APP]
    serving["spec"]["ingress"] = [
        {"from": [{"ipBlock": {"cidr": str(net.vpc)}}], "ports": [{"protocol": "TCP", "port": PORT}]},
        {
            "from": [{"namespaceSelector": {"matchLabels": {NS_LABEL: "monitoring"}}}],
            "ports": [{"protocol": "TCP", "port": PORT}],
        },
    ]
    fake = Rendering(
        r.stack, [_as_resource(p) for p in old] + [x for x in r.resources if x.type != NETPOL], {}, frozenset()
    )
    got = admitted(fake, vllm_pod(fake), PORT)
    assert any(overlap(c, ex, s) for _, c, ex in got.networks for s in net.node_subnets.values())
    assert "a debug pod in monitoring" in {pod.who for _, pod in got.pods}


def _as_resource(inputs: dict) -> Resource:
    return Resource(
        "urn:" + inputs["metadata"]["name"],
        "",
        NETPOL,
        inputs["metadata"]["name"],
        inputs,
        {},
        "",
        "",
        (),
        {},
        frozenset(),
    )
