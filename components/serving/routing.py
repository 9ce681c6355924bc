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
METRICS_PATH = "/metrics"  # on METRICS_PORT: the router's own listener
REPLICAS = 2
# No release-tagged image of the router is published (Docker Hub carries nightly tags only), so
# the image is the pinned PyPI wheel (router_flags.ROUTER_VERSION) built by
# images/vllm-router/Dockerfile into the stack's own ECR repository `minimax-vllm/<cluster>/vllm-router`
# (components/aws/image_registry.py creates it; `python -m ops image copy` prints the build and
# push; preflight checks the tag is there, ops/aws_checks/images.py).
# The image's user (images/vllm-router/Dockerfile USER): the router needs no root, unlike vLLM.
IMAGE_UID = 65532
# The router's HTTP client to the replicas keeps an idle connection for 50 s (reqwest
# pool_idle_timeout, vllm-project/router src/server.rs). vLLM's uvicorn closes an idle one after
# VLLM_HTTP_TIMEOUT_KEEP_ALIVE (5 s by default, vllm/envs.py): the router could reuse a connection
# vLLM is closing. vLLM's keep-alive is raised to the ALB idle timeout (>= this), see vllm_keep_alive.
ROUTER_POOL_IDLE_S = 50
# The router's own server (axum::serve on hyper) sets no idle timeout on a client's keep-alive
# connection: the ALB's idle timeout is the only one on that hop (vllm-project/router src/server.rs).
ROUTER_SERVER_IDLE_TIMEOUT_S: int | None = None
# How long a new router pod takes to become Ready, for the timeline's router phase (an estimate):
# the image (python:3.11-slim-bookworm and a 24 MB wheel with its closure) is pulled on a system
# node, the binary answers /health without any worker (measured on loopback: 0.5-0.6 s after start,
# three runs), then the readiness probe (period 5 s) must pass once.
READINESS_S = 30
# Reads only: the router's discovery watches pods (vllm_router/router_args.py --service-discovery).
RBAC_RULES = ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},)


def image(repository_url: str) -> str:
    return f"{repository_url}:{router_flags.ROUTER_VERSION}"


def request_timeout(endpoint: EndpointSettings) -> int:
    """The router's request timeout: never below the ALB's idle timeout (nor the router's 1800 s
    default), so the router is never the hop that cuts a long silent prefill."""
    return max(endpoint.idle_timeout_seconds, 1800)


def vllm_keep_alive(endpoint: EndpointSettings) -> int:
    """vLLM's keep-alive behind the router: at least the ALB's idle timeout and above the router's
    connection-pool idle time, so vLLM never closes a connection the router may still reuse."""
    return max(endpoint.idle_timeout_seconds, ROUTER_POOL_IDLE_S + 1)


def args(routing: RoutingSettings, serving: ServingSettings, endpoint: EndpointSettings) -> list[str]:
    # One `key=value` item per label: the router splits items on the first `=` only
    # (vllm_router/router_args.py _parse_selector), so "a=b,c=d" would be one label a="b,c=d".
    selector = [f"{k}={v}" for k, v in sorted(workload.LABELS.items())]
    out = [
        "--host=0.0.0.0",
        f"--port={PORT}",
        f"--policy={router_flags.POLICIES[routing.policy]}",
        "--service-discovery",
        "--selector",
        *selector,
        f"--service-discovery-port={profiles.PORT}",
        f"--service-discovery-namespace={workload.NAMESPACE}",
        f"--request-timeout-secs={request_timeout(endpoint)}",
        "--prometheus-host=0.0.0.0",
        f"--prometheus-port={METRICS_PORT}",
        *router_flags.RESILIENCE,
    ]
    ranks = data_parallel_ranks(serving)
    if ranks > 1:
        # Each data-parallel rank holds its own prefix cache: the router treats every rank of a pod
        # as a worker and names it in the X-data-parallel-rank header, which vLLM's chat endpoint
        # honours (vllm/entrypoints/openai/chat_completion/serving.py). vllm-router 0.1.17 needs no
        # key for this (measured on loopback: it expands each worker into its ranks without asking
        # it), so none is passed: the key never sits in the router's argv.
        out.append(f"--intra-node-data-parallel-size={ranks}")
    return out


def data_parallel_ranks(serving: ServingSettings) -> int:
    """The data-parallel ranks in one vLLM pod (the profile's, as vllm_argv passes them)."""
    return profiles.data_parallel_size(profiles.PROFILES[serving.profile], serving.tensor_parallel_size)


def deployment(
    routing: RoutingSettings, serving: ServingSettings, endpoint: EndpointSettings, registry: str, t: timeline.Timers
) -> dict:
    """Two replicas on the system nodes (never a GPU node), one per node where it can."""
    pool_key, pool_value = gpu_pool.POOL_LABEL
    probe = {"httpGet": {"path": "/health", "port": PORT_NAME}, "periodSeconds": 5, "failureThreshold": 3}
    container = {
        "name": "router",
        "image": image(registry),
        "imagePullPolicy": "IfNotPresent",
        "command": ["vllm-router"],
        "args": args(routing, serving, endpoint),
        "ports": [
            {"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"},
            {"name": METRICS_PORT_NAME, "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
        "readinessProbe": probe,
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 6},
        # Keep routing while the ALB deregisters the pod (the same drain as vLLM's).
        "lifecycle": {"preStop": {"sleep": {"seconds": t.pre_stop}}},
        "securityContext": {
            **workload.security_context(),
            "runAsUser": IMAGE_UID,
            "runAsGroup": IMAGE_UID,
            "runAsNonRoot": True,
        },
    }
    # The scanner's waivers (checkov.io/skipN), each with its reason.
    reasons = (
        "CKV_K8S_15=the tag is the pinned router version, so IfNotPresent runs that image",
        "CKV_K8S_38=the router's Kubernetes discovery reads pods with this token (Role: get/list/watch pods)",
        "CKV_K8S_43=built by the stack's owner into its own ECR (python -m ops image copy), tagged with the pinned version",
    )
    waivers = {f"checkov.io/skip{i}": r for i, r in enumerate(reasons, start=1)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP, "namespace": workload.NAMESPACE, "labels": LABELS, "annotations": waivers},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "serviceAccountName": APP,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": IMAGE_UID,
                        "runAsGroup": IMAGE_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
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
