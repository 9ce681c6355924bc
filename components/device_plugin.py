"""NVIDIA's device plugin: makes `nvidia.com/gpu` allocatable on the p5 nodes.

The AL2023 NVIDIA AMI ships the driver and container toolkit but no device plugin.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import gpu_pool, versions

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
        repo, chart, version = versions.NVIDIA_DEVICE_PLUGIN_CHART
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name="nvidia-device-plugin",
            chart=chart,
            version=version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=repo),
            namespace=NAMESPACE,
            create_namespace=True,
            values=chart_values(),
            # A DaemonSet with no GPU node yet is still a correct install.
            skip_await=True,
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.depends_on)),
        )
        self.register_outputs({"status": self.release.status})
