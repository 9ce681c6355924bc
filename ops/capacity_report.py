"""`python -m ops.capacity_report`: KV-cache capacity of every GPU shape x serving profile.

The capacity targets live here rather than in timed tests: what each shape holds at a
given gpu-memory-utilization and context, and each shipped stack's own plan.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from components import capacity, config, profiles, settings

COLUMNS = ("hardware", "profile", "KV dtype", "weights/GPU", "KV/GPU", "KV tokens", "full-context seqs", "starts")


def hardware_table(gpu_memory_utilization: float, max_model_len: int) -> list[str]:
    """Hardware x profile x KV dtype, one row each, as aligned text."""
    rows = [COLUMNS]
    for hw, p in capacity.report_rows(gpu_memory_utilization, max_model_len):
        rows.append(
            (
                f"{hw.gpus} x {hw.gpu_model} {hw.gpu_memory_gib:g} GiB ({hw.label})",
                p.profile,
                "bf16" if capacity.KV_DTYPE_BYTES[p.kv_cache_dtype] == 2 else p.kv_cache_dtype,
                f"{p.weights_per_gpu_gib:.1f} GiB",
                f"{max(0.0, p.kv_per_gpu_gib):.1f} GiB",
                f"{p.kv_tokens:,}",
                str(p.full_context_sequences),
                "yes" if p.weights_fit and p.context_fits else f"no (max {p.max_fitting_model_len:,})",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.capacity_report", description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-memory-utilization", type=float, default=capacity.DEFAULT_GPU_MEMORY_UTILIZATION)
    parser.add_argument("--max-model-len", type=int, default=profiles.MAX_CONTEXT_TOKENS)
    args = parser.parse_args(argv)
    m = capacity.MINIMAX_M2
    print(
        f"{m.name} family: {m.num_hidden_layers} layers x {m.num_key_value_heads} KV heads x head_dim {m.head_dim}; "
        f"weights {m.weights_gib:g} GiB; KV {m.kv_bytes_per_token(2):,} B/token bf16 "
        f"({m.kv_bytes_per_token(2) * 1_000_000 / capacity.GIB:.1f} GiB per 1M tokens); "
        f"runtime overhead {capacity.RUNTIME_OVERHEAD_GIB:g} GiB/GPU"
    )
    print(
        f"gpu-memory-utilization {args.gpu_memory_utilization:g}, max-model-len {args.max_model_len:,} (per replica)\n"
    )
    print("\n".join(hardware_table(args.gpu_memory_utilization, args.max_model_len)))
    print("\nguide's published figures (aggregate KV tokens):")
    for hw, (profile, published) in capacity.GUIDE_FIGURES.items():
        tokens = capacity.plan(hw, profile).kv_tokens
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
        print("\n".join(f"  {line}" for line in capacity.table_for(st)))
    return status


if __name__ == "__main__":
    sys.exit(main())
