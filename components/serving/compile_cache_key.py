"""The shared compile cache's key inputs, taken from the one place that builds vLLM's flags, and
the pieces the vLLM pod needs to fetch and publish it (components/weights/compile_cache.py).

The key covers what vLLM's own compile hashes cover and more: the vLLM release, the image (its
digest once recorded), the model and its revision, the profile, the GPU type, the whole
`vllm serve` argv (profiles.vllm_argv) and the vLLM container's plain environment (vLLM hashes
every VLLM_* variable it does not list as harmless, envs.compile_factors, and the artefacts hold
the absolute cache paths). Over-keying costs only a cold compile; under-keying would hand a node
artefacts vLLM then rejects, which is a cold compile plus a wasted download.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.facts import versions
from components.serving import profiles
from components.settings.stack import InstanceType, ServingSettings
from components.weights import compile_cache_objects as objects
from components.weights import staging as weight_staging


def key_inputs(serving: ServingSettings, instance: InstanceType, image: str, vllm_env: Mapping[str, str]) -> dict:
    """Every input of the key, as compile_cache.KEY_FIELDS names them."""
    return {
        "vllm": versions.VLLM_RELEASE,
        "image": image,
        "model": serving.model,
        "revision": weight_staging.revision(serving.revision),
        "profile": serving.profile,
        "gpu": instance.gpu_model,
        "argv": profiles.vllm_argv(serving),
        "env": dict(sorted(vllm_env.items())),
    }


@dataclass(frozen=True)
class PodParts:
    """What the vLLM pod gains: the staging step's fetch, the publisher sidecar, the module's volume."""

    staging: tuple[str, dict[str, str], dict[str, Any]]
    publisher: dict[str, Any]
    volume: dict[str, Any]


def pod_parts(
    *,
    serving: ServingSettings,
    instance: InstanceType,
    image: str,
    vllm_env: Mapping[str, str],
    bucket: str,
    region: str,
    key_prefix: str,
    cache_mount: dict[str, str],
    artefact_env: Mapping[str, str],
    scratch_env: Mapping[str, str],
    scratch_mounts: list[dict[str, str]],
    security_context: dict[str, Any],
    health_timeout_s: int,
) -> PodParts:
    argv = profiles.vllm_argv(serving)
    port = int(argv[argv.index("--port") + 1])
    env = objects.env(
        bucket=bucket,
        region=region,
        key_prefix=key_prefix,
        inputs=key_inputs(serving, instance, image, vllm_env),
        base=cache_mount["mountPath"],
        artefact_roots=objects.roots(artefact_env, cache_mount["mountPath"]),
        health_url=f"http://127.0.0.1:{port}/health",
        health_timeout_s=health_timeout_s,
    )
    return PodParts(
        staging=(objects.FETCH, env, objects.module_mount()),
        publisher=objects.publisher(
            image=image,
            cache_env=env,
            cache_mount=cache_mount,
            scratch_env=scratch_env,
            scratch_mounts=scratch_mounts,
            security_context=security_context,
        ),
        volume=objects.module_volume(),
    )
