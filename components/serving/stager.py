"""The pods that put the weights on a GPU node: the node's stager and the job that fills the S3 mirror.

Both run in the stager image (images/stage-weights/: Python, boto3 with the AWS CRT,
huggingface_hub), from the stack's ECR repository; neither runs the vLLM image.
"""

from __future__ import annotations

from components.aws import image_registry
from components.kubernetes import pod_security
from components.serving import compile_cache_key as cache_key
from components.serving import supply_chain
from components.serving.serving_network import node_health_url
from components.serving.workload import (
    CACHE_MOUNT,
    HF_HOME,
    LABELS,
    NAMESPACE,
    SCRATCH_ENV,
    MirrorSource,
    cache_volume,
    checkov_waivers,
    compile_cache_inputs,
    hf_token_env,
    scheduling,
    security_context,
    timers,
)
from components.settings.stack import InstanceType, ServingSettings
from components.weights import compile_cache_objects
from components.weights import mirror as weight_mirror
from components.weights import staging as weight_staging

# The stager image is this project's build, tagged with the hash of its recipe in an immutable
# repository the stack owns: the tag cannot move, so it is pinned without a digest.
STAGER_TAG_WAIVER = (
    "CKV_K8S_43",
    "the stager image is built from images/stage-weights/ and tagged with the hash of that recipe in the"
    " stack's own ECR repository, whose tags are immutable",
)
# A liveness probe would restart a stager in the middle of a copy it resumes anyway; once staged
# it only idles, and its readiness (the marker) is what the node's vLLM pods wait for.
STAGER_LIVENESS_WAIVER = (
    "CKV_K8S_8",
    "the stager copies once and then idles; a failed copy exits and is restarted, and readiness (the staged"
    " marker) is the signal that matters",
)


def mirror_objects(
    serving: ServingSettings, mirror: MirrorSource, has_hf_token: bool, registry: image_registry.Registry
) -> list[dict]:
    """What the S3 mirror needs in the cluster: the copy module and the stagers' service account;
    in the stack that owns the bucket, also the Job's service account and the Job that fills it
    (in the stager image: Python, boto3 and huggingface_hub, without the vLLM image's tens of GB)."""
    affinity, tolerations = scheduling()
    scratch = {k: v for k, v in pod_security.cache_env(CACHE_MOUNT).items() if k in SCRATCH_ENV}
    image = supply_chain.stager_image(registry)
    reading = [
        weight_mirror.config_map(NAMESPACE, LABELS),
        weight_mirror.service_account(weight_mirror.POD_SERVICE_ACCOUNT, NAMESPACE, weight_staging.LABELS),
    ]
    if not mirror.fills:
        return reading
    return [
        *reading,
        weight_mirror.service_account(weight_mirror.JOB_SERVICE_ACCOUNT, NAMESPACE, weight_mirror.JOB_LABELS),
        weight_mirror.job(
            namespace=NAMESPACE,
            image=image,
            bucket=mirror.bucket,
            model=serving.model,
            revision=weight_staging.revision(serving.revision),
            region=mirror.region,
            owner=mirror.owner,
            secret_env=hf_token_env(has_hf_token),
            security_context=security_context(),
            pod_security_context=pod_security.pod_security_context(),
            scratch_env=scratch,
            scratch_volumes=pod_security.scratch_volumes(),
            scratch_mounts=pod_security.scratch_mounts(),
            node_affinity=affinity,
            tolerations=tolerations,
            annotations=checkov_waivers(image, secrets_as_env=has_hf_token, digest_waiver=STAGER_TAG_WAIVER),
        ),
    ]


def compile_cache_steps(
    serving: ServingSettings,
    instance: InstanceType,
    registry: image_registry.Registry,
    mirror: MirrorSource | None,
    keep_alive_s: int | None = None,
) -> weight_staging.Extra:
    """The shared compile cache's fetch and publish (weights.compileCache), keyed on the vLLM
    container's own image, argv and environment; nothing without it."""
    if not (mirror and mirror.compile_cache_prefix):
        return weight_staging.NOTHING_EXTRA
    t = timers(serving, "s3")
    return cache_key.stager_steps(
        inputs=compile_cache_inputs(serving, instance, registry, keep_alive_s),
        bucket=mirror.bucket,
        region=mirror.region,
        key_prefix=mirror.compile_cache_prefix,
        cache_mount=CACHE_MOUNT,
        artefact_env=pod_security.cache_env(CACHE_MOUNT),
        health_url=node_health_url(),
        health_timeout_s=t.startup_probe_period * t.startup_probe_failures,
    )


def stager(
    serving: ServingSettings,
    registry: image_registry.Registry,
    has_hf_token: bool,
    mirror: MirrorSource | None,
    instance: InstanceType,
    keep_alive_s: int | None = None,
) -> dict:
    """The node's weight stager (components/weights/staging.py), a DaemonSet on the GPU nodes.

    The Hugging Face token only when it fetches from the Hub; from the S3 mirror it reads with its
    own Pod Identity role (service account `stage-weights`) and holds no token. keep_alive_s: as
    the vLLM container gets it (behind the router), so the compile-cache key sees its environment."""
    affinity, tolerations = scheduling()
    image = supply_chain.stager_image(registry)
    scratch = {k: v for k, v in pod_security.cache_env(CACHE_MOUNT).items() if k in SCRATCH_ENV}
    secret_env = [] if mirror else hf_token_env(has_hf_token)
    extra = compile_cache_steps(serving, instance, registry, mirror, keep_alive_s)
    container = weight_staging.container(
        image=image,
        model=serving.model,
        pinned_revision=serving.revision,
        hf_home=HF_HOME,
        weights_gb=serving.model_facts.weights_gb,
        cache_mount={"name": "cache", "mountPath": CACHE_MOUNT},
        secret_env=secret_env,
        security_context=security_context(),
        scratch_env=scratch,
        scratch_mounts=pod_security.scratch_mounts(),
        mirror_env=(
            weight_mirror.mirror_env(
                mirror.bucket, serving.model, weight_staging.revision(serving.revision), mirror.region, mirror.owner
            )
            if mirror
            else None
        ),
        mirror_module=(weight_mirror.MODULE_PATH, weight_mirror.module_mount()) if mirror else None,
        extra=extra,
    )
    return weight_staging.daemon_set(
        namespace=NAMESPACE,
        container=container,
        service_account=weight_mirror.POD_SERVICE_ACCOUNT if mirror else None,
        pod_security_context=pod_security.pod_security_context(),
        node_affinity=affinity,
        tolerations=tolerations,
        volumes=[
            cache_volume(),
            *pod_security.scratch_volumes(),
            *([weight_mirror.module_volume()] if mirror else []),
            *([compile_cache_objects.module_volume()] if extra.mounts else []),
        ],
        annotations=checkov_waivers(
            image, secrets_as_env=bool(secret_env), digest_waiver=STAGER_TAG_WAIVER, extra=(STAGER_LIVENESS_WAIVER,)
        ),
    )
