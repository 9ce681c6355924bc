"""Where each pod of the vLLM namespace may send, computed from the rendered NetworkPolicies.

A pod's egress is the union of the egress rules of every policy that selects it and lists Egress
(NetworkPolicy semantics: policies only add). vLLM runs the model repository's code
(--trust-remote-code) and needs no network once its node's stager has put the weights in place:
it may send nothing, not even DNS. The stager fetches: DNS, HTTPS and, with the S3 mirror, the Pod
Identity agent; with the shared compile cache also vLLM's serving port (its /health), nothing more.
"""

from __future__ import annotations

import functools
import ipaddress

import pytest

from components.platform import config
from components.serving import profiles, workload
from components.weights import staging as weight_staging
from ops.offline.engine import Rendering, render

STACKS = ("dev", "staging", "prod-4gpu", "prod-8gpu")
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
# Destinations a pod might try: the Hub / S3 on the internet, the instance metadata service, the
# Pod Identity agent, another pod, and CoreDNS (by label).
INTERNET_443 = ("18.239.50.1", "TCP", 443)
IMDS = ("169.254.169.254", "TCP", 80)
AGENT = ("169.254.170.23", "TCP", 80)
POD = ("10.0.12.34", "TCP", 8000)


@functools.cache
def rendered(stack: str) -> Rendering:
    return render(stack)


def pod_labels(r: Rendering, kind: str, name: str) -> dict[str, str]:
    (obj,) = [x for x in r.kubernetes_objects() if x.inputs["kind"] == kind and x.inputs["metadata"]["name"] == name]
    return obj.inputs["spec"]["template"]["metadata"]["labels"]


def egress(r: Rendering, labels: dict[str, str]) -> list[dict] | None:
    """The egress rules that apply to a pod of the namespace; None: no policy restricts its egress."""
    rules: list[dict] | None = None
    for p in r.of_type(NETPOL):
        spec, meta = p.inputs["spec"], p.inputs["metadata"]
        selector = spec["podSelector"].get("matchLabels", {})
        if meta["namespace"] != workload.NAMESPACE or "Egress" not in spec.get("policyTypes", []):
            continue
        if all(labels.get(k) == v for k, v in selector.items()):
            rules = (rules or []) + list(spec.get("egress", []))
    return rules


def reaches(rules: list[dict] | None, address: str, protocol: str, port: int) -> bool:
    if rules is None:
        return True
    for rule in rules:
        ports = rule.get("ports")
        if ports and not any(p["protocol"] == protocol and p["port"] == port for p in ports):
            continue
        peers = rule.get("to")
        if not peers:
            return True
        for peer in peers:
            block = peer.get("ipBlock")
            if block and ipaddress.ip_address(address) in ipaddress.ip_network(block["cidr"]):
                if not any(ipaddress.ip_address(address) in ipaddress.ip_network(e) for e in block.get("except", [])):
                    return True
    return False


def reaches_pod(rules: list[dict] | None, labels: dict[str, str], port: int) -> bool:
    """Whether a pod of the namespace with these labels is reached on this TCP port."""
    if rules is None:
        return True
    for rule in rules:
        ports = rule.get("ports")
        if ports and not any(p["protocol"] == "TCP" and p["port"] == port for p in ports):
            continue
        for peer in rule.get("to") or [{}]:
            if "ipBlock" in peer or "namespaceSelector" in peer:
                continue
            selector = peer.get("podSelector", {}).get("matchLabels", {})
            if all(labels.get(k) == v for k, v in selector.items()):
                return True
    return False


def reaches_dns(rules: list[dict] | None) -> bool:
    if rules is None:
        return True
    return any(
        any(p["port"] == 53 for p in rule.get("ports", []))
        and any(peer.get("podSelector", {}).get("matchLabels") == {"k8s-app": "kube-dns"} for peer in rule["to"])
        for rule in rules
    )


@pytest.mark.parametrize("stack", STACKS)
def test_vllm_sends_nothing_at_all(stack):
    r = rendered(stack)
    rules = egress(r, pod_labels(r, "Deployment", workload.APP))
    assert rules == []
    for destination in (INTERNET_443, IMDS, AGENT, POD):
        assert not reaches(rules, *destination), destination
    assert not reaches_dns(rules)


@pytest.mark.parametrize("stack", STACKS)
def test_the_stager_reaches_exactly_dns_https_and_with_s3_the_pod_identity_agent(stack):
    r, s = rendered(stack), config.from_stack_file(stack)
    rules = egress(r, pod_labels(r, "DaemonSet", weight_staging.NAME))
    assert reaches_dns(rules) and reaches(rules, *INTERNET_443)
    assert reaches(rules, *AGENT) is (s.weights.source == "s3")
    assert not reaches(rules, *IMDS) and not reaches(rules, *POD)
    assert not reaches(rules, "18.239.50.1", "TCP", 80)  # HTTPS only


@pytest.mark.parametrize("stack", STACKS)
def test_the_stager_reaches_vllm_only_on_its_serving_port_and_only_with_the_compile_cache(stack):
    r, s = rendered(stack), config.from_stack_file(stack)
    rules = egress(r, pod_labels(r, "DaemonSet", weight_staging.NAME))
    vllm = pod_labels(r, "Deployment", workload.APP)
    assert reaches_pod(rules, vllm, profiles.PORT) is s.weights.shares_compile_cache
    assert not any(reaches_pod(rules, vllm, port) for port in (profiles.PORT + 1, 22, 80))
    assert not reaches_pod(rules, {"app.kubernetes.io/name": "other"}, profiles.PORT)
