"""`make plan`: render a stack offline and print what `pulumi up` would build.

Summary on stdout; the rendered Kubernetes objects and Helm releases as YAML in a folder.
"""

from __future__ import annotations

import ipaddress
import shlex
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components import capacity, cluster, dcgm_fields, observability, profiles, workload
from components.observability import sorted_keys
from components.settings import PROJECT, Settings, SettingsError, from_stack_file
from ops.offline import Rendering, render

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
# us-east list prices per hour, for the plan's cost line (GPU nodes come from INSTANCE_TYPES).
EKS_CONTROL_PLANE_PER_HOUR = 0.10
NAT_GATEWAY_PER_HOUR = 0.045
NLB_PER_HOUR = 0.0225
SYSTEM_NODE_PER_HOUR = 0.1008  # m7i.large
SYSTEM_NODE_VCPUS, SYSTEM_NODE_MEMORY_GIB = 2, 8  # m7i.large
# Amazon Managed Service for Prometheus, us-east-1 list price (aws.amazon.com/prometheus/pricing):
# $0.90 per 10 million samples ingested (first 2 billion a month); storage ($0.03/GB-month) and
# queries ($0.10 per billion samples processed) are small next to it and not counted here.
AMP_PER_10M_SAMPLES = 0.90
# Active series an AMP stack remote-writes, estimated: kubelet/cAdvisor, API server,
# kube-state-metrics and the operator for a small cluster; node-exporter per node; dcgm-exporter
# per GPU and field; vLLM per replica (about a dozen histograms of 10-40 buckets each).
BASE_SERIES = 20_000
SERIES_PER_NODE = 1_000
SERIES_PER_REPLICA = 1_500


def main(stack: str, out_dir: str) -> int:
    try:
        settings = from_stack_file(stack)
        rendering = render(stack)
    except SettingsError as err:
        print(err, file=sys.stderr)
        return 2
    written = write_manifests(rendering, Path(out_dir))
    print(summary(settings, rendering))
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
    """apiVersion, kind, metadata first, as people write manifests; the rest sorted, at every level
    (the engine's wire format keeps no key order, so an unsorted dump would differ run to run)."""
    head = ("apiVersion", "kind", "metadata")
    obj = sorted_keys(obj)
    return {**{k: obj[k] for k in head if k in obj}, **{k: obj[k] for k in obj if k not in head}}


def _object_order(obj: dict[str, Any]) -> tuple:
    meta = obj.get("metadata") or {}
    return (obj.get("kind") != "Namespace", meta.get("namespace") or "", obj.get("kind"), meta.get("name") or "")


def manifests(rendering: Rendering) -> list[dict[str, Any]]:
    """Every plain object, Namespaces first, then by namespace, kind and name: the same order every run."""
    return sorted((_readable(redacted(r.inputs)) for r in rendering.kubernetes_objects()), key=_object_order)


def helm_releases(rendering: Rendering) -> list[dict[str, Any]]:
    releases = [
        {
            "name": r.inputs.get("name"),
            "namespace": r.inputs.get("namespace"),
            "repository": (r.inputs.get("repositoryOpts") or {}).get("repo"),
            "chart": r.inputs.get("chart"),
            "version": r.inputs.get("version"),
            "values": sorted_keys(r.inputs.get("values")),
        }
        for r in rendering.of_type(HELM_RELEASE)
    ]
    return sorted(releases, key=lambda x: (x["namespace"] or "", x["name"] or ""))


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
    components = sorted(
        (r for r in rendering.resources if not r.type.startswith(("aws:", "kubernetes:", "pulumi:"))),
        key=lambda r: (r.type, r.name),
    )
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


def hourly_cost(settings: Settings) -> tuple[float, str]:
    g = settings.gpu_nodes
    nats = 0 if settings.network.existing_vpc_id else max(2, len(settings.network.availability_zones))
    gpu = g.desired_size * g.instance.price_per_hour_usd
    system = cluster.SYSTEM_NODES * SYSTEM_NODE_PER_HOUR
    total = gpu + EKS_CONTROL_PLANE_PER_HOUR + nats * NAT_GATEWAY_PER_HOUR + NLB_PER_HOUR + system
    detail = (
        f"{g.desired_size} x {g.instance_type} ${gpu:,.2f} + EKS ${EKS_CONTROL_PLANE_PER_HOUR:.2f} + "
        f"{nats} NAT ${nats * NAT_GATEWAY_PER_HOUR:.2f} + NLB ${NLB_PER_HOUR:.3f} + system nodes ${system:.2f}"
    )
    if settings.observability.enabled:
        monitoring = observability_cost(settings)
        total += monitoring.total
        detail += f" + observability ${monitoring.total:.2f}"
    return total, detail


def _cpu(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _gib(quantity: str) -> float:
    return int(quantity[:-2]) / 1024 if quantity.endswith("Mi") else float(quantity.removesuffix("Gi"))


@dataclass(frozen=True)
class ObservabilityCost:
    rows: list[tuple[str, str, str, float]]  # component, where, requests, $/hour
    system_cpu: float
    system_memory_gib: float
    total: float


def observability_cost(settings: Settings) -> ObservabilityCost:
    """What the monitoring stack adds per hour: its pods' share of the nodes they run on (the larger
    of their CPU and memory share, at list price) and, with AMP, the samples it ingests."""
    o, g = settings.observability, settings.gpu_nodes
    rows: list[tuple[str, str, str, float]] = []
    system_cpu = system_memory = 0.0
    for component, where, requests in observability.where(o):
        if requests is None:
            series = (
                BASE_SERIES
                + (cluster.SYSTEM_NODES + g.desired_size) * SERIES_PER_NODE
                + g.desired_size * g.instance.gpus * len(dcgm_fields.FIELDS)
                + settings.serving.replicas * SERIES_PER_REPLICA
            )
            samples_per_hour = series * 3600 / o.scrape_interval_seconds
            cost = samples_per_hour / 1e7 * AMP_PER_10M_SAMPLES
            rows.append((component, where, f"~{series:,} series, {samples_per_hour / 1e6:.1f}M samples/h", cost))
            continue
        cpu, memory = _cpu(requests["cpu"]), _gib(requests["memory"])
        placements = []  # (pods, node vCPUs, node GiB, node $/hour)
        if where.startswith("system") or where.startswith("every"):
            pods = cluster.SYSTEM_NODES if where.startswith("every") else 1
            placements.append((pods, SYSTEM_NODE_VCPUS, SYSTEM_NODE_MEMORY_GIB, SYSTEM_NODE_PER_HOUR))
            system_cpu += pods * cpu
            system_memory += pods * memory
        if where.startswith("GPU") or where.startswith("every"):
            inst = g.instance
            placements.append((g.desired_size, inst.vcpus, inst.memory_gib, inst.price_per_hour_usd))
        cost = sum(n * max(cpu / vcpus, memory / gib) * price for n, vcpus, gib, price in placements)
        rows.append((component, where, f"{requests['cpu']} CPU, {requests['memory']} per pod", cost))
    return ObservabilityCost(rows, system_cpu, system_memory, sum(r[3] for r in rows))


def observability_lines(settings: Settings) -> list[str]:
    o = settings.observability
    if not o.enabled:
        return ["  off (observability.mode): no metrics, dashboards or alerts"]
    cost = observability_cost(settings)
    width = max(len(r[0]) for r in cost.rows)
    lines = [f"  mode {o.mode}, namespace {observability.NAMESPACE}, scrape every {o.scrape_interval_seconds}s"]
    lines += [f"  {c:<{width}}  {w:<24} {req:<40} ${usd:.3f}/h" for c, w, req, usd in cost.rows]
    capacity_cpu = cluster.SYSTEM_NODES * SYSTEM_NODE_VCPUS
    capacity_memory = cluster.SYSTEM_NODES * SYSTEM_NODE_MEMORY_GIB
    lines += [
        f"  system-node requests: {cost.system_cpu:.2f} of {capacity_cpu} vCPU, "
        f"{cost.system_memory_gib:.1f} of {capacity_memory} GiB ({cluster.SYSTEM_NODES} x m7i.large); on the GPU nodes only the two exporters",
        f"  added: about ${cost.total:.2f}/hour: each pod's share (larger of CPU and memory) of its node at "
        f"us-east list price (m7i.large ${SYSTEM_NODE_PER_HOUR}/h, {settings.gpu_nodes.instance_type} "
        f"${settings.gpu_nodes.instance.price_per_hour_usd}/h)"
        + (
            f", AMP ingestion at ${AMP_PER_10M_SAMPLES} per 10M samples (aws.amazon.com/prometheus/pricing)"
            if o.mode == "amp"
            else ""
        ),
        f"  vLLM /metrics: scraped in-cluster by PodMonitor {observability.PODMONITOR} on port {profiles.PORT}; never through the endpoint",
        f"  dashboards: {', '.join(sorted(d['metadata']['name'] for d in observability.dashboards.config_maps(o.ttft_p95_slo_seconds, o.itl_p95_slo_seconds)))}",
        f"  alerts: {len(observability.alerts.serving_alerts(o))} rules (runbooks: docs/operations.md); "
        f"SLOs p95 TTFT {o.ttft_p95_slo_seconds}s, p95 inter-token {o.itl_p95_slo_seconds}s",
        f"  open: {observability.port_forwards()['grafana']}",
    ]
    return lines


def summary(settings: Settings, rendering: Rendering) -> str:
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
        "Observability:",
        *observability_lines(settings),
        "",
        "Capacity:",
        *(f"  {line}" for line in capacity.table_for(settings)),
        "",
        f"Cost: about ${cost:,.2f}/hour ({cost_detail}), list prices before savings plans",
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
