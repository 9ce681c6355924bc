"""vLLM's router between the ALB and the vLLM replicas (routing.mode router).

The ALB sends /v1 and /health to the router's pods; the router finds the vLLM pods by Kubernetes
discovery (its ServiceAccount may only read pods in this namespace) and sends each conversation to
the replica holding its prefix. It passes `Authorization` on, so vLLM still checks the key. Flags
come from components/serving/router_flags.py, the ones the loopback replay runs
(tests/test_routing_replay.py, `make routing`).
"""

from __future__ import annotations

from collections.abc import Sequence

from components.facts import gpu_pool, timeline
from components.kubernetes import network_policy
from components.serving import profiles, router_flags, workload
from components.settings.routing import RoutingSettings
from components.settings.stack import EndpointSettings, ServingSettings

APP = "vllm-router"
LABELS = {"app.kubernetes.io/name": APP, "app.kubernetes.io/part-of": "minimax-vllm"}
PORT = 8080
PORT_NAME = "http"
METRICS_PORT = 29000
METRICS_PORT_NAME = "metrics"
REPLICAS = 2
API_KEY_ENV = "ROUTER_API_KEY"
# No release-tagged image of the router is published (Docker Hub carries nightly tags only), so
# the image is the pinned PyPI wheel (router_flags.ROUTER_VERSION) built into the stack's own ECR
# repository `minimax-vllm/<cluster>/vllm-router` (components/aws/image_registry.py creates it):
# the image must be pushed there before `pulumi up` with routing.mode router.
# Reads only: the router's discovery watches pods (vllm_router/router_args.py --service-discovery).
RBAC_RULES = ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},)


def image(repository_url: str) -> str:
    return f"{repository_url}:{router_flags.ROUTER_VERSION}"


def request_timeout(endpoint: EndpointSettings) -> int:
    """The router's request timeout: never below the ALB's idle timeout (nor the router's 1800 s
    default), so the router is never the hop that cuts a long silent prefill."""
    return max(endpoint.idle_timeout_seconds, 1800)


def args(routing: RoutingSettings, serving: ServingSettings, endpoint: EndpointSettings) -> list[str]:
    selector = ",".join(f"{k}={v}" for k, v in sorted(workload.LABELS.items()))
    out = [
        "--host=0.0.0.0",
        f"--port={PORT}",
        f"--policy={router_flags.POLICIES[routing.policy]}",
        "--service-discovery",
        f"--selector={selector}",
        f"--service-discovery-port={profiles.PORT}",
        f"--service-discovery-namespace={workload.NAMESPACE}",
        f"--request-timeout-secs={request_timeout(endpoint)}",
        "--prometheus-host=0.0.0.0",
        f"--prometheus-port={METRICS_PORT}",
        *router_flags.RESILIENCE,
    ]
    if serving.profile == "dp8-ep":
        # Each data-parallel rank holds its own prefix cache: route to a rank. The router asks the
        # workers for their ranks with the API key, taken from the Secret through the environment.
        out += ["--intra-node-data-parallel-size=8", f"--api-key=$({API_KEY_ENV})"]
    return out


def deployment(
    routing: RoutingSettings, serving: ServingSettings, endpoint: EndpointSettings, registry: str, t: timeline.Timers
) -> dict:
    """Two replicas on the system nodes (never a GPU node), one per node where it can."""
    pool_key, pool_value = gpu_pool.POOL_LABEL
    probe = {"httpGet": {"path": "/health", "port": PORT_NAME}, "periodSeconds": 5, "failureThreshold": 3}
    env = []
    if serving.profile == "dp8-ep":
        ref = {"secretKeyRef": {"name": workload.CREDENTIALS_SECRET, "key": "api-key"}}
        env.append({"name": API_KEY_ENV, "valueFrom": ref})
    container = {
        "name": "router",
        "image": image(registry),
        "imagePullPolicy": "IfNotPresent",
        "command": ["vllm-router"],
        "args": args(routing, serving, endpoint),
        "env": env,
        "ports": [
            {"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"},
            {"name": METRICS_PORT_NAME, "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "readinessProbe": probe,
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 6},
        # Keep routing while the ALB deregisters the pod (the same drain as vLLM's).
        "lifecycle": {"preStop": {"sleep": {"seconds": t.pre_stop}}},
        "securityContext": workload.security_context(),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP, "namespace": workload.NAMESPACE, "labels": LABELS},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "serviceAccountName": APP,
                    "terminationGracePeriodSeconds": t.grace,
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [
                                    {
                                        "matchExpressions": [
                                            {"key": pool_key, "operator": "NotIn", "values": [pool_value]}
                                        ]
                                    }
                                ]
                            }
                        }
                    },
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": LABELS},
                        }
                    ],
                    "containers": [container],
                },
            },
        },
    }


def disruption_budget() -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": APP, "namespace": workload.NAMESPACE, "labels": LABELS},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": LABELS}},
    }


def rbac() -> list[dict]:
    """ServiceAccount, Role (read pods in this namespace, nothing else) and its RoleBinding."""
    meta = {"name": APP, "namespace": workload.NAMESPACE, "labels": LABELS}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": True},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": list(RBAC_RULES)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": APP},
            "subjects": [{"kind": "ServiceAccount", "name": APP, "namespace": workload.NAMESPACE}],
        },
    ]


def router_peer() -> dict:
    """The router's pods (same namespace): the only peer vLLM admits for requests."""
    return {"podSelector": {"matchLabels": dict(LABELS)}}


def network_policy_(load_balancer_cidrs: Sequence[str]) -> dict:
    """In: the ALB (its subnets) on the router port, Prometheus on the metrics port.
    Out: DNS, the vLLM pods' serving port, and the Kubernetes API (discovery) on 443."""
    sources = sorted(dict.fromkeys(load_balancer_cidrs))
    if not sources:
        raise ValueError("the load balancer's subnets are unknown: the router port would admit no load balancer")
    dns, https = network_policy.egress_rules()
    spec = {
        "podSelector": {"matchLabels": dict(LABELS)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {"from": [{"ipBlock": {"cidr": c}} for c in sources], "ports": [{"protocol": "TCP", "port": PORT}]},
            {"from": [network_policy.scraper_peer()], "ports": [{"protocol": "TCP", "port": METRICS_PORT}]},
        ],
        "egress": [
            dns,
            {
                "to": [{"podSelector": {"matchLabels": dict(workload.LABELS)}}],
                "ports": [{"protocol": "TCP", "port": profiles.PORT}],
            },
            https,  # the EKS API endpoint (its addresses are not known in advance)
        ],
    }
    return network_policy._policy(APP, workload.NAMESPACE, LABELS, spec)
