"""NVIDIA's device plugin: makes `nvidia.com/gpu` allocatable on the p5 nodes.

The AL2023 NVIDIA AMI ships the driver and container toolkit but no device plugin.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.facts import gpu_pool, versions
from components.kubernetes import network_policy as np
from components.kubernetes import pod_security_admission as psa
from components.kubernetes.helm import pinned_release

NAMESPACE = "nvidia-device-plugin"
POD_SECURITY = psa.NamespaceSecurity(
    NAMESPACE,
    psa.PRIVILEGED,
    "the plugin registers with the kubelet through hostPath volumes (/var/lib/kubelet/device-plugins,"
    " /var/run/cdi): the baseline level refuses every hostPath volume",
)


def network_policies() -> list[dict]:
    """Default deny; the plugin talks to the kubelet over a unix socket, and to the API server
    (443: the chart gives it a ClusterRole) after a DNS lookup. Nothing reaches it."""
    labels = {"app.kubernetes.io/part-of": "minimax-vllm"}
    return [
        np.default_deny(NAMESPACE, labels),
        np.allow("nvidia-device-plugin", NAMESPACE, labels, {}, egress=[np.dns(), np.anywhere(443)]),
    ]


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
        in_ns = pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[namespace]))
        fenced = [
            k8s.networking.v1.NetworkPolicy(
                f"{name}-netpol-{pol['metadata']['name']}", metadata=pol["metadata"], spec=pol["spec"], opts=in_ns
            )
            for pol in network_policies()
        ]
        self.release = pinned_release(
            f"{name}-release",
            versions.NVIDIA_DEVICE_PLUGIN_CHART,
            namespace=NAMESPACE,
            values=chart_values(),
            opts=pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[namespace, *fenced])),
            # A DaemonSet with no GPU node yet is still a correct install.
            skip_await=True,
        )
        self.register_outputs({"status": self.release.status})
