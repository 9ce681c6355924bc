"""The exposure facts, checked against the pinned vLLM release itself."""

from __future__ import annotations

import asyncio
import json

import pytest

from components.facts import versions
from components.platform import config
from components.serving import endpoint, profiles
from components.serving import exposure as exposure_rules
from tests.vllm.generate_serve_flags import document

pytestmark = pytest.mark.vllm

GUIDE_CURL_MODEL = "MiniMaxAI/MiniMax-M2.5"  # the `model` of the MiniMax guide's curl request


def test_flag_list_is_the_pinned_parsers(vllm_cli):
    """Fails after a vLLM bump until `python -m tests.vllm.generate_serve_flags` is run."""
    stored = json.loads(exposure_rules.VLLM_FLAGS_FILE.read_text())
    assert stored["vllm"] == versions.VLLM_RELEASE
    assert stored == document(vllm_cli)


def test_the_parser_really_takes_abbreviations_which_is_why_extra_args_must_be_exact(vllm_cli):
    ns = vllm_cli.parse(("vllm", "serve", profiles.MODELS[0], "--max-model-l", "8192", "--api-ke=sk-1"))
    assert ns.max_model_len == 8192 and ns.api_key == ["sk-1"]
    assert "--max-model-l" not in exposure_rules.vllm_flags()["flags"]


@pytest.mark.parametrize("token", ["--max-num-seqs", "--kv-cache-dtype", "--no-enable-prefix-caching", "--seed"])
def test_flags_the_rule_accepts_are_flags_of_the_parser(vllm_cli, token):
    assert token in document(vllm_cli)["flags"]


def test_served_model_name_takes_several_names(vllm_cli):
    serving = config.from_stack_file("prod-8gpu").serving
    checked = vllm_cli.accepted(profiles.vllm_argv(serving))
    assert checked.engine_args.served_model_name == ["minimax-m2.5", GUIDE_CURL_MODEL]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod-4gpu", "prod-8gpu"])
def test_the_guides_request_model_is_served_by_every_stack(vllm_cli, stack):
    """vLLM's own model check, fed the served names exactly as its API server builds them."""
    from vllm.entrypoints.openai.models.protocol import BaseModelPath
    from vllm.entrypoints.openai.models.serving import OpenAIModelRegistry

    ns = vllm_cli.accepted(profiles.vllm_argv(config.from_stack_file(stack).serving)).namespace
    registry = OpenAIModelRegistry(None, [BaseModelPath(name=n, model_path=ns.model) for n in ns.served_model_name])
    assert asyncio.run(registry.check_model(GUIDE_CURL_MODEL)) is None
    assert asyncio.run(registry.check_model("minimax-m2.5")) is None
    assert asyncio.run(registry.check_model("MiniMaxAI/MiniMax-M2")) is not None
    assert registry.model_name() == "minimax-m2.5"  # responses and metrics keep the short alias


def test_every_exposed_path_is_guarded_by_vllms_key_check_or_is_the_health_route():
    from vllm.entrypoints.serve.middleware.authenticate import GUARDED_PREFIX

    for p in endpoint.EXPOSED_PATHS:
        guarded = p.path.startswith(GUARDED_PREFIX)
        assert guarded or (p.path == "/health" and p.path_type == "Exact"), p


@pytest.mark.parametrize("path", ["/invocations", "/tokenize", "/metrics", "/docs"])
def test_the_routes_verify_probes_are_not_guarded_by_vllm(path):
    """So only the load balancer can refuse them."""
    from vllm.entrypoints.serve.middleware.authenticate import GUARDED_PREFIX

    assert not path.startswith(GUARDED_PREFIX)
