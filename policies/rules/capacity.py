"""Capacity rules: pods request what the node packing plans on, and GPU pods can schedule on the
tainted GPU nodes."""

from __future__ import annotations

from .common import GPU_RESOURCE, GPU_TAINT, Props, _containers, _gpu_count, _map, _seq, _tolerates, _workload


def container_resources(resource_type: str, props: Props) -> list[str]:
    """Requests let the scheduler pack p5 nodes correctly; a memory limit keeps one pod from OOM-ing the node.

    A CPU limit is not required: it only throttles.
    """
    workload = _workload(resource_type, props)
    if workload is None:
        return []
    what, _, spec = workload
    problems = []
    for container in _containers(spec):
        resources = _map(container.get("resources"))
        requests, limits = _map(resources.get("requests")), _map(resources.get("limits"))
        missing = [f"requests.{r}" for r in ("cpu", "memory") if requests.get(r) is None]
        missing += ["limits.memory"] if limits.get("memory") is None else []
        if missing:
            problems.append(f"{what} container {container.get('name')!r} has no resources {', '.join(missing)}")
    return problems


def gpu_pods_tolerate_taint(resource_type: str, props: Props) -> list[str]:
    """A GPU pod without the taint's toleration never schedules on the (tainted) p5 nodes."""
    workload = _workload(resource_type, props)
    if workload is None:
        return []
    what, _, spec = workload
    if not any(_gpu_count(c) > 0 for c in _containers(spec)):
        return []
    if any(_tolerates(_map(t), GPU_TAINT) for t in _seq(spec.get("tolerations"))):
        return []
    taint = f"{GPU_TAINT['key']}={GPU_TAINT['value']}:{GPU_TAINT['effect']}"
    return [f"{what} requests {GPU_RESOURCE} but does not tolerate the GPU node taint {taint}"]
