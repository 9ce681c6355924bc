"""The node stager's script and the vLLM pod's wait, run by /bin/sh with a stand-in `hf` on PATH."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from components.weights import staging as weight_staging

pytestmark = pytest.mark.slow  # runs the real shell scripts: `make test`, not `make test-fast`

MODEL = "MiniMaxAI/MiniMax-M2.5"
DONE = ("the vLLM pods on this node start now", "nothing to download")


def stager_env(
    tmp_path: Path,
    hf_exit: int,
    revision: str | None,
    hf_seconds: int,
    progress_every: int,
    extra: weight_staging.Extra = weight_staging.NOTHING_EXTRA,
) -> tuple:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    hf = bin_dir / "hf"
    hf.write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/hf-calls"\nsleep {hf_seconds}\nexit {hf_exit}\n')
    hf.chmod(0o755)
    container = weight_staging.container(
        image="stage-weights:test",
        model=MODEL,
        pinned_revision=revision,
        hf_home=str(tmp_path / "hf-home"),
        weights_gb=220,
        cache_mount={"name": "cache", "mountPath": "/cache"},
        secret_env=[],
        security_context={},
        extra=extra,
    )
    env = {e["name"]: e["value"] for e in container["env"]}
    env["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    env["PROGRESS_EVERY"] = str(progress_every)
    return container, env


def run(
    tmp_path: Path,
    hf_exit: int = 0,
    revision: str | None = None,
    hf_seconds: int = 0,
    progress_every: int = 60,
    extra: weight_staging.Extra = weight_staging.NOTHING_EXTRA,
) -> subprocess.CompletedProcess:
    """Run the stager as the pod would; once it has staged it stays (a DaemonSet pod), so it is
    stopped with SIGTERM as a pod deletion would, and must then exit 0."""
    container, env = stager_env(tmp_path, hf_exit, revision, hf_seconds, progress_every, extra)
    proc = subprocess.Popen(container["command"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: list[str] = []
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break  # the script ended on its own (a failed step)
        out.append(line)
        if any(d in line for d in DONE):
            time.sleep(0.3)  # into the idle loop
            proc.send_signal(signal.SIGTERM)
            break
    rest, err = proc.communicate(timeout=10)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(out) + rest, err)


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "hf-calls"
    return path.read_text().splitlines() if path.exists() else []


def test_first_run_downloads_the_revision_marks_it_staged_and_stays_until_deleted(tmp_path):
    done = run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert calls(tmp_path) == [f"download {MODEL} --revision main --max-workers {weight_staging.MAX_WORKERS}"]
    assert (tmp_path / "hf-home" / "staged" / MODEL / "main").is_file()
    assert "staging MiniMaxAI/MiniMax-M2.5@main (about 220 GB)" in done.stdout
    assert "step: weights from the Hugging Face Hub" in done.stdout


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


def test_a_failed_download_writes_no_marker_and_the_restart_resumes(tmp_path):
    failed = run(tmp_path, hf_exit=1)
    assert failed.returncode != 0  # the container exits: the DaemonSet restarts it
    assert not (tmp_path / "hf-home" / "staged").exists()
    assert run(tmp_path).returncode == 0 and len(calls(tmp_path)) == 2  # the retry resumes the download


def test_a_new_pinned_revision_is_downloaded_even_when_another_is_staged(tmp_path):
    run(tmp_path)
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert run(tmp_path, revision=sha).returncode == 0
    assert calls(tmp_path)[-1].startswith(f"download {MODEL} --revision {sha}")


def test_the_marker_comes_after_every_step_before_vllm(tmp_path):
    """A step after the weights (the compile cache's hook) that fails leaves no marker."""
    failed = run(tmp_path, extra=weight_staging.Extra(before_vllm=(weight_staging.Step("compile cache", "false"),)))
    assert failed.returncode != 0 and "step: compile cache" in failed.stdout
    assert calls(tmp_path) and not (tmp_path / "hf-home" / "staged").exists()


def test_the_vllm_pods_wait_ends_once_the_marker_is_there(tmp_path):
    hf_home = tmp_path / "hf-home"
    wait = weight_staging.wait_container(
        image="vllm:test",
        model=MODEL,
        pinned_revision=None,
        hf_home=str(hf_home),
        cache_volume="cache",
        cache_path="/cache",
        security_context={},
    )
    env = {**{e["name"]: e["value"] for e in wait["env"]}, "POLL": "1", "PATH": os.environ["PATH"]}
    proc = subprocess.Popen(wait["command"], env=env, stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)
    assert proc.poll() is None  # still waiting: no marker yet
    marker = Path(env["STAGED_MARKER"])
    marker.parent.mkdir(parents=True)
    marker.write_text("2026-12-04T18:00:00Z\n")
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "waiting for the stage-weights pod on this node" in out and "staged at 2026-12-04T18:00:00Z" in out
