"""The shared compile cache's key inputs, taken from the one place that builds vLLM's flags, and
the node stager's steps that fetch and publish it (components/weights/compile_cache.py).

The key covers what vLLM's own compile hashes cover and more: the vLLM release, the image (its
digest once recorded), the model and its revision, the profile, the GPU type, the whole
`vllm serve` argv (profiles.vllm_argv) and the vLLM container's plain environment (vLLM hashes
every VLLM_* variable it does not list as harmless, envs.compile_factors, and the artefacts hold
the absolute cache paths). Over-keying costs only a cold compile; under-keying would hand a node
artefacts vLLM then rejects, which is a cold compile plus a wasted download.

What vLLM 0.32.0 writes, and where (read from its installed source):
- vllm/envs.py `VLLM_CACHE_ROOT`: the root of vLLM's own caches.
- vllm/compilation/backends.py `VllmBackend.__call__`: torch.compile artefacts under
  `VLLM_CACHE_ROOT/torch_compile_cache/<hash>/rank_<r>_<dp>/`; hash = sha256 of
  [envs.compile_factors() (every VLLM_* variable but a listed few), VllmConfig.compute_hash()
  (vLLM version, model and revision, dtype, max_model_len, cache, parallel, scheduler,
  compilation configs...), the traced source files, CompilerManager.compute_hash].
- vllm/compilation/compiler_interface.py `get_inductor_factors` (torch_key, system, inductor
  and functorch configs) is the compiler hash; `InductorAdaptor.initialize_cache` sets
  TORCHINDUCTOR_CACHE_DIR to `<hash>/rank_.../inductor_cache` and keeps a caller's TRITON_CACHE_DIR.
- vllm/compilation/decorators.py, caching.py `aot_compile_hash_factors`: with torch 2.13.0 (vLLM's
  pin) VLLM_USE_AOT_COMPILE and VLLM_USE_MEGA_AOT_ARTIFACT default on (envs.py use_aot_compile):
  `torch_compile_cache/torch_aot_compile/<hash>/` holds `inductor_cache/`, `rank_<r>_<dp>/model`.
- vllm/model_executor/warmup/flashinfer_autotune_cache.py: FlashInfer autotune results under
  `VLLM_CACHE_ROOT/flashinfer_autotune_cache/<version>/<arch>/<config hash>/`.
- vllm/utils/deep_gemm.py: DeepGEMM's JIT cache, `DG_JIT_CACHE_DIR` (default VLLM_CACHE_ROOT/deep_gemm).
- flashinfer/jit/env.py: FlashInfer's JIT under `FLASHINFER_WORKSPACE_BASE/.cache/flashinfer/<version>/<arch>/`.
- Never shared (this node's own): vllm/distributed/device_communicators/all_reduce_utils.py's
  P2P probe `gpu_p2p_access_cache_for_*.json`, vllm/v1/worker/startup_plan.py's `startup_plan/`.
vLLM's hashes decide which artefacts it loads; this key, which entry a node fetches: it covers
at least as much (release, image, model, revision, profile, GPU, the argv, the plain environment).
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
