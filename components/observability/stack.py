"""The monitoring stack as a Pulumi component: namespace, the pinned Helm releases, the vLLM
PodMonitor, dashboards and alert rules, and (observability.mode amp) the AMP workspace with its
Pod Identity roles. What it installs is built by the pure functions in components/observability/values.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws.pod_identity import workload_identity
from components.facts import versions
from components.kubernetes import crds, custom_resource
from components.kubernetes import pod_security_admission as psa
from components.kubernetes.helm import pinned_release
from components.observability import alerts, dashboards
from components.observability import network as monitoring_network
from components.observability.values import (
    AMP_READ_ACTIONS,
    AMP_WRITE_ACTIONS,
    GRAFANA_SERVICE_ACCOUNT,
    NAMESPACE,
    NODE_METRICS_NAMESPACE,
    NODE_METRICS_POD_SECURITY,
    POD_SECURITY,
    PROMETHEUS_SERVICE_ACCOUNT,
    amp_policy,
    dcgm_values,
    router_pod_monitor,
    rules_document,
    sorted_keys,
    stack_values,
    vllm_pod_monitor,
)
from components.settings.observability import ObservabilitySettings


@dataclass(frozen=True)
class ObservabilityArgs:
    settings: ObservabilitySettings
    cluster_name: pulumi.Input[str]
    cluster_arn: pulumi.Input[str]  # Pod Identity trust is scoped to this cluster
    region: str
    # The serving Deployment's cold-start budget (timeline.Timers.cold_start_alert) for its alert.
    cold_start_budget_s: int
    provider: k8s.Provider
    tags: dict[str, str]
    # The system nodes (for the stack) and the GPU node group (for dcgm-exporter's first pods).
    depends_on: tuple[pulumi.Resource, ...] = ()
    # Where the stack's Helm releases run: the PodRestarting alert watches them.
    release_namespaces: frozenset[str] = frozenset()
    # routing.mode router: the router's pods are scraped too.
    router: bool = False


class Observability(pulumi.ComponentResource):
    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("minimax-vllm:k8s:Observability", name, None, opts)
        o = args.settings
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.depends_on))
        ns = psa.namespace(POD_SECURITY, {"app.kubernetes.io/part-of": "minimax-vllm"})
        namespace = k8s.core.v1.Namespace(f"{name}-namespace", metadata=ns["metadata"], opts=on_cluster)
        in_ns = pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[namespace]))
        # The exporters that read the node, apart: only this namespace is privileged.
        nm = psa.namespace(NODE_METRICS_POD_SECURITY, {"app.kubernetes.io/part-of": "minimax-vllm"})
        node_metrics = k8s.core.v1.Namespace(f"{name}-node-metrics", metadata=nm["metadata"], opts=on_cluster)
        in_node_metrics = pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[node_metrics]))
        fenced = [  # before the charts' pods
            k8s.networking.v1.NetworkPolicy(
                f"{name}-netpol-{'' if pol['metadata']['namespace'] == NAMESPACE else 'node-metrics-'}{pol['metadata']['name']}",
                metadata=pol["metadata"],
                spec=pol["spec"],
                opts=in_ns if pol["metadata"]["namespace"] == NAMESPACE else in_node_metrics,
            )
            for pol in [*monitoring_network.policies(), *monitoring_network.node_metrics_policies()]
        ]

        amp_endpoint: pulumi.Input[str] | None = None
        identity: list[pulumi.Resource] = []
        self.workspace_id: pulumi.Output[str] | None = None
        if o.mode == "amp":
            child = pulumi.ResourceOptions(parent=self)
            workspace = aws.amp.Workspace(f"{name}-amp", alias=args.cluster_name, tags=args.tags, opts=child)
            aws.amp.RuleGroupNamespace(
                f"{name}-rules",
                name="minimax-vllm-serving",
                workspace_id=workspace.id,
                data=rules_document(o, args.cold_start_budget_s, args.release_namespaces),
                tags=args.tags,
                opts=child,
            )
            # One role per service account, each with only what it does: trust scoped to its own
            # namespace and account, the policy to writing (Prometheus) or reading (Grafana).
            for account, kind, actions in (
                (PROMETHEUS_SERVICE_ACCOUNT, "write", AMP_WRITE_ACTIONS),
                (GRAFANA_SERVICE_ACCOUNT, "read", AMP_READ_ACTIONS),
            ):
                policy = aws.iam.Policy(
                    f"{name}-amp-{kind}-policy",
                    policy=workspace.arn.apply(lambda arn, a=actions: amp_policy(arn, a)),
                    tags=args.tags,
                    opts=child,
                )
                granted = workload_identity(
                    f"{name}-{account}",
                    self,
                    cluster_name=args.cluster_name,
                    cluster_arn=args.cluster_arn,
                    namespace=NAMESPACE,
                    service_account=account,
                    tags=args.tags,
                    policy_arn=policy.arn,
                    depends_on=args.depends_on,
                )
                identity.append(granted.association)
            amp_endpoint = workspace.prometheus_endpoint
            self.workspace_id = workspace.id

        values = (
            pulumi.Output.from_input(amp_endpoint).apply(lambda url: stack_values(o, args.region, url))
            if amp_endpoint is not None
            else stack_values(o, args.region)
        )
        # The operator's CRDs are the program's (components/kubernetes/crds.py): upgraded with the chart pin.
        self.crds = crds.crd_group(f"{name}-crds", crds.prometheus_operator_crd_urls(), on_cluster)
        self.stack = pinned_release(
            f"{name}-stack",
            versions.KUBE_PROMETHEUS_STACK_CHART,
            namespace=NAMESPACE,
            values=values,
            opts=pulumi.ResourceOptions.merge(
                in_ns, pulumi.ResourceOptions(depends_on=[namespace, node_metrics, self.crds, *identity, *fenced])
            ),
            skip_crds=True,
            # The CRDs, the operator and its webhook must be up before the rules and monitors below.
            skip_await=False,
            timeout=900,  # seconds: CRDs, the webhook's certificate job, then every pod Ready
        )
        after_stack = pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=[namespace, self.stack]))
        self.dcgm = pinned_release(
            f"{name}-dcgm",
            versions.DCGM_EXPORTER_CHART,
            namespace=NODE_METRICS_NAMESPACE,
            values=dcgm_values(),
            opts=pulumi.ResourceOptions.merge(after_stack, pulumi.ResourceOptions(depends_on=[node_metrics])),
            # A DaemonSet with no GPU node yet is still a correct install.
            skip_await=True,
        )
        custom_resource.from_object(f"{name}-vllm-podmonitor", vllm_pod_monitor(o), after_stack)
        if args.router:
            custom_resource.from_object(f"{name}-router-podmonitor", router_pod_monitor(o), after_stack)
        if o.mode == "in-cluster":
            custom_resource.from_object(
                f"{name}-rules",
                sorted_keys(alerts.prometheus_rule(o, args.cold_start_budget_s, args.release_namespaces)),
                after_stack,
            )
        for cm in dashboards.config_maps(o.ttft_p95_slo_seconds, o.itl_p95_slo_seconds):
            k8s.core.v1.ConfigMap(
                f"{name}-{cm['metadata']['name']}", metadata=cm["metadata"], data=cm["data"], opts=in_ns
            )
        outputs: dict[str, Any] = {"namespace": NAMESPACE, "mode": o.mode}
        if self.workspace_id is not None:
            outputs["ampWorkspaceId"] = self.workspace_id
        self.register_outputs(outputs)
