"""Rules between the `scaling` section and the rest of a stack (checked with the other
rules between settings, before any resource)."""

from __future__ import annotations

from components.settings.scaling import SECTION, ScalingSettings
from components.settings.stack import PROJECT, Settings


def replicas_per_node(settings: Settings) -> int:
    """vLLM replicas one GPU node holds: 2 for the 4-GPU profile on a p5, 1 when spread."""
    return settings.replicas_per_node


def replica_capacity(settings: Settings) -> int:
    """The most replicas the GPU node group can hold at its maximum size."""
    return settings.gpu_nodes.max_size * replicas_per_node(settings)


def check(scaling: ScalingSettings, settings: Settings) -> list[str]:
    """Rules between the scaling section's own fields and the rest of the stack."""
    fix_max = f"Fix: pulumi config set --path '{SECTION}.maxReplicas' <n>"
    bounds = []
    if scaling.min_replicas > scaling.max_replicas:
        bounds.append(
            f"{PROJECT}:{SECTION}.minReplicas = {scaling.min_replicas} is above {SECTION}.maxReplicas "
            f"({scaling.max_replicas}). {fix_max}"
        )
    if scaling.schedule and scaling.schedule.replicas > scaling.max_replicas:
        bounds.append(
            f"{PROJECT}:{SECTION}.schedule.replicas = {scaling.schedule.replicas} is above {SECTION}.maxReplicas "
            f"({scaling.max_replicas}). {fix_max}"
        )
    if scaling.schedule and scaling.schedule.start_hour == scaling.schedule.end_hour:
        bounds.append(
            f"{PROJECT}:{SECTION}.schedule.endHour = {scaling.schedule.end_hour}: startHour and endHour must differ "
            f"(a window of 0 or 24 hours). Fix: pulumi config set --path '{SECTION}.schedule.endHour' <hour>"
        )
    if bounds:
        return bounds
    if not scaling.enabled:
        if scaling.schedule:
            return [
                f"{PROJECT}:{SECTION}.schedule is set but {SECTION}.enabled is false, so no schedule would apply. "
                f"Fix: pulumi config set --path '{SECTION}.enabled' true"
            ]
        return []
    problems = []
    g, sv = settings.gpu_nodes, settings.serving
    if settings.observability.mode != "in-cluster":
        # KEDA's queue, KV-cache and loading triggers query the in-cluster Prometheus; in `amp` mode
        # it runs as an agent with no query API, and `off` has none at all.
        problems.append(
            f"{PROJECT}:observability.mode = {settings.observability.mode!r} leaves the autoscaler without the "
            f"in-cluster Prometheus its triggers query ({SECTION}.enabled is true). "
            f"Fix: pulumi config set --path 'observability.mode' in-cluster (or pulumi config set --path '{SECTION}.enabled' false)"
        )
    capacity = replica_capacity(settings)
    if scaling.max_replicas > capacity:
        per_node = replicas_per_node(settings)
        problems.append(
            f"{PROJECT}:{SECTION}.maxReplicas = {scaling.max_replicas} exceeds what the GPU node group holds: "
            f"gpuNodes.maxSize {g.max_size} x {per_node} replica(s) of the {sv.profile} profile per {g.instance_type} = {capacity}. "
            f"Fix: pulumi config set --path '{SECTION}.maxReplicas' {capacity} "
            f"(or raise gpuNodes.maxSize to {-(-scaling.max_replicas // per_node)})"
        )
    if not scaling.min_replicas <= sv.replicas <= scaling.max_replicas:
        problems.append(
            f"{PROJECT}:serving.replicas = {sv.replicas} is the starting replica count of an autoscaled stack and must lie "
            f"between {SECTION}.minReplicas ({scaling.min_replicas}) and {SECTION}.maxReplicas ({scaling.max_replicas}). "
            f"Fix: pulumi config set --path 'serving.replicas' {max(1, min(sv.replicas, scaling.max_replicas))}"
        )
    if scaling.scale_to_zero and g.min_size > 0:
        problems.append(
            f"{PROJECT}:gpuNodes.minSize = {g.min_size} keeps {g.min_size} {g.instance_type} running while "
            f"{SECTION}.minReplicas 0 scales vLLM to zero: the idle hours would still be paid. "
            f"Fix: pulumi config set --path 'gpuNodes.minSize' 0"
        )
    return problems
