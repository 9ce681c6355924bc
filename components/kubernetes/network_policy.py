"""NetworkPolicies of the vLLM namespace: deny everything, then allow only what serving needs.

The VPC CNI enforces them once its add-on runs with `enableNetworkPolicy` (cluster.py).
In: the load balancer to the serving port (an ALB with IP targets proxies every request, so
its own addresses in the VPC; client ranges are enforced on the ALB) and the metrics scraper in
the monitoring namespace. Out: DNS to CoreDNS, and HTTPS (the Hugging Face Hub or an S3 weight
mirror) and, with an S3 mirror, the Pod Identity agent's credentials endpoint.
Nothing else: no pod-to-pod, no instance metadata, no other port.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

MONITORING_NAMESPACE = "monitoring"  # kube-prometheus-stack's namespace
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


def serving_policy(
    name: str,
    namespace: str,
    pod_labels: Mapping[str, str],
    port: int,
    load_balancer_sources: Iterable[str],
    pod_identity: bool = False,
) -> dict:
    """What the vLLM pods may receive and send.

    load_balancer_sources: CIDRs the load balancer's traffic comes from (the VPC CIDR; plus the
    client networks when the load balancer preserves client addresses).
    pod_identity: the pods get AWS credentials from the EKS Pod Identity agent (S3 weight mirror).
    """
    sources = sorted(dict.fromkeys(load_balancer_sources))
    serving_port = [{"protocol": "TCP", "port": port}]
    ingress = [
        {"from": [{"ipBlock": {"cidr": cidr}} for cidr in sources], "ports": serving_port},
        # vLLM serves /metrics on the same port as the API.
        {
            "from": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: MONITORING_NAMESPACE}}}],
            "ports": serving_port,
        },
    ]
    egress = egress_rules(pod_identity)
    spec = {
        "podSelector": {"matchLabels": dict(pod_labels)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": ingress,
        "egress": egress,
    }
    return _policy(name, namespace, pod_labels, spec)
