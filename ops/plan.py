"""`make plan`: render a stack offline and print what `pulumi up` would build.

Summary on stdout; the rendered Kubernetes objects and Helm releases as YAML in a folder.
"""

from __future__ import annotations

import ipaddress
import shlex
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from components import capacity, profiles, scaling, versions, workload
from components.scaling_settings import ScalingSettings, replicas_per_node, scaling_from_stack_file
from components.settings import PROJECT, Settings, SettingsError, from_stack_file
from ops.offline import Rendering, render

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
# us-east list prices per hour, for the plan's cost line (GPU nodes come from INSTANCE_TYPES).
EKS_CONTROL_PLANE_PER_HOUR = 0.10
NAT_GATEWAY_PER_HOUR = 0.045
NLB_PER_HOUR = 0.0225
SYSTEM_NODE_PER_HOUR = 0.1008  # m7i.large


def main(stack: str, out_dir: str) -> int:
    try:
        settings = from_stack_file(stack)
        scaling_settings = scaling_from_stack_file(stack, settings)
        rendering = render(stack)
    except SettingsError as err:
        print(err, file=sys.stderr)
        return 2
    written = write_manifests(rendering, Path(out_dir))
    print(summary(settings, rendering, scaling_settings))
    print(f"\nRendered manifests: {', '.join(str(p) for p in written)}")
    return 0


def redacted(obj: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes object safe to write out: Secret values replaced."""
    if obj.get("kind") != "Secret":
        return obj
    out = dict(obj)
    for field in ("data", "stringData"):
        if field in out:
            out[field] = {k: "<redacted: Pulumi secret>" for k in out[field]}
    return out


def _readable(obj: dict[str, Any]) -> dict[str, Any]:
    """apiVersion, kind, metadata first, as people write manifests; the rest sorted."""
    head = ("apiVersion", "kind", "metadata")
    return {**{k: obj[k] for k in head if k in obj}, **{k: obj[k] for k in sorted(obj) if k not in head}}


def manifests(rendering: Rendering) -> list[dict[str, Any]]:
    return [_readable(redacted(r.inputs)) for r in rendering.kubernetes_objects()]


def helm_releases(rendering: Rendering) -> list[dict[str, Any]]:
    return [
        {
            "name": r.inputs.get("name"),
            "namespace": r.inputs.get("namespace"),
            "repository": (r.inputs.get("repositoryOpts") or {}).get("repo"),
            "chart": r.inputs.get("chart"),
            "version": r.inputs.get("version"),
            "values": r.inputs.get("values"),
        }
        for r in rendering.of_type(HELM_RELEASE)
    ]


def write_manifests(rendering: Rendering, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        out_dir / "kubernetes.yaml": manifests(rendering),
        out_dir / "helm-releases.yaml": helm_releases(rendering),
    }
    for path, docs in files.items():
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False, width=120))
    return list(files)


def resource_tree(rendering: Rendering) -> list[str]:
    """Each component and how many resources of each type it holds."""
    components = [r for r in rendering.resources if not r.type.startswith(("aws:", "kubernetes:", "pulumi:"))]
    lines = []
    for comp in components:
        kinds = Counter(_kind(r.type) for r in rendering.resources if r.parent == comp.urn)
        inner = ", ".join(f"{n} {t}" for t, n in sorted(kinds.items()))
        lines.append(f"  {comp.type:<42} {comp.name:<34} {inner}")
    lines.append(f"  total: {len(rendering.resources)} resources")
    return lines


def _kind(type_token: str) -> str:
    """`aws:eks/cluster:Cluster` -> `Cluster`; a provider reads as `Provider(kubernetes)`."""
    if type_token.startswith("pulumi:providers:"):
        return f"Provider({type_token.rsplit(':', 1)[-1]})"
    return type_token.rsplit(":", 1)[-1]


# RFC 5737 documentation ranges: placeholders in the shipped stacks, unusable for real.
PLACEHOLDER_NETWORKS = tuple(ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))


def before_up(settings: Settings) -> list[str]:
    """What to set before `pulumi up` with this stack, beyond what the offline plan can check."""
    todo = [
        f"pulumi config set --secret {PROJECT}:apiKey <key>  (the offline plan used a placeholder)",
    ]

    def placeholders(cidrs: tuple[str, ...]) -> list[str]:
        return [c for c in cidrs if any(ipaddress.ip_network(c).subnet_of(n) for n in PLACEHOLDER_NETWORKS)]

    if found := placeholders(settings.cluster.public_access_cidrs):
        todo.append(
            f"cluster.publicAccessCidrs {', '.join(found)} is a documentation range: "
            "pulumi config set --path 'cluster.publicAccessCidrs[0]' <your-ip>/32"
        )
    if found := placeholders(settings.endpoint.source_ranges):
        todo.append(
            f"endpoint.sourceRanges {', '.join(found)} is a documentation range: "
            "pulumi config set --path 'endpoint.sourceRanges[0]' <client-network>/<bits>"
        )
    if not settings.serving.revision:
        todo.append(
            f"serving.revision is unpinned, so a restart may load a newer {settings.serving.model}: "
            "pulumi config set --path 'serving.revision' <hub-commit-sha>"
        )
    if settings.endpoint.scheme == "internet-facing" and not settings.endpoint.certificate_arn:
        todo.append(
            "the internet-facing endpoint is plain HTTP (the API key travels in clear): "
            "pulumi config set --path 'endpoint.certificateArn' arn:aws:acm:..."
        )
    return todo


def _nat_gateways(settings: Settings) -> int:
    return 0 if settings.network.existing_vpc_id else max(2, len(settings.network.availability_zones))


def fixed_hourly_cost(settings: Settings) -> float:
    """Everything but the GPU nodes: paid every hour, whatever the load."""
    nats = _nat_gateways(settings)
    return EKS_CONTROL_PLANE_PER_HOUR + nats * NAT_GATEWAY_PER_HOUR + NLB_PER_HOUR + 2 * SYSTEM_NODE_PER_HOUR


def hourly_cost(settings: Settings) -> tuple[float, str]:
    g = settings.gpu_nodes
    nats = _nat_gateways(settings)
    gpu = g.desired_size * g.instance.price_per_hour_usd
    total = gpu + fixed_hourly_cost(settings)
    detail = (
        f"{g.desired_size} x {g.instance_type} ${gpu:,.2f} + EKS ${EKS_CONTROL_PLANE_PER_HOUR:.2f} + "
        f"{nats} NAT ${nats * NAT_GATEWAY_PER_HOUR:.2f} + NLB ${NLB_PER_HOUR:.3f} + system nodes ${2 * SYSTEM_NODE_PER_HOUR:.2f}"
    )
    return total, detail


def scaling_lines(settings: Settings, sc: ScalingSettings) -> list[str]:
    """Bounds, triggers and behavior of the autoscalers, or the fixed size."""
    g = settings.gpu_nodes
    if not sc.enabled:
        return [
            f"  off: {settings.serving.replicas} replica(s) on {g.desired_size} GPU node(s) around the clock "
            "(pulumi config set --path 'scaling.enabled' true to scale with demand)"
        ]
    cold = scaling.cold_start_inputs()
    # The plan renders what `pulumi up` sends: today's endpoint gives no load balancer dimension.
    policy = scaling.replica_policy(sc, replicas_per_node(settings), cold, region=settings.region)
    _, chart, version = versions.CLUSTER_AUTOSCALER_CHART
    return [
        *(f"  {line}" for line in scaling.describe(policy)),
        f"  GPU nodes {g.min_size}..{g.max_size} by the Cluster Autoscaler ({chart} {version}, image "
        f"{versions.CLUSTER_AUTOSCALER_IMAGE_TAGS[settings.cluster.kubernetes_version]}); an empty node goes after "
        f"{scaling.CLUSTER_AUTOSCALER_UNNEEDED_MINUTES} min",
        f"  cold start assumed: new node {cold.node_provision_seconds}s + first start {cold.first_start_seconds}s, "
        f"warm start {cold.warm_start_seconds}s; simulate: make scaling STACK={settings.stack}",
    ]


def daily_cost_line(settings: Settings, sc: ScalingSettings) -> str | None:
    """Expected cost per day of an autoscaled stack with no traffic outside its schedule."""
    if not sc.enabled:
        return None
    g = settings.gpu_nodes
    price, fixed = g.instance.price_per_hour_usd, fixed_hourly_cost(settings) * 24
    on_day, off_day = scaling.scheduled_node_hours(sc, replicas_per_node(settings), scaling.cold_start_inputs())
    day = fixed + on_day * price
    if sc.schedule and sc.scale_to_zero:
        days = len(sc.schedule.day_numbers())
        week = (days * day + (7 - days) * (fixed + off_day * price)) / 7
        return (
            f"Expected with scaling: about ${day:,.0f}/day on scheduled days ({on_day:.1f} GPU-node hours), "
            f"${fixed + off_day * price:,.0f} on other days, ${week:,.0f}/day over a week, before traffic outside "
            f"the schedule (each wake-up costs a cold start); at full size ${(fixed / 24 + g.max_size * price) * 24:,.0f}/day"
        )
    return (
        f"Expected with scaling: at least ${day:,.0f}/day ({on_day:.0f} GPU-node hours at minReplicas), more under load"
    )


def summary(settings: Settings, rendering: Rendering, sc: ScalingSettings | None = None) -> str:
    sv, g, ep = settings.serving, settings.gpu_nodes, settings.endpoint
    env = " ".join(f"{k}={v}" for k, v in profiles.vllm_env().items())
    argv = shlex.join(profiles.vllm_argv(sv))
    gpus_needed = sv.replicas * sv.gpus_per_replica
    cost, cost_detail = hourly_cost(settings)
    port = workload.listener_port(ep)
    scheme = "https" if ep.certificate_arn else "http"
    lines = [
        f"Stack {settings.stack}: {settings.cluster_name} in {settings.region} (environment {settings.environment}, owner {settings.owner})",
        "",
        "Resources by component:",
        *resource_tree(rendering),
        "",
        "GPU node group:",
        f"  {g.instance_type} ({g.instance.gpus} x {g.instance.gpu_model} {g.instance.gpu_memory_gib} GB), "
        f"nodes min/desired/max {g.min_size}/{g.desired_size}/{g.max_size}, capacity {g.capacity_type}"
        + (f" ({g.capacity_reservation_id})" if g.capacity_reservation_id else ""),
        f"  zones: {', '.join(g.availability_zones) or 'looked up at deploy time: those of the region that offer ' + g.instance_type}",
        "",
        "Serving:",
        f"  profile {sv.profile} ({profiles.PROFILES[sv.profile].summary})",
        f"  {sv.replicas} replica(s) x {sv.gpus_per_replica} GPUs = {gpus_needed} of {g.desired_size * g.instance.gpus} GPUs; image {sv.image}",
        "",
        "vLLM command (per replica; VLLM_API_KEY and HF_TOKEN come from the Kubernetes Secret):",
        f"  {env} {argv}",
        "",
        "Endpoint:",
        f"  {ep.scheme} NLB, {scheme}://<nlb-dns-name>{'' if port in (80, 443) else f':{port}'}/v1 -> pods :{profiles.PORT}, "
        f"health /health, idle timeout {ep.idle_timeout_seconds}s, "
        f"sources {', '.join(ep.source_ranges) or 'VPC only' if ep.scheme == 'internal' else ', '.join(ep.source_ranges)}, API key required",
        "",
        "Capacity:",
        *(f"  {line}" for line in capacity.table_for(settings)),
        "",
        "Scaling:",
        *scaling_lines(settings, sc or ScalingSettings()),
        "",
        f"Cost: about ${cost:,.2f}/hour ({cost_detail}), list prices before savings plans",
        *([line] if (line := daily_cost_line(settings, sc or ScalingSettings())) else []),
        "",
        "Stack outputs (offline values; the NLB name is known only after `pulumi up`):",
        *(
            f"  {name}: {'[secret]' if name in rendering.secret_outputs else value}"
            for name, value in sorted(rendering.outputs.items())
        ),
        "",
        "Before `pulumi up`:",
        *(f"  - {line}" for line in before_up(settings)),
    ]
    return "\n".join(lines)
