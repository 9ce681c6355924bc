"""The ground floor of facts: GPU instance types, models, parsers and serving profiles.

Imports nothing of the project, so settings, profiles, capacity and the components can
all build on it without importing one another in a circle.
"""

from __future__ import annotations

from dataclasses import dataclass


# p5 family: all eight GPUs per node. gpu_memory_gib is per GPU (HBM).
@dataclass(frozen=True)
class InstanceType:
    name: str
    gpus: int
    gpu_model: str
    gpu_memory_gib: int
    vcpus: int
    memory_gib: int
    price_per_hour_usd: float  # us-east on-demand list price, for the plan's cost line


INSTANCE_TYPES = {
    t.name: t
    for t in (
        InstanceType("p5.48xlarge", 8, "H100", 80, 192, 2048, 55.04),
        InstanceType("p5e.48xlarge", 8, "H200", 141, 192, 2048, 63.30),
        InstanceType("p5en.48xlarge", 8, "H200", 141, 192, 2048, 63.30),
    )
}
CAPACITY_TYPES = ("ON_DEMAND", "CAPACITY_BLOCK")
SCHEMES = ("internal", "internet-facing")

MODELS = ("MiniMaxAI/MiniMax-M2.5", "MiniMaxAI/MiniMax-M2.1", "MiniMaxAI/MiniMax-M2")
REASONING_PARSERS = ("minimax_m2_append_think", "minimax_m2")
TOOL_CALL_PARSER = "minimax_m2"
MAX_CONTEXT_TOKENS = 196_608  # MiniMax-M2.x context window per sequence
PORT = 8000


@dataclass(frozen=True)
class Profile:
    """A serving shape from the MiniMax guide: how many GPUs one replica uses and how."""

    name: str
    gpus_per_replica: int
    tensor_parallel_size: int
    expert_parallel: bool
    summary: str  # the shape of one replica; how replicas share nodes is the plan's to say


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("tp4", 4, 4, False, "4 GPUs, tensor parallel 4"),
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
