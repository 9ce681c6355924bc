"""Serving profiles as data, and the one function that turns settings into the vLLM argv.

Nothing else in the project builds vLLM flags: the Deployment, the offline plan and the
flag-validation tests all call `vllm_argv`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from components.facts.catalog import (  # noqa: F401 (re-exported: profiles' facts live in the catalog)
    KV_CACHE_DTYPES,
    MAX_CONTEXT_TOKENS,
    MODEL_CATALOG,
    MODELS,
    OWNED_FLAGS,
    PORT,
    PROFILES,
    REASONING_PARSERS,
    SECRET_FLAGS,
    Profile,
    flag_name,
)

if TYPE_CHECKING:
    from components.settings.stack import ServingSettings

# The MiniMax guide's workaround for "CUDA error: an illegal memory access was encountered".
PIECEWISE_COMPILATION_CONFIG = {"cudagraph_mode": "PIECEWISE"}

# Environment every profile sets (the guide launches with SAFETENSORS_FAST_GPU=1). vLLM posts
# usage reports to VLLM_USAGE_STATS_SERVER unless VLLM_NO_USAGE_STATS or (VLLM_)DO_NOT_TRACK is
# exactly "1" (vllm/usage/usage_lib.py is_usage_stats_enabled, vllm/envs.py); the pods may reach
# any HTTPS address, so only these keep a private endpoint's usage private.
BASE_ENV = {"SAFETENSORS_FAST_GPU": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}


def served_model_names(serving: ServingSettings) -> list[str]:
    """The names clients may send as `model`: the short alias, then the Hub id (the guide's
    curl sends `MiniMaxAI/MiniMax-M2.5`). vLLM answers to all of them and reports the first in
    responses and in the `model_name` label of its metrics."""
    return list(dict.fromkeys((serving.served_model_name, serving.model)))


def data_parallel_size(profile: Profile, tensor_parallel_size: int) -> int:
    """Data-parallel ranks inside one replica when tensor parallelism spans fewer GPUs."""
    return profile.gpus_per_replica // tensor_parallel_size


def vllm_argv(serving: ServingSettings) -> list[str]:
    """The exact `vllm serve` command line for a replica: the only place flags are built."""
    profile = PROFILES[serving.profile]
    tp = serving.tensor_parallel_size
    argv = ["vllm", "serve", serving.model, "--trust-remote-code"]
    if serving.revision:
        argv += ["--revision", serving.revision]
    if profile.expert_parallel:
        argv.append("--enable-expert-parallel")
    argv += ["--tensor-parallel-size", str(tp)]
    dp = data_parallel_size(profile, tp)
    if dp > 1:
        argv += ["--data-parallel-size", str(dp)]
    argv += [
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        MODEL_CATALOG[serving.model].tool_call_parser,
        "--reasoning-parser",
        serving.reasoning_parser,
        "--served-model-name",
        *served_model_names(serving),
        "--max-model-len",
        str(serving.max_model_len),
        "--gpu-memory-utilization",
        f"{serving.gpu_memory_utilization:g}",
        "--kv-cache-dtype",
        serving.kv_cache_dtype,
        "--host",
        "0.0.0.0",
        "--port",
        str(PORT),
    ]
    if serving.admission_cap is not None:
        # Counted per replica even with several API servers (dp8-ep starts one per rank): vLLM
        # 0.32.0 shares the count between them (vllm/v1/engine/admission_control.py).
        argv += ["--max-num-queued-reqs", str(serving.admission_cap)]
    if serving.piecewise_cudagraph:
        argv += ["--compilation-config", json.dumps(PIECEWISE_COMPILATION_CONFIG)]
    argv += list(serving.extra_args)
    return argv


def vllm_env() -> dict[str, str]:
    """Plain (non-secret) environment every profile sets."""
    return dict(BASE_ENV)
