"""KEDA and the ScaledObject that scales the vLLM Deployment.

Destroy order: the ScaledObject (and the TriggerAuthentication) depend on the KEDA release, so
Pulumi deletes them while the operator still runs to clear its finalizer; the release goes
after them, its CRDs last.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.aws import cluster as cluster_facts
from components.aws.pod_identity import workload_identity
from components.facts import image_pins, keda_chart, scraper, versions
from components.kubernetes import admission, admission_policies, custom_resource
from components.kubernetes import network_policy as np
from components.kubernetes import pod_security_admission as psa
from components.kubernetes.helm import pinned_release
from components.scaling import manifests as scaling_manifests
from components.scaling import policy as scaling
from components.serving import workload

NAMESPACE = keda_chart.NAMESPACE
POD_SECURITY = psa.NamespaceSecurity(
    NAMESPACE,
    psa.RESTRICTED,
    "the chart's three Deployments run as non-root with every capability dropped, no privilege"
    " escalation, the RuntimeDefault seccomp profile and only Secret volumes",
)
OPERATOR_SERVICE_ACCOUNT = "keda-operator"


def chart_values() -> dict:
    """KEDA's three Deployments on the system nodes, the operator under a known service account,
    each image at its digest (the chart joins repository:tag, so the tag carries it)."""
    key, value = cluster_facts.SYSTEM_POOL_LABEL
    on_system = {"nodeSelector": {key: value}}
    chart = versions.KEDA_CHART
    return {
        "crds": {"install": True},
        "image": {
            component: {"tag": image_pins.tag_at_digest(image_pins.image(chart, f"image.{component}.tag"))}
            for component in ("keda", "metricsApiServer", "webhooks")
        },
        "operator": dict(on_system),
        "metricsServer": dict(on_system),
        "webhooks": dict(on_system),
        "serviceAccount": {"operator": {"create": True, "name": OPERATOR_SERVICE_ACCOUNT}},
    }


def network_policies() -> list[dict]:
    """Default deny in the keda namespace, then: the operator asks Prometheus (its triggers), the
    API server and CloudWatch (443) with its Pod Identity credentials, and answers the metrics
    apiserver; the metrics apiserver and the webhooks answer the control plane
    (network_policy.CONTROL_PLANE) and call the API server. Ports and labels: facts/keda_chart.py."""
    labels = {"app.kubernetes.io/part-of": "minimax-vllm"}
    api = np.anywhere(443)
    operator = np.pods_in(NAMESPACE, {"matchLabels": keda_chart.OPERATOR})
    prometheus = np.pods_in(scraper.NAMESPACE, scraper.pod_selector())
    control_plane = [{"ipBlock": {"cidr": np.CONTROL_PLANE}}]
    return [
        np.default_deny(NAMESPACE, labels),
        np.allow(
            "keda-operator",
            NAMESPACE,
            labels,
            {"matchLabels": keda_chart.OPERATOR},
            ingress=[
                {
                    "from": [np.pods_in(NAMESPACE, {"matchLabels": keda_chart.METRICS_APISERVER})],
                    "ports": np.tcp(keda_chart.OPERATOR_GRPC_PORT),
                }
            ],
            # Prometheus' own policy admits the operator on its API port only.
            egress=[np.dns(), {"to": [prometheus]}, api, np.pod_identity_agent()],
        ),
        np.allow(
            "keda-metrics-apiserver",
            NAMESPACE,
            labels,
            {"matchLabels": keda_chart.METRICS_APISERVER},
            ingress=[{"from": control_plane, "ports": np.tcp(keda_chart.METRICS_APISERVER_PORT)}],
            egress=[np.dns(), {"to": [operator], "ports": np.tcp(keda_chart.OPERATOR_GRPC_PORT)}, api],
        ),
        np.allow(
            "keda-admission-webhooks",
            NAMESPACE,
            labels,
            {"matchLabels": keda_chart.WEBHOOKS},
            ingress=[{"from": control_plane, "ports": np.tcp(keda_chart.WEBHOOKS_PORT)}],
            egress=[np.dns(), api],
        ),
    ]


# The aws-cloudwatch scaler reads metrics with GetMetricData; CloudWatch has no resource-level
# permissions for it.
CLOUDWATCH_READ = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["cloudwatch:GetMetricData"], "Resource": "*"}],
    }
)


@dataclass(frozen=True)
class ReplicaAutoscalerArgs:
    policy: scaling.ReplicaPolicy
    cluster_name: pulumi.Input[str]
    cluster_arn: pulumi.Input[str]  # Pod Identity trust is scoped to this cluster
    provider: k8s.Provider
    tags: dict[str, str]
    deployment: pulumi.Resource  # the vLLM Deployment the ScaledObject scales
    depends_on: tuple[pulumi.Resource, ...] = ()  # system nodes, pod identity agent


class ReplicaAutoscaler(pulumi.ComponentResource):
    def __init__(self, name: str, args: ReplicaAutoscalerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("minimax-vllm:k8s:ReplicaAutoscaler", name, None, opts)
        uses_aws = any(t.authentication == scaling.AWS_TRIGGER_AUTH for t in args.policy.triggers)
        needs: list[pulumi.Resource] = list(args.depends_on)
        if uses_aws:
            identity = workload_identity(
                name,
                self,
                cluster_name=args.cluster_name,
                cluster_arn=args.cluster_arn,
                namespace=NAMESPACE,
                service_account=OPERATOR_SERVICE_ACCOUNT,
                tags=args.tags,
                policy_document=CLOUDWATCH_READ,
                depends_on=args.depends_on,
            )
            needs.append(identity.association)  # it waits for the role's grant
        ns = psa.namespace(POD_SECURITY)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.depends_on))
        namespace = k8s.core.v1.Namespace(f"{name}-namespace", metadata=ns["metadata"], opts=on_cluster)
        needs.append(namespace)
        in_ns = pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[namespace]))
        for pol in network_policies():  # before the chart's pods
            needs.append(
                k8s.networking.v1.NetworkPolicy(
                    f"{name}-netpol-{pol['metadata']['name']}", metadata=pol["metadata"], spec=pol["spec"], opts=in_ns
                )
            )
        self.release = pinned_release(
            f"{name}-release",
            versions.KEDA_CHART,
            namespace=NAMESPACE,
            values=chart_values(),
            # CRDs and the admission webhook must be ready before the ScaledObject is sent.
            skip_await=False,
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=needs),
        )
        on_keda = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[self.release])
        only_here = admission_policies.keda_objects_only_in(workload.NAMESPACE, workload.LABELS)
        fence = admission.policy_with_binding(f"{name}-objects-only-in-{workload.NAMESPACE}", *only_here, opts=on_keda)
        scaled_deps: list[pulumi.Resource] = [self.release, args.deployment, *fence]
        if uses_aws:
            auth = scaling_manifests.aws_trigger_authentication(workload.LABELS)
            scaled_deps.append(custom_resource.from_object(f"{name}-aws-auth", auth, on_keda))
        obj = scaling_manifests.scaled_object(args.policy, workload.LABELS)
        self.scaled_object = custom_resource.from_object(
            f"{name}-scaledobject",
            obj,
            pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=scaled_deps),
        )
        self.register_outputs({"status": self.release.status})
