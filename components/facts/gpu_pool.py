"""Facts about the GPU node pool that both the AWS and the Kubernetes layer rely on.

The node group sets these labels and this taint; the device plugin and the vLLM pods
tolerate and select them. Defining them once keeps the two sides from drifting apart.
"""

from __future__ import annotations

# NVIDIA's device-plugin chart only schedules on nodes carrying this label (or NFD's PCI
# label); the AL2023 NVIDIA AMI does not set it, so the node group does.
GPU_PRESENT_LABEL = ("nvidia.com/gpu.present", "true")
POOL_LABEL = ("minimax-vllm/pool", "gpu")
NODE_LABELS = dict([GPU_PRESENT_LABEL, POOL_LABEL])

# Keeps every pod that does not ask for GPUs off the p5 nodes.
TAINT_KEY = "nvidia.com/gpu"
TAINT_VALUE = "true"
TAINT_EFFECT = "NoSchedule"  # Kubernetes spelling; the EKS API spells it NO_SCHEDULE
EKS_TAINT_EFFECT = "NO_SCHEDULE"

TOLERATION = {"key": TAINT_KEY, "operator": "Exists", "effect": TAINT_EFFECT}

# nodeadm assembles the instance-store NVMe disks as RAID0 and mounts the array here;
# the model and compile caches live below it so a pod restart re-downloads nothing.
NVME_MOUNT = "/mnt/k8s-disks/0"
# What else nodeadm puts on that array: its `setup-local-disks` bind-mounts these state directories
# onto it (as <array>/kubelet, <array>/containerd, ...) unless NodeConfig's
# `localStorage.disabledMounts` names them, so containerd's image store (pulls and unpacking),
# emptyDir volumes and pod logs are on the NVMe RAID, not the EBS root volume. Source:
# awslabs/amazon-eks-ami templates/al2023/runtime/bin/setup-local-disks (BIND_KUBELET,
# BIND_CONTAINERD, BIND_SOCI, BIND_PODS default "true") and nodeadm/internal/system/local_disk.go,
# at commit 81fec2e895854f599974fe4d3d72f61c0a9aaffa.
NVME_BIND_MOUNTS = ("/var/lib/kubelet", "/var/lib/containerd", "/var/lib/soci-snapshotter-grpc", "/var/log/pods")
MODEL_CACHE_HOST_PATH = f"{NVME_MOUNT}/minimax-vllm-cache"
