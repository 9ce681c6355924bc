"""What reaches the vLLM pods and what they reach: the namespace's NetworkPolicies, and the
node-local Service the stager uses to find its own node's vLLM."""

from __future__ import annotations

from collections.abc import Sequence

from components.kubernetes import network_policy
from components.serving import profiles
from components.serving.workload import APP, LABELS, NAMESPACE, MirrorSource
from components.weights import mirror as weight_mirror
from components.weights import staging as weight_staging

NODE_LOCAL_SERVICE = f"{APP}-node-local"  # the stager's way to its own node's vLLM (node_local_service)


def network_policies(
    load_balancer_cidrs: Sequence[str], mirror: MirrorSource | None = None, router: dict | None = None
) -> list[dict]:
    """Default deny for the namespace, then the vLLM pods' own allowances, the stager's (and the
    mirror Job's).

    load_balancer_cidrs: the subnets the ALB is placed in. Never the VPC: every pod has a VPC
    address, and vLLM checks the API key only under /v1, /v2, /inference and /cohere. The vLLM
    pods send nothing: the weights are on the node before vLLM starts (staging.py). With the
    shared compile cache the stager reads the node's vLLM /health, on the serving port only."""
    publishes = bool(mirror and mirror.compile_cache_prefix)
    policies = [
        network_policy.default_deny(NAMESPACE, LABELS),
        network_policy.serving_policy(
            APP,
            NAMESPACE,
            LABELS,
            profiles.PORT,
            load_balancer_cidrs,
            router=router,
            node_stager=weight_staging.LABELS if publishes else None,
        ),
        network_policy.fetcher_policy(
            weight_staging.NAME,
            NAMESPACE,
            weight_staging.LABELS,
            pod_identity=mirror is not None,
            serving=(LABELS, profiles.PORT) if publishes else None,
        ),
    ]
    if mirror and mirror.fills:
        policies.append(weight_mirror.job_network_policy(NAMESPACE))
    return policies


def node_local_service() -> dict:
    """The node's own vLLM pods (internalTrafficPolicy Local: a client reaches only endpoints on
    its node): the stager asks it for /health before publishing what this node compiled."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NODE_LOCAL_SERVICE, "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {
            "type": "ClusterIP",
            "selector": dict(LABELS),
            "internalTrafficPolicy": "Local",
            "ports": [{"name": "http", "port": profiles.PORT, "targetPort": profiles.PORT, "protocol": "TCP"}],
        },
    }


def node_health_url() -> str:
    return f"http://{NODE_LOCAL_SERVICE}.{NAMESPACE}.svc:{profiles.PORT}/health"
