"""What a stack costs per hour at list price, for the plan's cost lines and the scaling simulator."""

from __future__ import annotations

from dataclasses import dataclass

from components.aws import cluster
from components.observability import dcgm_fields
from components.observability import values as observability
from components.settings.stack import Settings

# us-east list prices per hour, for the plan's cost line (GPU nodes come from INSTANCE_TYPES).
EKS_CONTROL_PLANE_PER_HOUR = 0.10
NAT_GATEWAY_PER_HOUR = 0.045
ALB_PER_HOUR = 0.0225  # plus LCUs, which follow traffic
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


def _nat_gateways(settings: Settings) -> int:
    return 0 if settings.network.existing_vpc_id else max(2, len(settings.network.availability_zones))


def fixed_hourly_cost(settings: Settings) -> float:
    """Everything but the GPU nodes: paid every hour, whatever the load."""
    nats = _nat_gateways(settings)
    return (
        EKS_CONTROL_PLANE_PER_HOUR
        + nats * NAT_GATEWAY_PER_HOUR
        + ALB_PER_HOUR
        + cluster.SYSTEM_NODES * SYSTEM_NODE_PER_HOUR
    )


def hourly_cost(settings: Settings) -> tuple[float, str]:
    g = settings.gpu_nodes
    nats = _nat_gateways(settings)
    gpu = g.desired_size * g.instance.price_per_hour_usd
    system = cluster.SYSTEM_NODES * SYSTEM_NODE_PER_HOUR
    total = gpu + fixed_hourly_cost(settings)
    detail = (
        f"{g.desired_size} x {g.instance_type} ${gpu:,.2f} + EKS ${EKS_CONTROL_PLANE_PER_HOUR:.2f} + "
        f"{nats} NAT ${nats * NAT_GATEWAY_PER_HOUR:.2f} + ALB ${ALB_PER_HOUR:.3f} + system nodes ${system:.2f}"
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
