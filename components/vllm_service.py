"""The vLLM workload (namespace, credentials, Deployment, disruption budget) and its NLB endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import workload
from components.settings import EndpointSettings, InstanceType, Secrets, ServingSettings

# Wait for the model to really serve before `pulumi up` reports success, within the startup budget.
ROLLOUT_TIMEOUT = f"{workload.STARTUP_BUDGET_SECONDS // 60 + 15}m"


@dataclass(frozen=True)
class VllmServiceArgs:
    serving: ServingSettings
    endpoint: EndpointSettings
    instance: InstanceType
    secrets: Secrets
    provider: k8s.Provider
    tags: dict[str, str]
    # The Service must go before the load balancer controller on destroy, so the controller is
    # still there to delete the NLB it made.
    depends_on: tuple[pulumi.Resource, ...] = ()
    # KEDA owns spec.replicas once scaling is on (see VllmService).
    autoscaled: bool = False


class VllmService(pulumi.ComponentResource):
    def __init__(self, name: str, args: VllmServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("minimax-vllm:k8s:VllmService", name, None, opts)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.depends_on))
        ns = workload.namespace()
        namespace = k8s.core.v1.Namespace(f"{name}-namespace", metadata=ns["metadata"], opts=on_cluster)
        in_ns = pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[namespace]))

        string_data: dict[str, Any] = {"api-key": args.secrets.api_key}
        if args.secrets.hf_token is not None:
            string_data["hf-token"] = args.secrets.hf_token
        credentials = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata={"name": workload.CREDENTIALS_SECRET, "namespace": workload.NAMESPACE},
            type="Opaque",
            string_data=string_data,
            opts=in_ns,
        )
        deployment = workload.deployment(
            args.serving, args.instance, args.secrets.hf_token is not None, autoscaled=args.autoscaled
        )
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=deployment["metadata"],
            spec=deployment["spec"],
            opts=pulumi.ResourceOptions.merge(
                in_ns,
                pulumi.ResourceOptions(
                    depends_on=[credentials],
                    custom_timeouts=pulumi.CustomTimeouts(create=ROLLOUT_TIMEOUT, update=ROLLOUT_TIMEOUT),
                    # With autoscaling, serving.replicas is only the starting count: later updates
                    # must not reset what KEDA's HPA set. Under server-side apply the provider then
                    # drops spec.replicas from its patch when the HPA owns the field, or sends the
                    # live value (pulumi-kubernetes >= 4.9). Omitting replicas instead would reset
                    # an existing Deployment to the default of 1 on the first update.
                    ignore_changes=["spec.replicas"] if args.autoscaled else None,
                ),
            ),
        )
        pdb = workload.disruption_budget()
        k8s.policy.v1.PodDisruptionBudget(f"{name}-pdb", metadata=pdb["metadata"], spec=pdb["spec"], opts=in_ns)
        svc = workload.service(args.endpoint, args.tags)
        self.service = k8s.core.v1.Service(f"{name}-service", metadata=svc["metadata"], spec=svc["spec"], opts=in_ns)

        scheme = "https" if args.endpoint.certificate_arn else "http"
        port = workload.listener_port(args.endpoint)
        self.endpoint_url = self.service.status.apply(lambda status: _url(status, scheme, port))
        self.register_outputs({"endpointUrl": self.endpoint_url})


def _url(status: Any, scheme: str, port: int) -> str:
    """The NLB's URL once the controller has published it; until then, how to get it."""
    ingress = (getattr(getattr(status, "load_balancer", None), "ingress", None) or []) if status else []
    host = next((getattr(i, "hostname", None) or getattr(i, "ip", None) for i in ingress), None)
    if not host:
        return "pending: the NLB is being created; run `pulumi refresh` then `pulumi stack output endpointUrl`"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + ("" if port == default else f":{port}")
