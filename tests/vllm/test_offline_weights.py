"""vLLM 0.32.0 started with HF_HUB_OFFLINE=1 serves what the staging init container put in the cache."""

from __future__ import annotations

import pytest

MODEL = "MiniMaxAI/MiniMax-M2.5"


@pytest.mark.vllm
def test_vllm_offline_resolves_the_staged_snapshot_of_that_revision_only(tmp_path, monkeypatch):
    """vLLM 0.32.0 under HF_HUB_OFFLINE swaps the model id for the cached snapshot of the revision."""
    import huggingface_hub.constants as hub
    from huggingface_hub.errors import LocalEntryNotFoundError
    from vllm.transformers_utils import repo_utils

    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--MiniMaxAI--MiniMax-M2.5"
    (repo / "snapshots" / sha).mkdir(parents=True)
    (repo / "snapshots" / sha / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert repo_utils.get_model_path(MODEL, None) == str(repo / "snapshots" / sha)
    assert repo_utils.get_model_path(MODEL, sha) == str(repo / "snapshots" / sha)
    with pytest.raises(LocalEntryNotFoundError):
        repo_utils.get_model_path(MODEL, "f" * 40)  # not staged: vLLM fails fast instead of downloading


@pytest.mark.vllm
def test_every_vllm_variable_the_deployment_sets_is_one_vllm_reads(monkeypatch):
    import vllm.envs as envs

    from components import config, workload

    s = config.from_stack_file("prod-8gpu")
    container = workload.deployment(s.serving, s.gpu_nodes.instance, True)["spec"]["template"]["spec"]["containers"][0]
    names = {e["name"] for e in container["env"] if e["name"].startswith("VLLM_")}
    assert "VLLM_ENGINE_READY_TIMEOUT_S" in names
    assert names <= set(envs.environment_variables)
    value = next(e["value"] for e in container["env"] if e["name"] == "VLLM_ENGINE_READY_TIMEOUT_S")
    monkeypatch.setenv("VLLM_ENGINE_READY_TIMEOUT_S", value)
    assert (
        envs.environment_variables["VLLM_ENGINE_READY_TIMEOUT_S"]() == workload.timers(s.serving).engine_ready_timeout
    )
