"""`make plan`: render a stack offline and print what `pulumi up` would build.

Summary on stdout; the rendered Kubernetes objects and Helm releases as YAML in a folder.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from components.aws import cluster
from components.facts import timeline, versions
from components.kubernetes import network_policy, pod_security
from components.observability import values as observability
from components.platform.config import from_stack_file, read_stack_file, secrets_set_in
from components.platform.deploy_gate import problems_before_deploy
from components.scaling import manifests as scaling_manifests
from components.scaling import policy as scaling
from components.scaling.rules import replicas_per_node
from components.serving import capacity_tables, endpoint, exposure, profiles, supply_chain, workload
from components.settings.scaling import ScalingSettings
from components.settings.stack import PROJECT, REQUIRED_SECRETS, Settings, SettingsError
from components.weights import mirror as weight_mirror
from components.weights import staging as weight_staging
from ops.offline.engine import Rendering, render
from ops.offline.manifests import known, resource_tree, write_manifests
from ops.plan_cold_start import cold_start_lines, cold_start_picture
from ops.plan_cost import (
    AMP_PER_10M_SAMPLES,
    SYSTEM_NODE_MEMORY_GIB,
    SYSTEM_NODE_PER_HOUR,
    SYSTEM_NODE_VCPUS,
    fixed_hourly_cost,
    hourly_cost,
    observability_cost,
)
from ops.routing.plan_lines import routing_lines

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def main(stack: str, out_dir: str) -> int:
    try:
        settings = from_stack_file(stack)
        secrets_set = secrets_set_in(read_stack_file(stack))
        rendering = render(stack)
    except SettingsError as err:
        print(err, file=sys.stderr)
        return 2
    written = write_manifests(rendering, Path(out_dir))
    print(summary(settings, rendering, secrets_set))
    print(f"\nRendered manifests: {', '.join(str(p) for p in written)}")
    print(f"Cold-start picture: {cold_start_picture(settings, Path(out_dir))}")
    return 0


def before_up(settings: Settings, secrets_set: frozenset[str] = frozenset()) -> list[str]:
    """What to set before `pulumi up` with this stack; a real run stops on all but the revision.

    secrets_set: the secret keys the stack file already holds.
    """
    todo = [
        f"pulumi config set --secret {PROJECT}:{key} <value>  (the offline plan used a placeholder)"
        for key in REQUIRED_SECRETS
        if key not in secrets_set
    ]
    todo += [f"{p.key} {p.value!r} {p.rule}: {p.fix}" for p in problems_before_deploy(settings)]
    if not settings.serving.revision:
        todo.append(
            f"serving.revision is unpinned, so a restart may load a newer {settings.serving.model}: "
            "pulumi config set --path 'serving.revision' <hub-commit-sha>"
        )
    if "@sha256:" not in supply_chain.pinned_image(settings.serving.image):
        todo.append(
            f"no digest recorded for {settings.serving.image} (prod stacks are refused by preflight): "
            f"python -m ops preflight --stack {settings.stack} --record-digest"
        )
    return todo


def _load_balancer_sources(settings: Settings, rendering: Rendering) -> list[str]:
    """The CIDRs the rendered vLLM NetworkPolicy admits: the subnets the ALB is placed in (an
    existing VPC's are looked up at deploy time; offline they are stand-ins)."""
    if settings.network.existing_vpc_id:
        return [f"the CIDRs of network.publicSubnetIds {', '.join(settings.network.public_subnet_ids)}"]
    (serving,) = [p for p in rendering.of_type(NETWORK_POLICY) if p.inputs["metadata"]["name"] == workload.APP]
    return [
        peer["ipBlock"]["cidr"]
        for rule in serving.inputs["spec"]["ingress"]
        for peer in rule["from"]
        if "ipBlock" in peer
    ]


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
        f"  alerts: {len(observability.alerts.alert_names(o))} rules (runbooks: docs/operations.md); "
        f"SLOs p95 TTFT {o.ttft_p95_slo_seconds}s, p95 inter-token {o.itl_p95_slo_seconds}s",
        f"  open: {observability.port_forwards()['grafana']}",
    ]
    return lines


def scaling_lines(settings: Settings, sc: ScalingSettings) -> list[str]:
    """Bounds, triggers and behavior of the autoscalers, or the fixed size."""
    g = settings.gpu_nodes
    if not sc.enabled:
        return [
            f"  off: {settings.serving.replicas} replica(s) on {g.desired_size} GPU node(s) around the clock "
            "(pulumi config set --path 'scaling.enabled' true to scale with demand)"
        ]
    cold = scaling.cold_start_inputs(settings.serving.model_facts.weights_gb, settings.weights.source)
    # The plan renders what `pulumi up` sends: the wake trigger reads the ALB the Ingress names.
    policy = scaling.replica_policy(
        sc,
        replicas_per_node(settings),
        cold,
        region=settings.region,
        load_balancer=endpoint.load_balancer_name(settings.cluster_name),
        prometheus_url=observability.PROMETHEUS_URL,
    )
    _, chart, version = versions.CLUSTER_AUTOSCALER_CHART
    return [
        *(f"  {line}" for line in scaling_manifests.describe(policy)),
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
    on_day, off_day = scaling.scheduled_node_hours(
        sc,
        replicas_per_node(settings),
        scaling.cold_start_inputs(settings.serving.model_facts.weights_gb, settings.weights.source),
    )
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


def weights_lines(settings: Settings, rendering: Rendering) -> list[str]:
    """Where a new node's weights come from, and what the mirror is made of."""
    sv, w = settings.serving, settings.weights
    revision = weight_staging.revision(sv.revision)
    if w.source == "hub":
        return [
            f"hub: each new GPU node's stage-weights pod (a DaemonSet in a small image, started as the node joins)"
            f" downloads {sv.model}@{revision} from the Hugging Face Hub through the NAT gateway while the node"
            " pulls the vLLM image; vLLM waits for its marker (weights.source s3 keeps an in-region mirror instead)"
        ]
    bucket = rendering.outputs.get("weightMirror", "")
    made = "an existing bucket (weights.existingBucket)" if w.existing_bucket else "created by this stack"
    kept = (
        "kept on `pulumi destroy` (weights.retainOnDestroy) and imported by the next `pulumi up`;"
        " `ops sweep` lists it and never deletes it"
        if w.retain_on_destroy
        else "deleted with its objects on `pulumi destroy` (weights.retainOnDestroy false)"
    )
    lines = [
        f"s3: mirror {bucket}{weight_mirror.prefix(sv.model, revision)} ({made}; SSE-S3, public access blocked,"
        f" TLS only, versioned, retired revisions expire {w.noncurrent_days} days after deletion), {kept}",
        f"  filled once by Job {weight_mirror.job_name(sv.model, revision)} (Hub -> S3, every file checked against"
        " the Hub's sizes and sha256 before mirror-complete.json is written and KMS-signed); vLLM pods start only"
        " after it completed; the Job and its writer role exist only while the revision is unsigned (the next"
        " `pulumi up` after the fill removes them; weights.refill brings them back)",
        "  each new GPU node: its stage-weights pod (a DaemonSet in a small image, started as the node joins) copies"
        " S3 -> NVMe cache over the S3 gateway endpoint (no NAT) while the node pulls the vLLM image, checks every"
        " sha256, writes the marker; vLLM waits for it, then loads offline as from the Hub",
        f"  access by EKS Pod Identity: service account {weight_mirror.JOB_SERVICE_ACCOUNT} writes (while a fill is"
        f" pending), {weight_mirror.POD_SERVICE_ACCOUNT} reads, that prefix only",
    ]
    if settings.network.existing_vpc_id:
        lines.append(
            "  network.existingVpcId: give the VPC an S3 gateway endpoint on the GPU subnets' route tables,"
            " or the copy runs through your NAT"
        )
    return lines


def summary(settings: Settings, rendering: Rendering, secrets_set: frozenset[str] = frozenset()) -> str:
    sv, g, ep = settings.serving, settings.gpu_nodes, settings.endpoint
    model = sv.model_facts
    per_node = min(sv.replicas, settings.replicas_per_node)
    token_to = "stage-weights pods (Hub source)" if settings.weights.source == "hub" else "weights-mirror Job"
    token = (
        f"; HF_TOKEN from Secret {workload.HF_TOKEN_SECRET}, to the {token_to} only"
        if "hfToken" in rendering.secrets
        else ""
    )
    vllm_image = rendering.vllm_deployment().inputs["spec"]["template"]["spec"]["containers"][0]["image"]
    source = settings.weights.source
    start = {**workload.start_env(workload.timers(sv, source)), **profiles.vllm_env()}
    env = " ".join(f"{k}={v}" for k, v in start.items())
    argv = shlex.join(profiles.vllm_argv(sv))
    gpus_needed = sv.replicas * sv.gpus_per_replica
    cost, cost_detail = hourly_cost(settings)
    scheme = endpoint.url_scheme(ep)
    exposed = ", ".join(f"{p.path}{'/*' if p.path_type == 'Prefix' else ''}" for p in endpoint.EXPOSED_PATHS)
    sources = ", ".join(ep.source_ranges) or ("VPC only" if ep.scheme == "internal" else "")
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
        *(
            [
                "  updates: a Capacity Block group upgrades only at 0 nodes; version and launch template changes "
                "are held until gpuNodes.capacityBlockUpdate is scaleToZero, then apply (docs/operations.md)"
            ]
            if g.capacity_type == "CAPACITY_BLOCK"
            else []
        ),
        "",
        "Serving:",
        f"  model {sv.model}: {model.license.summary}",
        f"  profile {sv.profile} ({profiles.PROFILES[sv.profile].summary}), KV cache dtype {sv.kv_cache_dtype}",
        f"  {sv.replicas} replica(s) x {sv.gpus_per_replica} GPUs = {gpus_needed} of {g.desired_size * g.instance.gpus} GPUs, "
        f"{per_node} replica(s) per {g.instance_type}; image {sv.image}",
        "",
        "vLLM command (per replica, once the node's stage-weights pod has put the weights into the NVMe "
        f"cache; VLLM_API_KEY from Secret {workload.CREDENTIALS_SECRET}{token}):",
        f"  {env} {argv}",
        "",
        "Weights (weights.source; docs/weights.md):",
        *(f"  {line}" for line in weights_lines(settings, rendering)),
        "",
        "Pod security (components/kubernetes/pod_security.py):",
        f"  vLLM runs as UID {pod_security.RUN_AS_USER} with every capability dropped, no privilege escalation, seccomp"
        " RuntimeDefault, read-only root filesystem, no service-account token (the image has no non-root user and"
        " the model cache is a root-owned hostPath on the node)",
        f"  network: default-deny; in from the load balancer's subnets ({', '.join(_load_balancer_sources(settings, rendering))})"
        f" and the Prometheus pods of namespace {network_policy.MONITORING_NAMESPACE} to :{profiles.PORT};"
        "; out: nothing (vLLM runs the model's own code). The stage-weights pods: out to CoreDNS :53 and HTTPS :443"
        + (f", and the Pod Identity agent {network_policy.POD_IDENTITY_AGENT} :80" if source == "s3" else ""),
        f"  image {vllm_image} (the stack's in-region copy of {supply_chain.pinned_image(sv.image)}:"
        f" `python -m ops image copy --stack {settings.stack}`)",
        "",
        "Endpoint:",
        f"  {ep.scheme} ALB, {scheme}://<alb-dns-name> (port {endpoint.listener_port(ep)} only) -> pods :{profiles.PORT}, "
        f"idle timeout {ep.idle_timeout_seconds}s (floor {timeline.idle_timeout_floor(sv.max_model_len)}s:"
        f" {timeline.silent_request(sv.max_model_len).basis}, x{timeline.SAFETY:g}), sources {sources}"
        + (f", WAF {ep.waf_acl_arn}" if ep.waf_acl_arn else ""),
        *(f"  {line}" for line in exposure.plain_http_warning(ep.scheme, ep.source_ranges, ep.plain_http_accepted)),
        f"  forwarded: {exposed} (API key required under /v1); every other path: the ALB's own 404",
        "  in the cluster: Service vllm (ClusterIP) :8000, /metrics for scrapers",
        "",
        "Observability:",
        *observability_lines(settings),
        "",
        "Capacity:",
        *(f"  {line}" for line in capacity_tables.table_for(settings)),
        "",
        *cold_start_lines(settings),
        "",
        "Scaling:",
        *scaling_lines(settings, settings.scaling),
        "",
        "Routing:",
        *routing_lines(settings, rendering),
        "",
        f"Cost: about ${cost:,.2f}/hour ({cost_detail}), list prices before savings plans",
        *([line] if (line := daily_cost_line(settings, settings.scaling)) else []),
        "",
        "Stack outputs (what AWS assigns is known only after `pulumi up`):",
        *(
            f"  {name}: {'[secret]' if name in rendering.secret_outputs else known(value, rendering.invented)}"
            for name, value in sorted(rendering.outputs.items())
        ),
        "",
        "Before `pulumi up` (a real `pulumi up` stops until these are set, except the revision):",
        *(f"  - {line}" for line in before_up(settings, secrets_set) or ["nothing the offline plan can tell"]),
    ]
    return "\n".join(lines)
