"""The security context of every container in the vLLM pod, and where those containers may write.

One place, so the serving container and any init container (weight staging) get the same
treatment: seccomp RuntimeDefault, every capability dropped, no privilege escalation, a
read-only root filesystem, and writable volumes only where vLLM and its libraries write.

Which user: root (UID 0) without any capability. Why not a non-root UID:
- the vllm/vllm-openai image declares no USER: it installs vLLM into the system Python as
  root and its HOME is /root; a non-root UID would run, but
- the model and compile cache is a hostPath on the node's NVMe (gpu_pool.MODEL_CACHE_HOST_PATH):
  the kubelet creates it as root:root 0755, `fsGroup` does not apply to hostPath volumes,
  and caches left by earlier rollouts are root-owned. A non-root UID could not write there
  without a root step that chowns it (an init container holding CAP_CHOWN, or node bootstrap
  that runs before the pod), which is itself a root container with a capability.
Root with no capabilities still owns the cache directory (file ownership needs no capability),
cannot override file permissions it does not own (no CAP_DAC_OVERRIDE), cannot gain privileges
(no_new_privs) and makes only the syscalls of the runtime's default seccomp profile.
To move to a non-root UID: set RUN_AS_USER, and give the cache to that UID on the node first.
"""

from __future__ import annotations

from dataclasses import dataclass

# See the module docstring: root, with every capability dropped.
RUN_AS_USER = 0
RUN_AS_GROUP = 0

# The scanner's checks this choice fails, with the reason (see workload.checkov_waivers).
CHECKOV_WAIVERS = (
    (
        "CKV_K8S_23",
        "runs as root without any capability: the image has no non-root user and the hostPath "
        "model cache is root-owned on the node (components/kubernetes/pod_security.py)",
    ),
    ("CKV_K8S_40", "runs as UID 0 for the same reason as CKV_K8S_23 (components/kubernetes/pod_security.py)"),
)

HOME = "/home/vllm"  # an emptyDir: the image's HOME (/root) lies on the read-only root filesystem
TMP = "/tmp"


@dataclass(frozen=True)
class ScratchVolume:
    """An emptyDir a container may write to: name, mount path and size cap."""

    name: str
    mount_path: str
    size_limit: str
    why: str


# Scratch space that may be lost with the pod. Caches worth keeping across restarts go to the
# model cache (see cache_env), which survives on the node's NVMe.
SCRATCH_VOLUMES = (
    ScratchVolume(
        "tmp",
        TMP,
        "20Gi",
        "tempfile.gettempdir(): vLLM's IPC sockets (VLLM_RPC_BASE_PATH), multiprocessing, torch inductor's"
        " temporary build dirs",
    ),
    ScratchVolume(
        "home",
        HOME,
        "10Gi",
        "HOME and XDG dirs: vLLM's config root (usage stats), numba and outlines caches, anything that writes under ~",
    ),
)


def cache_env(cache_mount: str) -> dict[str, str]:
    """Where vLLM and its libraries write, by their own environment variables (read from the
    installed sources of vLLM 0.32.0 and its pinned dependencies; tests/test_hardening.py checks
    that each library still reads its variable).

    Compile caches go to the model cache on the node's NVMe, so a restarted pod neither
    downloads nor compiles again; the rest goes to the scratch volumes.
    """
    return {
        "HOME": HOME,
        "XDG_CACHE_HOME": f"{HOME}/.cache",
        "XDG_CONFIG_HOME": f"{HOME}/.config",
        "TMPDIR": TMP,
        # vllm/envs.py: torch.compile artefacts, FlashInfer autotune results, DeepGEMM's JIT
        # (vllm/utils/deep_gemm.py puts DG_JIT_CACHE_DIR under it) and assets.
        "VLLM_CACHE_ROOT": f"{cache_mount}/vllm",
        "VLLM_CONFIG_ROOT": f"{HOME}/.config/vllm",  # usage-stats file
        # huggingface_hub: weights, and the model repository's code modules (HF_HOME/modules).
        "HF_HOME": f"{cache_mount}/huggingface",
        # Compiled kernels, kept: Triton (triton/knobs.py, default ~/.triton/cache), torch
        # inductor (default /tmp/torchinductor_<user>), FlashInfer's JIT (flashinfer/jit/env.py,
        # $FLASHINFER_WORKSPACE_BASE/.cache/flashinfer) and the CUDA driver's PTX JIT cache
        # (default ~/.nv/ComputeCache).
        "TRITON_CACHE_DIR": f"{cache_mount}/compile/triton",
        "TORCHINDUCTOR_CACHE_DIR": f"{cache_mount}/compile/inductor",
        "FLASHINFER_WORKSPACE_BASE": f"{cache_mount}/compile/flashinfer",
        "CUDA_CACHE_PATH": f"{cache_mount}/compile/nv",
        # numba's JIT cache (numba/core/config.py): small, rebuilt on a new pod.
        "NUMBA_CACHE_DIR": f"{HOME}/.cache/numba",
    }


def container_security_context() -> dict:
    """Every container of the pod uses this, init containers included."""
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_GROUP,
    }


def pod_security_context() -> dict:
    return {
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_GROUP,
    }


def scratch_volumes() -> list[dict]:
    return [{"name": v.name, "emptyDir": {"sizeLimit": v.size_limit}} for v in SCRATCH_VOLUMES]


def scratch_mounts() -> list[dict]:
    return [{"name": v.name, "mountPath": v.mount_path} for v in SCRATCH_VOLUMES]
