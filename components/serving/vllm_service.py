"""The vLLM workload (namespace, credentials, Deployment, disruption budget) and its ALB endpoint."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.aws import image_registry
from components.facts import gpu_pool, timeline
from components.kubernetes import admission, admission_policies
from components.serving import endpoint, profiles, routing, serving_network, stager, workload
from components.settings.endpoint import EndpointSettings
from components.settings.routing import RoutingSettings
from components.settings.stack import InstanceType, Secrets, ServingSettings
from components.weights import compile_cache_objects


def rollout_timeouts(t: timeline.Timers) -> pulumi.CustomTimeouts:
    """`pulumi up` waits until the model really serves: a new node's cold start on create, every
    replica in turn on update (Pulumi's default for a Deployment is 10 minutes)."""
    return pulumi.CustomTimeouts(
        create=f"{-(-t.create_timeout // 60)}m",
        update=f"{-(-t.update_timeout // 60)}m",
        delete=f"{-(-t.delete_timeout // 60)}m",
    )


@dataclass(frozen=True)
class VllmServiceArgs:
    serving: ServingSettings
    endpoint: EndpointSettings
    instance: InstanceType
    secrets: Secrets
    provider: k8s.Provider
    tags: dict[str, str]
    # The subnets the ALB is placed in (its `subnets` annotation) and their CIDRs (what the pods
    # admit): one list, so the load balancer sits exactly where the NetworkPolicy looks for it.
    load_balancer_subnet_ids: pulumi.Input[Sequence[str]]
    load_balancer_cidrs: tuple[str, ...]
    load_balancer_name: str  # endpoint.load_balancer_name(cluster name); the wake trigger reads it too
    # The Ingress must go before the load balancer controller on destroy, so the controller is
    # still there to delete the ALB it made.
    depends_on: tuple[pulumi.Resource, ...] = ()
    # KEDA owns spec.replicas once scaling is on (see VllmService).
    autoscaled: bool = False
    # weights.source s3: the mirror, and the Pod Identity associations its pods need at creation
    # (credentials are injected only into pods created after the association exists).
    mirror: workload.MirrorSource | None = None
    mirror_identities: tuple[pulumi.Resource, ...] = ()
    # routing.mode router: vLLM's router between the ALB and the replicas (components/serving/routing.py).
    routing: RoutingSettings | None = None
    # The stack's ECR registry: every image of the namespace is pulled from it, in-region.
    registry: image_registry.Registry = image_registry.Registry("", "")
    # The repositories themselves: no pod is created before they exist.
    repositories: tuple[pulumi.Resource, ...] = ()
    # The stack's web ACL and access-log bucket (components/aws/edge.py), and what must exist
    # before the Ingress (and outlive it on destroy).
    edge: endpoint.EdgeRefs | None = None
    edge_ready: tuple[pulumi.Resource, ...] = ()


def job_timeouts(weights_gb: float) -> pulumi.CustomTimeouts:
    """Pulumi waits for the mirror Job to complete (its default would give up after 10 minutes)."""
    minutes = f"{-(-timeline.job_timeout(weights_gb) // 60)}m"
    return pulumi.CustomTimeouts(create=minutes, update=minutes)


class VllmService(pulumi.ComponentResource):
    def __init__(self, name: str, args: VllmServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("minimax-vllm:k8s:VllmService", name, None, opts)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.depends_on))
        ns = workload.namespace()
        namespace = k8s.core.v1.Namespace(f"{name}-namespace", metadata=ns["metadata"], opts=on_cluster)
        in_ns = pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[namespace]))
        # Policies first, so no vLLM pod ever runs unfenced.
        policies = [
            k8s.networking.v1.NetworkPolicy(
                f"{name}-netpol-{policy['metadata']['name']}",
                metadata=policy["metadata"],
                spec=policy["spec"],
                opts=in_ns,
            )
            for policy in serving_network.network_policies(
                args.load_balancer_cidrs, args.mirror, routing.router_peer() if args.routing else None
            )
        ]

        # The namespace's admission policy first too: no pod is created before it is in force.
        limits = admission_policies.pod_limits(workload.NAMESPACE, gpu_pool.MODEL_CACHE_HOST_PATH, workload.LABELS)
        policies += admission.policy_with_binding(f"{name}-pod-limits", *limits, opts=in_ns)

        # The API key and the Hugging Face token in Secrets of their own: each container that
        # reads one names it, so the token never reaches the vLLM container (tests/test_secret_env.py).
        credentials = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata={"name": workload.CREDENTIALS_SECRET, "namespace": workload.NAMESPACE},
            type="Opaque",
            string_data={"api-key": args.secrets.api_key},
            opts=in_ns,
        )
        has_token = args.secrets.hf_token is not None
        before_pods: list[pulumi.Resource] = [credentials, *policies, *args.repositories]
        if has_token:
            before_pods.append(
                k8s.core.v1.Secret(
                    f"{name}-hf-token",
                    metadata={"name": workload.HF_TOKEN_SECRET, "namespace": workload.NAMESPACE},
                    type="Opaque",
                    string_data={workload.HF_TOKEN_KEY: args.secrets.hf_token},
                    opts=in_ns,
                )
            )
        if args.mirror:
            before_pods = self._mirror(name, args, in_ns, before_pods)
        keep_alive_s = routing.vllm_keep_alive(args.endpoint) if args.routing else None
        ds = stager.stager(args.serving, args.registry, has_token, args.mirror, args.instance, keep_alive_s)
        # Not awaited: its pods stay running, and a node group at zero has none to wait for.
        self.stager = k8s.apps.v1.DaemonSet(
            f"{name}-stager",
            metadata={**ds["metadata"], "annotations": {**ds["metadata"]["annotations"], **workload.NO_READY_WAIT}},
            spec=ds["spec"],
            opts=pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=before_pods)),
        )
        timers = workload.timers(args.serving, "s3" if args.mirror else "hub")
        deployment = workload.deployment(
            args.serving,
            args.instance,
            args.registry,
            args.mirror,
            autoscaled=args.autoscaled,
            keep_alive_s=keep_alive_s,
        )
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=deployment["metadata"],
            spec=deployment["spec"],
            opts=pulumi.ResourceOptions.merge(
                in_ns,
                pulumi.ResourceOptions(
                    depends_on=[*before_pods, self.stager],
                    custom_timeouts=rollout_timeouts(timers),
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
        svc = endpoint.service(
            name=workload.APP,
            namespace=workload.NAMESPACE,
            labels=workload.LABELS,
            port=profiles.PORT,
            target_port=workload.PORT_NAME,
        )
        self.service = k8s.core.v1.Service(f"{name}-service", metadata=svc["metadata"], spec=svc["spec"], opts=in_ns)
        backend: k8s.core.v1.Service = self.service
        if args.routing:
            backend = self._router(name, args, in_ns, [credentials, *policies, *args.repositories], timers)
        ing = endpoint.ingress(
            args.endpoint,
            args.tags,
            name=workload.APP,
            namespace=workload.NAMESPACE,
            labels=workload.LABELS,
            service_name=routing.APP if args.routing else workload.APP,
            service_port=workload.PORT_NAME,
            drain_seconds=timers.deregistration_delay,
            load_balancer_name=args.load_balancer_name,
            subnets=pulumi.Output.from_input(args.load_balancer_subnet_ids).apply(",".join),
            edge=args.edge,
        )
        # Not dependent on the Deployment: the pods' readiness gates wait for the ALB's target group.
        self.ingress = k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata=ing["metadata"],
            spec=ing["spec"],
            opts=pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=[backend, *args.edge_ready])),
        )

        scheme, port = endpoint.url_scheme(args.endpoint), endpoint.listener_port(args.endpoint)
        self.endpoint_url = self.ingress.status.apply(lambda status: _url(status, scheme, port))
        self.register_outputs({"endpointUrl": self.endpoint_url})

    def _router(
        self,
        name: str,
        args: VllmServiceArgs,
        in_ns: pulumi.ResourceOptions,
        before: list[pulumi.Resource],
        timers: timeline.Timers,
    ) -> k8s.core.v1.Service:
        """The router's objects; returns the Service the Ingress sends traffic to."""
        assert args.routing is not None
        pol = routing.network_policy_(args.load_balancer_cidrs)
        made = [
            k8s.networking.v1.NetworkPolicy(
                f"{name}-netpol-{routing.APP}", metadata=pol["metadata"], spec=pol["spec"], opts=in_ns
            )
        ]
        account, role, binding = routing.rbac()
        made.append(
            k8s.core.v1.ServiceAccount(
                f"{name}-sa-{routing.APP}",
                metadata=account["metadata"],
                automount_service_account_token=account["automountServiceAccountToken"],
                opts=in_ns,
            )
        )
        made.append(
            k8s.rbac.v1.Role(f"{name}-role-{routing.APP}", metadata=role["metadata"], rules=role["rules"], opts=in_ns)
        )
        made.append(
            k8s.rbac.v1.RoleBinding(
                f"{name}-rolebinding-{routing.APP}",
                metadata=binding["metadata"],
                role_ref=binding["roleRef"],
                subjects=binding["subjects"],
                opts=in_ns,
            )
        )
        dep = routing.deployment(
            args.routing, args.serving, args.endpoint, args.registry.url(image_registry.ROUTER), timers
        )
        after = pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=[*before, *made]))
        k8s.apps.v1.Deployment(f"{name}-{routing.APP}", metadata=dep["metadata"], spec=dep["spec"], opts=after)
        pdb = routing.disruption_budget()
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb-{routing.APP}", metadata=pdb["metadata"], spec=pdb["spec"], opts=in_ns
        )
        svc = endpoint.service(
            name=routing.APP,
            namespace=workload.NAMESPACE,
            labels=routing.LABELS,
            port=routing.PORT,
            target_port=routing.PORT_NAME,
        )
        return k8s.core.v1.Service(
            f"{name}-service-{routing.APP}", metadata=svc["metadata"], spec=svc["spec"], opts=in_ns
        )

    def _mirror(
        self, name: str, args: VllmServiceArgs, in_ns: pulumi.ResourceOptions, before: list[pulumi.Resource]
    ) -> list[pulumi.Resource]:
        """The mirror Job and what it needs; returns what the vLLM pods and what the stagers must
        wait for: the Job has completed (Pulumi awaits a Job), so the stagers copy from a full,
        verified mirror, with their Pod Identity association in place."""
        assert args.mirror is not None
        objects = stager.mirror_objects(args.serving, args.mirror, args.secrets.hf_token is not None, args.registry)
        code, pods_account, *filling = objects
        made: dict[str, pulumi.Resource] = {}
        made["code"] = k8s.core.v1.ConfigMap(
            f"{name}-mirror-code", metadata=code["metadata"], data=code["data"], opts=in_ns
        )
        accounts = [("pods", pods_account), *([("job", filling[0])] if filling else [])]
        for key, obj in accounts:
            made[key] = k8s.core.v1.ServiceAccount(
                f"{name}-sa-{obj['metadata']['name']}",
                metadata=obj["metadata"],
                automount_service_account_token=obj["automountServiceAccountToken"],
                opts=_mirror_objects_opts(in_ns, list(args.mirror_identities)),
            )
        if not filling:  # a shared bucket: the stack that owns it fills it
            return [*before, made["code"], made["pods"], *args.mirror_identities]
        job = filling[1]
        self.mirror_job = k8s.batch.v1.Job(
            f"{name}-mirror-job",
            metadata=job["metadata"],
            spec=job["spec"],
            opts=pulumi.ResourceOptions.merge(
                in_ns,
                pulumi.ResourceOptions(
                    depends_on=[*before, made["code"], made["job"], *args.mirror_identities],
                    custom_timeouts=job_timeouts(args.serving.model_facts.weights_gb),
                    # A Job's pod template cannot change: a new image or revision is a new Job.
                    delete_before_replace=True,
                ),
            ),
        )
        if args.mirror.compile_cache_prefix:
            cache_code = compile_cache_objects.config_map(workload.NAMESPACE, workload.LABELS)
            local = serving_network.node_local_service()
            before = [
                *before,
                k8s.core.v1.ConfigMap(
                    f"{name}-compile-cache-code", metadata=cache_code["metadata"], data=cache_code["data"], opts=in_ns
                ),
                # The stager's way to this node's vLLM /health, before it publishes.
                k8s.core.v1.Service(
                    f"{name}-service-node-local", metadata=local["metadata"], spec=local["spec"], opts=in_ns
                ),
            ]
        return [*before, made["code"], made["pods"], self.mirror_job, *args.mirror_identities]


def _mirror_objects_opts(in_ns: pulumi.ResourceOptions, after: list[pulumi.Resource]) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=after))


# `pulumi refresh` alone re-reads the Ingress but does not re-run the program, so this output
# would stay pending; `pulumi up --refresh` reads the status and then recomputes the outputs.
PENDING = (
    "pending: the ALB is being created; in a few minutes run `pulumi up --refresh` (or"
    " `pulumi refresh --run-program` on a Pulumi CLI that has the flag), then `pulumi stack output endpointUrl`"
)


def _url(status: Any, scheme: str, port: int) -> str:
    """The ALB's URL once the controller has published it in the Ingress status; until then, how to get it."""
    ingress = (getattr(getattr(status, "load_balancer", None), "ingress", None) or []) if status else []
    host = next((getattr(i, "hostname", None) or getattr(i, "ip", None) for i in ingress), None)
    if not host:
        return PENDING
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + ("" if port == default else f":{port}")
