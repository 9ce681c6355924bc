"""The shared compile cache's key inputs, taken from the one place that builds vLLM's flags, and
the node stager's steps that fetch and publish it (components/weights/compile_cache.py).

The key covers what vLLM's own compile hashes cover and more: the vLLM release, the image (its
digest once recorded), the model and its revision, the profile, the GPU type, the whole
`vllm serve` argv (profiles.vllm_argv) and the vLLM container's plain environment (vLLM hashes
every VLLM_* variable it does not list as harmless, envs.compile_factors, and the artefacts hold
the absolute cache paths). Over-keying costs only a cold compile; under-keying would hand a node
artefacts vLLM then rejects, which is a cold compile plus a wasted download.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def stager_steps(
    *,
    inputs: Mapping[str, Any],
    bucket: str,
    region: str,
    key_prefix: str,
    cache_mount: str,
    artefact_env: Mapping[str, str],
    health_url: str,
    health_timeout_s: int,
) -> weight_staging.Extra:
    """The node stager's share: fetch before the marker, publish once the node's vLLM serves.
    cache_mount: where the stager mounts the node cache, the path the vLLM pod uses too (the
    artefacts hold absolute paths under it)."""
    env = objects.env(
        bucket=bucket,
        region=region,
        key_prefix=key_prefix,
        inputs=inputs,
        base=cache_mount,
        artefact_roots=objects.roots(artefact_env, cache_mount),
        health_url=health_url,
        health_timeout_s=health_timeout_s,
    )
    return weight_staging.Extra(
        before_vllm=(weight_staging.Step("compile cache from S3", objects.FETCH),),
        after_ready=(weight_staging.Step("compile cache to S3 once vLLM serves", objects.PUBLISH),),
        env=env,
        mounts=(objects.module_mount(),),
    )
