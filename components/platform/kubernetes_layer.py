"""The Kubernetes layer on the AWS layer: device plugin, load balancer controller, vLLM and its ALB,
and (unless `observability.mode` is off) metrics, dashboards and alerts.

Every Kubernetes resource uses the AWS layer's one explicit provider. Dependencies are
declared so that `pulumi destroy` removes the Ingress (and so its ALB) while the controller,
its identity, the nodes, CoreDNS and the networking add-ons, the NAT routes, the subnets and
the cluster are all still there (the Ingress depends on the controller, which depends on them;
tests/test_lifecycle.py computes the delete waves).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_kubernetes as k8s

from components.aws import edge
from components.kubernetes import device_plugin, load_balancer_controller
from components.kubernetes import pod_security_admission as psa
from components.kubernetes.device_plugin import DevicePlugin, DevicePluginArgs
from components.kubernetes.load_balancer_controller import LoadBalancerController, LoadBalancerControllerArgs
from components.observability import values as observability
from components.observability.stack import Observability, ObservabilityArgs
from components.scaling import cluster_autoscaler, replica_autoscaler
from components.scaling import policy as scaling_policy
from components.scaling.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from components.scaling.replica_autoscaler import ReplicaAutoscaler, ReplicaAutoscalerArgs
from components.scaling.rules import replicas_per_node
from components.serving import endpoint, workload
from components.serving.vllm_service import VllmService, VllmServiceArgs
from components.settings.scaling import ScalingSettings
from components.settings.stack import PROJECT, Secrets, Settings
from components.weights import compile_cache_objects

if TYPE_CHECKING:
    from components.platform.aws_layer import AwsLayer


def build_kubernetes(settings: Settings, secrets: Secrets, aws: AwsLayer, scaling: ScalingSettings) -> dict[str, Any]:
    base = settings.cluster_name
    # kube-system exists already: its Pod Security labels go on by a server-side patch, which
    # `pulumi destroy` takes off again.
    kube_system = psa.namespace(psa.KUBE_SYSTEM)
    k8s.core.v1.NamespacePatch(
        f"{base}-kube-system-pod-security",
        metadata=kube_system["metadata"],
        opts=pulumi.ResourceOptions(provider=aws.provider, depends_on=[aws.system_nodes]),
    )
    plugin = DevicePlugin(f"{base}-nvidia", DevicePluginArgs(provider=aws.provider, depends_on=(aws.gpu_nodes,)))
    controller = LoadBalancerController(
        f"{base}-lbc",
        LoadBalancerControllerArgs(
            cluster_name=aws.cluster_name,
            cluster_arn=aws.cluster_arn,
            vpc_id=aws.vpc_id,
            region=aws.region,
            ingress_namespace=workload.NAMESPACE,
            scheme=settings.endpoint.scheme,
            provider=aws.provider,
            tags=settings.tags,
            # Created after, and so deleted before, everything it needs to manage load balancers.
            depends_on=aws.controller_prerequisites,
        ),
    )
    vllm = VllmService(
        f"{base}-vllm",
        VllmServiceArgs(
            serving=settings.serving,
            endpoint=settings.endpoint,
            instance=settings.gpu_nodes.instance,
            secrets=secrets,
            provider=aws.provider,
            tags=settings.tags,
            load_balancer_subnet_ids=aws.load_balancer_subnet_ids,
            load_balancer_cidrs=aws.load_balancer_cidrs,
            load_balancer_name=endpoint.load_balancer_name(settings.cluster_name),
            depends_on=(controller, plugin, aws.gpu_nodes),
            autoscaled=scaling.enabled,
            # The router wherever more than one prefix cache can serve (`Settings.routing_mode`).
            routing=settings.routing if settings.routing_mode == "router" else None,
            registry=aws.registry,
            repositories=aws.repositories,
            mirror=(
                workload.MirrorSource(
                    aws.mirror.bucket,
                    aws.region,
                    aws.mirror.owner,
                    aws.mirror.fills,
                    compile_cache_objects.prefix(settings.cluster_name)
                    if settings.weights.shares_compile_cache
                    else None,
                )
                if aws.mirror
                else None
            ),
            mirror_identities=tuple(aws.mirror.associations) if aws.mirror else (),
            edge=endpoint.EdgeRefs(aws.edge.web_acl_arn, aws.edge.logs_bucket, edge.LOG_PREFIX) if aws.edge else None,
            edge_ready=tuple(aws.edge.ready) if aws.edge else (),
        ),
    )
    if settings.observability.enabled:
        Observability(
            f"{base}-observability",
            ObservabilityArgs(
                settings=settings.observability,
                cluster_name=aws.cluster_name,
                cluster_arn=aws.cluster_arn,
                region=aws.region,
                cold_start_budget_s=workload.timers(settings.serving, settings.weights.source).cold_start_alert,
                provider=aws.provider,
                tags=settings.tags,
                depends_on=(aws.system_nodes, aws.pod_identity_agent),
                release_namespaces=release_namespaces(settings, scaling),
                router=settings.routing_mode == "router",
            ),
        )
    if scaling.enabled:
        build_autoscaling(settings, scaling, aws, vllm.deployment)
    served = settings.serving.served_model_name
    curl = vllm.endpoint_url.apply(lambda url: curl_command(url, served))
    return {"endpointUrl": vllm.endpoint_url, "servedModelName": served, "curl": curl, "namespace": workload.NAMESPACE}


def release_namespaces(settings: Settings, scaling: ScalingSettings) -> frozenset[str]:
    """The namespaces of the Helm releases this stack installs, as build_kubernetes decides them."""
    found = {device_plugin.NAMESPACE, load_balancer_controller.NAMESPACE}
    if settings.observability.enabled:
        found |= {observability.NAMESPACE, observability.NODE_METRICS_NAMESPACE}
    if scaling.enabled:
        found |= {cluster_autoscaler.NAMESPACE, replica_autoscaler.NAMESPACE}
    return frozenset(found)


def curl_command(url: str, served_model_name: str) -> str:
    """A chat request to paste: the key is read from the stack's secret when it runs, never stored here."""
    if not url.startswith("http"):
        url = "$(pulumi stack output endpointUrl)"
    return (
        f"curl -sS {url}/v1/chat/completions "
        f'-H "Authorization: Bearer $(pulumi config get {PROJECT}:apiKey)" '
        "-H 'Content-Type: application/json' "
        f'-d \'{{"model": "{served_model_name}", "messages": [{{"role": "user", "content": "Hello"}}], '
        '"temperature": 1.0, "top_p": 0.95, "top_k": 40}\''
    )


def build_autoscaling(settings: Settings, scaling: ScalingSettings, aws: AwsLayer, deployment: Any) -> None:
    """KEDA on the vLLM Deployment and the Cluster Autoscaler on the GPU node group."""
    base = settings.cluster_name
    cold = scaling_policy.cold_start_inputs(settings.serving.model_facts.weights_gb, settings.weights.source)
    on_system = (aws.system_nodes, aws.pod_identity_agent)
    ClusterAutoscaler(
        f"{base}-cluster-autoscaler",
        ClusterAutoscalerArgs(
            cluster_name=settings.cluster_name,
            cluster_name_output=aws.cluster_name,
            cluster_arn=aws.cluster_arn,
            region=aws.region,
            kubernetes_version=settings.cluster.kubernetes_version,
            cold_start=cold,
            provider=aws.provider,
            tags=settings.tags,
            depends_on=on_system,
        ),
    )
    policy = scaling_policy.replica_policy(
        scaling,
        replicas_per_node(settings),
        cold,
        region=aws.region,
        load_balancer=endpoint.load_balancer_name(settings.cluster_name),
        # The monitoring stack owns the address (the Service its chart creates).
        prometheus_url=observability.PROMETHEUS_URL,
    )
    ReplicaAutoscaler(
        f"{base}-keda",
        ReplicaAutoscalerArgs(
            policy=policy,
            cluster_name=aws.cluster_name,
            cluster_arn=aws.cluster_arn,
            provider=aws.provider,
            tags=settings.tags,
            deployment=deployment,
            depends_on=on_system,
        ),
    )
