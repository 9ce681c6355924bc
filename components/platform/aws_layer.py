"""The AWS side of the platform: network, EKS cluster, GPU node group, and what the
Kubernetes layer needs from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws import image_registry, reservations
from components.aws.cluster import NODE_GROUP_NAME_MAX, Cluster, ClusterArgs
from components.aws.edge import Edge, EdgeArgs
from components.aws.flow_logs import FlowLogs, FlowLogsArgs, flow_logs_group_name
from components.aws.gpu_nodes import GpuNodeGroup, GpuNodeGroupArgs
from components.aws.image_repositories import ImageRepositories, ImageRepositoriesArgs
from components.aws.launch_template import short_name
from components.aws.network import ExistingVpc, Network, NetworkArgs, ZonePlan, plan_zones
from components.facts import versions
from components.facts.catalog import BY_ZONE
from components.scaling import node_drain
from components.serving import routing, workload
from components.settings.scaling import ScalingSettings
from components.settings.stack import Settings
from components.weights import compile_cache_objects
from components.weights import mirror as weight_mirror
from components.weights import staging as weight_staging
from components.weights.mirror_bucket import MirrorBucket, MirrorBucketArgs, bucket_name


@dataclass(frozen=True)
class AwsLayer:
    cluster_name: pulumi.Output[str]
    cluster_arn: pulumi.Output[str]
    vpc_id: pulumi.Output[str]
    # The subnets the ALB is placed in, and their CIDRs: its nodes send from these addresses, and
    # no node or pod has one (the NetworkPolicy admits exactly these; docs/operations.md, Network exposure).
    load_balancer_subnet_ids: pulumi.Output[list[str]]
    load_balancer_cidrs: tuple[str, ...]
    region: str
    provider: k8s.Provider  # the one Kubernetes provider: every Kubernetes resource uses it
    kubeconfig: pulumi.Output[str]  # secret
    cluster: pulumi.Resource  # the Cluster component: depend on it for API access, add-ons, system nodes
    system_nodes: pulumi.Resource
    gpu_nodes: pulumi.Resource  # the GPU managed node group
    pod_identity_agent: pulumi.Resource  # the add-on; Pod Identity associations need it
    # What the load balancer controller needs to create and delete load balancers: its nodes,
    # DNS and the networking add-ons, and (through the nodes) the NAT routes and subnets.
    controller_prerequisites: tuple[pulumi.Resource, ...]
    outputs: dict[str, Any]
    mirror: MirrorBucket | None = None  # weights.source s3: the bucket and its Pod Identity roles
    # The account's ECR registry in the stack's region and the stack's repositories in it: every
    # image of the vLLM namespace (vLLM's copy, the stager, the router) is pulled from there.
    registry: image_registry.Registry = image_registry.Registry("", "")
    repositories: tuple[pulumi.Resource, ...] = ()
    edge: Edge | None = None  # the ALB's web ACL and access-log bucket


def _offering_zones(instance_type: str) -> list[str]:
    """Zones of the region that offer the instance type (p5 is in only some zones)."""
    found = aws.ec2.get_instance_type_offerings(
        location_type="availability-zone",
        filters=[aws.ec2.GetInstanceTypeOfferingsFilterArgs(name="instance-type", values=[instance_type])],
    )
    return list(found.locations)


def _region_zones() -> list[str]:
    """Available zones of the region, without opt-in Local or Wavelength Zones."""
    found = aws.get_availability_zones(
        state="available",
        filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])],
    )
    return list(found.names)


def resolve_zones(settings: Settings) -> tuple[ZonePlan, ExistingVpc | None]:
    """Network and GPU zones: from settings where given, else looked up (an offline rendering,
    or the first choice preflight records: a real deploy stops until they are recorded)."""
    net, gpu = settings.network, settings.gpu_nodes
    offering = None if gpu.availability_zones else _offering_zones(gpu.instance_type)
    if net.existing_vpc_id:
        private = tuple((sid, aws.ec2.get_subnet(id=sid).availability_zone) for sid in net.private_subnet_ids)
        zones = tuple(dict.fromkeys(z for _, z in private))
        plan = plan_zones(zones, offering, zones, gpu.availability_zones)
        public_cidrs = tuple(aws.ec2.get_subnet(id=sid).cidr_block for sid in net.public_subnet_ids)
        return plan, ExistingVpc(net.existing_vpc_id, net.public_subnet_ids, private, public_cidrs)
    region_zones = () if net.availability_zones else _region_zones()
    return plan_zones(region_zones, offering, net.availability_zones, gpu.availability_zones), None


def deployer_principal_arn(caller: aws.GetCallerIdentityResult) -> str:
    """The IAM role or user running `pulumi up`. Access entries reject STS assumed-role ARNs,
    so an assumed role is mapped back to its IAM role."""
    return aws.iam.get_session_context(arn=caller.arn).issuer_arn


def build_aws(settings: Settings, scaling: ScalingSettings) -> AwsLayer:
    name = settings.cluster_name
    tags = settings.tags
    zones, existing = resolve_zones(settings)
    caller = aws.get_caller_identity()
    partition = aws.get_partition().partition
    w = settings.weights
    mirror_bucket = (
        (w.existing_bucket or bucket_name(name, caller.account_id, settings.region)) if w.source == "s3" else None
    )
    network = Network(
        name,
        NetworkArgs(
            cluster_name=name,
            zones=zones,
            tags=tags,
            vpc_cidr=settings.network.vpc_cidr,
            subnet_layout=settings.network.subnet_layout or BY_ZONE,
            existing=existing,
            region=settings.region,
            partition=partition,
            s3_buckets=(mirror_bucket,) if mirror_bucket else (),
        ),
    )
    security = settings.security
    flow_log_group = flow_logs_group_name(name)
    k8s_version = settings.cluster.kubernetes_version
    registry = image_registry.Registry(image_registry.registry_host(caller.account_id, settings.region), name)
    images = ImageRepositories(f"{name}-images", ImageRepositoriesArgs(registry=registry, tags=tags))
    addon_versions = versions.EKS_ADDON_VERSIONS[k8s_version]  # settings admit only pinned versions
    cluster = Cluster(
        name,
        ClusterArgs(
            cluster_name=name,
            kubernetes_version=k8s_version,
            region=settings.region,
            partition=partition,
            account_id=caller.account_id,
            subnet_ids=network.private_subnet_ids,
            deployer_arn=deployer_principal_arn(caller),
            access_entries=tuple((e.principal_arn, e.policy, e.namespaces) for e in settings.cluster.access_entries),
            public_access_cidrs=settings.cluster.public_access_cidrs,
            system_instance_type=settings.cluster.system_instance_type,
            log_retention_days=settings.cluster.log_retention_days,
            addon_versions=addon_versions,
            tags=tags,
            egress=network.egress,
            extra_log_groups=(flow_log_group,) if security.flow_logs else (),
            aws_profile=settings.aws_profile,
            aws_role_arn=settings.aws_role_arn,
        ),
    )
    if security.flow_logs:
        FlowLogs(
            f"{name}-flow-logs",
            FlowLogsArgs(
                vpc_id=network.vpc_id,
                log_group_name=flow_log_group,
                retention_days=security.flow_log_retention_days,
                kms_key_arn=cluster.key_arn,
                partition=partition,
                region=settings.region,
                account_id=caller.account_id,
                tags=tags,
            ),
        )
    g = settings.gpu_nodes
    shape = reservations.node_group_shape(g)
    gpu = GpuNodeGroup(
        f"{name}-gpu",
        GpuNodeGroupArgs(
            cluster_name=cluster.name,
            kubernetes_version=cluster.eks.version,
            node_role_arn=cluster.gpu_node_role.arn,
            subnet_ids=network.gpu_subnet_ids,
            node_group_name=short_name(name, "gpu", NODE_GROUP_NAME_MAX),
            instance_type=g.instance_type,
            min_size=shape.min_size,
            desired_size=shape.desired_size,
            max_size=g.max_size,
            capacity_type=g.capacity_type,
            capacity_reservation_id=g.capacity_reservation_id,
            root_volume_gib=g.root_volume_gib,
            tags=tags,
            depends_on=tuple(cluster.node_prerequisites),
            ignore_changes=shape.ignore_changes,
            autoscaled=scaling.enabled,
            force_update_version=node_drain.needs_force(settings),
            gpus_per_node=g.instance.gpus,
            gpu_model=g.instance.gpu_model,
        ),
    )
    mirror = None
    if mirror_bucket:
        mirror = MirrorBucket(
            f"{name}-weights",
            MirrorBucketArgs(
                bucket=mirror_bucket,
                create=w.existing_bucket is None,
                key_prefix=weight_mirror.prefix(
                    settings.serving.model, weight_staging.revision(settings.serving.revision)
                ),
                cluster_name=cluster.name,
                cluster_arn=cluster.eks.arn,
                namespace=workload.NAMESPACE,
                partition=partition,
                region=settings.region,
                account_id=caller.account_id,
                retain_on_destroy=w.retain_on_destroy,
                refill=w.refill,
                noncurrent_days=w.noncurrent_days,
                tags=tags,
                depends_on=(cluster.pod_identity_agent,),
                compile_cache_entry=(
                    compile_cache_objects.entry(
                        compile_cache_objects.prefix(settings.cluster_name),
                        workload.compile_cache_key(
                            settings.serving,
                            settings.gpu_nodes.instance,
                            registry,
                            routing.vllm_keep_alive(settings.endpoint) if settings.routing_mode == "router" else None,
                        ),
                    )
                    if w.shares_compile_cache
                    else None
                ),
            ),
        )
    edge = Edge(
        f"{name}-edge",
        EdgeArgs(
            cluster_name=name,
            account_id=caller.account_id,
            region=settings.region,
            partition=partition,
            rate_limit=settings.endpoint.waf_rate_limit,
            own_web_acl=settings.endpoint.waf_acl_arn is None,
            tags=tags,
        ),
    )
    return AwsLayer(
        edge=edge,
        mirror=mirror,
        cluster_name=cluster.name,
        cluster_arn=cluster.eks.arn,
        vpc_id=network.vpc_id,
        load_balancer_subnet_ids=network.public_subnet_ids,
        load_balancer_cidrs=network.public_subnet_cidrs,
        region=settings.region,
        provider=cluster.provider,
        kubeconfig=cluster.kubeconfig,
        cluster=cluster,
        system_nodes=cluster.system_nodes,
        gpu_nodes=gpu.node_group,
        pod_identity_agent=cluster.pod_identity_agent,
        registry=registry,
        repositories=tuple(images.repositories[i] for i in sorted(images.repositories)),
        controller_prerequisites=(cluster.system_nodes, *(cluster.addons[a] for a in sorted(cluster.addons))),
        outputs={
            "clusterName": cluster.name,
            "kubeconfig": cluster.kubeconfig,
            "vpcId": network.vpc_id,
            "gpuNodeGroupName": gpu.node_group_name,
            "region": settings.region,
            **({"weightMirror": f"s3://{mirror.bucket}/"} if mirror else {}),
        },
    )
