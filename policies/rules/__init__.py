"""Guardrails as plain functions over a resource's type and properties, by concern: exposure,
hardening, supply chain, capacity. This module is the one registry.

Each rule returns the list of violation messages for one resource (or, for a cross-resource
rule, for the whole stack), so tests call them directly on the offline rendering and
`all_policies()` wraps them for `pulumi preview --policy-pack policies`. The pack runs with
`policies/` on the path (`import rules`) and the tests import `policies.rules`, hence the
relative imports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from .capacity import container_resources, gpu_pods_tolerate_taint
from .cluster_access import (
    access_policy_scoped,
    hostpath_namespaces_fenced,
    keda_identity_owner_explicit,
    keda_objects_fenced,
    namespace_pod_security,
    node_exporter_off_host_network,
    system_namespaces_default_deny,
)
from .common import API_READER_IMAGE as API_READER_IMAGE
from .common import MODEL_CACHE_HOST_PATH, ResourceCheck, StackCheck
from .common import STACK_REPOSITORY_PREFIX as STACK_REPOSITORY_PREFIX
from .edge import (
    alb_access_logs_and_web_acl,
    alb_tls_on_every_scheme,
    s3_gateway_endpoint_policy,
    security_group_changes_held_to_a_vpc,
    web_acl_guards_the_endpoint,
    weight_mirror_refuses_other_writers,
)
from .exposure import (
    eks_endpoint_not_public,
    only_allowed_paths_exposed,
    public_endpoint_requires_api_key,
    public_endpoint_tls_and_ranges,
    vllm_only_behind_the_path_list,
    vllm_port_admits_no_pod_address,
)
from .hardening import (
    eks_control_plane_logging,
    eks_secrets_encryption,
    hostpath_only_model_cache,
    launch_template_encrypted_ebs,
    launch_template_imds_hop_limit,
    launch_template_imdsv2,
    network_policy_selects_workloads,
    no_plaintext_secrets,
    no_privileged_pods,
    no_token_automount,
    restricted_security_context,
)
from .iam import no_ecr_read_on_every_repository
from .routing_hop import router_port_admits_only_the_load_balancer, vllm_admits_only_the_router
from .supply_chain import pinned_images, pinned_revision_with_remote_code


@dataclass(frozen=True)
class Rule:
    """One resource rule and how hard it is enforced; the description says why."""

    name: str
    check: ResourceCheck
    description: str
    enforcement_level: EnforcementLevel = EnforcementLevel.MANDATORY


@dataclass(frozen=True)
class StackRule:
    name: str
    check: StackCheck
    description: str
    enforcement_level: EnforcementLevel = EnforcementLevel.MANDATORY


# Every rule is mandatory: each guards against a leak or an outage that a deploy must not ship.
RESOURCE_RULES: tuple[Rule, ...] = (
    Rule(
        "eks-secrets-encryption",
        eks_secrets_encryption,
        'Mandatory. EKS clusters envelope-encrypt Kubernetes Secrets with KMS (encryptionConfig resources ["secrets"]): they hold the API key and HF token.',
    ),
    Rule(
        "eks-control-plane-logging",
        eks_control_plane_logging,
        "Mandatory. EKS clusters ship api, audit and authenticator control-plane logs, the only record of who changed the cluster.",
    ),
    Rule(
        "eks-endpoint-not-public",
        eks_endpoint_not_public,
        "Mandatory. A public EKS API endpoint lists publicAccessCidrs without 0.0.0.0/0; public access with no CIDRs is open to the world (AWS default).",
    ),
    Rule(
        "launch-template-imdsv2",
        launch_template_imdsv2,
        'Mandatory. Launch templates require IMDSv2 (metadataOptions.httpTokens "required") so a pod SSRF cannot read node credentials.',
    ),
    Rule(
        "launch-template-imds-hop-limit",
        launch_template_imds_hop_limit,
        "Mandatory. Launch templates set metadataOptions.httpPutResponseHopLimit 1, so pods off the host network cannot reach IMDS and the node role.",
    ),
    Rule(
        "launch-template-encrypted-ebs",
        launch_template_encrypted_ebs,
        "Mandatory. Launch templates declare their EBS volumes and encrypt every one (ebs.encrypted true).",
    ),
    Rule(
        "no-ecr-read-on-every-repository",
        no_ecr_read_on_every_repository,
        "Mandatory. No role holds AmazonEC2ContainerRegistryReadOnly (or another ECR managed policy) or ECR reads on Resource *: nodes pull only from the stack's repositories and the EKS add-on registry.",
    ),
    Rule(
        "no-privileged-pods",
        no_privileged_pods,
        "Mandatory. Rendered pods are not privileged and use no host network, PID or IPC namespace; the NVIDIA device plugin (a Helm release, or exactly NVIDIA's image repository) is exempt.",
    ),
    Rule(
        "hostpath-only-model-cache",
        hostpath_only_model_cache,
        f"Mandatory. The only hostPath a workload mounts is the model cache ({MODEL_CACHE_HOST_PATH}); the NVIDIA device plugin (exact image repository) is exempt.",
    ),
    Rule(
        "restricted-security-context",
        restricted_security_context,
        "Mandatory. Every container runs with seccomp RuntimeDefault, drops ALL capabilities, adds none and sets allowPrivilegeEscalation false.",
    ),
    Rule(
        "no-token-automount",
        no_token_automount,
        "Mandatory. Workloads set automountServiceAccountToken false: none of them calls the Kubernetes API.",
    ),
    Rule(
        "container-resources",
        container_resources,
        "Mandatory. Every container requests cpu and memory and limits memory, so p5 nodes are packed as planned and one pod cannot OOM a node.",
    ),
    Rule(
        "pinned-images",
        pinned_images,
        "Mandatory. Container images carry a tag other than `latest` (or a digest) and every Helm chart a fixed version, so `pulumi preview` shows every change.",
    ),
    Rule(
        "gpu-pods-tolerate-taint",
        gpu_pods_tolerate_taint,
        "Mandatory. Pods requesting nvidia.com/gpu tolerate the GPU node taint nvidia.com/gpu=true:NoSchedule, or they never schedule.",
    ),
    Rule(
        "public-endpoint-tls-and-ranges",
        public_endpoint_tls_and_ranges,
        "Mandatory. An internet-facing ALB Ingress listens only on HTTPS with a certificate and a restricted (-Res-) TLS policy (unless the stack set the loud plain-HTTP opt-out) and lists inbound-cidrs that, by CIDR arithmetic, neither cover the internet nor hold a prefix shorter than /8.",
    ),
    Rule(
        "alb-tls-on-every-scheme",
        alb_tls_on_every_scheme,
        "Mandatory. An internal ALB Ingress listens only on HTTPS with a certificate and a restricted (-Res-) TLS policy too (unless the stack set endpoint.plainHttpAcknowledged, recorded as minimax-vllm/plain-http-accepted): the API key and the prompts cross the client networks.",
    ),
    Rule(
        "alb-access-logs-and-web-acl",
        alb_access_logs_and_web_acl,
        "Mandatory. Every ALB Ingress writes access logs to S3 (access_logs.s3.enabled=true and a bucket) and names a WAFv2 web ACL (wafv2-acl-arn).",
    ),
    Rule(
        "web-acl-guards-the-endpoint",
        web_acl_guards_the_endpoint,
        "Mandatory. A WAFv2 web ACL blocks requests without an `Authorization: Bearer` header (so a keyless request never reaches the ALB, nor wakes a GPU node from zero) and has a blocking rate-based rule per client IP.",
    ),
    Rule(
        "s3-gateway-endpoint-policy",
        s3_gateway_endpoint_policy,
        "Mandatory. The S3 gateway endpoint has a policy that names its buckets (no `*` resource): without one, a pod could copy what it reads to any bucket of any account.",
    ),
    Rule(
        "weight-mirror-refuses-other-writers",
        weight_mirror_refuses_other_writers,
        "Mandatory. The weight mirror's bucket policy denies requests without TLS, and denies object writes under the weights (everything but compile-cache/) to every principal but the fill Job's role, or to all once the revision is signed: the weights are code the GPU nodes run.",
    ),
    Rule(
        "security-group-changes-held-to-a-vpc",
        security_group_changes_held_to_a_vpc,
        "Mandatory. An IAM policy that may change security groups (authorize, revoke, create, delete) holds every such statement to one VPC (ec2:Vpc condition, or the VPC's own ARN as the resource).",
    ),
    Rule(
        "only-allowed-paths-exposed",
        only_allowed_paths_exposed,
        "Mandatory. An Ingress forwards only the paths of components/facts/data/exposed-paths.json (/v1 prefix and /health): vLLM checks the API key only under /v1, so /invocations, /tokenize, /metrics and /docs must get the load balancer's fixed 404.",
    ),
    Rule(
        "no-plaintext-secrets",
        no_plaintext_secrets,
        "Mandatory. No secret in plain-text env values, args, command or annotations: secret-looking env vars (KEY, TOKEN, PASSWORD, SECRET) use valueFrom.secretKeyRef and no --api-key/--hf-token flag is passed.",
    ),
    Rule(
        "keda-identity-owner-explicit",
        keda_identity_owner_explicit,
        "Mandatory. A KEDA TriggerAuthentication with podIdentity names its identityOwner (keda or workload) instead of leaving KEDA's default.",
    ),
    Rule(
        "node-exporter-off-host-network",
        node_exporter_off_host_network,
        "Mandatory. kube-prometheus-stack sets prometheus-node-exporter.hostNetwork false: on the node's network it would reach IMDS, and the node role, past the hop limit.",
    ),
    Rule(
        "access-policy-scoped",
        access_policy_scoped,
        "Mandatory. EKS access policy associations use one of EKS's four access policies, name their namespaces when namespace-scoped, and give AmazonEKSClusterAdminPolicy only cluster-wide.",
    ),
)


STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        "vllm-only-behind-the-path-list",
        vllm_only_behind_the_path_list,
        "Mandatory. No LoadBalancer or NodePort Service selects the vLLM pods (those reading VLLM_API_KEY): they are reached only through the Ingress, which forwards the listed paths alone.",
    ),
    StackRule(
        "network-policy-selects-workloads",
        network_policy_selects_workloads,
        "Mandatory. Every workload is selected by a NetworkPolicy of its namespace, so the VPC CNI fences it.",
    ),
    StackRule(
        "vllm-port-admits-no-pod-address",
        vllm_port_admits_no_pod_address,
        "Mandatory. No NetworkPolicy of the vLLM pods admits every source, the VPC, or a subnet not tagged kubernetes.io/role/elb: with the VPC CNI every pod has such an address, and vLLM checks its key only under /v1.",
    ),
    StackRule(
        "router-port-admits-only-the-load-balancer",
        router_port_admits_only_the_load_balancer,
        "Mandatory. With a router in front of vLLM (an Ingress backend whose pods do not read VLLM_API_KEY), no NetworkPolicy of the router's pods admits on its serving port every source, any pod, the VPC or a subnet not tagged kubernetes.io/role/elb: the router forwards every path, vLLM's unguarded ones included.",
    ),
    StackRule(
        "vllm-admits-only-the-router",
        vllm_admits_only_the_router,
        "Mandatory. With a router in front of vLLM, no NetworkPolicy of the vLLM pods admits an address (the load balancer would bypass the router) or, in vLLM's namespace, a pod other than the router's.",
    ),
    StackRule(
        "namespace-pod-security",
        namespace_pod_security,
        "Mandatory. Every namespace the stack creates, patches, installs into or uses carries pod-security.kubernetes.io enforce, warn and audit labels, each with a pinned -version.",
    ),
    StackRule(
        "hostpath-namespaces-fenced",
        hostpath_namespaces_fenced,
        "Mandatory. A namespace whose workloads mount a hostPath is bound (Deny, failurePolicy Fail) to a ValidatingAdmissionPolicy that admits only the model cache and refuses host namespaces and privileged containers.",
    ),
    StackRule(
        "keda-objects-fenced",
        keda_objects_fenced,
        "Mandatory. With KEDA objects in the stack, a Deny-bound ValidatingAdmissionPolicy over every namespace limits where ScaledObjects and (Cluster)TriggerAuthentications may be created.",
    ),
    StackRule(
        "system-namespaces-default-deny",
        system_namespaces_default_deny,
        "Mandatory. Every namespace a Helm release installs into, kube-system excepted, has a default-deny NetworkPolicy.",
    ),
    StackRule(
        "pinned-revision-with-remote-code",
        pinned_revision_with_remote_code,
        "Mandatory. In a prod stack (cluster tag environment=prod) a container passing --trust-remote-code pins --revision to a 40-hex commit.",
    ),
    StackRule(
        "public-endpoint-requires-api-key",
        public_endpoint_requires_api_key,
        "Mandatory. An internet-facing LoadBalancer Service open to 0.0.0.0/0 (or with no source ranges) only fronts pods that read VLLM_API_KEY from a Secret.",
    ),
)


def all_rule_names() -> list[str]:
    return [r.name for r in RESOURCE_RULES] + [r.name for r in STACK_RULES]


def _resource_validation(check: ResourceCheck) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in check(args.resource_type, args.props):
            report_violation(message, None)

    return validate


def _stack_validation(check: StackCheck) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for message in check([(r.resource_type, r.props) for r in args.resources]):
            report_violation(message, None)

    return validate


def all_policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    """Every rule of this module as a pulumi-policy Policy: the one place rules are wrapped."""
    policies: list[ResourceValidationPolicy | StackValidationPolicy] = [
        ResourceValidationPolicy(
            name=rule.name,
            description=rule.description,
            enforcement_level=rule.enforcement_level,
            validate=_resource_validation(rule.check),
        )
        for rule in RESOURCE_RULES
    ]
    policies += [
        StackValidationPolicy(
            name=rule.name,
            description=rule.description,
            enforcement_level=rule.enforcement_level,
            validate=_stack_validation(rule.check),
        )
        for rule in STACK_RULES
    ]
    return policies
