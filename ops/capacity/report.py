"""`python -m ops.capacity.report`: KV-cache capacity of every GPU type x serving profile x KV-cache dtype.

The capacity targets live here rather than in timed tests: what each shape holds at a
given gpu-memory-utilization and context, and each shipped stack's own plan.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from components.facts.catalog import INSTANCE_TYPES
from components.platform import config
from components.serving import capacity, capacity_tables, profiles
from components.settings import stack as settings

COLUMNS = (
    "hardware",
    "profile",
    "KV dtype",
    "weights/GPU",
    "KV/GPU",
    "KV tokens",
    "per rank",
    "full-context seqs",
    "largest window",
    "starts",
    "published",
)


def hardware_table(
    gpu_memory_utilization: float,
    max_model_len: int,
    architecture: capacity.Architecture = capacity.DEFAULT_ARCHITECTURE,
) -> list[str]:
    """Hardware x profile x KV dtype, one row each, as aligned text."""
    rows = [COLUMNS]
    for hw, p in capacity_tables.report_rows(gpu_memory_utilization, max_model_len, architecture):
        published = capacity_tables.published_figure(hw, p)
        rows.append(
            (
                f"{hw.gpus} x {hw.gpu_model} {hw.gpu_memory_gib:.1f} GiB ({hw.label})",
                p.profile,
                "bf16" if capacity.KV_DTYPE_BYTES[p.kv_cache_dtype] == 2 else p.kv_cache_dtype,
                f"{p.weights_per_gpu_gib:.1f} GiB",
                f"{max(0.0, p.kv_per_gpu_gib):.1f} GiB",
                f"{p.kv_tokens:,}",
                f"{p.kv_tokens_per_rank:,} x {p.data_parallel_size}" if p.data_parallel_size > 1 else "-",
                str(p.full_context_sequences),
                f"{p.max_fitting_model_len:,}" if p.weights_fit else "-",
                "yes" if p.weights_fit and p.context_fits else "no",
                f"guide ~{published:,} ({(p.kv_tokens / published - 1) * 100:+.1f}%)" if published else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.capacity.report", description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-memory-utilization", type=float, default=capacity.DEFAULT_GPU_MEMORY_UTILIZATION)
    parser.add_argument("--max-model-len", type=int, default=profiles.MAX_CONTEXT_TOKENS)
    parser.add_argument("--model", choices=profiles.MODELS, default=profiles.MODELS[0])
    args = parser.parse_args(argv)
    m = capacity.ARCHITECTURES[args.model]
    facts = profiles.MODEL_CATALOG[args.model]
    print("Assumptions (derived, not fitted; components/serving/capacity.py says how):")
    print(
        f"  {m.name}: {m.num_hidden_layers} layers x {m.num_key_value_heads} KV heads x head_dim {m.head_dim} "
        f"({facts.sources['geometry']}); KV {m.kv_bytes_per_token(2):,} B/token bf16, "
        f"{m.kv_bytes_per_token(1):,} fp8 ({m.kv_bytes_per_token(2) * 1_000_000 / capacity.GIB:.1f} GiB per 1M tokens bf16)"
    )
    print(f"  weights {facts.weights_gb:g} GB = {m.weights_gib:.1f} GiB ({facts.sources['weights_gb']})")
    print(
        f"  dense share {m.dense_fraction:.1%} replicated per data-parallel rank; runtime overhead "
        f"{capacity.RUNTIME_OVERHEAD_GIB:g} GiB/GPU (vLLM 0.32.0 defaults, itemized)"
    )
    reported = sorted({(t.gpu_model, t.gpu_memory_mib) for t in INSTANCE_TYPES.values()})
    print(
        "  GPU memory as the device reports it (nvidia-smi memory.total): "
        + ", ".join(f"{gpu} {mib:,} MiB" for gpu, mib in reported)
        + "; the guide's boxes at their nominal size"
    )
    print(
        "  per rank: a data-parallel rank caches its own requests with all KV heads, so one sequence must fit in "
        "one rank's share; 'largest window' is the longest maxModelLen that starts"
    )
    print(
        f"gpu-memory-utilization {args.gpu_memory_utilization:g}, max-model-len {args.max_model_len:,} (per replica)\n"
    )
    print("\n".join(hardware_table(args.gpu_memory_utilization, args.max_model_len, m)))
    print("\nguide's published figures (aggregate KV tokens, bf16 cache, utilization 0.9):")
    for hw, (profile, published) in capacity.GUIDE_FIGURES.items():
        tokens = capacity.plan(hw, profile, architecture=m).kv_tokens
        print(
            f"  {hw.label} {profile}: planned {tokens:,}, published ~{published:,} ({(tokens / published - 1) * 100:+.1f}%)"
        )
    status = 0
    for path in sorted(settings.STACKS_DIR.glob("Pulumi.*.yaml")):
        stack = path.name[len("Pulumi.") : -len(".yaml")]
        print(f"\nstack {stack}:")
        try:
            st = config.from_stack_file(stack)
        except config.SettingsError as err:
            print("\n".join(f"  PROBLEM: {problem}" for problem in err.problems))
            status = 1
            continue
        print("\n".join(f"  {line}" for line in capacity_tables.table_for(st)))
    return status


if __name__ == "__main__":
    sys.exit(main())
