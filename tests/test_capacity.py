"""Capacity planner: the guide's published figures, p5 hardware, and every rejection path."""

from __future__ import annotations

import dataclasses

import pytest

from components import capacity, config, profiles, settings
from components.capacity import GIB, GUIDE_4X96, GUIDE_8X144, MINIMAX_M2, Hardware, plan

H100 = Hardware.of(settings.INSTANCE_TYPES["p5.48xlarge"])
H200 = Hardware.of(settings.INSTANCE_TYPES["p5en.48xlarge"])
SHIPPED_STACKS = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in settings.STACKS_DIR.glob("Pulumi.*.yaml"))


def _parse(serving: dict, instance_type: str = "p5.48xlarge") -> settings.Settings:
    raw = {"owner": "ml-platform", "serving": serving, "gpuNodes": {"instanceType": instance_type}}
    return config.parse(raw, "capacity-test", "us-east-2")


def _problems(serving: dict, instance_type: str = "p5.48xlarge") -> list[str]:
    with pytest.raises(settings.SettingsError) as err:
        _parse(serving, instance_type)
    return err.value.problems


def test_kv_bytes_per_token_follow_the_architecture():
    # 2 (K, V) x 62 layers x 8 KV heads x 128 head_dim x 2 bytes
    assert MINIMAX_M2.kv_bytes_per_token(2) == 253_952
    assert MINIMAX_M2.kv_bytes_per_token(1) == 126_976
    assert MINIMAX_M2.kv_bytes_per_token(2, tensor_parallel_size=8) == 253_952 // 8


def test_architecture_reproduces_the_guides_240_gb_per_million_tokens():
    per_million_gib = MINIMAX_M2.kv_bytes_per_token(2) * 1_000_000 / GIB
    assert per_million_gib == pytest.approx(240, rel=0.02)


@pytest.mark.parametrize(("hardware", "expected"), [(h, f) for h, f in capacity.GUIDE_FIGURES.items()])
def test_guide_published_kv_capacity_is_reproduced_within_10_percent(hardware, expected):
    profile, tokens = expected
    p = plan(hardware, profile)
    assert p.kv_tokens == pytest.approx(tokens, rel=0.10)


def test_guide_4x96_holds_two_full_context_sequences():
    assert plan(GUIDE_4X96, "tp4").full_context_sequences == 2


@pytest.mark.parametrize(
    ("hardware", "profile", "tokens", "full_context"),
    [
        (H100, "tp4", 152_212, 0),  # 4 x H100 80 GiB: the full 196,608 context does not fit
        (H100, "tp8-ep", 1_234_613, 6),  # 8 x H100 80 GiB
        (H200, "tp8-ep", 3_091_607, 15),  # 8 x H200 141 GiB
        (H200, "tp4", 1_080_709, 5),  # 4 x H200 141 GiB
    ],
)
def test_p5_figures_at_default_utilization_and_full_context(hardware, profile, tokens, full_context):
    p = plan(hardware, profile)
    assert p.kv_tokens == pytest.approx(tokens, rel=0.001)
    assert p.full_context_sequences == full_context
    assert p.context_fits is (full_context > 0)


def test_tp4_on_h100_splits_each_gpu_into_weights_overhead_and_kv():
    p = plan(H100, "tp4")
    assert p.budget_per_gpu_gib == pytest.approx(72.0)
    assert p.weights_per_gpu_gib == pytest.approx(55.0)
    assert p.kv_per_gpu_gib == pytest.approx(9.0)


def test_fp8_kv_cache_doubles_the_tokens():
    assert plan(H100, "tp4", kv_cache_dtype="fp8").kv_tokens == pytest.approx(2 * plan(H100, "tp4").kv_tokens, abs=2)


def test_data_parallel_ranks_each_need_the_full_context():
    p = plan(H100, "tp8-ep", tensor_parallel_size=2, max_model_len=131_072)
    assert p.data_parallel_size == 4
    assert p.kv_tokens == p.kv_tokens_per_rank * 4
    assert p.full_context_sequences == (p.kv_tokens_per_rank // 131_072) * 4


def test_kv_cache_dtype_is_read_from_extra_args_in_both_spellings():
    assert capacity.kv_cache_dtype(()) == "auto"
    assert capacity.kv_cache_dtype(("--kv-cache-dtype", "fp8")) == "fp8"
    assert capacity.kv_cache_dtype(("--max-num-seqs=64", "--kv_cache_dtype=fp8_e4m3")) == "fp8_e4m3"


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_shipped_stack_passes_its_capacity_check(stack):
    st = config.from_stack_file(stack)
    assert capacity.check(st) == []
    assert capacity.table_for(st)[-1] == "  status: fits (vLLM will start)"


def test_tp4_on_h100_with_full_context_is_rejected_with_concrete_fixes():
    (problem,) = _problems({"profile": "tp4"})
    assert problem.startswith("minimax-vllm:serving.maxModelLen = 196608 needs 46.5 GiB of bf16 KV cache")
    assert "leaves 36.0 GiB (152,212 tokens)" in problem
    assert "max seq len" in problem  # what vLLM itself would say
    assert "Fix: lower it: pulumi config set --path 'serving.maxModelLen' 151552" in problem
    assert "pulumi config set --path 'serving.gpuMemoryUtilization' 0.94" in problem
    assert "pulumi config set --path 'serving.profile' tp8-ep" in problem
    assert "--kv-cache-dtype=fp8" in problem


def test_suggested_max_model_len_and_utilization_really_fit():
    assert capacity.check(_parse({"profile": "tp4", "maxModelLen": 151_552})) == []
    assert capacity.check(_parse({"profile": "tp4", "gpuMemoryUtilization": 0.94})) == []
    assert capacity.check(_parse({"profile": "tp4", "extraArgs": ["--kv-cache-dtype=fp8"]})) == []


def test_too_low_utilization_for_the_context_is_rejected():
    (problem,) = _problems({"profile": "tp4", "maxModelLen": 131_072, "gpuMemoryUtilization": 0.8})
    assert problem.startswith("minimax-vllm:serving.maxModelLen = 131072 needs 31.0 GiB")
    assert "pulumi config set --path 'serving.maxModelLen' 16384" in problem
    assert "pulumi config set --path 'serving.gpuMemoryUtilization' 0.89" in problem


def test_weights_that_do_not_fit_per_gpu_are_rejected():
    (problem,) = _problems({"profile": "tp4", "gpuMemoryUtilization": 0.5})
    assert problem.startswith("minimax-vllm:serving.profile = 'tp4' cannot load MiniMaxAI/MiniMax-M2.5")
    assert "55.0 GiB of weights + 8 GiB runtime overhead per GPU exceed the 40.0 GiB" in problem
    assert "CUDA out of memory" in problem
    assert "Fix: pulumi config set --path 'serving.gpuMemoryUtilization' 0.94" in problem


def test_data_parallel_split_that_cannot_hold_the_weights_names_tensor_parallel_size():
    (problem,) = _problems({"profile": "tp4", "tensorParallelSize": 2, "maxModelLen": 32_768})
    assert problem.startswith("minimax-vllm:serving.tensorParallelSize = 2 cannot load")
    assert "110.0 GiB of weights" in problem
    assert "pulumi config set --path 'serving.tensorParallelSize' 4" in problem
    assert "pulumi config set --path 'serving.profile' tp8-ep" in problem


def test_fp8_fix_is_not_offered_when_fp8_is_already_used():
    (problem,) = _problems(
        {
            "profile": "tp8-ep",
            "tensorParallelSize": 1,
            "extraArgs": ["--kv-cache-dtype=fp8"],
            "gpuMemoryUtilization": 0.6,
        }
    )
    assert "fp8 KV cache" in problem
    assert "--kv-cache-dtype=fp8" not in problem.split("Fix:")[1]


def test_h200_serves_tp4_with_full_context():
    assert capacity.check(_parse({"profile": "tp4"}, "p5e.48xlarge")) == []


def test_table_for_reports_the_stack_plan_and_problems():
    lines = capacity.table_for(config.from_stack_file("prod-8gpu"))
    assert lines[0].startswith("capacity (MiniMaxAI/MiniMax-M2.5, tp8-ep, TP 8, EP, bf16 KV cache)")
    assert any("6 full-context sequence(s)" in line for line in lines)
    fits = _parse({"profile": "tp4", "maxModelLen": 32_768})
    too_long = dataclasses.replace(
        fits, serving=dataclasses.replace(fits.serving, max_model_len=profiles.MAX_CONTEXT_TOKENS)
    )
    assert capacity.table_for(too_long)[-1].startswith("  PROBLEM: minimax-vllm:serving.maxModelLen = 196608")


def test_report_covers_every_hardware_and_profile():
    rows = capacity.report_rows()
    shapes = {(hw.label, p.profile) for hw, p in rows}
    assert ("p5.48xlarge", "tp4") in shapes and ("p5.48xlarge", "tp8-ep") in shapes
    assert ("p5e.48xlarge", "tp8-ep") in shapes
    assert (GUIDE_4X96.label, "tp4") in shapes and (GUIDE_8X144.label, "tp8-ep") in shapes
