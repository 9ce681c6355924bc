"""The p5 managed node group that runs vLLM.

Decisions:
- Rollouts never need a second GPU node: `update_strategy` MINIMAL terminates the old node
  before launching its replacement (the DEFAULT strategy surges: it launches new nodes
  first, which for p5 means a spare node that on-demand or a Capacity Block usually cannot
  supply). With `max_unavailable` 1 an AMI or launch-template update takes the endpoint down
  while one node is replaced; that is the price of needing no spare GPU capacity.
- A node group replacement (launch template id, subnets) deletes before it creates, for the
  same reason.
- When the drain cannot finish under the vLLM PodDisruptionBudget within EKS's 15 minutes (two
  replicas per node, or a cold start longer than that), `force_update_version` is set, so the
  update completes (components/scaling/node_drain.py) instead of failing with PodEvictionFailure.
- IMDSv2 only, hop limit 1: pods on the GPU node (vLLM, device plugin) cannot reach the
  node role's credentials. Everything that needs IMDS there runs on the host network
  (aws-node, kube-proxy, pod identity agent); workloads that need AWS use Pod Identity.
- Local NVMe is assembled by nodeadm as RAID0 at gpu_pool.NVME_MOUNT, where the model cache lives.
- Capacity Block: EKS wants desiredSize 0 while such a node group is upgraded, and EC2
  reclaims the instances when the block ends (scale to 0 at least 30 minutes before): the
  version and launch template are held back (`ignore_changes`) until the stack takes the
  group to 0 (components/settings/node_update.py). Any reservation is zonal: settings require
  exactly one GPU zone with a reservation (components/aws/reservations.py).
- With autoscaling on, the Cluster Autoscaler moves the desired size between minSize and
  maxSize; the reservation targeting stays in the launch template, so the nodes it adds still
  launch into the Capacity Block or ODCR.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws.launch_template import node_launch_template
from components.facts import gpu_pool

AMI_TYPE = "AL2023_x86_64_NVIDIA"
MIME_BOUNDARY = "==MINIMAXVLLM=="
# The Cluster Autoscaler's tag namespace (its AWS README, "Auto-Discovery Setup").
TAG_PREFIX = "k8s.io/cluster-autoscaler"
# Cluster Autoscaler's GPU label on AWS: a node carrying it counts as a GPU node whose GPUs are
# still coming up (device plugin), so the autoscaler waits instead of adding another node.
ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"


def accelerator(gpu_model: str) -> str:
    return f"nvidia-{gpu_model.lower()}"


def node_template_tags(labels: Mapping[str, str], gpus: int) -> dict[str, str]:
    """ASG tags that describe a GPU node before one exists, so a node group at zero can scale up.

    The autoscaler reads labels and taints of a managed node group at zero from
    eks:DescribeNodegroup only until it first had nodes; these tags keep working after that
    (cluster-autoscaler/cloudprovider/aws/README.md, "Auto-Discovery Setup").
    """
    tags = {f"{TAG_PREFIX}/node-template/label/{k}": v for k, v in labels.items()}
    tags[f"{TAG_PREFIX}/node-template/taint/{gpu_pool.TAINT_KEY}"] = f"{gpu_pool.TAINT_VALUE}:{gpu_pool.TAINT_EFFECT}"
    tags[f"{TAG_PREFIX}/node-template/resources/nvidia.com/gpu"] = str(gpus)
    return dict(sorted(tags.items()))


def nodeadm_user_data(boundary: str = MIME_BOUNDARY) -> str:
    """MIME multipart user data with a NodeConfig part: EKS merges its own NodeConfig (cluster
    endpoint, CA) with this one, and only multipart user data can be merged."""
    node_config = "\n".join(
        [
            "---",
            "apiVersion: node.eks.aws/v1alpha1",
            "kind: NodeConfig",
            "spec:",
            "  instance:",
            "    localStorage:",
            "      strategy: RAID0",
        ]
    )
    return (
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\n'
        "\n"
        f"--{boundary}\n"
        "Content-Type: application/node.eks.aws\n"
        "\n"
        f"{node_config}\n"
        "\n"
        f"--{boundary}--\n"
    )


@dataclass(frozen=True)
class GpuNodeGroupArgs:
    cluster_name: pulumi.Input[str]
    kubernetes_version: pulumi.Input[str]
    node_role_arn: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]  # private subnets in zones that offer the instance type
    node_group_name: str
    instance_type: str
    min_size: int
    desired_size: int
    max_size: int
    capacity_type: str  # ON_DEMAND | CAPACITY_BLOCK
    capacity_reservation_id: str | None
    root_volume_gib: int
    tags: Mapping[str, str]
    # The node role's policies, the CNI add-ons and the NAT routes: nodes must not join before them.
    depends_on: tuple[pulumi.Resource, ...] = ()
    # NodeGroup inputs held back (a Capacity Block group upgrades only at size 0).
    ignore_changes: tuple[str, ...] = ()
    # The Cluster Autoscaler owns the desired size between min_size and max_size.
    autoscaled: bool = False
    # EKS's drain would give up under the budget (components/scaling/node_drain.py): force the update.
    force_update_version: bool = False
    gpus_per_node: int = 8
    gpu_model: str = "H100"


class GpuNodeGroup(pulumi.ComponentResource):
    """Managed node group of p5 nodes: AL2023 NVIDIA AMI, tainted and labelled for vLLM."""

    def __init__(self, name: str, args: GpuNodeGroupArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("minimax-vllm:aws:GpuNodeGroup", name, None, opts)
        if args.capacity_type == "CAPACITY_BLOCK" and not args.capacity_reservation_id:
            raise ValueError("a CAPACITY_BLOCK node group needs the block's capacity reservation id")
        tags = dict(args.tags)
        capacity_block = args.capacity_type == "CAPACITY_BLOCK"
        labels = dict(gpu_pool.NODE_LABELS)
        if args.autoscaled:
            labels[ACCELERATOR_LABEL] = accelerator(args.gpu_model)

        reservation = None
        if args.capacity_reservation_id:
            # Capacity Block or On-Demand Capacity Reservation: launch only into that reservation.
            reservation = aws.ec2.LaunchTemplateCapacityReservationSpecificationArgs(
                capacity_reservation_target=aws.ec2.LaunchTemplateCapacityReservationSpecificationCapacityReservationTargetArgs(
                    capacity_reservation_id=args.capacity_reservation_id,
                ),
            )

        self.launch_template = node_launch_template(
            f"{name}-lt",
            node_group_name=args.node_group_name,
            description=f"{args.instance_type} nodes for {args.node_group_name}",
            root_volume_gib=args.root_volume_gib,
            tags=tags,
            parent=self,
            # EKS rejects an instance type in both the node group and its launch template; a
            # Capacity Block node group requires it in the launch template.
            instance_type=args.instance_type if capacity_block else None,
            instance_market_options=(
                aws.ec2.LaunchTemplateInstanceMarketOptionsArgs(market_type="capacity-block")
                if capacity_block
                else None
            ),
            capacity_reservation_specification=reservation,
            user_data=base64.b64encode(nodeadm_user_data().encode()).decode(),
        )

        self.node_group = aws.eks.NodeGroup(
            f"{name}-ng",
            cluster_name=args.cluster_name,
            node_group_name=args.node_group_name,
            node_role_arn=args.node_role_arn,
            subnet_ids=args.subnet_ids,
            version=args.kubernetes_version,
            ami_type=AMI_TYPE,
            capacity_type=args.capacity_type,
            instance_types=None if capacity_block else [args.instance_type],
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=self.launch_template.id,
                version=self.launch_template.latest_version.apply(str),
            ),
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=args.min_size, desired_size=args.desired_size, max_size=args.max_size
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1, update_strategy="MINIMAL"),
            force_update_version=args.force_update_version or None,
            labels=labels,
            taints=[
                aws.eks.NodeGroupTaintArgs(
                    key=gpu_pool.TAINT_KEY, value=gpu_pool.TAINT_VALUE, effect=gpu_pool.EKS_TAINT_EFFECT
                )
            ],
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=list(args.depends_on),
                delete_before_replace=True,
                # NodeGroup inputs held back: a Capacity Block group upgrades only at size 0; with the
                # Cluster Autoscaler, desiredSize is its to change (EKS: setting it directly would
                # scale up or down at once), so `pulumi up` leaves it alone.
                ignore_changes=[*args.ignore_changes, *(["scalingConfig.desiredSize"] if args.autoscaled else [])]
                or None,
            ),
        )
        self.node_group_name = self.node_group.node_group_name
        if args.autoscaled:
            self._tag_autoscaling_group(name, labels, args.gpus_per_node)
        self.register_outputs({"nodeGroupName": self.node_group_name, "launchTemplateId": self.launch_template.id})

    def _tag_autoscaling_group(self, name: str, labels: dict[str, str], gpus: int) -> None:
        """Node-template tags on the node group's Auto Scaling group (EKS does not copy node
        group tags there), so the Cluster Autoscaler can scale the group up from zero."""
        asg = self.node_group.resources.apply(lambda r: r[0].autoscaling_groups[0].name)
        for key, value in node_template_tags(labels, gpus).items():
            aws.autoscaling.Tag(
                f"{name}-ca-{hashlib.sha256(key.encode()).hexdigest()[:8]}",
                autoscaling_group_name=asg,
                tag=aws.autoscaling.TagTagArgs(key=key, value=value, propagate_at_launch=False),
                opts=pulumi.ResourceOptions(parent=self),
            )
