"""The vLLM command line each profile produces: the MiniMax guide's flags, and only one builder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from components.platform.config import parse
from components.serving import profiles

ROOT = Path(__file__).resolve().parent.parent
GUIDE_COMMON = ["--trust-remote-code", "--enable-auto-tool-choice", "--tool-call-parser", "minimax_m2"]


def serving(**fields):
    raw = {
        "owner": "ml-platform",
        "serving": {"profile": "tp8-ep", **fields},
        "cluster": {"publicAccessCidrs": ["198.51.100.0/24"]},
        "gpuNodes": {"minSize": 1, "desiredSize": 2, "maxSize": 2},
    }
    return parse(raw, "test", "us-east-2").serving


def flag_value(argv, flag):
    return argv[argv.index(flag) + 1]


def test_4gpu_profile_is_the_guides_4gpu_command():
    argv = profiles.vllm_argv(serving(profile="tp4", maxModelLen=131072))
    assert argv[:3] == ["vllm", "serve", "MiniMaxAI/MiniMax-M2.5"]
    assert flag_value(argv, "--tensor-parallel-size") == "4"
    assert "--enable-expert-parallel" not in argv
    assert "--data-parallel-size" not in argv
    for flag in GUIDE_COMMON:
        assert flag in argv
    assert flag_value(argv, "--reasoning-parser") == "minimax_m2_append_think"


def test_8gpu_profile_enables_expert_parallel_with_tensor_parallel_8():
    argv = profiles.vllm_argv(serving())
    assert "--enable-expert-parallel" in argv
    assert flag_value(argv, "--tensor-parallel-size") == "8"
    for flag in GUIDE_COMMON:
        assert flag in argv


def test_guide_environment_sets_safetensors_fast_gpu():
    assert profiles.vllm_env()["SAFETENSORS_FAST_GPU"] == "1"


def test_selected_model_revision_name_and_limits_reach_the_argv():
    argv = profiles.vllm_argv(
        serving(
            model="MiniMaxAI/MiniMax-M2.1",
            revision="a" * 40,
            servedModelName="m21",
            maxModelLen=65536,
            gpuMemoryUtilization=0.92,
            reasoningParser="minimax_m2",
        )
    )
    assert argv[2] == "MiniMaxAI/MiniMax-M2.1"
    assert flag_value(argv, "--revision") == "a" * 40
    assert flag_value(argv, "--served-model-name") == "m21"
    assert flag_value(argv, "--max-model-len") == "65536"
    assert flag_value(argv, "--gpu-memory-utilization") == "0.92"
    assert flag_value(argv, "--reasoning-parser") == "minimax_m2"


def test_served_model_name_defaults_to_the_model_short_name():
    assert flag_value(profiles.vllm_argv(serving(model="MiniMaxAI/MiniMax-M2")), "--served-model-name") == "minimax-m2"


def test_piecewise_switch_adds_the_guides_compilation_config():
    assert "--compilation-config" not in profiles.vllm_argv(serving())
    argv = profiles.vllm_argv(serving(piecewiseCudagraph=True))
    assert json.loads(flag_value(argv, "--compilation-config")) == {"cudagraph_mode": "PIECEWISE"}


def test_admission_cap_reaches_the_argv_and_zero_leaves_it_out():
    assert flag_value(profiles.vllm_argv(serving()), "--max-num-queued-reqs") == "512"  # the default
    assert flag_value(profiles.vllm_argv(serving(maxQueuedRequests=64)), "--max-num-queued-reqs") == "64"
    assert "--max-num-queued-reqs" not in profiles.vllm_argv(serving(maxQueuedRequests=0))


def test_extra_args_cannot_set_the_admission_cap():
    from components.settings.schema import SettingsError

    with pytest.raises(SettingsError, match="serving.maxQueuedRequests. 256"):
        serving(extraArgs=["--max-num-queued-reqs=9"])


def test_smaller_tensor_parallel_runs_the_rest_as_data_parallel_ranks():
    argv = profiles.vllm_argv(serving(tensorParallelSize=4))
    assert flag_value(argv, "--tensor-parallel-size") == "4"
    assert flag_value(argv, "--data-parallel-size") == "2"
    assert "--enable-expert-parallel" in argv


def test_extra_args_come_last_and_cannot_remove_core_flags():
    argv = profiles.vllm_argv(serving(extraArgs=["--max-num-seqs=32"]))
    assert argv[-1] == "--max-num-seqs=32"
    assert "--enable-expert-parallel" in argv


def test_every_flag_is_written_in_one_spelling():
    argv = profiles.vllm_argv(serving(piecewiseCudagraph=True))
    flags = [t for t in argv if t.startswith("--")]
    assert len(flags) == len(set(flags))
    assert all("_" not in f for f in flags)


@pytest.mark.parametrize(
    "token,name",
    [
        ("--Tensor_Parallel_Size=4", "tensor-parallel-size"),
        ("--no-enable-expert-parallel", "enable-expert-parallel"),
        ("-tp", "tp"),
        ("value", None),
    ],
)
def test_flag_name_normalises_every_spelling(token, name):
    assert profiles.flag_name(token) == name


def test_only_the_profile_module_builds_vllm_flags():
    """One place for flags: no other source file spells a core vLLM flag."""
    offenders = []
    for path in ROOT.glob("**/*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in {".venv", "tests"} or rel == Path("components/serving/profiles.py"):
            continue
        if re.search(r"[\"']--(tensor-parallel-size|enable-expert-parallel|tool-call-parser)[\"'=]", path.read_text()):
            offenders.append(str(rel))
    assert offenders == []
