"""The capacity planner's tables: the stack's section of `make plan`, and `make capacity`'s
rows for every GPU type x shape x KV-cache dtype with the guide's published figures beside them."""

from __future__ import annotations

from components.facts.catalog import INSTANCE_TYPES
from components.serving import profiles
from components.serving.capacity import (
    DEFAULT_ARCHITECTURE,
    DEFAULT_GPU_MEMORY_UTILIZATION,
    GUIDE_4X96,
    GUIDE_8X144,
    GUIDE_FIGURES,
    KV_DTYPE_BYTES,
    Architecture,
    Hardware,
    Plan,
    check,
    dtype_label,
    plan,
    plan_for,
)
from components.settings.stack import Settings


def summary(p: Plan) -> str:
    """One line for tables: memory split per GPU and what the KV cache holds."""
    if not p.weights_fit:
        return f"weights {p.weights_per_gpu_gib:.1f} GiB/GPU do not fit in {p.budget_per_gpu_gib:.1f} GiB/GPU"
    return (
        f"weights {p.weights_per_gpu_gib:.1f} + overhead {p.overhead_per_gpu_gib:g} + KV {p.kv_per_gpu_gib:.1f} "
        f"of {p.budget_per_gpu_gib:.1f} GiB/GPU; KV {p.kv_gib:.0f} GiB = {p.kv_tokens:,} tokens"
    )


def table_for(settings: Settings) -> list[str]:
    """The capacity section of `make plan`: the stack's replica plan and whether it starts."""
    sv, instance = settings.serving, settings.gpu_nodes.instance
    p = plan_for(sv, instance)
    per_node = min(sv.replicas, settings.replicas_per_node)
    lines = [
        f"capacity ({sv.model}, {sv.profile}, TP {p.tensor_parallel_size}"
        f"{', DP ' + str(p.data_parallel_size) if p.data_parallel_size > 1 else ''}"
        f"{', EP' if p.expert_parallel else ''}, {dtype_label(p.kv_cache_dtype)} KV cache)",
        f"  per replica: {p.gpus} x {instance.gpu_model} {p.gpu_memory_gib:.1f} GiB (as reported) at gpuMemoryUtilization {p.gpu_memory_utilization:g}; {per_node} replica(s) per {instance.name}",
        f"  per GPU: {summary(p)}",
        f"  maxModelLen {p.max_model_len:,}: {p.full_context_sequences} full-context sequence(s) at once per replica, "
        f"{p.full_context_sequences * sv.replicas} across {sv.replicas} replica(s)",
        f"  total KV cache: {p.kv_tokens * sv.replicas:,} tokens across {sv.replicas} replica(s)",
    ]
    problems = check(settings)
    lines += [f"  PROBLEM: {problem}" for problem in problems] or ["  status: fits (vLLM will start)"]
    return lines


def published_figure(hw: Hardware, p: Plan) -> int | None:
    """The guide's published aggregate KV capacity for this row, if it is one of the guide's shapes."""
    profile, tokens = GUIDE_FIGURES.get(hw, (None, 0))
    if (
        p.profile == profile
        and p.kv_cache_dtype == "auto"
        and p.tensor_parallel_size == profiles.PROFILES[profile].tensor_parallel_size
    ):
        return tokens
    return None


def report_hardware() -> list[Hardware]:
    """Every GPU shape the report covers: the shipped instance types, then the guide's references."""
    seen: dict[tuple[str, float, int], Hardware] = {}
    for instance in INSTANCE_TYPES.values():
        hw = Hardware.of(instance)
        seen.setdefault((hw.gpu_model, hw.gpu_memory_gib, hw.gpus), hw)
    return [*seen.values(), GUIDE_4X96, GUIDE_8X144]


def report_rows(
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    max_model_len: int = profiles.MAX_CONTEXT_TOKENS,
    architecture: Architecture = DEFAULT_ARCHITECTURE,
) -> list[tuple[Hardware, Plan]]:
    """Hardware x profile x KV dtype at the given utilization and context."""
    rows = []
    for hw in report_hardware():
        for profile in profiles.PROFILES:
            if profiles.PROFILES[profile].gpus_per_replica > hw.gpus:
                continue
            for dtype in KV_DTYPE_BYTES:
                rows.append(
                    (
                        hw,
                        plan(
                            hw,
                            profile,
                            gpu_memory_utilization=gpu_memory_utilization,
                            max_model_len=max_model_len,
                            kv_cache_dtype=dtype,
                            architecture=architecture,
                        ),
                    )
                )
    return rows
