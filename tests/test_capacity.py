"""Capacity planner: the guide's published figures, p5 hardware, every shape, and every rejection path."""

from __future__ import annotations

import dataclasses

import pytest

from components.facts import catalog
from components.platform import config
from components.serving import capacity, capacity_tables, profiles
from components.serving.capacity import GIB, GUIDE_4X96, GUIDE_8X144, Hardware, plan
from components.settings import stack as settings

MINIMAX_M2 = capacity.DEFAULT_ARCHITECTURE
M27 = "MiniMaxAI/MiniMax-M2.7"

H100 = Hardware.of(settings.INSTANCE_TYPES["p5.48xlarge"])
H200 = Hardware.of(settings.INSTANCE_TYPES["p5en.48xlarge"])
H100_TYPE = settings.INSTANCE_TYPES["p5.48xlarge"]
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


def test_gpus_are_planned_at_the_memory_the_device_reports():
    assert H100.gpu_memory_gib == pytest.approx(81_559 / 1024)  # 79.6 GiB, not the marketed 80
    assert H200.gpu_memory_gib == pytest.approx(143_771 / 1024)  # 140.4 GiB, not 141
    assert plan(H100, "tp4").budget_per_gpu_gib == pytest.approx(0.9 * 81_559 / 1024)


def test_planner_reads_each_models_facts_from_the_catalogue():
    for hub_id, model in catalog.MODEL_CATALOG.items():
        arch = capacity.ARCHITECTURES[hub_id]
        assert arch.weights_gib == pytest.approx(model.weights_gb * 1e9 / GIB)
        assert (
            arch.kv_bytes_per_token(2) == 2 * model.num_hidden_layers * model.num_key_value_heads * model.head_dim * 2
        )
    heavier = plan(H100, "tp4", architecture=capacity.ARCHITECTURES[M27])
    assert heavier.weights_per_gpu_gib > plan(H100, "tp4").weights_per_gpu_gib  # 230.1 GB vs 230 GB
    assert heavier.kv_tokens < plan(H100, "tp4").kv_tokens


@pytest.mark.parametrize(
    ("hardware", "profile", "tokens", "full_context"),
    [
        (H100, "tp4", 171_351, 0),  # 4 x H100: the full 196,608 context does not fit
        (H100, "tp8-ep", 1_248_386, 6),  # 8 x H100
        (H100, "dp8-ep", 1_102_568, 0),  # 8 ranks of 137,821 tokens each: no full-context sequence fits
        (H200, "tp8-ep", 3_097_889, 15),  # 8 x H200
        (H200, "tp4", 1_096_103, 5),  # 4 x H200
        (H200, "dp8-ep", 2_952_072, 8),  # 8 ranks of 369,009 tokens: one full sequence each
    ],
)
def test_p5_figures_at_default_utilization_and_full_context(hardware, profile, tokens, full_context):
    p = plan(hardware, profile)
    assert p.kv_tokens == pytest.approx(tokens, rel=0.001)
    assert p.full_context_sequences == full_context
    assert p.context_fits is (full_context > 0)


def test_tp4_on_h100_splits_each_gpu_into_weights_overhead_and_kv():
    p = plan(H100, "tp4")
    assert p.budget_per_gpu_gib == pytest.approx(71.68, abs=0.01)
    assert p.weights_per_gpu_gib == pytest.approx(230e9 / GIB / 4)
    assert p.kv_per_gpu_gib == pytest.approx(p.budget_per_gpu_gib - p.weights_per_gpu_gib - 8)


def test_data_parallel_attention_keeps_all_kv_heads_per_rank_and_replicates_the_dense_weights():
    dp, tp = plan(H100, "dp8-ep"), plan(H100, "tp8-ep")
    assert (dp.tensor_parallel_size, dp.data_parallel_size) == (1, 8)
    assert dp.kv_bytes_per_token_per_gpu == MINIMAX_M2.kv_bytes_per_token(2) == 8 * tp.kv_bytes_per_token_per_gpu
    w = MINIMAX_M2.weights_gib
    assert dp.weights_per_gpu_gib == pytest.approx(
        w * (1 - MINIMAX_M2.dense_fraction) / 8 + w * MINIMAX_M2.dense_fraction
    )
    assert dp.kv_tokens_per_rank == int(dp.kv_per_gpu_gib * GIB // MINIMAX_M2.kv_bytes_per_token(2))
    assert dp.kv_tokens_per_rank < profiles.MAX_CONTEXT_TOKENS < tp.kv_tokens_per_rank
    assert dp.max_fitting_model_len == dp.kv_tokens_per_rank // 1024 * 1024


def test_fp8_cache_lets_dp8_ep_hold_the_full_window_on_h100():
    p = plan(H100, "dp8-ep", kv_cache_dtype="fp8")
    assert p.context_fits and p.full_context_sequences == 8


def test_fp8_kv_cache_doubles_the_tokens():
    assert plan(H100, "tp4", kv_cache_dtype="fp8").kv_tokens == pytest.approx(2 * plan(H100, "tp4").kv_tokens, abs=2)


def test_data_parallel_ranks_each_need_the_full_context():
    p = plan(H100, "tp8-ep", tensor_parallel_size=2, max_model_len=131_072)
    assert p.data_parallel_size == 4
    assert p.kv_tokens == p.kv_tokens_per_rank * 4
    assert p.full_context_sequences == (p.kv_tokens_per_rank // 131_072) * 4


def test_kv_cache_dtype_is_the_setting_not_an_extra_argument():
    assert (
        capacity.plan_for(_parse({"profile": "tp4", "maxModelLen": 32_768}).serving, H100_TYPE).kv_cache_dtype == "auto"
    )
    fp8 = _parse({"profile": "tp4", "kvCacheDtype": "fp8"})
    assert capacity.plan_for(fp8.serving, H100_TYPE).kv_cache_dtype == "fp8"
    (problem,) = _problems({"profile": "tp4", "maxModelLen": 32_768, "extraArgs": ["--kv_cache_dtype=fp8"]})
    assert "sets --kv-cache-dtype, which the profile and settings own" in problem
    assert "pulumi config set --path 'serving.kvCacheDtype' fp8" in problem
    (problem,) = _problems({"kvCacheDtype": "fp8_e5m2"})
    assert "is not a KV-cache dtype; choose one of: auto, fp8" in problem


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_shipped_stack_passes_its_capacity_check(stack):
    st = config.from_stack_file(stack)
    assert capacity.check(st) == []
    assert capacity_tables.table_for(st)[-1] == "  status: fits (vLLM will start)"


def test_tp4_on_h100_with_full_context_is_rejected_with_concrete_fixes():
    (problem,) = _problems({"profile": "tp4"})
    assert problem.startswith("minimax-vllm:serving.maxModelLen = 196608 needs 46.5 GiB of bf16 KV cache")
    assert "(4 x H100, 79.6 GiB reported)" in problem
    assert "leaves 40.5 GiB (171,351 tokens) per rank" in problem
    assert "max seq len" in problem  # what vLLM itself would say
    assert "Fix: lower the window: pulumi config set --path 'serving.maxModelLen' 171008" in problem
    assert "pulumi config set --path 'serving.gpuMemoryUtilization' 0.92" in problem
    assert "pulumi config set --path 'serving.profile' tp8-ep" in problem
    assert "pulumi config set --path 'serving.kvCacheDtype' fp8" in problem
    assert "'serving.profile' dp8-ep" not in problem  # it does not hold the window either


def test_dp8_ep_on_h100_with_full_context_is_refused_per_rank_with_its_fixes():
    (problem,) = _problems({"profile": "dp8-ep"})
    assert problem.startswith("minimax-vllm:serving.maxModelLen = 196608 needs 46.5 GiB of bf16 KV cache")
    assert "dp8-ep (TP 1 x DP 8)" in problem
    assert "leaves 32.6 GiB (137,821 tokens) per rank" in problem
    assert "one sequence must fit in one rank's share" in problem
    fixes = problem.split("Fix:")[1]
    assert "pulumi config set --path 'serving.maxModelLen' 137216" in fixes
    assert "pulumi config set --path 'serving.kvCacheDtype' fp8" in fixes
    assert "pulumi config set --path 'serving.profile' tp8-ep" in fixes
    assert "gpuMemoryUtilization" not in fixes  # it would take more than the planner's 0.95 ceiling


@pytest.mark.parametrize(
    "fix",
    [
        {"profile": "tp4", "maxModelLen": 171_008},
        {"profile": "tp4", "gpuMemoryUtilization": 0.92},
        {"profile": "tp4", "kvCacheDtype": "fp8"},
        {"profile": "dp8-ep", "maxModelLen": 137_216},
        {"profile": "dp8-ep", "kvCacheDtype": "fp8"},
        {"profile": "tp8-ep"},
    ],
)
def test_suggested_fixes_really_fit(fix):
    assert capacity.check(_parse(fix)) == []


@pytest.mark.parametrize("profile", ["tp4", "dp8-ep"])
def test_one_step_beyond_the_largest_window_is_refused(profile):
    largest = plan(H100, profile).max_fitting_model_len
    assert capacity.check(_parse({"profile": profile, "maxModelLen": largest})) == []
    assert _problems({"profile": profile, "maxModelLen": largest + 1024})[0].startswith(
        f"minimax-vllm:serving.maxModelLen = {largest + 1024} needs"
    )


def test_too_low_utilization_for_the_context_is_rejected():
    (problem,) = _problems({"profile": "tp4", "maxModelLen": 131_072, "gpuMemoryUtilization": 0.8})
    assert problem.startswith("minimax-vllm:serving.maxModelLen = 131072 needs 31.0 GiB")
    assert "pulumi config set --path 'serving.maxModelLen' 35840" in problem
    assert "pulumi config set --path 'serving.gpuMemoryUtilization' 0.88" in problem


def test_weights_that_do_not_fit_per_gpu_are_rejected():
    (problem,) = _problems({"profile": "tp4", "gpuMemoryUtilization": 0.5})
    assert problem.startswith("minimax-vllm:serving.profile = 'tp4' cannot load MiniMaxAI/MiniMax-M2.5")
    assert "53.6 GiB of weights + 8 GiB runtime overhead per GPU exceed the 39.8 GiB" in problem
    assert "CUDA out of memory" in problem
    assert "Fix: pulumi config set --path 'serving.gpuMemoryUtilization' 0.92" in problem


def test_data_parallel_split_that_cannot_hold_the_weights_names_tensor_parallel_size():
    (problem,) = _problems({"profile": "tp4", "tensorParallelSize": 2, "maxModelLen": 32_768})
    assert problem.startswith("minimax-vllm:serving.tensorParallelSize = 2 cannot load")
    assert "107.1 GiB of weights" in problem
    assert "pulumi config set --path 'serving.tensorParallelSize' 4" in problem
    assert "pulumi config set --path 'serving.profile' tp8-ep" in problem
    assert "pulumi config set --path 'serving.profile' dp8-ep" in problem


def test_fp8_fix_is_not_offered_when_fp8_is_already_used():
    (problem,) = _problems({"profile": "dp8-ep", "kvCacheDtype": "fp8", "gpuMemoryUtilization": 0.6})
    assert "fp8 KV cache" in problem
    assert "kvCacheDtype" not in problem.split("Fix:")[1]


def test_h200_serves_tp4_with_full_context():
    assert capacity.check(_parse({"profile": "tp4"}, "p5e.48xlarge")) == []


def test_table_for_reports_the_stack_plan_and_problems():
    lines = capacity_tables.table_for(config.from_stack_file("prod-8gpu"))
    assert lines[0].startswith("capacity (MiniMaxAI/MiniMax-M2.5, tp8-ep, TP 8, EP, bf16 KV cache)")
    assert any("6 full-context sequence(s)" in line for line in lines)
    fits = _parse({"profile": "tp4", "maxModelLen": 32_768})
    too_long = dataclasses.replace(
        fits, serving=dataclasses.replace(fits.serving, max_model_len=profiles.MAX_CONTEXT_TOKENS)
    )
    assert capacity_tables.table_for(too_long)[-1].startswith("  PROBLEM: minimax-vllm:serving.maxModelLen = 196608")


def test_report_covers_every_hardware_and_profile():
    rows = capacity_tables.report_rows()
    shapes = {(hw.label, p.profile) for hw, p in rows}
    assert ("p5.48xlarge", "tp4") in shapes and ("p5.48xlarge", "tp8-ep") in shapes
    assert ("p5e.48xlarge", "tp8-ep") in shapes and ("p5e.48xlarge", "dp8-ep") in shapes
    assert (GUIDE_4X96.label, "tp4") in shapes and (GUIDE_8X144.label, "tp8-ep") in shapes
    every_dtype = {(label, prof, dtype) for label, prof in shapes for dtype in catalog.KV_CACHE_DTYPES}
    assert {(hw.label, p.profile, p.kv_cache_dtype) for hw, p in rows} == every_dtype
    marked = {
        (hw.label, p.profile): capacity_tables.published_figure(hw, p)
        for hw, p in rows
        if capacity_tables.published_figure(hw, p)
    }
    assert marked == {(GUIDE_4X96.label, "tp4"): 400_000, (GUIDE_8X144.label, "tp8-ep"): 3_000_000}


def test_capacity_report_prints_every_shape_the_largest_window_and_the_published_marks(capsys):
    from ops.capacity import report as capacity_report

    capacity_report.main([])
    out = capsys.readouterr().out
    assert "Assumptions (derived, not fitted" in out and "81,559 MiB" in out and "143,771 MiB" in out
    assert "largest window" in out
    h100_dp8 = next(
        line for line in out.splitlines() if "(p5.48xlarge)" in line and " dp8-ep " in line and " bf16 " in line
    )
    assert "137,821 x 8" in h100_dp8 and "137,216" in h100_dp8 and h100_dp8.rstrip().endswith("no")
    assert "guide ~400,000 (+" in out and "guide ~3,000,000 (+" in out
