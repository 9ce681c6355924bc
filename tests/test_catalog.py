"""The model catalogue: every model fact in one place with its source, read by settings, the planner,
the timeline and the plan; a non-commercial model needs an acknowledgement before a prod deploy."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from components.aws import image_registry
from components.facts import catalog, timeline
from components.platform import config, deploy_gate
from components.serving import capacity, profiles, stager, workload
from components.settings import stack as settings
from ops import plan
from ops.offline.engine import render, zones_recorded

ROOT = Path(__file__).resolve().parent.parent
M27 = "MiniMaxAI/MiniMax-M2.7"
FIGURES = ("weights_gb", "geometry", "context_window", "parsers", "min_vllm", "license")
TLS_ARN = "arn:aws:acm:us-east-2:123456789012:certificate/0f2b4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
READY = {
    "cluster": {"publicAccessCidrs": ["52.1.2.3/32"]},
    "endpoint": {"scheme": "internet-facing", "sourceRanges": ["52.0.0.0/16"], "certificateArn": TLS_ARN},
}


PINNED = {"revision": "0" * 40}  # production stacks pin the model revision


def _parse(serving: dict[str, Any], stack: str = "catalog-test", environment: str | None = None) -> settings.Settings:
    raw: dict[str, Any] = {"owner": "ml-platform", "serving": serving}
    if environment:
        raw["environment"] = environment
    return config.parse(raw, stack, "us-east-2")


@pytest.mark.parametrize("hub_id", catalog.MODELS)
def test_every_model_carries_its_facts_and_a_source_for_each(hub_id):
    m = catalog.MODEL_CATALOG[hub_id]
    assert m.hub_id == hub_id and hub_id.startswith("MiniMaxAI/MiniMax-M2")
    assert set(m.sources) == set(FIGURES) and all(len(text) > 20 for text in m.sources.values())
    assert m.weights_gb > 200 and m.context_window == 196_608
    assert (m.num_hidden_layers, m.num_key_value_heads, m.head_dim) == (62, 8, 128)
    assert m.tool_call_parser == "minimax_m2" and m.reasoning_parser in catalog.REASONING_PARSERS
    assert re.fullmatch(r"\d+\.\d+\.\d+", m.min_vllm)
    assert m.license.url.startswith("https://")


def test_minimax_m27_is_offered_with_its_own_facts():
    m = catalog.MODEL_CATALOG[M27]
    assert M27 in catalog.MODELS
    assert m.weights_gb == 230.1 and m.min_vllm == "0.20.0" and m.reasoning_parser == "minimax_m2"
    assert m.license.commercial_use is False
    assert [h for h, x in catalog.MODEL_CATALOG.items() if not x.license.commercial_use] == [M27]


@pytest.mark.parametrize("profile", sorted(profiles.PROFILES))
def test_m27_is_selectable_in_every_profile_with_its_parsers(profile):
    st = _parse({"profile": profile, "model": M27, "maxModelLen": 32_768})
    argv = profiles.vllm_argv(st.serving)
    assert argv[2] == M27
    assert argv[argv.index("--reasoning-parser") + 1] == "minimax_m2"  # the model's default
    assert argv[argv.index("--tool-call-parser") + 1] == "minimax_m2"
    assert st.serving.served_model_name == "minimax-m2.7"


def test_an_explicit_reasoning_parser_overrides_the_models_default():
    st = _parse({"model": M27, "reasoningParser": "minimax_m2_append_think"})
    assert st.serving.reasoning_parser == "minimax_m2_append_think"
    assert _parse({}).serving.reasoning_parser == catalog.MODEL_CATALOG[catalog.MODELS[0]].reasoning_parser


def test_timeline_and_weight_staging_take_the_models_weights_size():
    m25, m27 = _parse({}).serving, _parse({"model": M27}).serving
    assert workload.timers(m27) == timeline.timers(1, 230.1)
    assert timeline.new_node(230.1).seconds(timeline.DOWNLOAD) > timeline.new_node(230).seconds(timeline.DOWNLOAD)
    registry = image_registry.Registry("123456789012.dkr.ecr.us-east-2.amazonaws.com", "minimax-vllm-dev")
    staging = stager.stager(m27, registry, False, None, catalog.INSTANCE_TYPES["p5.48xlarge"])["spec"]["template"][
        "spec"
    ]
    env = {e["name"]: e.get("value") for e in staging["containers"][0]["env"]}
    assert env["EXPECTED_GB"] == "230.1"
    assert workload.timers(m25) == timeline.timers(1, catalog.MODEL_CATALOG[m25.model].weights_gb)


def test_the_planner_uses_the_selected_models_architecture():
    st = _parse({"model": M27})
    assert capacity.plan_for(st.serving, st.gpu_nodes.instance).weights_per_gpu_gib == pytest.approx(
        230.1e9 / capacity.GIB / 8
    )


def _literals(path: Path) -> list[tuple[int, object]]:
    """Numbers and strings in a module's code (docstrings and comments are prose, not facts)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and id(n) not in docstrings]


def test_no_module_outside_the_catalogue_hard_codes_a_model_fact():
    numbers = {m.context_window for m in catalog.MODEL_CATALOG.values()} | {
        m.weights_gb for m in catalog.MODEL_CATALOG.values()
    }
    words = set(catalog.MODELS)
    offenders = []
    for path in sorted([*ROOT.glob("components/**/*.py"), *ROOT.glob("ops/**/*.py"), ROOT / "__main__.py"]):
        if path.name == "catalog.py":
            continue
        for line, value in _literals(path):
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if (is_number and value in numbers | {220}) or (isinstance(value, str) and value in words):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {value!r}")
    assert offenders == []


# --- the licence ---------------------------------------------------------------------------


def test_production_is_decided_once_by_environment_or_stack_name():
    pinned = {"revision": "0" * 40}  # production stacks must pin the revision (supply-chain rule)
    assert _parse(pinned, stack="prod-eu").is_production
    assert _parse(pinned, stack="team-a", environment="production").is_production
    assert not _parse({}, stack="dev").is_production
    assert not _parse({}, stack="staging", environment="staging").is_production
    # The same definition decides the supply-chain rule: a "production" environment needs the pin too.
    with pytest.raises(settings.SettingsError, match="must be a 40-hex Hugging Face commit sha"):
        _parse({}, stack="team-a", environment="production")


def test_plan_prints_the_models_licence():
    st = _parse({"model": M27})
    line = st.serving.model_facts.license.summary
    assert "NON-COMMERCIAL" in line and catalog.MODEL_CATALOG[M27].license.url in line
    assert "commercial use allowed" in _parse({}).serving.model_facts.license.summary
    out = plan.summary(st, render("dev", overrides={"serving": {"profile": "tp4", "model": M27, "maxModelLen": 32768}}))
    assert f"model {M27}: {line}" in out


def test_prod_stack_with_a_non_commercial_model_lists_the_acknowledgement_before_up():
    st = _parse({"model": M27, **PINNED}, stack="prod-x")
    (problem,) = deploy_gate.license_problems(st)
    assert problem.key == "serving.model" and problem.value == M27
    assert catalog.MODEL_CATALOG[M27].license.url in problem.rule
    assert "pulumi config set --path 'serving.acceptNonCommercialLicense' true" in problem.fix
    assert any("acceptNonCommercialLicense" in line for line in plan.before_up(st))
    ack = _parse({"model": M27, "acceptNonCommercialLicense": True, **PINNED}, stack="prod-x")
    assert deploy_gate.license_problems(ack) == []
    assert deploy_gate.license_problems(_parse({"model": M27}, stack="dev")) == []  # evaluation is allowed
    assert deploy_gate.license_problems(_parse(PINNED, stack="prod-x")) == []


def test_a_real_deploy_of_prod_with_m27_stops_until_acknowledged_and_the_plan_still_renders():
    serving = config.read_stack_file("prod-8gpu")["minimax-vllm:serving"]  # keeps what the stack pins
    m27 = {"minimax-vllm:serving": {**serving, "model": M27}}
    ready = {**READY, **zones_recorded("prod-8gpu")}
    overrides = {**{f"minimax-vllm:{k}": v for k, v in ready.items()}, **m27}
    with pytest.raises(settings.SettingsError) as caught:
        render("prod-8gpu", overrides=overrides, as_deploy=True)
    message = str(caught.value)
    assert "minimax-vllm:serving.model = 'MiniMaxAI/MiniMax-M2.7' is licensed" in message
    assert "pulumi config set --path 'serving.acceptNonCommercialLicense' true" in message
    assert "nothing was created" in message
    assert render("prod-8gpu", overrides=m27).vllm_deployment()  # `make plan` renders
    acknowledged = {"minimax-vllm:serving": {**m27["minimax-vllm:serving"], "acceptNonCommercialLicense": True}}
    assert render("prod-8gpu", overrides={**overrides, **acknowledged}, as_deploy=True).one(
        "kubernetes:apps/v1:Deployment"
    )


def test_max_model_len_is_bounded_by_the_selected_models_own_window(monkeypatch):
    shorter = dataclasses.replace(catalog.MODEL_CATALOG[M27], context_window=131_072)
    monkeypatch.setitem(catalog.MODEL_CATALOG, M27, shorter)
    with pytest.raises(settings.SettingsError) as caught:
        _parse({"model": M27, "maxModelLen": 196_608})
    (problem,) = caught.value.problems
    assert problem.startswith(
        "minimax-vllm:serving.maxModelLen = 196608 is above MiniMaxAI/MiniMax-M2.7's context window"
    )
    assert "Fix: pulumi config set --path 'serving.maxModelLen' 131072" in problem
    assert _parse({"model": M27, "maxModelLen": 131_072}).serving.max_model_len == 131_072
