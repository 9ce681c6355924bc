"""The vLLM workload and its endpoint as plain Kubernetes objects (pure functions, no Pulumi).

The Kubernetes layer sends these dicts as they are, so tests and `make plan` read exactly
what the cluster receives.
"""

from __future__ import annotations

from components import gpu_pool, profiles
from components.settings import EndpointSettings, InstanceType, ServingSettings

NAMESPACE = "minimax-vllm"
APP = "vllm"
CREDENTIALS_SECRET = "vllm-credentials"
API_KEY_ENV = "VLLM_API_KEY"  # vLLM's own environment variable for --api-key
HF_TOKEN_ENV = "HF_TOKEN"
CACHE_MOUNT = "/cache"

# First start downloads ~220 GB of weights, then loads and compiles: allow an hour before
# the kubelet gives up, and only then let the liveness probe act.
STARTUP_BUDGET_SECONDS = 3600
PROBE_PERIOD_SECONDS = 10
# In-flight streams get this long after the pod leaves the load balancer.
DRAIN_SECONDS = 300
SHM_SIZE = "64Gi"  # NCCL between the GPUs of one replica uses /dev/shm
# Share of a node's CPU and memory given to pods per GPU; the rest is for the kubelet and daemonsets.
NODE_SHARE = 0.8

LABELS = {"app.kubernetes.io/name": APP, "app.kubernetes.io/part-of": "minimax-vllm"}


def namespace() -> dict:
    # The load balancer controller injects readiness gates here, so a rollout waits until the
    # new pod is healthy in the NLB before it stops the next old one.
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}},
    }


def pod_resources(instance: InstanceType, gpus: int) -> dict:
    """Requests equal limits: GPUs of the profile, and CPU/memory in proportion, so two 4-GPU
    replicas fit one p5.48xlarge beside the node's daemonsets."""
    share = NODE_SHARE * gpus / instance.gpus
    amounts = {
        "cpu": str(int(instance.vcpus * share)),
        "memory": f"{int(instance.memory_gib * share)}Gi",
        "nvidia.com/gpu": str(gpus),
    }
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _probe(period: int, failures: int) -> dict:
    return {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def _env(has_hf_token: bool) -> list[dict]:
    env = [{"name": k, "value": v} for k, v in profiles.vllm_env().items()]
    env += [
        {"name": "HF_HOME", "value": f"{CACHE_MOUNT}/huggingface"},
        {"name": "VLLM_CACHE_ROOT", "value": f"{CACHE_MOUNT}/vllm"},
        {"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": CREDENTIALS_SECRET, "key": "api-key"}}},
    ]
    if has_hf_token:
        env.append(
            {"name": HF_TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": CREDENTIALS_SECRET, "key": "hf-token"}}}
        )
    return env


def template_metadata(autoscaled: bool) -> dict:
    """Pod labels; with autoscaling, the Cluster Autoscaler may never evict a replica to
    consolidate nodes (it would cost a cold start): a node goes once its replicas are scaled away.
    Only then, so fixed-size stacks keep their pod template (a change restarts every replica)."""
    if not autoscaled:
        return {"labels": LABELS}
    return {"labels": LABELS, "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}}


def deployment(serving: ServingSettings, instance: InstanceType, has_hf_token: bool, autoscaled: bool = False) -> dict:
    """The vLLM Deployment: argv only from the profile function, secrets only by reference."""
    argv = profiles.vllm_argv(serving)
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            # Two 4-GPU replicas may share a p5 unless the stack asks for one node per replica.
            "whenUnsatisfiable": "DoNotSchedule" if serving.spread_across_nodes else "ScheduleAnyway",
            "labelSelector": {"matchLabels": LABELS},
        },
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": LABELS},
        },
    ]
    pool_key, pool_value = gpu_pool.POOL_LABEL
    container = {
        "name": "vllm",
        "image": serving.image,
        "command": argv[:2],
        "args": argv[2:],
        "env": _env(has_hf_token),
        "ports": [{"name": "http", "containerPort": profiles.PORT, "protocol": "TCP"}],
        "resources": pod_resources(instance, serving.gpus_per_replica),
        "startupProbe": _probe(PROBE_PERIOD_SECONDS, STARTUP_BUDGET_SECONDS // PROBE_PERIOD_SECONDS),
        "readinessProbe": _probe(PROBE_PERIOD_SECONDS, 3),
        # Runs only after the startup probe has passed, so it cannot kill a loading model.
        "livenessProbe": _probe(30, 5),
        # Keep serving while the NLB deregisters the pod, so streams in flight can finish.
        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
        "volumeMounts": [
            {"name": "cache", "mountPath": CACHE_MOUNT},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP, "namespace": NAMESPACE, "labels": LABELS},
        "spec": {
            "replicas": serving.replicas,
            "selector": {"matchLabels": LABELS},
            # Never ask for a spare GPU node: stop one old pod, then start its successor.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {
                "metadata": template_metadata(autoscaled),
                "spec": {
                    "terminationGracePeriodSeconds": DRAIN_SECONDS + 60,
                    "tolerations": [gpu_pool.TOLERATION],
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [
                                    {"matchExpressions": [{"key": pool_key, "operator": "In", "values": [pool_value]}]}
                                ]
                            }
                        }
                    },
                    "topologySpreadConstraints": spread,
                    "containers": [container],
                    "volumes": [
                        # On the node's NVMe RAID0: survives pod restarts, so nothing is downloaded
                        # or compiled twice.
                        {
                            "name": "cache",
                            "hostPath": {"path": gpu_pool.MODEL_CACHE_HOST_PATH, "type": "DirectoryOrCreate"},
                        },
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}},
                    ],
                },
            },
        },
    }


def disruption_budget() -> dict:
    # One replica at a time may go for a voluntary disruption (node drain, upgrade).
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": APP, "namespace": NAMESPACE, "labels": LABELS},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": LABELS}},
    }


def listener_port(endpoint: EndpointSettings) -> int:
    return 443 if endpoint.certificate_arn else 80


def service(endpoint: EndpointSettings, tags: dict[str, str]) -> dict:
    """The endpoint: an NLB made by the AWS Load Balancer Controller, IP targets on port 8000."""
    port = listener_port(endpoint)
    protocol = "TLS" if endpoint.certificate_arn else "TCP"
    prefix = "service.beta.kubernetes.io/aws-load-balancer"
    annotations = {
        f"{prefix}-type": "external",
        f"{prefix}-nlb-target-type": "ip",
        f"{prefix}-scheme": endpoint.scheme,
        f"{prefix}-healthcheck-protocol": "http",
        f"{prefix}-healthcheck-path": "/health",
        f"{prefix}-healthcheck-port": "traffic-port",
        f"{prefix}-healthcheck-success-codes": "200",
        # NLB TCP listeners close idle connections after 350 s by default: too short for a long
        # generation whose first token takes minutes.
        f"{prefix}-listener-attributes.{protocol}-{port}": f"tcp.idle_timeout.seconds={endpoint.idle_timeout_seconds}",
        # Client IPs must reach the targets for loadBalancerSourceRanges to be enforced with IP targets.
        f"{prefix}-target-group-attributes": f"preserve_client_ip.enabled=true,deregistration_delay.timeout_seconds={DRAIN_SECONDS}",
        f"{prefix}-attributes": "load_balancing.cross_zone.enabled=true",
        f"{prefix}-additional-resource-tags": ",".join(f"{k}={v}" for k, v in sorted(tags.items())),
        # `pulumi up` must not wait for the load balancer's status (the NLB and the model take
        # their time); the endpoint output is read from the Service once it has one.
        "pulumi.com/skipAwait": "true",
    }
    if endpoint.certificate_arn:
        annotations[f"{prefix}-ssl-cert"] = endpoint.certificate_arn
        annotations[f"{prefix}-ssl-ports"] = str(port)
        annotations[f"{prefix}-ssl-negotiation-policy"] = "ELBSecurityPolicy-TLS13-1-2-2021-06"
    spec = {
        "type": "LoadBalancer",
        "loadBalancerClass": "service.k8s.aws/nlb",
        "selector": LABELS,
        "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
    }
    if endpoint.source_ranges:
        spec["loadBalancerSourceRanges"] = list(endpoint.source_ranges)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": APP, "namespace": NAMESPACE, "labels": LABELS, "annotations": annotations},
        "spec": spec,
    }
