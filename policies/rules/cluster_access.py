"""Who may do what inside the cluster: Pod Security labels on every namespace, the vLLM namespace's
admission policy, KEDA fenced to it with an explicit identity, default-deny NetworkPolicies in
the system namespaces, node-exporter off the node's network, and EKS access entries scoped by
policy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .common import MODEL_CACHE_HOST_PATH, Props, _is_kubernetes_object, _kind, _map, _seq, _workloads_by_kind

PSA_LEVELS = ("privileged", "baseline", "restricted")
PSA_MODES = ("enforce", "warn", "audit")
NAMESPACE_TYPES = ("kubernetes:core/v1:Namespace", "kubernetes:core/v1:NamespacePatch")
RELEASE = "kubernetes:helm.sh/v3:Release"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
VAP = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
VAP_BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# Namespaces whose releases' pods the stack does not fence itself: EKS's own add-ons share kube-system.
UNFENCED_RELEASE_NAMESPACES = frozenset({"kube-system"})
EKS_ACCESS_POLICIES = frozenset(
    {"AmazonEKSClusterAdminPolicy", "AmazonEKSAdminPolicy", "AmazonEKSEditPolicy", "AmazonEKSViewPolicy"}
)
KEDA_GROUP = "keda.sh"
NODE_EXPORTER_VALUES = "prometheus-node-exporter"


def _namespace_of(resource_type: str, props: Props) -> str | None:
    if resource_type == RELEASE:
        return props.get("namespace") or "default"
    if not _is_kubernetes_object(resource_type) or resource_type in NAMESPACE_TYPES:
        return None
    return _map(props.get("metadata")).get("namespace")


def namespace_pod_security(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """Every namespace the stack creates, patches, installs into or puts an object in enforces,
    warns and audits a Pod Security level, each with a pinned version."""
    labelled: dict[str, Mapping[str, Any]] = {}
    for resource_type, props in resources:
        if resource_type in NAMESPACE_TYPES:
            meta = _map(props.get("metadata"))
            labelled[str(meta.get("name"))] = _map(meta.get("labels"))
    used = {ns for t, p in resources if (ns := _namespace_of(t, p))} | set(labelled)
    problems = []
    for namespace in sorted(used):
        labels = labelled.get(namespace)
        if labels is None:
            problems.append(f"namespace {namespace} is used but the stack sets no Pod Security labels on it")
            continue
        for mode in PSA_MODES:
            level, version = (
                labels.get(f"pod-security.kubernetes.io/{mode}"),
                labels.get(f"pod-security.kubernetes.io/{mode}-version"),
            )
            if level not in PSA_LEVELS:
                problems.append(f"namespace {namespace} has no pod-security.kubernetes.io/{mode} level (got {level!r})")
            if not (isinstance(version, str) and version.startswith("v1.")):
                problems.append(
                    f"namespace {namespace} does not pin pod-security.kubernetes.io/{mode}-version (got {version!r})"
                )
    return problems


def _bindings(resources: Sequence[tuple[str, Props]]) -> list[Mapping[str, Any]]:
    return [_map(p.get("spec")) for t, p in resources if t == VAP_BINDING]


def _policies(resources: Sequence[tuple[str, Props]]) -> dict[str, Mapping[str, Any]]:
    return {str(_map(p.get("metadata")).get("name")): _map(p.get("spec")) for t, p in resources if t == VAP}


def _denies_in(binding: Mapping[str, Any], namespace: str) -> bool:
    """A binding that denies (not only warns) and matches `namespace` (or every namespace)."""
    if "Deny" not in _seq(binding.get("validationActions")):
        return False
    selector = _map(_map(binding.get("matchResources")).get("namespaceSelector"))
    labels = _map(selector.get("matchLabels"))
    return not selector or (not selector.get("matchExpressions") and labels == {NAMESPACE_NAME_LABEL: namespace})


def hostpath_namespaces_fenced(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """A namespace whose workloads mount a hostPath (its Pod Security level must be privileged)
    is bound, with Deny, to an admission policy that fails closed and admits only the model cache
    and none of the node's namespaces or privilege."""
    policies, bindings = _policies(resources), _bindings(resources)
    problems = []
    for what, namespace, _labels, spec in _workloads_by_kind(resources):
        if not any(_map(v).get("hostPath") is not None for v in _seq(spec.get("volumes"))):
            continue
        fenced = False
        for binding in bindings:
            policy = policies.get(str(binding.get("policyName")))
            if policy is None or not _denies_in(binding, namespace) or policy.get("failurePolicy") != "Fail":
                continue
            text = " ".join(str(_map(v).get("expression")) for v in _seq(policy.get("validations")))
            if all(word in text for word in (MODEL_CACHE_HOST_PATH, "hostNetwork", "hostPID", "privileged")):
                fenced = True
        if not fenced:
            problems.append(
                f"{what} mounts a hostPath in namespace {namespace}, which no Deny-bound admission policy limits to the model cache"
            )
    return problems


def keda_identity_owner_explicit(resource_type: str, props: Props) -> list[str]:
    """A KEDA podIdentity says whose identity it uses: left out, KEDA picks the operator's."""
    if not resource_type.startswith("kubernetes:keda.sh/") or "TriggerAuthentication" not in _kind(resource_type):
        return []
    identity = _map(_map(props.get("spec")).get("podIdentity"))
    if identity and identity.get("identityOwner") not in ("keda", "workload"):
        return [f"{_kind(resource_type)} sets podIdentity without identityOwner (keda or workload)"]
    return []


def keda_objects_fenced(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """With KEDA objects in the stack, an admission policy bound with Deny to every namespace
    admits them only in one namespace (KEDA acts on them with its own AWS identity)."""
    if not any(t.startswith(f"kubernetes:{KEDA_GROUP}/") for t, _ in resources):
        return []
    policies = _policies(resources)
    for binding in _bindings(resources):
        policy = policies.get(str(binding.get("policyName")))
        if policy is None or not _denies_in(binding, "*") or _map(binding.get("matchResources")):
            continue
        rules = _seq(_map(policy.get("matchConstraints")).get("resourceRules"))
        resources_fenced = {
            r
            for rule in rules
            if KEDA_GROUP in _seq(_map(rule).get("apiGroups"))
            for r in _seq(_map(rule).get("resources"))
        }
        if {"scaledobjects", "triggerauthentications", "clustertriggerauthentications"} <= resources_fenced:
            return []
    return ["KEDA objects are in the stack, but no Deny-bound admission policy limits where they may be created"]


def system_namespaces_default_deny(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """Every namespace a Helm release installs into (but kube-system) has a default-deny NetworkPolicy."""
    denied = {
        _map(p.get("metadata")).get("namespace")
        for t, p in resources
        if t == NETPOL
        and not _map(_map(p.get("spec")).get("podSelector"))
        and set(_seq(_map(p.get("spec")).get("policyTypes"))) == {"Ingress", "Egress"}
        and not _seq(_map(p.get("spec")).get("ingress"))
        and not _seq(_map(p.get("spec")).get("egress"))
    }
    installed = {p.get("namespace") for t, p in resources if t == RELEASE} - UNFENCED_RELEASE_NAMESPACES
    return [f"namespace {ns} has a Helm release but no default-deny NetworkPolicy" for ns in sorted(installed - denied)]


def node_exporter_off_host_network(resource_type: str, props: Props) -> list[str]:
    """node-exporter on the node's network reaches IMDS past the hop limit, with the node role."""
    if resource_type != RELEASE or props.get("chart") != "kube-prometheus-stack":
        return []
    values = _map(_map(props.get("values")).get(NODE_EXPORTER_VALUES))
    if values.get("hostNetwork") is not False:
        return ["kube-prometheus-stack leaves prometheus-node-exporter.hostNetwork on (the chart's default)"]
    return []


def access_policy_scoped(resource_type: str, props: Props) -> list[str]:
    """EKS access policies are EKS's own four, and cluster-admin is never handed out per namespace
    (it is cluster-wide whatever the scope)."""
    if resource_type != "aws:eks/accessPolicyAssociation:AccessPolicyAssociation":
        return []
    policy = str(props.get("policyArn") or "").rsplit("/", 1)[-1]
    scope = _map(props.get("accessScope"))
    problems = []
    if policy not in EKS_ACCESS_POLICIES:
        problems.append(f"access policy {policy!r} is not one of {sorted(EKS_ACCESS_POLICIES)}")
    if scope.get("type") == "namespace" and not _seq(scope.get("namespaces")):
        problems.append("a namespace-scoped access policy names no namespace")
    if policy == "AmazonEKSClusterAdminPolicy" and scope.get("type") != "cluster":
        problems.append("AmazonEKSClusterAdminPolicy is scoped to namespaces; it is cluster-wide whatever the scope")
    return problems
