"""GPU memory and KV-cache planner for MiniMax-M2.x under vLLM: pure functions, no Pulumi.

A replica whose weights do not fit, or whose KV cache cannot hold one `max-model-len`
sequence, never becomes ready: vLLM raises at startup ("To serve at least one request
with the model's max seq len ...") and Kubernetes restarts it forever. `check` rejects
such settings before any resource exists.

Units are GiB (2**30 bytes), the unit vLLM logs ("Available KV cache memory: X GiB").
Every input is derived, none is fitted to the published capacities:

- GPU memory: what the device reports (catalog: H100 81,559 MiB, H200 143,771 MiB), times
  gpu-memory-utilization, is the budget vLLM plans in (vllm/config/cache.py). The guide's
  reference boxes ("96G", "144G") are taken at their nominal size.
- Weights: the model's safetensors size from the catalogue (GB -> GiB), all loaded; tensor
  and expert parallelism split them (see `plan`), data-parallel attention replicates the
  dense part (attention, embeddings: DENSE_FRACTION).
- KV bytes per token: the catalogue's geometry (62 layers x 8 KV heads x head_dim 128, full
  attention in every layer) x 2 (K and V) x the cache dtype's bytes: 253,952 B bf16 =
  236.5 GiB per 1M tokens; the guide's "240 GB per 1M context tokens" is this, rounded.
  A tensor-parallel group splits the 8 KV heads; a data-parallel rank holds all of them
  for its own requests, so one sequence must fit in one GPU's share.
- Runtime overhead per GPU (RUNTIME_OVERHEAD_GIB), built up from vLLM 0.32.0's defaults on
  H100/H200 for the API server (vllm/engine/arg_utils.py: max_num_batched_tokens 8192,
  max_num_seqs 1024): the profile run's peak activations for an 8192-token chunk (MoE
  intermediate buffers, attention workspace) ~2 GiB; sampler logits for 1024 sequences x
  200,064 vocabulary in fp32, with its softmax copy ~1.5 GiB; CUDA graphs for capture sizes
  up to 512 ~1.5 GiB; CUDA context, cuBLAS/NCCL workspaces and the custom all-reduce /
  all-to-all buffers ~2 GiB; allocator fragmentation ~1 GiB: about 8 GiB.

Cross-check, not calibration: with these inputs the guide's two published capacities come
out at +5% (4 x 96G, ~400K tokens) and +7% (8 x 144G, ~3M tokens); `make capacity` prints both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.facts.catalog import KV_CACHE_DTYPES, MODEL_CATALOG, MODELS, InstanceType, Model
from components.serving import profiles
from components.settings.stack import PROJECT, ServingSettings, Settings

GIB = 2**30

# vLLM's default; the guide's published capacities assume it.
DEFAULT_GPU_MEMORY_UTILIZATION = 0.90
# Above this, the CUDA context and allocator fragmentation outside vLLM's accounting
# start to cause OOMs under load; the planner never suggests more.
MAX_SUGGESTED_UTILIZATION = 0.95
RUNTIME_OVERHEAD_GIB = 8.0  # itemized in the module docstring
# serving.maxModelLen's lower bound in settings; suggestions are rounded down to it.
MODEL_LEN_STEP = 1024
# Bytes per cached K or V element, by --kv-cache-dtype (catalog: "auto" is bf16 for these checkpoints).
KV_DTYPE_BYTES = dict(KV_CACHE_DTYPES)
# Share of the weights outside the experts, replicated on every data-parallel rank under EP:
# embeddings + lm_head 2 x 200,064 x 3,072 in bf16 (2.5 GB) and 62 layers of attention,
# 44M parameters each in FP8 (2.7 GB): 5.2 GB of the checkpoint (config.json sizes), 2.3%.
DENSE_FRACTION = 0.023


@dataclass(frozen=True)
class Architecture:
    """The parts of a model's facts that decide its memory footprint."""

    name: str
    num_hidden_layers: int
    num_key_value_heads: int
    head_dim: int
    weights_gib: float  # the checkpoint as loaded (FP8 experts)
    dense_fraction: float  # attention, embeddings, norms: replicated across DP ranks under EP
    context_window: int

    @classmethod
    def of(cls, model: Model) -> Architecture:
        return cls(
            name=model.name,
            num_hidden_layers=model.num_hidden_layers,
            num_key_value_heads=model.num_key_value_heads,
            head_dim=model.head_dim,
            weights_gib=model.weights_gb * 1e9 / GIB,
            dense_fraction=DENSE_FRACTION,
            context_window=model.context_window,
        )

    def kv_bytes_per_token(self, kv_dtype_bytes: int, tensor_parallel_size: int = 1) -> int:
        """K+V bytes one token occupies on one GPU of a TP group (KV heads split, or replicated when TP > heads)."""
        heads_per_gpu = max(1, self.num_key_value_heads // tensor_parallel_size)
        return 2 * self.num_hidden_layers * heads_per_gpu * self.head_dim * kv_dtype_bytes


ARCHITECTURES = {hub_id: Architecture.of(model) for hub_id, model in MODEL_CATALOG.items()}
DEFAULT_ARCHITECTURE = ARCHITECTURES[MODELS[0]]


@dataclass(frozen=True)
class Hardware:
    """GPUs of one node (or the guide's reference boxes, which are not AWS instances)."""

    label: str
    gpu_model: str
    gpu_memory_gib: float
    gpus: int

    @classmethod
    def of(cls, instance: InstanceType) -> Hardware:
        """An instance type's GPUs at the memory the device reports (not the marketed size)."""
        return cls(instance.name, instance.gpu_model, instance.gpu_memory_mib / 1024, instance.gpus)


# The MiniMax guide's two reference configurations (also quoted in vLLM's recipes: "240 GB per
# 1M context tokens"), at their nominal size; their published aggregate KV capacities.
GUIDE_4X96 = Hardware("guide 4 x 96G", "GPU", 96.0, 4)
GUIDE_8X144 = Hardware("guide 8 x 144G", "GPU", 144.0, 8)
GUIDE_FIGURES = {GUIDE_4X96: ("tp4", 400_000), GUIDE_8X144: ("tp8-ep", 3_000_000)}


@dataclass(frozen=True)
class Plan:
    """Memory of one replica: what each GPU holds and how many tokens the KV cache keeps."""

    profile: str
    gpu_model: str
    gpu_memory_gib: float
    gpus: int
    tensor_parallel_size: int
    data_parallel_size: int
    expert_parallel: bool
    kv_cache_dtype: str
    gpu_memory_utilization: float
    max_model_len: int
    context_window: int
    budget_per_gpu_gib: float
    weights_per_gpu_gib: float
    overhead_per_gpu_gib: float
    kv_bytes_per_token_per_gpu: int

    @property
    def kv_per_gpu_gib(self) -> float:
        return self.budget_per_gpu_gib - self.weights_per_gpu_gib - self.overhead_per_gpu_gib

    @property
    def weights_fit(self) -> bool:
        return self.kv_per_gpu_gib > 0

    @property
    def kv_tokens_per_rank(self) -> int:
        """Tokens one data-parallel rank (one engine) can cache: a sequence never spans ranks."""
        if not self.weights_fit:
            return 0
        return int(self.kv_per_gpu_gib * GIB // self.kv_bytes_per_token_per_gpu)

    @property
    def kv_tokens(self) -> int:
        """Aggregate KV-cache tokens of the replica (the guide's "total KV cache capacity")."""
        return self.kv_tokens_per_rank * self.data_parallel_size

    @property
    def kv_gib(self) -> float:
        return max(0.0, self.kv_per_gpu_gib) * self.gpus

    @property
    def full_context_sequences(self) -> int:
        """Sequences of max_model_len tokens the replica can hold at once."""
        return (self.kv_tokens_per_rank // self.max_model_len) * self.data_parallel_size

    @property
    def context_fits(self) -> bool:
        return self.kv_tokens_per_rank >= self.max_model_len

    @property
    def max_fitting_model_len(self) -> int:
        """The largest maxModelLen (a multiple of MODEL_LEN_STEP, at most the model's window) that fits."""
        fitting = self.kv_tokens_per_rank // MODEL_LEN_STEP * MODEL_LEN_STEP
        return min(fitting, self.context_window)


def plan(
    hardware: Hardware,
    profile: str,
    *,
    tensor_parallel_size: int | None = None,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    max_model_len: int = profiles.MAX_CONTEXT_TOKENS,
    kv_cache_dtype: str = "auto",
    architecture: Architecture = DEFAULT_ARCHITECTURE,
    overhead_per_gpu_gib: float = RUNTIME_OVERHEAD_GIB,
) -> Plan:
    """Plan one replica of `profile` on `hardware` (which must have at least the replica's GPUs)."""
    prof = profiles.PROFILES[profile]
    gpus = prof.gpus_per_replica
    if gpus > hardware.gpus:
        raise ValueError(f"profile {profile} needs {gpus} GPUs; {hardware.label} has {hardware.gpus}")
    tp = tensor_parallel_size or prof.tensor_parallel_size
    dp = profiles.data_parallel_size(prof, tp)
    w = architecture.weights_gib
    if prof.expert_parallel:
        # Experts are spread over every GPU of the replica; dense layers only over the TP group.
        dense = w * architecture.dense_fraction
        weights_per_gpu = (w - dense) / (tp * dp) + dense / tp
    else:
        # Each data-parallel rank holds a full copy sharded over its TP group.
        weights_per_gpu = w / tp
    return Plan(
        profile=profile,
        gpu_model=hardware.gpu_model,
        gpu_memory_gib=hardware.gpu_memory_gib,
        gpus=gpus,
        tensor_parallel_size=tp,
        data_parallel_size=dp,
        expert_parallel=prof.expert_parallel,
        kv_cache_dtype=kv_cache_dtype,
        gpu_memory_utilization=gpu_memory_utilization,
        max_model_len=max_model_len,
        context_window=architecture.context_window,
        budget_per_gpu_gib=hardware.gpu_memory_gib * gpu_memory_utilization,
        weights_per_gpu_gib=weights_per_gpu,
        overhead_per_gpu_gib=overhead_per_gpu_gib,
        kv_bytes_per_token_per_gpu=architecture.kv_bytes_per_token(KV_DTYPE_BYTES[kv_cache_dtype], tp),
    )


def plan_for(serving: ServingSettings, instance: InstanceType) -> Plan:
    """The plan of one replica of a stack's serving settings on its GPU instance type."""
    return plan(
        Hardware.of(instance),
        serving.profile,
        tensor_parallel_size=serving.tensor_parallel_size,
        gpu_memory_utilization=serving.gpu_memory_utilization,
        max_model_len=serving.max_model_len,
        kv_cache_dtype=serving.kv_cache_dtype,
        architecture=ARCHITECTURES[serving.model],
    )


def _problem(key: str, value: object, rule: str, fix: str) -> str:
    return f"{PROJECT}:{key} = {value!r} {rule}. Fix: {fix}"


def _needed_utilization(p: Plan, need_kv_per_gpu_gib: float) -> float | None:
    """The smallest utilization (2 decimals) that leaves `need_kv_per_gpu_gib`, if it is a safe one."""
    need = (p.weights_per_gpu_gib + p.overhead_per_gpu_gib + need_kv_per_gpu_gib) / p.gpu_memory_gib
    need = math.ceil(need * 100 - 1e-9) / 100
    return need if need <= MAX_SUGGESTED_UTILIZATION else None


def _variant(p: Plan, hardware: Hardware, architecture: Architecture, **changes: object) -> Plan:
    """The same replica with some inputs changed, to test a candidate fix."""
    inputs: dict[str, object] = {
        "tensor_parallel_size": p.tensor_parallel_size,
        "gpu_memory_utilization": p.gpu_memory_utilization,
        "max_model_len": p.max_model_len,
        "kv_cache_dtype": p.kv_cache_dtype,
        "overhead_per_gpu_gib": p.overhead_per_gpu_gib,
        "architecture": architecture,
    }
    inputs.update(changes)
    return plan(hardware, p.profile, **inputs)  # type: ignore[arg-type]


def _other_shapes(p: Plan, hw: Hardware, architecture: Architecture) -> list[str]:
    """Profiles (at their own parallelism) in which this stack's window fits on the same GPUs."""
    out = []
    for name, prof in profiles.PROFILES.items():
        if name == p.profile or prof.gpus_per_replica > hw.gpus:
            continue
        other = plan(
            hw,
            name,
            gpu_memory_utilization=p.gpu_memory_utilization,
            max_model_len=p.max_model_len,
            kv_cache_dtype=p.kv_cache_dtype,
            architecture=architecture,
        )
        if other.weights_fit and other.context_fits:
            out.append(
                f"pulumi config set --path 'serving.profile' {name} (and remove serving.tensorParallelSize): "
                f"{other.kv_tokens:,} KV tokens, {other.full_context_sequences} full-context sequence(s) per replica of "
                f"{prof.gpus_per_replica} GPUs"
            )
    return out


def check(settings: Settings) -> list[str]:
    """Problems under which vLLM would refuse to start (weights or one full sequence do not fit)."""
    sv, instance = settings.serving, settings.gpu_nodes.instance
    if sv.gpus_per_replica > instance.gpus:
        return []  # the GPU-count rule in settings reports this one
    hw = Hardware.of(instance)
    arch = ARCHITECTURES[sv.model]
    p = plan_for(sv, instance)
    dp = f" x DP {p.data_parallel_size}" if p.data_parallel_size > 1 else ""
    where = (
        f"{p.profile} (TP {p.tensor_parallel_size}{dp}) on {instance.name} ({p.gpus} x {instance.gpu_model}, "
        f"{hw.gpu_memory_gib:.1f} GiB reported) at serving.gpuMemoryUtilization {p.gpu_memory_utilization:g}"
    )
    shapes = _other_shapes(p, hw, arch)

    if not p.weights_fit:
        fixes = []
        util = _needed_utilization(p, p.max_model_len * p.kv_bytes_per_token_per_gpu / GIB)
        if util is not None:
            fixes.append(f"pulumi config set --path 'serving.gpuMemoryUtilization' {util:g}")
        if p.tensor_parallel_size < p.gpus and _variant(p, hw, arch, tensor_parallel_size=p.gpus).weights_fit:
            fixes.append(f"pulumi config set --path 'serving.tensorParallelSize' {p.gpus}")
        fixes += shapes
        if not fixes:
            fixes.append("choose a GPU instance type with more memory per GPU (gpuNodes.instanceType p5e.48xlarge)")
        key, value = (
            ("serving.tensorParallelSize", p.tensor_parallel_size)
            if p.data_parallel_size > 1
            and sv.tensor_parallel_size != profiles.PROFILES[sv.profile].tensor_parallel_size
            else ("serving.profile", p.profile)
        )
        return [
            _problem(
                key,
                value,
                f"cannot load {sv.model}: {p.weights_per_gpu_gib:.1f} GiB of weights + {p.overhead_per_gpu_gib:g} GiB runtime overhead per GPU exceed the {p.budget_per_gpu_gib:.1f} GiB vLLM may use per GPU for {where} (vLLM would fail with CUDA out of memory and restart forever)",
                ", or ".join(fixes),
            )
        ]

    if p.context_fits:
        return []
    need_gib = p.max_model_len * p.kv_bytes_per_token_per_gpu * p.tensor_parallel_size / GIB
    have_gib = p.kv_per_gpu_gib * p.tensor_parallel_size
    per_rank = (
        f"each of its {p.data_parallel_size} data-parallel ranks keeps its own KV cache and one sequence must fit in one rank's share; "
        if p.data_parallel_size > 1
        else ""
    )
    fixes = []
    if p.max_fitting_model_len >= MODEL_LEN_STEP:
        fixes.append(f"lower the window: pulumi config set --path 'serving.maxModelLen' {p.max_fitting_model_len}")
    util = _needed_utilization(p, p.max_model_len * p.kv_bytes_per_token_per_gpu / GIB)
    if util is not None:
        fixes.append(f"pulumi config set --path 'serving.gpuMemoryUtilization' {util:g}")
    if KV_DTYPE_BYTES[p.kv_cache_dtype] > 1 and _variant(p, hw, arch, kv_cache_dtype="fp8").context_fits:
        fixes.append(
            "FP8 KV cache (halves KV bytes per token; no published accuracy evaluation for this model, "
            "validate output quality first, docs/operations.md): pulumi config set --path 'serving.kvCacheDtype' fp8"
        )
    fixes += shapes
    if not fixes:
        fixes.append("choose a GPU instance type with more memory per GPU (gpuNodes.instanceType p5e.48xlarge)")
    return [
        _problem(
            "serving.maxModelLen",
            p.max_model_len,
            f'needs {need_gib:.1f} GiB of {dtype_label(p.kv_cache_dtype)} KV cache for one full sequence, but {where} leaves {max(0.0, have_gib):.1f} GiB ({p.kv_tokens_per_rank:,} tokens) per rank after {p.weights_per_gpu_gib:.1f} GiB weights and {p.overhead_per_gpu_gib:g} GiB overhead per GPU ({per_rank}vLLM refuses to start: "To serve at least one request with the model\'s max seq len ...")',
            ", or ".join(fixes),
        )
    ]


def dtype_label(dtype: str) -> str:
    """How a KV-cache dtype reads in messages and tables (`auto` is bf16 for these checkpoints)."""
    return "bf16" if KV_DTYPE_BYTES[dtype] == 2 else dtype
