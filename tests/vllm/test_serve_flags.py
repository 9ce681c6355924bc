"""Every argv the project can emit is accepted by the pinned vLLM release, and means what we meant."""

from __future__ import annotations

import inspect
import itertools
import json

import pytest

from components.facts import versions
from components.platform import config
from components.serving import capacity, profiles
from components.settings import stack as settings

pytestmark = pytest.mark.vllm

SHIPPED_STACKS = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in settings.STACKS_DIR.glob("Pulumi.*.yaml"))
COMBINATIONS = list(
    itertools.product(
        profiles.PROFILES, profiles.MODELS, profiles.REASONING_PARSERS, (False, True), profiles.KV_CACHE_DTYPES
    )
)
COOKBOOK_COMPILATION_CONFIG = '{"mode": 3, "pass_config": {"fuse_minimax_qk_norm": true}}'


def _serving(
    profile: str, model: str, reasoning_parser: str, piecewise: bool, kv_cache_dtype: str = "auto"
) -> settings.ServingSettings:
    raw = {
        "owner": "ml-platform",
        "serving": {
            "profile": profile,
            "model": model,
            "reasoningParser": reasoning_parser,
            "piecewiseCudagraph": piecewise,
            "kvCacheDtype": kv_cache_dtype,
        },
        # H200 so that every profile fits the default (full) context.
        "gpuNodes": {"instanceType": "p5en.48xlarge"},
    }
    return settings.parse(raw, "vllm-check", "us-east-2").serving


def _assert_means(checked, serving: settings.ServingSettings) -> None:
    """The parsed engine arguments carry the settings' values, not vLLM defaults."""
    ea, ns = checked.engine_args, checked.namespace
    profile = profiles.PROFILES[serving.profile]
    assert ea.model == serving.model
    assert ea.trust_remote_code is True
    assert ea.tensor_parallel_size == serving.tensor_parallel_size
    assert ea.data_parallel_size == profiles.data_parallel_size(profile, serving.tensor_parallel_size)
    assert ea.enable_expert_parallel is profile.expert_parallel
    assert checked.parallel_config.world_size_across_dp == profile.gpus_per_replica
    assert ea.max_model_len == serving.max_model_len
    assert ea.gpu_memory_utilization == pytest.approx(serving.gpu_memory_utilization)
    assert checked.cache_config.gpu_memory_utilization == pytest.approx(serving.gpu_memory_utilization)
    assert ea.served_model_name == profiles.served_model_names(serving)
    assert ea.served_model_name[0] == serving.served_model_name and serving.model in ea.served_model_name
    assert ns.enable_auto_tool_choice is True
    assert ns.tool_call_parser == serving.model_facts.tool_call_parser and checked.tool_parser is not None
    assert ns.reasoning_parser == serving.reasoning_parser and checked.reasoning_parser is not None
    assert (ns.host, ns.port) == ("0.0.0.0", profiles.PORT)
    assert ea.kv_cache_dtype == serving.kv_cache_dtype == checked.cache_config.cache_dtype
    assert ea.max_num_queued_reqs == serving.admission_cap
    assert ns.api_key is None  # the key comes from the environment (VLLM_API_KEY), never the argv
    mode = ea.compilation_config.cudagraph_mode
    if serving.piecewise_cudagraph:
        assert mode is not None and mode.name == "PIECEWISE"
    else:
        assert mode is None  # vLLM picks its own default


def test_installed_vllm_is_the_pinned_release(vllm_cli):
    assert vllm_cli.version == versions.VLLM_RELEASE
    assert versions.VLLM_IMAGE.endswith(f":v{vllm_cli.version}")


def test_stacks_exist_to_check():
    assert {"dev", "staging", "prod-4gpu", "prod-8gpu"} <= set(SHIPPED_STACKS)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_shipped_stack_argv_is_accepted_by_pinned_vllm(vllm_cli, stack):
    serving = config.from_stack_file(stack).serving
    checked = vllm_cli.accepted(profiles.vllm_argv(serving))
    _assert_means(checked, serving)


@pytest.mark.parametrize(("profile", "model", "reasoning_parser", "piecewise", "kv_cache_dtype"), COMBINATIONS)
def test_every_profile_model_parser_piecewise_and_kv_dtype_argv_is_accepted(
    vllm_cli, profile, model, reasoning_parser, piecewise, kv_cache_dtype
):
    serving = _serving(profile, model, reasoning_parser, piecewise, kv_cache_dtype)
    _assert_means(vllm_cli.accepted(profiles.vllm_argv(serving)), serving)


def test_dp8_ep_is_the_recipes_data_parallel_expert_parallel_shape(vllm_cli):
    checked = vllm_cli.accepted(profiles.vllm_argv(_serving("dp8-ep", profiles.MODELS[0], "minimax_m2", False)))
    ea = checked.engine_args
    assert (ea.tensor_parallel_size, ea.data_parallel_size, ea.enable_expert_parallel) == (1, 8, True)
    assert checked.parallel_config.world_size_across_dp == 8


@pytest.mark.parametrize("model", profiles.MODELS)
def test_pinned_vllm_release_is_at_least_each_models_minimum(model):
    from packaging.version import Version

    assert Version(versions.VLLM_RELEASE) >= Version(profiles.MODEL_CATALOG[model].min_vllm)


@pytest.mark.parametrize("model", profiles.MODELS)
def test_tool_call_parser_is_registered_in_vllm(vllm_cli, model):
    parser = vllm_cli.tool_parsers.get_tool_parser(profiles.MODEL_CATALOG[model].tool_call_parser)
    assert parser.__module__.endswith("minimax_m2_tool_parser")


@pytest.mark.parametrize("name", profiles.REASONING_PARSERS)
def test_reasoning_parser_is_registered_in_vllm(vllm_cli, name):
    assert name in vllm_cli.reasoning_parsers.list_registered()
    assert vllm_cli.reasoning_parsers.get_reasoning_parser(name).__module__.endswith("minimax_m2_reasoning_parser")


def test_invented_flag_is_rejected_with_vllms_message(vllm_cli):
    argv = profiles.vllm_argv(config.from_stack_file("dev").serving) + ["--enable-minimax-turbo"]
    assert "unrecognized arguments: --enable-minimax-turbo" in vllm_cli.rejection(argv)


def test_unknown_reasoning_parser_is_rejected_with_vllms_message(vllm_cli):
    serving = config.from_stack_file("dev").serving
    argv = [("minimax_m9" if a == serving.reasoning_parser else a) for a in profiles.vllm_argv(serving)]
    assert "Reasoning parser 'minimax_m9' not found" in vllm_cli.rejection(argv)


def test_cookbook_qk_norm_fusion_config_is_rejected_by_pinned_release(vllm_cli):
    # The cookbook's throughput tweak names a pass that vLLM 0.32.0's PassConfig does not
    # have; that is why only the guide's PIECEWISE workaround is ever emitted.
    argv = ["vllm", "serve", profiles.MODELS[0], "--compilation-config", COOKBOOK_COMPILATION_CONFIG]
    message = vllm_cli.rejection(argv)
    assert "pass_config.fuse_minimax_qk_norm" in message
    assert "Unexpected keyword argument" in message


def test_cookbook_compilation_mode_3_alone_is_accepted(vllm_cli):
    checked = vllm_cli.accepted(["vllm", "serve", profiles.MODELS[0], "--compilation-config", '{"mode": 3}'])
    assert int(checked.engine_args.compilation_config.mode) == 3


def test_piecewise_workaround_is_the_guides_json(vllm_cli):
    argv = [
        "vllm",
        "serve",
        profiles.MODELS[0],
        "--compilation-config",
        json.dumps(profiles.PIECEWISE_COMPILATION_CONFIG),
    ]
    assert vllm_cli.accepted(argv).engine_args.compilation_config.cudagraph_mode.name == "PIECEWISE"


@pytest.mark.parametrize("dtype", sorted(capacity.KV_DTYPE_BYTES))
def test_kv_cache_dtypes_the_planner_knows_are_accepted(vllm_cli, dtype):
    checked = vllm_cli.accepted(["vllm", "serve", profiles.MODELS[0], f"--kv-cache-dtype={dtype}"])
    assert checked.cache_config.cache_dtype == dtype


def test_auto_kv_cache_is_the_model_dtype_for_a_checkpoint_without_kv_quantization():
    """Why the planner counts "auto" as 2 bytes: the FP8 checkpoints quantize weights only
    (quantization_config has no kv_cache_quant_algo), and vLLM resolves "auto" to the model dtype."""
    from types import SimpleNamespace

    import torch
    from vllm.utils.torch_utils import kv_cache_dtype_str_to_dtype, resolve_kv_cache_dtype_string

    weights_only_fp8 = {"quant_method": "fp8", "fmt": "float8_e4m3fn", "weight_block_size": [128, 128]}
    model_config = SimpleNamespace(
        hf_config=SimpleNamespace(quantization_config=weights_only_fp8), dtype=torch.bfloat16
    )
    assert resolve_kv_cache_dtype_string("auto", model_config) == "auto"
    assert kv_cache_dtype_str_to_dtype("auto", model_config) == torch.bfloat16
    assert kv_cache_dtype_str_to_dtype("fp8", model_config).itemsize == 1
    assert capacity.KV_DTYPE_BYTES == {"auto": torch.bfloat16.itemsize, "fp8": 1}


def test_api_key_is_read_from_vllm_api_key_environment_variable(vllm_cli, monkeypatch):
    import vllm.envs as envs
    from vllm.entrypoints.serve.middleware import register

    # The Kubernetes layer injects the key as VLLM_API_KEY from a Secret, not as --api-key.
    monkeypatch.setenv("VLLM_API_KEY", "k-123")
    assert envs.environment_variables["VLLM_API_KEY"]() == "k-123"
    monkeypatch.delenv("VLLM_API_KEY")
    assert envs.environment_variables["VLLM_API_KEY"]() is None
    # The server falls back to it when --api-key is absent.
    source = inspect.getsource(register.init_entrypoints_middleware)
    assert "args.api_key or [envs.VLLM_API_KEY]" in source
    assert "AuthenticationMiddleware" in source


def test_pinned_release_implements_the_minimax_m2_architecture(vllm_cli):
    """The guide's "MiniMax-M2 model is not currently supported" means a vLLM too old for the
    checkpoint's architecture (config.json: MiniMaxM2ForCausalLM, shared by M2, M2.1, M2.5 and M2.7)."""
    from vllm.model_executor.models.registry import ModelRegistry

    assert "MiniMaxM2ForCausalLM" in ModelRegistry.get_supported_archs()


@pytest.mark.parametrize(("cap", "expected"), [(0, None), (1, 1), (512, 512)])
def test_admission_cap_reaches_the_engine_arguments_and_zero_means_none(vllm_cli, cap, expected):
    """vLLM's own 0 would refuse every request (max_num_queued_reqs ge=0): the setting's 0 emits no flag."""
    from vllm.config import SchedulerConfig

    raw = {"owner": "ml-platform", "serving": {"profile": "tp4", "maxQueuedRequests": cap}}
    serving = settings.parse(raw, "vllm-check", "us-east-2").serving
    argv = profiles.vllm_argv(serving)
    assert ("--max-num-queued-reqs" in argv) is (expected is not None)
    ea = vllm_cli.accepted(argv).engine_args
    assert ea.max_num_queued_reqs == expected
    assert SchedulerConfig.__pydantic_fields__["max_num_queued_reqs"].default is None  # unset: no cap


def test_admission_cap_is_per_replica_across_its_api_servers(vllm_cli):
    """dp8-ep starts one API server per data-parallel rank; the release shares the admission count
    between them, so the cap still counts the replica's requests, not each server's."""
    from vllm.entrypoints.cli import serve
    from vllm.v1 import utils as v1_utils
    from vllm.v1.engine.async_llm import AsyncLLM

    assert "args.api_server_count = args.data_parallel_size" in inspect.getsource(serve.ServeSubcommand.cmd)
    manager = inspect.getsource(v1_utils.APIServerProcessManager.__init__)
    assert 'getattr(args, "max_num_queued_reqs", None) is not None' in manager and "SharedAdmissionStats" in manager
    assert "self.admission_stats.get_num_requests()" in inspect.getsource(AsyncLLM.check_admission)
