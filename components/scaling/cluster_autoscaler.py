"""Cluster Autoscaler on the GPU managed node group: GPU nodes follow the vLLM pods, down to zero.

Why the Cluster Autoscaler and not Karpenter: docs/scaling.md. In short, the node group keeps
its hardened launch template, its Capacity Block / ODCR targeting and its place in Pulumi's
state (so `pulumi destroy` removes every instance), and the autoscaler only moves the node
group's desired size between its min and max. IAM comes through EKS Pod Identity.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws import cluster as cluster_facts
from components.aws.gpu_nodes import TAG_PREFIX
from components.aws.pod_identity import workload_identity
from components.facts import image_pins, versions
from components.kubernetes.helm import pinned_release
from components.scaling.policy import CLUSTER_AUTOSCALER_UNNEEDED_MINUTES, ColdStart

NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "cluster-autoscaler"
# The chart's default image.repository (values.yaml of the pinned chart); the tag is chosen here.
IMAGE_REPOSITORY = "registry.k8s.io/autoscaling/cluster-autoscaler"
# An empty GPU node is removed after this long (an idle p5 costs about $9 per ten minutes).
SCALE_DOWN_UNNEEDED = f"{CLUSTER_AUTOSCALER_UNNEEDED_MINUTES}m"


def iam_policy(cluster_name: str) -> str:
    """The README's "full features" policy, with scaling actions limited to this cluster's groups
    (EKS tags a managed node group's Auto Scaling group `k8s.io/cluster-autoscaler/<cluster>`)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": [
                        "autoscaling:DescribeAutoScalingGroups",
                        "autoscaling:DescribeAutoScalingInstances",
                        "autoscaling:DescribeLaunchConfigurations",
                        "autoscaling:DescribeScalingActivities",
                        "ec2:DescribeImages",
                        "ec2:DescribeInstanceTypes",
                        "ec2:DescribeLaunchTemplateVersions",
                        "ec2:GetInstanceTypesFromInstanceRequirements",
                        "eks:DescribeNodegroup",
                    ],
                    "Resource": "*",
                },
                {
                    "Effect": "Allow",
                    "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                    "Resource": "*",
                    "Condition": {"StringEquals": {f"aws:ResourceTag/{TAG_PREFIX}/{cluster_name}": "owned"}},
                },
            ],
        },
        sort_keys=True,
    )


def chart_values(cluster_name: str, region: str, kubernetes_version: str, cold: ColdStart) -> dict:
    """Discover this cluster's node groups, run on the system nodes, and give a p5 time to join."""
    key, value = cluster_facts.SYSTEM_POOL_LABEL
    return {
        "cloudProvider": "aws",
        "awsRegion": region,
        "autoDiscovery": {"clusterName": cluster_name},
        # The chart joins repository:tag; the tag carries the digest where one is recorded.
        "image": {
            "tag": image_pins.tag_or_pinned(
                IMAGE_REPOSITORY, versions.CLUSTER_AUTOSCALER_IMAGE_TAGS[kubernetes_version]
            )
        },
        "rbac": {"serviceAccount": {"create": True, "name": SERVICE_ACCOUNT}},
        "nodeSelector": {key: value},
        "resources": {"requests": {"cpu": "100m", "memory": "600Mi"}, "limits": {"memory": "600Mi"}},
        "extraArgs": {
            "expander": "least-waste",
            "scale-down-unneeded-time": SCALE_DOWN_UNNEEDED,
            # A node that has not joined within twice the expected provisioning time is given up.
            "max-node-provision-time": f"{2 * cold.node_provision_seconds // 60}m",
            "ignore-daemonsets-utilization": "true",
            "balance-similar-node-groups": "false",
        },
    }


@dataclass(frozen=True)
class ClusterAutoscalerArgs:
    cluster_name: str
    cluster_name_output: pulumi.Input[str]
    cluster_arn: pulumi.Input[str]  # Pod Identity trust is scoped to this cluster
    region: str
    kubernetes_version: str
    cold_start: ColdStart
    provider: k8s.Provider
    tags: dict[str, str]
    depends_on: tuple[pulumi.Resource, ...] = ()


class ClusterAutoscaler(pulumi.ComponentResource):
    def __init__(self, name: str, args: ClusterAutoscalerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("minimax-vllm:k8s:ClusterAutoscaler", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        policy = aws.iam.Policy(f"{name}-policy", policy=iam_policy(args.cluster_name), tags=args.tags, opts=child)
        identity = workload_identity(
            name,
            self,
            cluster_name=args.cluster_name_output,
            cluster_arn=args.cluster_arn,
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            tags=args.tags,
            policy_arn=policy.arn,
            depends_on=args.depends_on,
        )
        self.release = pinned_release(
            f"{name}-release",
            versions.CLUSTER_AUTOSCALER_CHART,
            namespace=NAMESPACE,
            values=chart_values(args.cluster_name, args.region, args.kubernetes_version, args.cold_start),
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[identity.association, *args.depends_on]
            ),
        )
        self.register_outputs({"roleArn": identity.role.arn, "status": self.release.status})
