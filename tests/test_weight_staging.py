"""The staging init container's script, run by /bin/sh with a stand-in `hf` on PATH."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from components.weights import staging as weight_staging

pytestmark = pytest.mark.slow  # runs the real shell script: `make test`, not `make test-fast`

MODEL = "MiniMaxAI/MiniMax-M2.5"


def run(
    tmp_path: Path, hf_exit: int = 0, revision: str | None = None, hf_seconds: int = 0, progress_every: int = 60
) -> subprocess.CompletedProcess:
    """Run the init container's command as the pod would, with its env; `hf` records its argv."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    hf = bin_dir / "hf"
    hf.write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/hf-calls"\nsleep {hf_seconds}\nexit {hf_exit}\n')
    hf.chmod(0o755)
    container = weight_staging.init_container(
        image="vllm/vllm-openai:v0.32.0",
        model=MODEL,
        pinned_revision=revision,
        hf_home=str(tmp_path / "hf-home"),
        weights_gb=220,
        cache_mount={"name": "cache", "mountPath": "/cache"},
        secret_env=[],
        security_context={},
    )
    env = {e["name"]: e["value"] for e in container["env"]}
    env["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    env["PROGRESS_EVERY"] = str(progress_every)
    return subprocess.run(container["command"], env=env, capture_output=True, text=True, timeout=30)


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "hf-calls"
    return path.read_text().splitlines() if path.exists() else []


def test_first_run_downloads_the_revision_and_marks_it_staged(tmp_path):
    done = run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert calls(tmp_path) == [f"download {MODEL} --revision main --max-workers {weight_staging.MAX_WORKERS}"]
    assert (tmp_path / "hf-home" / "staged" / MODEL / "main").is_file()
    assert "staging MiniMaxAI/MiniMax-M2.5@main (about 220 GB)" in done.stdout


def test_progress_is_a_plain_line_per_interval_for_kubectl_logs(tmp_path):
    done = run(tmp_path, hf_seconds=3, progress_every=1)
    assert done.returncode == 0
    lines = [line for line in done.stdout.splitlines() if line.endswith("GB of about 220 GB in the cache")]
    assert len(lines) >= 2 and "\r" not in done.stdout


def test_a_second_run_is_a_no_op_without_network(tmp_path):
    run(tmp_path)
    again = run(tmp_path)
    assert again.returncode == 0 and "nothing to download" in again.stdout
    assert len(calls(tmp_path)) == 1  # the Hub was not asked again


def test_a_failed_download_fails_the_pod_start_and_is_retried_next_time(tmp_path):
    failed = run(tmp_path, hf_exit=1)
    assert failed.returncode != 0
    assert not (tmp_path / "hf-home" / "staged").exists()
    assert run(tmp_path).returncode == 0 and len(calls(tmp_path)) == 2  # the retry resumes the download


def test_a_new_pinned_revision_is_downloaded_even_when_another_is_staged(tmp_path):
    run(tmp_path)
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert run(tmp_path, revision=sha).returncode == 0
    assert calls(tmp_path)[-1].startswith(f"download {MODEL} --revision {sha}")
