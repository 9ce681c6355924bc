"""NVIDIA's device plugin: makes `nvidia.com/gpu` allocatable on the p5 nodes.

The AL2023 NVIDIA AMI ships the driver and container toolkit but no device plugin.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.facts import gpu_pool, versions
from components.kubernetes.helm import pinned_release

NAMESPACE = "nvidia-device-plugin"


def chart_values() -> dict:
    """Schedule on exactly the GPU pool: its label and its taint, both from gpu_pool."""
    key, value = gpu_pool.GPU_PRESENT_LABEL
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]}]
                }
            }
        },
        "tolerations": [gpu_pool.TOLERATION, {"key": "CriticalAddonsOnly", "operator": "Exists"}],
        "priorityClassName": "system-node-critical",
        "gfd": {"enabled": False},
    }


@dataclass(frozen=True)
class DevicePluginArgs:
    provider: k8s.Provider
    depends_on: tuple[pulumi.Resource, ...] = ()


class DevicePlugin(pulumi.ComponentResource):
    def __init__(self, name: str, args: DevicePluginArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("minimax-vllm:k8s:DevicePlugin", name, None, opts)
        self.release = pinned_release(
            f"{name}-release",
            versions.NVIDIA_DEVICE_PLUGIN_CHART,
            namespace=NAMESPACE,
            values=chart_values(),
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.depends_on)),
            create_namespace=True,
            # A DaemonSet with no GPU node yet is still a correct install.
            skip_await=True,
        )
        self.register_outputs({"status": self.release.status})
