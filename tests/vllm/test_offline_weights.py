"""vLLM 0.32.0 started with HF_HUB_OFFLINE=1 serves what the staging init container put in the cache."""

from __future__ import annotations

import hashlib
import json

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

    from components.platform import config
    from components.serving import workload

    s = config.from_stack_file("prod-8gpu")
    container = workload.deployment(s.serving, s.gpu_nodes.instance)["spec"]["template"]["spec"]["containers"][0]
    names = {e["name"] for e in container["env"] if e["name"].startswith("VLLM_")}
    assert "VLLM_ENGINE_READY_TIMEOUT_S" in names
    assert names <= set(envs.environment_variables)
    value = next(e["value"] for e in container["env"] if e["name"] == "VLLM_ENGINE_READY_TIMEOUT_S")
    monkeypatch.setenv("VLLM_ENGINE_READY_TIMEOUT_S", value)
    assert (
        envs.environment_variables["VLLM_ENGINE_READY_TIMEOUT_S"]() == workload.timers(s.serving).engine_ready_timeout
    )


@pytest.mark.vllm
def test_vllm_offline_serves_what_the_s3_mirror_staged(tmp_path, monkeypatch):
    """The mirror's `stage` writes the snapshot folder vLLM 0.32.0 resolves under HF_HUB_OFFLINE,
    so the argv stays the one the Hub path uses (no --load-format, no s3:// model)."""
    import boto3
    import huggingface_hub.constants as hub
    from moto import mock_aws
    from vllm.transformers_utils import repo_utils

    from components.platform import config
    from components.serving import profiles
    from components.weights import mirror as weight_mirror
    from components.weights import mirror_copy

    sha = "0123456789abcdef0123456789abcdef01234567"
    data = b'{"architectures": ["MiniMaxM2ForCausalLM"]}'
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="mirror")
        m = mirror_copy.Mirror(s3, "mirror", weight_mirror.prefix(MODEL, sha))
        s3.put_object(Bucket="mirror", Key=m.key("config.json"), Body=data)
        listing = {
            "files": [
                {
                    "path": "config.json",
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "git_sha1": None,
                }
            ]
        }
        s3.put_object(Bucket="mirror", Key=m.key(mirror_copy.MARKER), Body=json.dumps(listing).encode())
        mirror_copy.stage(m, mirror_copy.snapshot_dir(str(tmp_path), MODEL, sha))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    resolved = repo_utils.get_model_path(MODEL, sha)
    assert (tmp_path / "hub").as_posix() in resolved and open(f"{resolved}/config.json", "rb").read() == data
    s3_stack, hub_stack = config.from_stack_file("prod-8gpu"), config.from_stack_file("staging")
    assert s3_stack.weights.source == "s3" and hub_stack.weights.source == "hub"
    argv = profiles.vllm_argv(s3_stack.serving)
    assert argv[2] == MODEL and not any(a.startswith("--load-format") for a in argv)


@pytest.mark.vllm
def test_the_facts_behind_copying_instead_of_streaming_hold_for_the_pinned_release():
    """docs/weights.md: why the pods copy S3 -> NVMe instead of `--load-format runai_streamer`."""
    import inspect
    from importlib import metadata

    from vllm.config import model as model_config
    from vllm.model_executor.model_loader import runai_streamer_loader, weight_utils

    # The streamer is an optional extra of the wheel (the image adds it), not a requirement.
    requirement = next(r for r in metadata.requires("vllm") if r.startswith("runai-model-streamer"))
    assert 'extra == "runai"' in requirement
    # Every rank streams every safetensors file, into CPU memory unless `distributed` is set:
    # with TP8 that is eight reads of the whole checkpoint from S3 per start.
    iterator = inspect.getsource(weight_utils.runai_safetensors_weights_iterator)
    assert '"cpu"' in iterator and "is_distributed" in iterator
    # No integrity check anywhere on the way: the loader reads what the bucket holds.
    loader = inspect.getsource(runai_streamer_loader)
    assert "sha256" not in loader and "hashlib" not in loader
    # An s3:// model is pulled (config, tokenizer, *.py for --trust-remote-code) into a temporary
    # folder each start, and the served model path becomes that URI, not the Hub id.
    pull = inspect.getsource(model_config.ModelConfig.maybe_pull_model_tokenizer_for_runai)
    assert '"*.py"' in pull and "ObjectStorageModel" in pull
