"""Rules for capacity reservations and Capacity Block updates, as the settings layer reports them.

Pure: each rule returns problem strings in the settings' format (key, value, rule, fix), and
`node_group_shape` tells the GPU node group what to do with its size and pending updates.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.settings.stack import PROJECT, GpuNodeSettings

CAPACITY_BLOCK = "CAPACITY_BLOCK"
# NodeGroup inputs whose change makes EKS upgrade the nodes (UpdateNodegroupVersion).
UPGRADE_INPUTS = ("version", "launchTemplate", "releaseVersion")


def _problem(key: str, value: object, rule: str, fix: str) -> str:
    return f"{PROJECT}:{key} = {value!r} {rule}. Fix: {fix}"


def check(gpu: GpuNodeSettings) -> list[str]:
    """Every reservation and update rule this stack breaks."""
    problems = []
    reserved = gpu.capacity_reservation_id or gpu.capacity_type == CAPACITY_BLOCK
    if reserved and len(gpu.availability_zones) != 1:
        what = gpu.capacity_reservation_id or "the Capacity Block"
        problems.append(
            _problem(
                "gpuNodes.availabilityZones",
                list(gpu.availability_zones),
                f"must name exactly the one zone of the capacity reservation ({what}): a reservation is zonal, "
                "so a launch in any other zone misses it",
                "pulumi config rm --path 'gpuNodes.availabilityZones' && "
                "pulumi config set --path 'gpuNodes.availabilityZones[0]' <zone of the reservation>",
            )
        )
    mode = gpu.capacity_block_update
    if mode != "hold" and gpu.capacity_type != CAPACITY_BLOCK:
        problems.append(
            _problem(
                "gpuNodes.capacityBlockUpdate",
                mode,
                f"applies only to CAPACITY_BLOCK node groups (this one is {gpu.capacity_type}, which updates "
                "in place one node at a time)",
                "pulumi config rm --path 'gpuNodes.capacityBlockUpdate'",
            )
        )
    return problems


def autoscaled_update_problems(gpu: GpuNodeSettings, autoscaled: bool) -> list[str]:
    """scaleToZero/apply need the group at 0 nodes, which autoscaling never lets it reach: the
    Cluster Autoscaler owns the desired size (`pulumi up` leaves scalingConfig.desiredSize to it)
    and KEDA keeps vLLM's replicas, whose pending pods bring a node back. EKS would then
    upgrade Capacity Block nodes while they run, which its Capacity Blocks guide rules out."""
    mode = gpu.capacity_block_update
    if not autoscaled or gpu.capacity_type != CAPACITY_BLOCK or mode == "hold":
        return []
    return [
        _problem(
            "gpuNodes.capacityBlockUpdate",
            mode,
            "cannot take the Capacity Block group to 0 nodes while scaling.enabled is true: the Cluster "
            "Autoscaler owns the group's desired size and KEDA keeps vLLM's replicas, so the group never "
            "reaches 0 and EKS would upgrade running Capacity Block nodes",
            "turn autoscaling off for the upgrade: pulumi config set --path 'scaling.enabled' false "
            "(run scaleToZero, then apply, then hold; turn it back on after)",
        )
    ]


@dataclass(frozen=True)
class NodeGroupShape:
    min_size: int
    desired_size: int
    ignore_changes: tuple[str, ...]  # NodeGroup inputs held back


def node_group_shape(gpu: GpuNodeSettings) -> NodeGroupShape:
    """Sizes and held inputs of the GPU node group: a Capacity Block group never upgrades above 0 nodes."""
    if gpu.capacity_type != CAPACITY_BLOCK:
        return NodeGroupShape(gpu.min_size, gpu.desired_size, ())
    mode = gpu.capacity_block_update
    if mode == "hold":
        return NodeGroupShape(gpu.min_size, gpu.desired_size, UPGRADE_INPUTS)
    if mode == "scaleToZero":
        return NodeGroupShape(0, 0, UPGRADE_INPUTS)
    return NodeGroupShape(0, 0, ())
