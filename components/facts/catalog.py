"""The ground floor of facts: GPU instance types, the model catalogue, parsers and serving profiles.

Imports nothing of the project, so settings, profiles, capacity and the components can
all build on it without importing one another in a circle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


# p5 family: all eight GPUs per node. gpu_memory_gib is the marketed size per GPU (HBM);
# gpu_memory_mib is what the device reports (`nvidia-smi` memory.total, the total that vLLM's
# gpu-memory-utilization is a fraction of): H100 80GB HBM3 reports 81,559 MiB (79.6 GiB),
# H200 reports 143,771 MiB (140.4 GiB); both as printed by nvidia-smi on those GPUs.
@dataclass(frozen=True)
class InstanceType:
    name: str
    gpus: int
    gpu_model: str
    gpu_memory_gib: int
    vcpus: int
    memory_gib: int
    price_per_hour_usd: float  # us-east on-demand list price, for the plan's cost line
    gpu_memory_mib: int  # reported by the device; the planner's budget


INSTANCE_TYPES = {
    t.name: t
    for t in (
        InstanceType("p5.48xlarge", 8, "H100", 80, 192, 2048, 55.04, gpu_memory_mib=81_559),
        InstanceType("p5e.48xlarge", 8, "H200", 141, 192, 2048, 63.30, gpu_memory_mib=143_771),
        InstanceType("p5en.48xlarge", 8, "H200", 141, 192, 2048, 63.30, gpu_memory_mib=143_771),
    )
}
CAPACITY_TYPES = ("ON_DEMAND", "CAPACITY_BLOCK")
# Subnet CIDR layouts (components/aws/network.py): byZone by the zone's letter; byPosition, by list
# position, as stacks deployed before byZone have them.
BY_ZONE, BY_POSITION = "byZone", "byPosition"
SUBNET_LAYOUTS = (BY_ZONE, BY_POSITION)
SCHEMES = ("internal", "internet-facing")

REASONING_PARSERS = ("minimax_m2_append_think", "minimax_m2")
PORT = 8000


@dataclass(frozen=True)
class License:
    id: str  # the Hub's license tag
    commercial_use: bool  # False: commercial use needs the licensor's written authorisation
    url: str

    @property
    def summary(self) -> str:
        """The licence as the plan prints it: what it allows and where to read it."""
        use = (
            "commercial use allowed"
            if self.commercial_use
            else "NON-COMMERCIAL: commercial use needs the licensor's written authorisation"
        )
        return f"licence {self.id} ({use}), {self.url}"


MODIFIED_MIT = "modified-mit: MIT, plus a prominent product display of the model's name for commercial use"
# Where the figures come from (vLLM recipes: github.com/vllm-project/recipes, models/MiniMaxAI/<name>.yaml).
_GUIDE = "MiniMax's vLLM deploy guide (the model repository's docs/vllm_deploy_guide.md)"
_M2_ARCH = "config.json on the Hub (MiniMaxM2ForCausalLM: num_hidden_layers 62, num_key_value_heads 8, head_dim 128)"
_M2_WEIGHTS = (
    "same 229B-parameter FP8 (block 128x128) layout as MiniMax-M2.7, whose safetensors total 230.1 GB; "
    "the guide's '220 GB for weights' is a rounder figure (230 GB = 214 GiB); the larger one is budgeted"
)


@dataclass(frozen=True)
class Model:
    """One servable checkpoint and every fact the stack needs about it, each with its source."""

    hub_id: str
    weights_gb: float  # safetensors on the Hub, decimal GB: the download, the NVMe cache and the GPU weights
    num_hidden_layers: int  # every layer is full (softmax) attention with its own KV cache
    num_key_value_heads: int
    head_dim: int
    context_window: int  # tokens per sequence (config.json max_position_embeddings)
    tool_call_parser: str
    reasoning_parser: str  # the default; serving.reasoningParser may choose another of REASONING_PARSERS
    min_vllm: str  # the oldest vLLM release that serves it
    license: License
    sources: Mapping[str, str] = field(default_factory=dict)  # figure -> where it comes from

    @property
    def name(self) -> str:
        return self.hub_id.split("/", 1)[1]


def _m2_series(
    hub_id: str,
    min_vllm: str,
    min_vllm_source: str,
    reasoning_parser: str,
    parser_source: str,
    license: License,
    license_source: str,
    weights_gb: float = 230.0,
    weights_source: str = _M2_WEIGHTS,
) -> Model:
    return Model(
        hub_id=hub_id,
        weights_gb=weights_gb,
        num_hidden_layers=62,
        num_key_value_heads=8,
        head_dim=128,
        context_window=196_608,
        tool_call_parser="minimax_m2",
        reasoning_parser=reasoning_parser,
        min_vllm=min_vllm,
        license=license,
        sources={
            "weights_gb": weights_source,
            "geometry": _M2_ARCH,
            "context_window": f"vLLM recipe models/MiniMaxAI/{hub_id.split('/')[1]}.yaml context_length; {_GUIDE}: 196K per sequence",
            "parsers": parser_source,
            "min_vllm": min_vllm_source,
            "license": license_source,
        },
    )


MODEL_CATALOG: dict[str, Model] = {
    m.hub_id: m
    for m in (
        _m2_series(
            "MiniMaxAI/MiniMax-M2.5",
            "0.20.2",
            "vLLM recipe models/MiniMaxAI/MiniMax-M2.5.yaml min_vllm_version",
            "minimax_m2_append_think",
            f"{_GUIDE}: --tool-call-parser minimax_m2 --reasoning-parser minimax_m2_append_think",
            License("modified-mit", True, "https://github.com/MiniMax-AI/MiniMax-M2.5/blob/main/LICENSE"),
            f"Hub model card license tag; {MODIFIED_MIT}",
        ),
        _m2_series(
            "MiniMaxAI/MiniMax-M2.1",
            "0.11.0",
            "vLLM recipe models/MiniMaxAI/MiniMax-M2.1.yaml min_vllm_version",
            "minimax_m2_append_think",
            f"{_GUIDE} (applies to M2.5, M2.1 and M2)",
            License("modified-mit", True, "https://github.com/MiniMax-AI/MiniMax-M2.1/blob/main/LICENSE"),
            f"Hub model card license tag; {MODIFIED_MIT}",
        ),
        _m2_series(
            "MiniMaxAI/MiniMax-M2",
            "0.11.0",
            "vLLM recipe models/MiniMaxAI/MiniMax-M2.yaml min_vllm_version",
            "minimax_m2_append_think",
            f"{_GUIDE} (applies to M2.5, M2.1 and M2)",
            License("modified-mit", True, "https://github.com/MiniMax-AI/MiniMax-M2/blob/main/LICENSE"),
            f"Hub model card license tag (modified-mit since the LICENSE update of Hub PR #39); {MODIFIED_MIT}",
        ),
        _m2_series(
            "MiniMaxAI/MiniMax-M2.7",
            "0.20.0",
            "vLLM recipe models/MiniMaxAI/MiniMax-M2.7.yaml min_vllm_version",
            "minimax_m2",
            "vLLM recipe models/MiniMaxAI/MiniMax-M2.7.yaml and the model's docs/vllm_deploy_guide.md: "
            "--tool-call-parser minimax_m2 --reasoning-parser minimax_m2",
            License("other (non-commercial)", False, "https://huggingface.co/MiniMaxAI/MiniMax-M2.7/blob/main/LICENSE"),
            "Hub LICENSE: non-commercial use on MIT-style terms; any commercial use needs MiniMax's separate, "
            "prior written authorisation (api@minimax.io, subject 'M2.7 licensing')",
            weights_gb=230.1,
            weights_source="Hub file listing: 130 FP8 safetensors shards, 230.1 GB in total",
        ),
    )
}
MODELS = tuple(MODEL_CATALOG)
# The longest window any model offers: the schema's upper bound (settings_rules checks the model's own).
MAX_CONTEXT_TOKENS = max(m.context_window for m in MODEL_CATALOG.values())
# --kv-cache-dtype values the stack offers, with bytes per cached K or V element. "auto" is the
# model dtype (vllm/config/cache.py); these FP8 checkpoints' quantization_config has no
# kv_cache_quant_algo (vllm/utils/torch_utils.py resolve_kv_cache_dtype_string), so "auto" is bf16.
KV_CACHE_DTYPES = {"auto": 2, "fp8": 1}


@dataclass(frozen=True)
class Profile:
    """A serving shape from the MiniMax guide or vLLM's recipe: how many GPUs one replica uses and how.

    Data-parallel ranks are gpus_per_replica // tensor_parallel_size: each rank runs its own
    attention and KV cache for its own requests (all KV heads when tensor parallel is 1).
    """

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
        # vLLM recipe (MiniMax/MiniMax-M2.md): ">4 GPUs: DP+EP" (--data-parallel-size 8 --enable-expert-parallel).
        Profile("dp8-ep", 8, 1, True, "8 GPUs, data-parallel attention 8 + expert parallel"),
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
        "kv-cache-dtype",
        "max-num-queued-reqs",
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
