"""The init container that puts the pinned model revision into the node's NVMe cache before vLLM starts.

It runs the vLLM image itself: vLLM 0.32.0 requires huggingface_hub >= 1.31, whose CLI is
`hf download` (`huggingface-cli` no longer works there: 1.x prints a deprecation and exits,
2.x dropped it). The download goes into
HF_HOME's hub cache, the same place vLLM reads from; a partial download resumes (the Hub client
keeps `.incomplete` blobs and skips finished files). A marker written after a complete download
makes a restart a no-op that needs no network. vLLM then runs with HF_HUB_OFFLINE=1: in 0.32.0
that makes `EngineArgs` replace the model id by the cached snapshot's path
(`get_model_path(model, revision)` with `local_files_only`), so the revision must be the one
staged here: both come from `serving.revision`, "main" when unpinned (vLLM's default too).
Two replicas on one node share the cache; the Hub client's file locks let them download once.

With `weights.source: s3` the same container copies from the stack's S3 mirror instead
(components/weights/mirror_copy.py `stage`, run from its ConfigMap): into the same snapshot folder of
the same cache, every file checked against the sha256 the mirror Job recorded from the Hub,
before the same marker is written. A damaged or missing file stops the pod here, before vLLM.
Replicas on one node (prod-4gpu) stage one at a time: the copy holds a lock in the snapshot
folder, the others wait and find the files in place (tests/test_concurrent_stagers.py).
"""

from __future__ import annotations

from typing import Any

NAME = "stage-weights"
DEFAULT_REVISION = "main"  # what both `hf download` and vLLM use when no revision is given
PROGRESS_EVERY_SECONDS = 60
MAX_WORKERS = 16  # parallel file downloads (the CLI's default is 8)
# Requests equal limits; below the vLLM container's share, so the pod's request does not grow.
RESOURCES = {"cpu": "8", "memory": "32Gi"}

# POSIX sh: the image's /bin/sh. Progress is a plain line per minute, readable in `kubectl logs`
# (the Hub client's progress bars redraw one line with carriage returns, so they are turned off).
TEMPLATE = """set -eu
{compile_cache}if [ -f "$STAGED_MARKER" ]; then
  echo "$MODEL@$REVISION is already staged in $HF_HOME ($STAGED_MARKER): nothing to download"
  exit 0
fi
echo "staging $MODEL@$REVISION (about $EXPECTED_GB GB) from {origin} into $HF_HOME; a partial download resumes"
mkdir -p "$HF_HOME/hub"
{fetch} &
download=$!
# The shell is PID 1 of the container: pass a pod deletion on to the download.
trap 'kill "$download" 2>/dev/null; exit 143' TERM INT
elapsed=0
while kill -0 "$download" 2>/dev/null; do
  sleep 1
  elapsed=$((elapsed + 1))
  if [ $((elapsed % PROGRESS_EVERY)) -eq 0 ]; then
    echo "$(date -u +%H:%M:%S) $(( $(du -sk "$HF_HOME/hub" | cut -f1) / 1000000 )) GB of about $EXPECTED_GB GB in the cache"
  fi
done
wait "$download"
mkdir -p "$(dirname "$STAGED_MARKER")"
date -u +%Y-%m-%dT%H:%M:%SZ > "$STAGED_MARKER"
echo "staged $MODEL@$REVISION"
"""
HUB_FETCH = 'hf download "$MODEL" --revision "$REVISION" --max-workers "$MAX_WORKERS"'
SCRIPT = TEMPLATE.format(fetch=HUB_FETCH, origin="the Hugging Face Hub", compile_cache="")


def script(mirror_module: str | None, compile_cache_fetch: str | None = None) -> str:
    """The container's shell script: fetch from the Hub, or from the S3 mirror with the copy module;
    first the shared compile cache (components/weights/compile_cache.py), when the stack has one."""
    if mirror_module is None:
        return SCRIPT
    extra = f"{compile_cache_fetch}\n" if compile_cache_fetch else ""
    return TEMPLATE.format(fetch=f'python3 "{mirror_module}" stage', origin="s3://$BUCKET", compile_cache=extra)


def revision(pinned: str | None) -> str:
    return pinned or DEFAULT_REVISION


def marker(hf_home: str, model: str, pinned: str | None) -> str:
    """Written only after a complete download of exactly this model and revision."""
    return f"{hf_home}/staged/{model}/{revision(pinned)}"


def init_container(
    *,
    image: str,
    model: str,
    pinned_revision: str | None,
    hf_home: str,
    weights_gb: float,
    cache_mount: dict[str, str],
    secret_env: list[dict[str, Any]],
    security_context: dict[str, Any],
    scratch_env: dict[str, str] | None = None,
    scratch_mounts: list[dict[str, str]] | None = None,
    mirror_env: dict[str, str] | None = None,
    mirror_module: tuple[str, dict[str, Any]] | None = None,
    compile_cache: tuple[str, dict[str, str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The staging init container (a plain Kubernetes container dict).

    mirror_env / mirror_module: with an S3 mirror, its bucket and region, and the copy module's
    path with the volume mount that holds it.
    compile_cache: the shared compile cache's fetch line, its environment and its module's mount.
    """
    fetch_line, cache_env, cache_code = compile_cache if compile_cache else (None, {}, None)
    env = {
        **(scratch_env or {}),  # HOME, TMPDIR, XDG_*: the root filesystem is read-only
        "HF_HOME": hf_home,
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "MODEL": model,
        "REVISION": revision(pinned_revision),
        "STAGED_MARKER": marker(hf_home, model, pinned_revision),
        "EXPECTED_GB": f"{weights_gb:g}",
        "PROGRESS_EVERY": str(PROGRESS_EVERY_SECONDS),
        "MAX_WORKERS": str(MAX_WORKERS),
        **(mirror_env or {}),
        **cache_env,
    }
    module_path, module_mount = mirror_module if mirror_module else (None, None)
    return {
        "name": NAME,
        "image": image,
        "command": ["/bin/sh", "-c", script(module_path, fetch_line)],
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())] + list(secret_env),
        "resources": {"requests": dict(RESOURCES), "limits": dict(RESOURCES)},
        "volumeMounts": [
            dict(cache_mount),
            *(scratch_mounts or []),
            *([module_mount] if module_mount else []),
            *([cache_code] if cache_code else []),
        ],
        "securityContext": security_context,
    }
