"""NetworkPolicies of the vLLM namespace: deny everything, then allow only what serving needs.

The VPC CNI enforces them once its add-on runs with `enableNetworkPolicy` (cluster.py).
In, to the serving port: the load balancer and the Prometheus pods, nothing else. The ALB (IP
targets) proxies every request, so the pods see its nodes' addresses, which lie in the subnets
it is placed in; the policy admits exactly those subnets. No node and no pod has an address
there (nodes run in the private subnets, and the VPC CNI gives a pod an address of its node's
subnet), and subnets of one VPC never overlap, so no pod or node range is admitted and no
`except` is needed. The AWS network policy agent matches an ipBlock against every source
address, pods' included; docs/operations.md (Network exposure) has the reasoning and sources.
Client ranges are enforced on the ALB.
Out: nothing. vLLM runs the model repository's own code (--trust-remote-code) and needs no network
once the weights are staged, so it gets none, not even DNS. The pods that fetch (the node stager,
the mirror Job: `fetcher_policy`) get DNS to CoreDNS, HTTPS (the Hub, or S3) and, with an S3
mirror, the Pod Identity agent's credentials endpoint.
Nothing else: no pod-to-pod, no instance metadata, no other port.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from components.facts import scraper

MONITORING_NAMESPACE = scraper.NAMESPACE
DNS_PORT = 53
HTTPS_PORT = 443
WORLD = "0.0.0.0/0"
# The namespace label every namespace carries (Kubernetes sets it, immutable).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
COREDNS_LABELS = {"k8s-app": "kube-dns"}  # the EKS CoreDNS add-on's pod labels
DEFAULT_DENY = "default-deny"
# The EKS Pod Identity agent on every node serves credentials at this link-local address
# (AWS_CONTAINER_CREDENTIALS_FULL_URI http://169.254.170.23/v1/credentials; EKS user guide).
POD_IDENTITY_AGENT = "169.254.170.23/32"
POD_IDENTITY_PORT = 80


def _policy(name: str, namespace: str, labels: Mapping[str, str], spec: dict) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": spec,
    }


def default_deny(namespace: str, labels: Mapping[str, str]) -> dict:
    """Every pod of the namespace: no traffic in or out unless another policy allows it."""
    return _policy(DEFAULT_DENY, namespace, labels, {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})


def egress_rules(pod_identity: bool = False) -> list[dict]:
    """Out: DNS to CoreDNS, HTTPS anywhere (the Hub; S3 through the gateway endpoint) and, for
    pods with an AWS role, the Pod Identity agent (only its address and port)."""
    rules = [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "kube-system"}},
                    "podSelector": {"matchLabels": dict(COREDNS_LABELS)},
                }
            ],
            "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}],
        },
        {"to": [{"ipBlock": {"cidr": WORLD}}], "ports": [{"protocol": "TCP", "port": HTTPS_PORT}]},
    ]
    if pod_identity:
        rules.append(
            {
                "to": [{"ipBlock": {"cidr": POD_IDENTITY_AGENT}}],
                "ports": [{"protocol": "TCP", "port": POD_IDENTITY_PORT}],
            }
        )
    return rules


def scraper_peer() -> dict:
    """The Prometheus pods of the monitoring namespace, and no other pod there."""
    return {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: MONITORING_NAMESPACE}},
        "podSelector": scraper.pod_selector(),
    }


def serving_policy(
    name: str,
    namespace: str,
    pod_labels: Mapping[str, str],
    port: int,
    load_balancer_sources: Iterable[str],
    router: Mapping[str, object] | None = None,
    node_stager: Mapping[str, str] | None = None,
) -> dict:
    """What the vLLM pods may receive; they send nothing (policyTypes Egress, no egress rule).

    load_balancer_sources: the CIDRs of the subnets the ALB is placed in (its nodes' addresses).
    router: with a router in front (routing.mode router), the peer of its pods: requests come
    only from them, and the ALB no longer reaches vLLM. node_stager: the stager pods' labels, admitted
    on the serving port only, to read /health before they publish the compile cache.
    """
    sources = sorted(dict.fromkeys(load_balancer_sources))
    if not sources:
        raise ValueError("the load balancer's subnets are unknown: the serving port would admit no load balancer")
    serving_port = [{"protocol": "TCP", "port": port}]
    requesters = [dict(router)] if router else [{"ipBlock": {"cidr": cidr}} for cidr in sources]
    ingress = [
        {"from": requesters, "ports": serving_port},
        # vLLM serves /metrics on the same port as the API.
        {"from": [scraper_peer()], "ports": serving_port},
    ]
    if node_stager:
        ingress.append({"from": [{"podSelector": {"matchLabels": dict(node_stager)}}], "ports": serving_port})
    spec = {
        "podSelector": {"matchLabels": dict(pod_labels)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": ingress,
        "egress": [],
    }
    return _policy(name, namespace, pod_labels, spec)


def fetcher_policy(
    name: str,
    namespace: str,
    pod_labels: Mapping[str, str],
    pod_identity: bool,
    serving: tuple[Mapping[str, str], int] | None = None,
) -> dict:
    """A pod that fetches (the node stager): nothing in; out DNS, HTTPS and, with an AWS role,
    the Pod Identity agent. serving: the vLLM pods' labels and port, when the stager waits for
    their /health (the compile cache's publish), that port only."""
    egress = egress_rules(pod_identity)
    if serving:
        labels, port = serving
        egress.append(
            {"to": [{"podSelector": {"matchLabels": dict(labels)}}], "ports": [{"protocol": "TCP", "port": port}]}
        )
    spec = {
        "podSelector": {"matchLabels": dict(pod_labels)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": egress,
    }
    return _policy(name, namespace, pod_labels, spec)


# --- the system namespaces (monitoring, keda, nvidia-device-plugin) ------------------------
# The EKS control plane calls webhooks and aggregated APIs from network interfaces in the
# cluster's subnets, which also hold every node and pod: no ipBlock tells it apart from a pod.
# Those ports admit any source and rely on their own TLS and the API server's delegated
# authentication; what they answer is admission reviews and (KEDA) the external metrics API.
CONTROL_PLANE = WORLD


def tcp(*numbers: int | str) -> list[dict]:
    return [{"protocol": "TCP", "port": n} for n in numbers]


def pods_in(namespace: str, selector: Mapping[str, object]) -> dict:
    """A peer: the pods of `namespace` that `selector` (a label selector) picks."""
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}, "podSelector": dict(selector)}


def dns() -> dict:
    return egress_rules()[0]


def anywhere(*ports: int) -> dict:
    """Out to any address on these ports: the API server, AWS APIs (no fixed addresses)."""
    return {"to": [{"ipBlock": {"cidr": WORLD}}], "ports": tcp(*ports)}


def pod_identity_agent() -> dict:
    return {"to": [{"ipBlock": {"cidr": POD_IDENTITY_AGENT}}], "ports": tcp(POD_IDENTITY_PORT)}


def allow(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    selector: Mapping[str, object],
    ingress: list[dict] | None = None,
    egress: list[dict] | None = None,
) -> dict:
    """What the pods `selector` picks may receive and send, beside the namespace's default deny.
    Both directions are listed in policyTypes: an empty list allows nothing that way."""
    spec = {
        "podSelector": dict(selector),
        "policyTypes": ["Ingress", "Egress"],
        "ingress": list(ingress or []),
        "egress": list(egress or []),
    }
    return _policy(name, namespace, labels, spec)
