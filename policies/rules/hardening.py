"""Hardening rules: what an attacker inside a pod or on the network must not find (encrypted
Secrets and disks, control-plane logs, IMDSv2 with hop limit 1, no privileged or root-capable
pods, no service-account tokens, no plain-text secrets, a NetworkPolicy around every workload)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .common import (
    API_READER_IMAGE,
    IMDS_HOP_LIMIT,
    MODEL_CACHE_HOST_PATH,
    REQUIRED_EKS_LOG_TYPES,
    SECRET_FLAGS,
    STACK_REPOSITORY_PREFIX,
    Props,
    _containers,
    _image_repository,
    _is_device_plugin,
    _is_kubernetes_object,
    _kind,
    _map,
    _object_name,
    _secret_like_name,
    _selects,
    _seq,
    _truthy,
    _workload,
    _workloads_by_kind,
)


def eks_secrets_encryption(resource_type: str, props: Props) -> list[str]:
    """Kubernetes Secrets hold the API key and HF token: envelope-encrypt them with KMS."""
    if resource_type != "aws:eks/cluster:Cluster":
        return []
    configs = props.get("encryptionConfig")
    configs = [configs] if isinstance(configs, Mapping) else _seq(configs)
    for config in configs:
        if "secrets" in _seq(_map(config).get("resources")):
            return []
    return ['EKS cluster has no encryptionConfig with resources ["secrets"]: Kubernetes Secrets are not KMS-encrypted']


def eks_control_plane_logging(resource_type: str, props: Props) -> list[str]:
    """Without api/audit/authenticator logs nobody can tell who did what to the cluster."""
    if resource_type != "aws:eks/cluster:Cluster":
        return []
    enabled = set(_seq(props.get("enabledClusterLogTypes")))
    missing = [t for t in REQUIRED_EKS_LOG_TYPES if t not in enabled]
    if missing:
        return [f"EKS cluster does not enable control-plane log types {missing} in enabledClusterLogTypes"]
    return []


def launch_template_imdsv2(resource_type: str, props: Props) -> list[str]:
    """IMDSv1 lets any SSRF in a pod read the node role's credentials; require session tokens."""
    if resource_type != "aws:ec2/launchTemplate:LaunchTemplate":
        return []
    tokens = _map(props.get("metadataOptions")).get("httpTokens")
    if tokens != "required":
        return [f'launch template metadataOptions.httpTokens is {tokens!r}, not "required" (IMDSv2)']
    return []


def launch_template_imds_hop_limit(resource_type: str, props: Props) -> list[str]:
    """Hop limit 1 keeps IMDS out of reach of pods off the host network (a hop limit of 2 hands
    them the node role's credentials)."""
    if resource_type != "aws:ec2/launchTemplate:LaunchTemplate":
        return []
    limit = _map(props.get("metadataOptions")).get("httpPutResponseHopLimit")
    if limit != IMDS_HOP_LIMIT:
        return [f"launch template metadataOptions.httpPutResponseHopLimit is {limit!r}, not {IMDS_HOP_LIMIT}"]
    return []


def launch_template_encrypted_ebs(resource_type: str, props: Props) -> list[str]:
    """Node volumes may hold model weights, logs and pulled secrets: encrypt them at rest."""
    if resource_type != "aws:ec2/launchTemplate:LaunchTemplate":
        return []
    mappings = _seq(props.get("blockDeviceMappings"))
    ebs_mappings = [m for m in mappings if _map(m).get("ebs") is not None]
    if not ebs_mappings:
        return [
            "launch template declares no EBS blockDeviceMappings, so root-volume encryption depends on the AMI and account default"
        ]
    return [
        f"launch template EBS volume {_map(m).get('deviceName') or '?'} is not encrypted (ebs.encrypted must be true)"
        for m in ebs_mappings
        if not _truthy(_map(_map(m).get("ebs")).get("encrypted"))
    ]


def no_privileged_pods(resource_type: str, props: Props) -> list[str]:
    """Privileged or host-namespace pods escape the container boundary; only the device plugin needs that."""
    workload = _workload(resource_type, props)
    if workload is None:
        return []
    what, _, spec = workload
    all_containers = list(_containers(spec))
    if _is_device_plugin(spec):
        return []
    problems = [
        f"{what} sets {field}: true" for field in ("hostNetwork", "hostPID", "hostIPC") if _truthy(spec.get(field))
    ]
    for container in all_containers:
        if _truthy(_map(container.get("securityContext")).get("privileged")):
            problems.append(f"{what} container {container.get('name')!r} is privileged")
    return problems


def _non_device_plugin_workload(resource_type: str, props: Props) -> tuple[str, Mapping[str, Any]] | None:
    """(what, pod spec) of a workload the pod-level rules apply to: every one but NVIDIA's device
    plugin, whose exact image repository is allow-listed for its privileged access."""
    workload = _workload(resource_type, props)
    if workload is None or _is_device_plugin(workload[2]):
        return None
    return workload[0], workload[2]


def hostpath_only_model_cache(resource_type: str, props: Props) -> list[str]:
    """A hostPath is the node's filesystem: only the model cache may be mounted from it."""
    checked = _non_device_plugin_workload(resource_type, props)
    if checked is None:
        return []
    what, spec = checked
    return [
        f"{what} mounts hostPath {_map(v.get('hostPath')).get('path')!r}; only {MODEL_CACHE_HOST_PATH} (the model cache) is allowed"
        for v in map(_map, _seq(spec.get("volumes")))
        if v.get("hostPath") is not None and _map(v.get("hostPath")).get("path") != MODEL_CACHE_HOST_PATH
    ]


def restricted_security_context(resource_type: str, props: Props) -> list[str]:
    """seccomp RuntimeDefault, every capability dropped and none added, no privilege escalation."""
    checked = _non_device_plugin_workload(resource_type, props)
    if checked is None:
        return []
    what, spec = checked
    pod_seccomp = _map(_map(spec.get("securityContext")).get("seccompProfile")).get("type")
    problems = []
    for container in _containers(spec):
        name, context = container.get("name"), _map(container.get("securityContext"))
        seccomp = _map(context.get("seccompProfile")).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{what} container {name!r} has seccomp profile {seccomp!r}, not RuntimeDefault")
        capabilities = _map(context.get("capabilities"))
        if "ALL" not in _seq(capabilities.get("drop")):
            problems.append(f"{what} container {name!r} does not drop ALL capabilities")
        if _seq(capabilities.get("add")):
            problems.append(f"{what} container {name!r} adds capabilities {list(_seq(capabilities.get('add')))}")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{what} container {name!r} does not set allowPrivilegeEscalation: false")
    return problems


def no_token_automount(resource_type: str, props: Props) -> list[str]:
    """A pod that never calls the Kubernetes API must not carry a service-account token."""
    checked = _non_device_plugin_workload(resource_type, props)
    if checked is None or checked[1].get("automountServiceAccountToken") is False:
        return []
    what, spec = checked
    images = [str(c.get("image") or "") for c in _containers(spec)]
    if images and all(_is_api_reader(_image_repository(i)) for i in images):
        return []
    return [f"{what} does not set automountServiceAccountToken: false"]


def _is_api_reader(repository: str) -> bool:
    """`<registry host>/minimax-vllm/<cluster>/vllm-router`: the router's repository of a stack."""
    parts = repository.split("/")
    return len(parts) == 4 and "." in parts[0] and parts[1] == STACK_REPOSITORY_PREFIX and parts[3] == API_READER_IMAGE


def no_plaintext_secrets(resource_type: str, props: Props, known_secrets: Iterable[str] = ()) -> list[str]:
    """Env values, args, command and annotations are readable by anyone who can `get` the object.

    known_secrets: secret values to look for verbatim (the offline tests pass their placeholders).
    """
    if not _is_kubernetes_object(resource_type):
        return []
    known = [s for s in known_secrets if s]
    what = f"{_kind(resource_type)} {_object_name(props)}"
    problems = []

    def leaks(text: Any) -> bool:
        return isinstance(text, str) and any(secret in text for secret in known)

    annotation_sets = [_map(_map(props.get("metadata")).get("annotations"))]
    workload = _workload(resource_type, props)
    if workload is not None:
        annotation_sets.append(_map(workload[1].get("annotations")))
    for annotation_map in annotation_sets:
        for key in annotation_map:
            value = annotation_map[key]
            if leaks(value):
                problems.append(f"{what} annotation {key!r} carries a secret value in plain text")
            elif _secret_like_name(key.rsplit("/", 1)[-1]) and value:
                problems.append(f"{what} annotation {key!r} looks like a secret set in plain text")

    if workload is None:
        return problems
    for container in _containers(workload[2]):
        cname = container.get("name")
        for env in _seq(container.get("env")):
            env = _map(env)
            name, value = str(env.get("name") or ""), env.get("value")
            if leaks(value):
                problems.append(f"{what} container {cname!r} env {name} carries a secret value in plain text")
            elif value and _secret_like_name(name):
                problems.append(
                    f"{what} container {cname!r} env {name} has a literal value; use valueFrom.secretKeyRef"
                )
        for field in ("command", "args"):
            for item in _seq(container.get(field)):
                if leaks(item):
                    problems.append(f"{what} container {cname!r} {field} carries a secret value in plain text")
                elif isinstance(item, str) and any(re.search(rf"(^|\s){flag}(=|\s|$)", item) for flag in SECRET_FLAGS):
                    flag = next(f for f in SECRET_FLAGS if f in item)
                    problems.append(
                        f"{what} container {cname!r} {field} passes {flag} on the command line; pass it from a Secret via env"
                    )
    return problems


def network_policy_selects_workloads(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """Every workload (the vLLM pods) is selected by a NetworkPolicy of its namespace, so the CNI
    fences it (with enforcement on, an unselected pod may talk to anything)."""
    policies = [
        (_map(props.get("metadata")).get("namespace") or "default", _map(_map(props.get("spec")).get("podSelector")))
        for resource_type, props in resources
        if resource_type == "kubernetes:networking.k8s.io/v1:NetworkPolicy"
    ]
    return [
        f"{what} is selected by no NetworkPolicy in namespace {namespace}"
        for what, namespace, labels, spec in _workloads_by_kind(resources)
        if not _is_device_plugin(spec) and not any(ns == namespace and _selects(sel, labels) for ns, sel in policies)
    ]
