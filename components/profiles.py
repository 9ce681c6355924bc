"""Serving profiles as data, and the one function that turns settings into the vLLM argv.

Nothing else in the project builds vLLM flags: the Deployment, the offline plan and the
flag-validation tests all call `vllm_argv`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from components.settings import ServingSettings

MODELS = ("MiniMaxAI/MiniMax-M2.5", "MiniMaxAI/MiniMax-M2.1", "MiniMaxAI/MiniMax-M2")
REASONING_PARSERS = ("minimax_m2_append_think", "minimax_m2")
TOOL_CALL_PARSER = "minimax_m2"
MAX_CONTEXT_TOKENS = 196_608  # MiniMax-M2.x context window per sequence
PORT = 8000

# The MiniMax guide's workaround for "CUDA error: an illegal memory access was encountered".
PIECEWISE_COMPILATION_CONFIG = {"cudagraph_mode": "PIECEWISE"}

# Environment every profile sets (the guide launches with SAFETENSORS_FAST_GPU=1).
BASE_ENV = {"SAFETENSORS_FAST_GPU": "1"}


@dataclass(frozen=True)
class Profile:
    """A serving shape from the MiniMax guide: how many GPUs one replica uses and how."""

    name: str
    gpus_per_replica: int
    tensor_parallel_size: int
    expert_parallel: bool
    summary: str


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("tp4", 4, 4, False, "4 GPUs, tensor parallel 4 (two replicas share a p5.48xlarge)"),
        # MiniMax's recipe: pure TP8 is not supported for M2.x; 8 GPUs need expert parallelism.
        Profile("tp8-ep", 8, 8, True, "8 GPUs, tensor parallel 8 + expert parallel"),
    )
}

# Flags the profile and settings own. Extra arguments may not set them (under any spelling),
# so a stack cannot silently override the shape the plan and capacity check describe.
OWNED_FLAGS = frozenset(
    {
        "model",
        "revision",
        "served-model-name",
        "trust-remote-code",
        "tensor-parallel-size",
        "tp",
        "data-parallel-size",
        "dp",
        "enable-expert-parallel",
        "ep",
        "enable-auto-tool-choice",
        "tool-call-parser",
        "reasoning-parser",
        "max-model-len",
        "gpu-memory-utilization",
        "compilation-config",
        "o",
        "host",
        "port",
        "download-dir",
    }
)
# Flags that would put a secret into the argv (visible in the pod spec and `ps`).
SECRET_FLAGS = frozenset({"api-key", "hf-token"})


def flag_name(token: str) -> str | None:
    """The canonical name of a command-line flag token (`--Foo_bar=1` -> `foo-bar`), else None."""
    if not token.startswith("-") or token in {"-", "--"}:
        return None
    name = token.lstrip("-").split("=", 1)[0].replace("_", "-").lower()
    if name.startswith("no-"):
        name = name[3:]
    return name


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
        TOOL_CALL_PARSER,
        "--reasoning-parser",
        serving.reasoning_parser,
        "--served-model-name",
        *served_model_names(serving),
        "--max-model-len",
        str(serving.max_model_len),
        "--gpu-memory-utilization",
        f"{serving.gpu_memory_utilization:g}",
        "--host",
        "0.0.0.0",
        "--port",
        str(PORT),
    ]
    if serving.piecewise_cudagraph:
        argv += ["--compilation-config", json.dumps(PIECEWISE_COMPILATION_CONFIG)]
    argv += list(serving.extra_args)
    return argv


def vllm_env() -> dict[str, str]:
    """Plain (non-secret) environment every profile sets."""
    return dict(BASE_ENV)
