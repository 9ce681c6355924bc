"""NVIDIA's device plugin: makes `nvidia.com/gpu` allocatable on the p5 nodes.

The AL2023 NVIDIA AMI ships the driver and container toolkit but no device plugin.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.facts import gpu_pool, versions
from components.kubernetes import pod_security_admission as psa
from components.kubernetes.helm import pinned_release

NAMESPACE = "nvidia-device-plugin"
POD_SECURITY = psa.NamespaceSecurity(
    NAMESPACE,
    psa.PRIVILEGED,
    "the plugin registers with the kubelet through hostPath volumes (/var/lib/kubelet/device-plugins,"
    " /var/run/cdi): the baseline level refuses every hostPath volume",
)


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
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.depends_on))
        ns = psa.namespace(POD_SECURITY)
        namespace = k8s.core.v1.Namespace(f"{name}-namespace", metadata=ns["metadata"], opts=on_cluster)
        self.release = pinned_release(
            f"{name}-release",
            versions.NVIDIA_DEVICE_PLUGIN_CHART,
            namespace=NAMESPACE,
            values=chart_values(),
            opts=pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[namespace])),
            # A DaemonSet with no GPU node yet is still a correct install.
            skip_await=True,
        )
        self.register_outputs({"status": self.release.status})
