"""The vLLM workload as plain Kubernetes objects (pure functions, no Pulumi); the endpoint is in endpoint.py.

The Kubernetes layer sends these dicts as they are, so tests and `make plan` read exactly
what the cluster receives.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.aws import image_registry
from components.facts import gpu_pool, timeline
from components.kubernetes import pod_security
from components.kubernetes import pod_security_admission as psa
from components.serving import compile_cache_key as cache_key
from components.serving import profiles, supply_chain
from components.settings.stack import InstanceType, ServingSettings
from components.weights import compile_cache
from components.weights import staging as weight_staging

NAMESPACE = "minimax-vllm"
APP = "vllm"
CREDENTIALS_SECRET = "vllm-credentials"  # the API key only
API_KEY_ENV = "VLLM_API_KEY"  # vLLM's own environment variable for --api-key
# The Hugging Face token has a Secret of its own, read only by what calls the Hub: the stager of a
# Hub-sourced stack and the mirror fill Job. Never the vLLM container, which runs remote code.
HF_TOKEN_SECRET = "hf-token"
HF_TOKEN_KEY = "token"
HF_TOKEN_ENV = "HF_TOKEN"
CACHE_MOUNT = "/cache"
# The container port's name: the probes, the Service's targetPort and the Ingress backend use it.
PORT_NAME = "http"
HF_HOME = f"{CACHE_MOUNT}/huggingface"
# What the staging container needs of the scratch locations (the root filesystem is read-only).
SCRATCH_ENV = ("HOME", "TMPDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")

SHM_SIZE = "64Gi"  # NCCL between the GPUs of one replica uses /dev/shm
# Share of a node's CPU and memory given to pods per GPU; the rest is for the kubelet and daemonsets.
NODE_SHARE = 0.8

LABELS = {"app.kubernetes.io/name": APP, "app.kubernetes.io/part-of": "minimax-vllm"}
POD_SECURITY = psa.NamespaceSecurity(
    NAMESPACE,
    psa.PRIVILEGED,
    "the model and compile cache is a hostPath on the node's NVMe (gpu_pool.MODEL_CACHE_HOST_PATH),"
    " which the baseline level refuses; the namespace's admission policy"
    " (components/kubernetes/admission_policies.py) admits that one hostPath and nothing else"
    " the baseline level refuses",
)

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


@dataclass(frozen=True)
class MirrorSource:
    """Where the pods copy the weights from with `weights.source: s3`."""

    bucket: str
    region: str
    owner: str  # the bucket owner's account id (ExpectedBucketOwner)
    # The stack owns the bucket and so fills it; a stack on `weights.existingBucket` only reads.
    fills: bool = True
    compile_cache_prefix: str | None = None  # weights.compileCache: this stack's cache prefix


def checkov_waivers(
    image: str,
    secrets_as_env: bool = True,
    digest_waiver: tuple[str, str] = DIGEST_MISSING_WAIVER,
    extra: tuple[tuple[str, str], ...] = (),
) -> dict[str, str]:
    """`checkov.io/skipN` annotations: the scanner's own format for a written waiver.

    secrets_as_env: the pods read a Secret through an environment variable (vLLM always, for
    its API key; the stager and the mirror Job only for the optional Hugging Face token).
    digest_waiver: why an image without a digest is still pinned."""
    waivers = [*pod_security.CHECKOV_WAIVERS, IMAGE_PULL_POLICY_WAIVER, *extra]
    if secrets_as_env:
        waivers.append(SECRETS_AS_ENV_WAIVER)
    if "@sha256:" not in image:
        waivers.append(digest_waiver)
    return {f"checkov.io/skip{i}": f"{check}={reason}" for i, (check, reason) in enumerate(sorted(waivers), start=1)}


def namespace() -> dict:
    # The load balancer controller injects readiness gates here, so a rollout waits until the
    # new pod is healthy in the load balancer before it stops the next old one.
    return psa.namespace(POD_SECURITY, {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"})


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
        "httpGet": {"path": "/health", "port": PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def listen_port(argv: list[str]) -> int:
    """The port vLLM listens on, read from its own argv: the container port, the probes, the
    Service and the Ingress all follow it, so they cannot point at a closed port."""
    return int(argv[argv.index("--port") + 1])


def security_context() -> dict:
    """The one container security context: the staging and the vLLM containers both use it."""
    return pod_security.container_security_context()


def timers(serving: ServingSettings, source: str = "hub") -> timeline.Timers:
    """The Deployment's timers, from the cold-start timeline of this stack's model, replicas and weight source."""
    return timeline.timers(serving.replicas, serving.model_facts.weights_gb, source=source)


# uvicorn's keep-alive for vLLM's API server, in seconds (vllm/envs.py, default 5).
KEEP_ALIVE_ENV = "VLLM_HTTP_TIMEOUT_KEEP_ALIVE"


def hf_token_env(has_hf_token: bool) -> list[dict]:
    """For the containers that call the Hub, when the stack has a token."""
    if not has_hf_token:
        return []
    return [{"name": HF_TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": HF_TOKEN_SECRET, "key": HF_TOKEN_KEY}}}]


def start_env(t: timeline.Timers) -> dict[str, str]:
    """How vLLM starts: offline from the staged weights, with an engine-ready wait for load + compile."""
    return {
        # The weights were staged by the node's stager: never reach for the Hub at start.
        "HF_HUB_OFFLINE": "1",
        # vLLM's wait for its engine cores (600 s by default).
        "VLLM_ENGINE_READY_TIMEOUT_S": str(t.engine_ready_timeout),
    }


def plain_env(t: timeline.Timers, keep_alive_s: int | None = None) -> dict[str, str]:
    """The vLLM container's environment without the secrets (also a compile-cache key input)."""
    plain = {**profiles.vllm_env(), **start_env(t), **pod_security.cache_env(CACHE_MOUNT)}
    if keep_alive_s is not None:
        plain[KEEP_ALIVE_ENV] = str(keep_alive_s)
    return plain


def compile_cache_inputs(
    serving: ServingSettings,
    instance: InstanceType,
    registry: image_registry.Registry | None,
    keep_alive_s: int | None = None,
) -> dict:
    """The compile-cache key inputs of this stack's vLLM pods (weights.source s3): the image,
    argv and environment exactly as the vLLM container receives them."""
    image = supply_chain.vllm_image(serving.image, registry)
    return cache_key.key_inputs(serving, instance, image, plain_env(timers(serving, "s3"), keep_alive_s))


def compile_cache_key(
    serving: ServingSettings,
    instance: InstanceType,
    registry: image_registry.Registry | None,
    keep_alive_s: int | None = None,
) -> str:
    """The key the stager's role may write (its entry only)."""
    return compile_cache.key(compile_cache_inputs(serving, instance, registry, keep_alive_s))


def _env(t: timeline.Timers, keep_alive_s: int | None = None) -> list[dict]:
    plain = plain_env(t, keep_alive_s)
    env = [{"name": k, "value": plain[k]} for k in sorted(plain)]
    env.append({"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": CREDENTIALS_SECRET, "key": "api-key"}}})
    return env


def template_metadata(autoscaled: bool) -> dict:
    """Pod labels; with autoscaling, the Cluster Autoscaler may never evict a replica to
    consolidate nodes (it would cost a cold start): a node goes once its replicas are scaled away.
    Only then, so fixed-size stacks keep their pod template (a change restarts every replica)."""
    if not autoscaled:
        return {"labels": LABELS}
    return {"labels": LABELS, "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}}


def scheduling() -> tuple[dict, list[dict]]:
    """GPU nodes only: (nodeAffinity, tolerations) of the vLLM pods and the mirror Job."""
    pool_key, pool_value = gpu_pool.POOL_LABEL
    affinity = {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": pool_key, "operator": "In", "values": [pool_value]}]}]
        }
    }
    return affinity, [gpu_pool.TOLERATION]


def cache_volume() -> dict:
    """On the node's NVMe RAID0: survives pod restarts, so nothing is downloaded or compiled twice."""
    return {"name": "cache", "hostPath": {"path": gpu_pool.MODEL_CACHE_HOST_PATH, "type": "DirectoryOrCreate"}}


# What the staging container writes into HF_HOME: the weights (the hub cache) and the
# staged-revision marker. The vLLM container gets both read-only, so the model's own code,
# which it runs, cannot change the weights or mark a revision staged; the compile caches and
# HF_HOME/modules (where transformers copies that code) stay writable.
WEIGHTS_SUBPATHS = ("hub", "staged")


def serving_cache_mounts(cache_mount: dict[str, str]) -> list[dict]:
    """The node cache for the vLLM container: writable, with the weights mounted over it read-only."""
    rel = HF_HOME.removeprefix(f"{CACHE_MOUNT}/")
    return [
        dict(cache_mount),
        *(
            {"name": cache_mount["name"], "mountPath": f"{HF_HOME}/{sub}", "subPath": f"{rel}/{sub}", "readOnly": True}
            for sub in WEIGHTS_SUBPATHS
        ),
    ]


def deployment(
    serving: ServingSettings,
    instance: InstanceType,
    registry: image_registry.Registry | None = None,
    mirror: MirrorSource | None = None,
    autoscaled: bool = False,
    keep_alive_s: int | None = None,
) -> dict:
    """The vLLM Deployment: argv only from the profile function, secrets only by reference.

    registry: the stack's ECR registry: the image is pulled from its in-region copy, by digest once
    recorded (None: the upstream reference, for callers that only read the pod spec).
    mirror: the stack's S3 weight mirror (weights.source s3); only the timers differ, the node's
    stager does the copying.
    keep_alive_s: behind the router, how long vLLM keeps an idle connection open
    (routing.vllm_keep_alive: vLLM's 5 s default is shorter than the router's connection pool).
    """
    argv = profiles.vllm_argv(serving)
    t = timers(serving, "s3" if mirror else "hub")
    cache_mount = {"name": "cache", "mountPath": CACHE_MOUNT}
    image = supply_chain.vllm_image(serving.image, registry)
    wait = weight_staging.wait_container(
        image=image,
        model=serving.model,
        pinned_revision=serving.revision,
        hf_home=HF_HOME,
        cache_volume="cache",
        cache_path=CACHE_MOUNT,
        security_context=security_context(),
    )
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
    affinity, tolerations = scheduling()
    container = {
        "name": "vllm",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": argv[:2],
        "args": argv[2:],
        "env": _env(t, keep_alive_s),
        "ports": [{"name": PORT_NAME, "containerPort": listen_port(argv), "protocol": "TCP"}],
        "resources": pod_resources(instance, serving.gpus_per_replica),
        # Load + compile (the weights are already staged), and only then the liveness probe acts.
        "startupProbe": _probe(t.startup_probe_period, t.startup_probe_failures),
        "readinessProbe": _probe(10, 3),
        # Runs only after the startup probe has passed, so it cannot kill a loading model.
        "livenessProbe": _probe(30, 5),
        # Keep serving while the ALB deregisters the pod, so streams in flight can finish.
        "lifecycle": {"preStop": {"sleep": {"seconds": t.pre_stop}}},
        "volumeMounts": [
            *serving_cache_mounts(cache_mount),
            {"name": "dshm", "mountPath": "/dev/shm"},
            *pod_security.scratch_mounts(),
        ],
        "securityContext": security_context(),
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
            # A first start on a new node takes most of an hour (components/facts/timeline.py); the
            # default 600 s would mark it ProgressDeadlineExceeded.
            "progressDeadlineSeconds": t.progress_deadline,
            "selector": {"matchLabels": LABELS},
            # Never ask for a spare GPU node: stop one old pod, then start its successor.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {
                "metadata": template_metadata(autoscaled),
                "spec": {
                    # vLLM never calls the Kubernetes API: no token in the pod.
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security.pod_security_context(),
                    "terminationGracePeriodSeconds": t.grace,
                    "tolerations": tolerations,
                    "affinity": {"nodeAffinity": affinity},
                    "topologySpreadConstraints": spread,
                    "initContainers": [wait],
                    "containers": [container],
                    "volumes": [
                        cache_volume(),
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}},
                        *pod_security.scratch_volumes(),
                    ],
                },
            },
        },
    }


# `pulumi up` does not wait for this object's readiness (the field exists at once), but
# `pulumi destroy` still waits until it is gone: unlike `pulumi.com/skipAwait`, which skips the
# delete wait as well (pulumi-kubernetes #3147, #3154), so a controller finalizer (KEDA's, the
# load balancer controller's) is cleared before that controller's release is removed.
NO_READY_WAIT = {"pulumi.com/waitFor": "jsonpath={.metadata.name}"}

# One replica at a time may go for a voluntary disruption (node drain, upgrade); node updates
# that cannot drain under it are forced (components/scaling/node_drain.py).
PDB_MAX_UNAVAILABLE = 1


def disruption_budget() -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": APP, "namespace": NAMESPACE, "labels": LABELS},
        "spec": {"maxUnavailable": PDB_MAX_UNAVAILABLE, "selector": {"matchLabels": LABELS}},
    }
