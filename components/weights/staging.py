"""Weight staging on the node: a stager pod per GPU node fills the cache, vLLM waits for its marker.

Why a pod of its own (a DaemonSet on the GPU nodes, in a small image of its own,
images/stage-weights/): it starts as soon as a GPU node joins, pulls its image in seconds and
copies the weights while the node is still pulling the vLLM image (tens of GB), so the two overlap
instead of following one another. The vLLM pod holds no token, no AWS identity and no route out:
its only init container (`wait-for-weights`, in the vLLM image, so that pull is already under way)
waits, without network or secrets, until the marker is on the node's cache, and then vLLM starts
offline (HF_HUB_OFFLINE=1) from the staged snapshot.

The stager writes into the same hostPath cache (gpu_pool.MODEL_CACHE_HOST_PATH) the vLLM pod
mounts: HF_HOME's hub cache, the layout vLLM reads offline (`get_model_path(model, revision)`
with `local_files_only` in vLLM 0.32.0's EngineArgs), so the revision staged must be the one vLLM
is given: both come from `serving.revision`, "main" when unpinned (vLLM's default too).

From the Hub: `hf download` (huggingface_hub >= 1.31 dropped `huggingface-cli`), which keeps
`.incomplete` blobs and skips finished files, so a restarted stager resumes. From the S3 mirror:
components/weights/mirror_copy.py `stage`, run from its ConfigMap: every file checked against the
sha256 the mirror Job recorded from the Hub in a manifest signed with a KMS key (docs/mirror.md)
before it is moved into place, one stager at a time per snapshot folder
(flock), partial files named per process and cleaned by the lock holder. Either way the marker is
written last, only after every step before vLLM has succeeded; a marker present makes a restart a
no-op that needs no network. The vLLM container mounts the weights and the marker read-only.

Steps: `Extra.before_vllm` runs in order after the weights and before the marker (the shared
compile cache's download), `Extra.after_ready` once vLLM on this node serves (its upload).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAME = "stage-weights"
WAIT_NAME = "wait-for-weights"
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "minimax-vllm"}
DEFAULT_REVISION = "main"  # what both `hf download` and vLLM use when no revision is given
PROGRESS_EVERY_SECONDS = 60
WAIT_POLL_SECONDS = 5
MAX_WORKERS = 16  # parallel file downloads (the CLI's default is 8)
# Requests equal limits. The stager stays on the node after staging (a DaemonSet pod), so it is
# sized inside the node's share that the vLLM pods leave to daemonsets (workload.NODE_SHARE).
RESOURCES = {"cpu": "8", "memory": "32Gi"}
WAIT_RESOURCES = {"cpu": "100m", "memory": "64Mi"}
# What the stager image is built from: its tag is the hash of these files.
IMAGE_DIR = Path(__file__).resolve().parents[2] / "images" / NAME
IMAGE_FILES = ("Dockerfile", "requirements.txt")


def image_tag() -> str:
    """`src-<12 hex>`: sha256 over the build files, so the tag names exactly one build recipe."""
    digest = hashlib.sha256()
    for name in IMAGE_FILES:
        digest.update(name.encode() + b"\0" + (IMAGE_DIR / name).read_bytes() + b"\0")
    return f"src-{digest.hexdigest()[:12]}"


@dataclass(frozen=True)
class Step:
    """One shell command the stager runs; `name` is what its log line and the docs call it."""

    name: str
    command: str


HUB_FETCH = 'hf download "$MODEL" --revision "$REVISION" --max-workers "$MAX_WORKERS"'


def fetch_step(mirror_module: str | None) -> Step:
    """The weights: from the Hub, or from the S3 mirror with the copy module."""
    if mirror_module is None:
        return Step("weights from the Hugging Face Hub", HUB_FETCH)
    return Step("weights from s3://$BUCKET", f'python3 "{mirror_module}" stage')


# POSIX sh (the stager image's /bin/sh is dash). Progress is a plain line per minute, readable in
# `kubectl logs` (the Hub client's progress bars redraw one line with carriage returns: off).
_RUN_STEP = """echo "step: {name}"
{command} &
step=$!
trap 'kill "$step" 2>/dev/null; exit 143' TERM INT
elapsed=0
while kill -0 "$step" 2>/dev/null; do
  sleep 1
  elapsed=$((elapsed + 1))
  if [ $((elapsed % PROGRESS_EVERY)) -eq 0 ]; then
    echo "$(date -u +%H:%M:%S) $(( $(du -sk "$HF_HOME/hub" | cut -f1) / 1000000 )) GB of about $EXPECTED_GB GB in the cache"
  fi
done
wait "$step"
"""

_HEAD = """set -eu
mkdir -p "$HF_HOME/hub"
if [ -f "$STAGED_MARKER" ]; then
  echo "$MODEL@$REVISION is already staged in $HF_HOME ($STAGED_MARKER): nothing to download"
else
  echo "staging $MODEL@$REVISION (about $EXPECTED_GB GB) into $HF_HOME; a partial download resumes"
"""

_MARK = """  mkdir -p "$(dirname "$STAGED_MARKER")"
  date -u +%Y-%m-%dT%H:%M:%SZ > "$STAGED_MARKER"
  echo "staged $MODEL@$REVISION: the vLLM pods on this node start now"
fi
"""

# The pod stays, so the DaemonSet does not restart it; SIGTERM ends it at once.
_IDLE = """idle=
trap 'kill $idle 2>/dev/null; exit 0' TERM INT
while :; do
  sleep 3600 &
  idle=$!
  wait $idle || true
done
"""


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" if line else "\n" for line in text.splitlines())


def script(mirror_module: str | None, before_vllm: Sequence[Step] = (), after_ready: Sequence[Step] = ()) -> str:
    """The stager's shell script: each step before vLLM, the marker last, then the after-ready steps."""
    before = [fetch_step(mirror_module), *before_vllm]
    body = "".join(_indent(_RUN_STEP.format(name=s.name, command=s.command)) for s in before)
    after = "".join(_RUN_STEP.format(name=s.name, command=s.command) for s in after_ready)
    return _HEAD + body + _MARK + after + _IDLE


@dataclass(frozen=True)
class Extra:
    """What runs beside the weights (the compile cache): steps before the marker, in order, so vLLM
    never starts on half of them; steps once the node's vLLM serves; their environment and mounts."""

    before_vllm: tuple[Step, ...] = ()
    after_ready: tuple[Step, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[dict[str, Any], ...] = ()


NOTHING_EXTRA = Extra()


def revision(pinned: str | None) -> str:
    return pinned or DEFAULT_REVISION


def marker(hf_home: str, model: str, pinned: str | None) -> str:
    """Written only after a complete download of exactly this model and revision."""
    return f"{hf_home}/staged/{model}/{revision(pinned)}"


def env(
    *, model: str, pinned_revision: str | None, hf_home: str, weights_gb: float, extra: Mapping[str, str] = {}
) -> dict[str, str]:
    return {
        **extra,
        "HF_HOME": hf_home,
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "MODEL": model,
        "REVISION": revision(pinned_revision),
        "STAGED_MARKER": marker(hf_home, model, pinned_revision),
        "EXPECTED_GB": f"{weights_gb:g}",
        "PROGRESS_EVERY": str(PROGRESS_EVERY_SECONDS),
        "MAX_WORKERS": str(MAX_WORKERS),
        "PYTHONUNBUFFERED": "1",
    }


def container(
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
    extra: Extra = NOTHING_EXTRA,
) -> dict[str, Any]:
    """The stager container (a plain Kubernetes container dict).

    secret_env: the Hugging Face token, only for a Hub source (an S3 stager reads with its Pod
    Identity role). mirror_env / mirror_module: with an S3 mirror, its bucket and region, and the
    copy module's path with the volume mount that holds it. extra: the compile cache's steps.
    """
    plain = env(
        model=model,
        pinned_revision=pinned_revision,
        hf_home=hf_home,
        weights_gb=weights_gb,
        # HOME, TMPDIR: the root filesystem is read-only
        extra={**(scratch_env or {}), **(mirror_env or {}), **extra.env},
    )
    module_path, module_mount = mirror_module if mirror_module else (None, None)
    return {
        "name": NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c", script(module_path, extra.before_vllm, extra.after_ready)],
        "env": [{"name": k, "value": v} for k, v in sorted(plain.items())] + list(secret_env),
        "resources": {"requests": dict(RESOURCES), "limits": dict(RESOURCES)},
        "volumeMounts": [
            dict(cache_mount),
            *(scratch_mounts or []),
            *([module_mount] if module_mount else []),
            *extra.mounts,
        ],
        # Ready once this node's weights are staged: `kubectl get ds stage-weights` counts the nodes done.
        "readinessProbe": {"exec": {"command": ["test", "-f", plain["STAGED_MARKER"]]}, "periodSeconds": 10},
        "securityContext": security_context,
    }


WAIT_SCRIPT = """set -eu
waited=0
until [ -f "$STAGED_MARKER" ]; do
  if [ $((waited % PROGRESS_EVERY)) -eq 0 ]; then
    echo "$(date -u +%H:%M:%S) waiting for the stage-weights pod on this node to stage $MODEL@$REVISION ($STAGED_MARKER)"
  fi
  sleep "$POLL"
  waited=$((waited + POLL))
done
echo "$MODEL@$REVISION staged at $(cat "$STAGED_MARKER"): starting vLLM"
"""


def wait_container(
    *,
    image: str,
    model: str,
    pinned_revision: str | None,
    hf_home: str,
    cache_volume: str,
    cache_path: str,
    security_context: dict[str, Any],
) -> dict[str, Any]:
    """The vLLM pod's init container: no secret, no network (the pod's policy has no egress), the
    cache read-only; it ends when the stager's marker is there. It runs in the vLLM image, so the
    kubelet pulls that image first, while the stager copies."""
    plain = {
        "MODEL": model,
        "REVISION": revision(pinned_revision),
        "STAGED_MARKER": marker(hf_home, model, pinned_revision),
        "PROGRESS_EVERY": str(PROGRESS_EVERY_SECONDS),
        "POLL": str(WAIT_POLL_SECONDS),
    }
    return {
        "name": WAIT_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c", WAIT_SCRIPT],
        "env": [{"name": k, "value": v} for k, v in sorted(plain.items())],
        "resources": {"requests": dict(WAIT_RESOURCES), "limits": dict(WAIT_RESOURCES)},
        "volumeMounts": [{"name": cache_volume, "mountPath": cache_path, "readOnly": True}],
        "securityContext": security_context,
    }


def daemon_set(
    *,
    namespace: str,
    container: dict[str, Any],
    service_account: str | None,
    pod_security_context: dict[str, Any],
    node_affinity: dict[str, Any],
    tolerations: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One stager per GPU node, started when the node joins (no GPU requested, so it does not
    wait for the device plugin). service_account: the S3 reader (Pod Identity), or None."""
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context,
        "tolerations": tolerations,
        "affinity": {"nodeAffinity": node_affinity},
        "containers": [container],
        "volumes": volumes,
        # A stager killed mid-copy resumes on its next start; no reason to wait long.
        "terminationGracePeriodSeconds": 30,
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": NAME,
            "namespace": namespace,
            "labels": dict(LABELS),
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "selector": {"matchLabels": dict(LABELS)},
            # Stagers are independent per node: a new revision restages every node at once.
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%"}},
            "template": {"metadata": {"labels": dict(LABELS)}, "spec": spec},
        },
    }
