"""The vLLM workload and its endpoint as plain Kubernetes objects (pure functions, no Pulumi).

The Kubernetes layer sends these dicts as they are, so tests and `make plan` read exactly
what the cluster receives.
"""

from __future__ import annotations

from components import gpu_pool, network_policy, pod_security, profiles, supply_chain
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
# The NLB hands the pods the clients' own addresses (target group attribute below), so the
# pods' NetworkPolicy must admit the client networks as well as the VPC.
PRESERVE_CLIENT_IP = True

# Written waivers for the independent scanner (checkov) on the vLLM Deployment: each names the
# check and why this workload cannot pass it. tests/test_checkov.py fails on any failure
# that is not listed here.
SECRETS_AS_ENV_WAIVER = (
    "CKV_K8S_35",
    "vLLM reads its API key only from the VLLM_API_KEY environment variable (or a flag, which "
    "would show in the pod spec); the value comes from a Secret by secretKeyRef, never inline",
)
IMAGE_PULL_POLICY_WAIVER = (
    "CKV_K8S_15",
    "the image is pinned (release tag, and digest once recorded), so IfNotPresent runs that "
    "image and a restart does not pull tens of GB again",
)
DIGEST_MISSING_WAIVER = (
    "CKV_K8S_43",
    "no digest recorded for this tag yet: run `python -m ops preflight --record-digest`; "
    "prod stacks are refused by preflight until it is",
)


def checkov_waivers(image: str) -> dict[str, str]:
    """`checkov.io/skipN` annotations: the scanner's own format for a written waiver."""
    waivers = [*pod_security.CHECKOV_WAIVERS, SECRETS_AS_ENV_WAIVER, IMAGE_PULL_POLICY_WAIVER]
    if "@sha256:" not in image:
        waivers.append(DIGEST_MISSING_WAIVER)
    return {f"checkov.io/skip{i}": f"{check}={reason}" for i, (check, reason) in enumerate(sorted(waivers), start=1)}


def load_balancer_sources(vpc_cidr: str, endpoint: EndpointSettings) -> list[str]:
    """Where the load balancer's traffic to the pods comes from: its nodes in the VPC, and the
    clients themselves while their addresses are preserved."""
    preserved = list(endpoint.source_ranges) if PRESERVE_CLIENT_IP else []
    return sorted(dict.fromkeys([vpc_cidr, *preserved]))


def network_policies(vpc_cidr: str, endpoint: EndpointSettings) -> list[dict]:
    """Default deny for the namespace, then the vLLM pods' own allowances."""
    return [
        network_policy.default_deny(NAMESPACE, LABELS),
        network_policy.serving_policy(APP, NAMESPACE, LABELS, profiles.PORT, load_balancer_sources(vpc_cidr, endpoint)),
    ]


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
    plain = {**profiles.vllm_env(), **pod_security.cache_env(CACHE_MOUNT)}
    env = [{"name": k, "value": plain[k]} for k in sorted(plain)]
    env += [
        {"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": CREDENTIALS_SECRET, "key": "api-key"}}},
    ]
    if has_hf_token:
        env.append(
            {"name": HF_TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": CREDENTIALS_SECRET, "key": "hf-token"}}}
        )
    return env


def deployment(serving: ServingSettings, instance: InstanceType, has_hf_token: bool) -> dict:
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
    image = supply_chain.pinned_image(serving.image)
    container = {
        "name": "vllm",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
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
            *pod_security.scratch_mounts(),
        ],
        "securityContext": pod_security.container_security_context(),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": APP,
            "namespace": NAMESPACE,
            "labels": LABELS,
            "annotations": checkov_waivers(image),
        },
        "spec": {
            "replicas": serving.replicas,
            "selector": {"matchLabels": LABELS},
            # Never ask for a spare GPU node: stop one old pod, then start its successor.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    # vLLM never calls the Kubernetes API: no token in the pod.
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security.pod_security_context(),
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
                        *pod_security.scratch_volumes(),
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
        f"{prefix}-target-group-attributes": f"preserve_client_ip.enabled={str(PRESERVE_CLIENT_IP).lower()},deregistration_delay.timeout_seconds={DRAIN_SECONDS}",
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
