"""Guardrails as plain functions over a resource's type and properties.

Each rule returns the list of violation messages for one resource (or, for the one
cross-resource rule, for the whole stack), so tests call them directly on the offline
rendering and `all_policies()` wraps them for `pulumi preview --policy-pack policies`.

Properties arrive from the policy engine as read-only Mapping/Sequence proxies that raise
when a value is unknown during preview; the helpers below accept any Mapping/Sequence and
the rules read only the fields they judge, so an unknown subnet id or KMS ARN never stops
a rule that does not look at it. This module imports nothing from the project: the pack
runs in its own virtualenv with only `policies/` on the path. It reads one data file of the
project, the list of paths the load balancer may forward (components/facts/data/exposed-paths.json),
so the Ingress, the tests and the pack judge against the same list.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

Props = Mapping[str, Any]
ResourceCheck = Callable[[str, Props], list[str]]
StackCheck = Callable[[Sequence[tuple[str, Props]]], list[str]]

# The GPU node group's taint (components/facts/gpu_pool.py; a test keeps the two equal).
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}

WORLD_CIDRS = frozenset({"0.0.0.0/0", "::/0"})
REQUIRED_EKS_LOG_TYPES = ("api", "audit", "authenticator")
API_KEY_ENV = "VLLM_API_KEY"
SECRET_NAME_WORDS = frozenset({"KEY", "APIKEY", "TOKEN", "PASSWORD", "PASSWD", "SECRET", "CREDENTIALS"})
SECRET_FLAGS = ("--api-key", "--hf-token")
# The device plugin needs host access to the GPUs; if it is ever rendered as objects rather
# than through its Helm release, its pods are recognised by NVIDIA's image repository, matched
# exactly (a repository that merely starts with this name is someone else's image).
PRIVILEGED_IMAGE_ALLOWLIST = ("nvcr.io/nvidia/k8s-device-plugin",)
# The one hostPath a workload may mount: the model cache on the GPU node's NVMe
# (components/facts/gpu_pool.py MODEL_CACHE_HOST_PATH; a test keeps the two equal).
MODEL_CACHE_HOST_PATH = "/mnt/k8s-disks/0/minimax-vllm-cache"
# The one workload that calls the Kubernetes API: vLLM's router discovers the vLLM pods with a
# token bound to a Role that only reads pods (components/serving/routing.py IMAGE_REPOSITORY,
# in the account's ECR registry; a test keeps the two equal).
API_READER_REPOSITORY = "minimax-vllm/vllm-router"
IMDS_HOP_LIMIT = 1
REMOTE_CODE_FLAG = "--trust-remote-code"
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
STRICT_ENVIRONMENTS = frozenset({"prod"})

SCHEME_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-scheme"
INTERNAL_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-internal"
LB_TYPE_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-type"
SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"
LBC_CLASS = "service.k8s.aws/nlb"

ALB = "alb.ingress.kubernetes.io"
# The stack's explicit, loud choice of plain HTTP on an internet-facing endpoint
# (components/serving/endpoint.py sets it from endpoint.insecureAllowPlainHttpOnInternet).
PLAIN_HTTP_ACCEPTED_ANNOTATION = "minimax-vllm/plain-http-on-internet"
MIN_PREFIX_LEN = 8
EXPOSED_PATHS_FILE = Path(__file__).resolve().parent.parent / "components" / "facts" / "data" / "exposed-paths.json"
# (path, pathType) pairs an Ingress may forward to a backend; everything else gets a 404.
ALLOWED_PATHS = frozenset((p["path"], p["pathType"]) for p in json.loads(EXPOSED_PATHS_FILE.read_text())["paths"])
IPV6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")


# ---------------------------------------------------------------- helpers


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _seq(value: Any) -> Sequence[Any]:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return value
    return ()


def _truthy(value: Any) -> bool:
    """Booleans may arrive as strings from the provider schema (`"true"`)."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _kind(resource_type: str) -> str:
    return resource_type.rsplit(":", 1)[-1]


def _is_kubernetes_object(resource_type: str) -> bool:
    return resource_type.startswith("kubernetes:") and not resource_type.startswith("kubernetes:helm.sh/")


def _object_name(props: Props) -> str:
    meta = _map(props.get("metadata"))
    return f"{meta.get('namespace') or 'default'}/{meta.get('name') or '?'}"


def _pod_template(resource_type: str, props: Props) -> tuple[Mapping[str, Any], Mapping[str, Any]] | None:
    """(pod metadata, pod spec) of a workload object, or None if it runs no pods."""
    if not _is_kubernetes_object(resource_type):
        return None
    kind = _kind(resource_type)
    spec = _map(props.get("spec"))
    if kind == "Pod":
        return _map(props.get("metadata")), spec
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"):
        template = _map(spec.get("template"))
    elif kind == "CronJob":
        template = _map(_map(_map(spec.get("jobTemplate")).get("spec")).get("template"))
    else:
        return None
    return _map(template.get("metadata")), _map(template.get("spec"))


def _containers(pod_spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in _seq(pod_spec.get(field)):
            yield _map(container)


def _workload(resource_type: str, props: Props) -> tuple[str, Mapping[str, Any], Mapping[str, Any]] | None:
    template = _pod_template(resource_type, props)
    if template is None:
        return None
    return f"{_kind(resource_type)} {_object_name(props)}", template[0], template[1]


def _gpu_count(container: Mapping[str, Any]) -> float:
    resources = _map(container.get("resources"))
    counts = []
    for section in ("requests", "limits"):
        value = _map(resources.get(section)).get(GPU_RESOURCE)
        try:
            counts.append(float(value))
        except (TypeError, ValueError):
            continue
    return max(counts, default=0.0)


def _tolerates(toleration: Mapping[str, Any], taint: Mapping[str, str]) -> bool:
    """Kubernetes' toleration matching (empty effect matches all, empty key with Exists matches all)."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint["effect"]:
        return False
    operator = toleration.get("operator") or "Equal"
    key = toleration.get("key") or ""
    if not key:
        return operator == "Exists"
    if key != taint["key"]:
        return False
    return operator == "Exists" or (toleration.get("value") or "") == taint["value"]


def _image_problem(image: Any) -> str | None:
    if not isinstance(image, str) or not image:
        return "has no image"
    if "@" in image:
        return None  # pinned by digest
    name_end = image.rfind("/")
    colon = image.rfind(":")
    if colon <= name_end:
        return f"uses image {image!r} without a tag (Kubernetes pulls `latest`)"
    if image[colon + 1 :] == "latest":
        return f"uses image {image!r}: `latest` is not a pinned version"
    return None


def _networks(cidrs: Iterable[Any]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets = []
    for cidr in cidrs:
        try:
            nets.append(ipaddress.ip_network(str(cidr).strip(), strict=False))
        except ValueError:
            continue
    return nets


def _routable(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    if net.version == 6 and not net.overlaps(IPV6_GLOBAL_UNICAST):
        return False
    return net.is_global and not net.is_multicast


def _covers_world(cidrs: Iterable[Any]) -> bool:
    """Address arithmetic, not strings: `0.0.0.0/1` + `128.0.0.0/1` is the whole internet too.

    True when the ranges leave no routable address uncovered, in IPv4 or in IPv6.
    """
    nets = _networks(cidrs)
    for space in (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")):
        family = [n for n in nets if n.version == space.version]
        if not family:
            continue
        remaining = [space]
        for net in ipaddress.collapse_addresses(family):
            pieces = []
            for block in remaining:
                if block.subnet_of(net):
                    continue
                pieces.extend(block.address_exclude(net) if net.subnet_of(block) else [block])
            remaining = pieces
        if not any(_routable(block) for block in remaining):
            return True
    return False


def _open_ranges_problem(cidrs: Sequence[Any]) -> str | None:
    """Why a list of source ranges is world-open, or None."""
    if _covers_world(cidrs):
        return f"{list(cidrs)} together cover the whole internet"
    wide = [str(n) for n in _networks(cidrs) if n.prefixlen < MIN_PREFIX_LEN]
    if wide:
        return f"{wide} has a prefix shorter than /{MIN_PREFIX_LEN}"
    return None


def _image_repository(image: Any) -> str:
    """`registry/path/name` of an image reference, without tag or digest."""
    if not isinstance(image, str):
        return ""
    name = image.split("@", 1)[0]
    colon = name.rfind(":")
    return name[:colon] if colon > name.rfind("/") else name


def _is_device_plugin(spec: Mapping[str, Any]) -> bool:
    """Every container runs exactly an allow-listed repository (no prefix match)."""
    images = [c.get("image") for c in _containers(spec)]
    return bool(images) and all(_image_repository(i) in PRIVILEGED_IMAGE_ALLOWLIST for i in images)


def _secret_like_name(name: str) -> bool:
    return any(word in SECRET_NAME_WORDS for word in re.split(r"[^A-Za-z0-9]+", name.upper()))


# ---------------------------------------------------------------- AWS rules


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


def eks_endpoint_not_public(resource_type: str, props: Props) -> list[str]:
    """A public EKS API reachable from anywhere is one leaked credential away from takeover."""
    if resource_type != "aws:eks/cluster:Cluster":
        return []
    vpc = _map(props.get("vpcConfig"))
    public = vpc.get("endpointPublicAccess")
    if public is not None and not _truthy(public):
        return []
    # AWS enables public access by default and opens it to 0.0.0.0/0 when no CIDRs are given.
    cidrs = list(_seq(vpc.get("publicAccessCidrs")))
    if not cidrs:
        return ["EKS API endpoint is public with no publicAccessCidrs, which AWS opens to 0.0.0.0/0"]
    world = sorted(WORLD_CIDRS.intersection(cidrs))
    if world:
        return [f"EKS API endpoint is public and publicAccessCidrs contains {world[0]} (open to the world)"]
    problem = _open_ranges_problem(cidrs)
    if problem:
        return [f"EKS API endpoint is public and publicAccessCidrs {problem} (open to the world)"]
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


# ---------------------------------------------------------------- Kubernetes rules


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
    if images and all(_image_repository(i).endswith("/" + API_READER_REPOSITORY) for i in images):
        return []
    return [f"{what} does not set automountServiceAccountToken: false"]


def container_resources(resource_type: str, props: Props) -> list[str]:
    """Requests let the scheduler pack p5 nodes correctly; a memory limit keeps one pod from OOM-ing the node.

    A CPU limit is not required: it only throttles.
    """
    workload = _workload(resource_type, props)
    if workload is None:
        return []
    what, _, spec = workload
    problems = []
    for container in _containers(spec):
        resources = _map(container.get("resources"))
        requests, limits = _map(resources.get("requests")), _map(resources.get("limits"))
        missing = [f"requests.{r}" for r in ("cpu", "memory") if requests.get(r) is None]
        missing += ["limits.memory"] if limits.get("memory") is None else []
        if missing:
            problems.append(f"{what} container {container.get('name')!r} has no resources {', '.join(missing)}")
    return problems


def pinned_images(resource_type: str, props: Props) -> list[str]:
    """A moving tag changes what runs without a diff in `pulumi preview`; Helm charts likewise."""
    if resource_type in ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart"):
        version = props.get("version")
        if not isinstance(version, str) or not version.strip():
            return [f"Helm chart {props.get('chart')!r} has no pinned version"]
        if re.search(r"[\^~*<>|=]|\s-\s|(^|\.)[xX*](\.|$)|^latest$", version.strip()):
            return [f"Helm chart {props.get('chart')!r} version {version!r} is a range, not a pinned version"]
        return []
    workload = _workload(resource_type, props)
    if workload is None:
        return []
    what, _, spec = workload
    problems = []
    for container in _containers(spec):
        problem = _image_problem(container.get("image"))
        if problem:
            problems.append(f"{what} container {container.get('name')!r} {problem}")
    return problems


def gpu_pods_tolerate_taint(resource_type: str, props: Props) -> list[str]:
    """A GPU pod without the taint's toleration never schedules on the (tainted) p5 nodes."""
    workload = _workload(resource_type, props)
    if workload is None:
        return []
    what, _, spec = workload
    if not any(_gpu_count(c) > 0 for c in _containers(spec)):
        return []
    if any(_tolerates(_map(t), GPU_TAINT) for t in _seq(spec.get("tolerations"))):
        return []
    taint = f"{GPU_TAINT['key']}={GPU_TAINT['value']}:{GPU_TAINT['effect']}"
    return [f"{what} requests {GPU_RESOURCE} but does not tolerate the GPU node taint {taint}"]


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


# ---------------------------------------------------------------- endpoint rules


def _is_ingress(resource_type: str) -> bool:
    return resource_type == "kubernetes:networking.k8s.io/v1:Ingress"


def _annotations(props: Props) -> Mapping[str, Any]:
    return _map(_map(props.get("metadata")).get("annotations"))


def public_endpoint_tls_and_ranges(resource_type: str, props: Props) -> list[str]:
    """An internet-facing ALB carries the API key and every prompt: TLS, and only client networks."""
    if not _is_ingress(resource_type):
        return []
    annotations = _annotations(props)
    if annotations.get(f"{ALB}/scheme") != "internet-facing":
        return []  # the controller's default scheme is internal
    what = f"Ingress {_object_name(props)} is an internet-facing load balancer"
    problems = []
    try:
        listeners = json.loads(annotations.get(f"{ALB}/listen-ports") or '[{"HTTP": 80}]')
    except ValueError:
        listeners = [{"HTTP": "?"}]
    plain = [f"{proto} {port}" for item in _seq(listeners) for proto, port in _map(item).items() if proto != "HTTPS"]
    accepted = annotations.get(PLAIN_HTTP_ACCEPTED_ANNOTATION) == "true"
    if not accepted and (plain or not annotations.get(f"{ALB}/certificate-arn")):
        problems.append(
            f"{what} without TLS (plain listeners {plain}, certificate-arn "
            f"{'set' if annotations.get(f'{ALB}/certificate-arn') else 'missing'}): the API key would cross the internet in clear"
        )
    policy = str(annotations.get(f"{ALB}/ssl-policy") or "")
    if annotations.get(f"{ALB}/certificate-arn") and "-Res-" not in policy:
        problems.append(
            f"{what} whose TLS policy {policy or '(the ELB default, ELBSecurityPolicy-2016-08)'} is not a restricted"
            " (-Res-) one: only forward-secret AEAD ciphers should meet the API key"
        )
    cidrs = [c for c in str(annotations.get(f"{ALB}/inbound-cidrs") or "").split(",") if c.strip()]
    if not cidrs:
        problems.append(f"{what} with no inbound-cidrs, which the controller opens to 0.0.0.0/0")
    elif problem := _open_ranges_problem(cidrs):
        problems.append(f"{what} whose inbound-cidrs {problem}")
    return problems


def only_allowed_paths_exposed(resource_type: str, props: Props) -> list[str]:
    """vLLM checks the key only under /v1: an Ingress forwards only the listed paths, the rest get a 404."""
    if not _is_ingress(resource_type):
        return []
    what = f"Ingress {_object_name(props)}"
    spec = _map(props.get("spec"))
    problems = []
    for rule in _seq(spec.get("rules")):
        for item in _seq(_map(_map(rule).get("http")).get("paths")):
            item = _map(item)
            pair = (item.get("path") or "/", item.get("pathType") or "ImplementationSpecific")
            port = _map(_map(_map(item.get("backend")).get("service")).get("port"))
            if port.get("name") == "use-annotation":
                continue  # a listener action (fixed response or redirect), not a backend
            if pair not in ALLOWED_PATHS:
                allowed = ", ".join(f"{p} ({t})" for p, t in sorted(ALLOWED_PATHS))
                problems.append(f"{what} forwards {pair[0]} ({pair[1]}) to a backend; only {allowed} may be exposed")
    default = _map(spec.get("defaultBackend"))
    if default:
        service = _map(default.get("service"))
        action = _annotations(props).get(f"{ALB}/actions.{service.get('name')}")
        try:
            config = _map(_map(json.loads(action or "{}")).get("fixedResponseConfig"))
        except ValueError:
            config = {}
        if _map(service.get("port")).get("name") != "use-annotation" or str(config.get("statusCode")) != "404":
            problems.append(f"{what} has a defaultBackend that is not a fixed 404 response: it would expose every path")
    return problems


# ---------------------------------------------------------------- stack rules


def _is_internet_facing(service: Props) -> bool:
    annotations = _map(_map(service.get("metadata")).get("annotations"))
    scheme = annotations.get(SCHEME_ANNOTATION)
    if scheme is not None:
        return scheme == "internet-facing"
    if annotations.get(INTERNAL_ANNOTATION) in ("true", "0.0.0.0/0"):
        return False
    spec = _map(service.get("spec"))
    # The AWS Load Balancer Controller defaults to internal; the in-tree controller to internet-facing.
    managed_by_lbc = spec.get("loadBalancerClass") == LBC_CLASS or annotations.get(LB_TYPE_ANNOTATION) in (
        "external",
        "nlb-ip",
    )
    return not managed_by_lbc


def _source_ranges(service: Props) -> list[str]:
    ranges = list(_seq(_map(service.get("spec")).get("loadBalancerSourceRanges")))
    if ranges:
        return ranges
    annotation = _map(_map(service.get("metadata")).get("annotations")).get(SOURCE_RANGES_ANNOTATION)
    return [r.strip() for r in annotation.split(",") if r.strip()] if isinstance(annotation, str) else []


def _has_api_key_from_secret(pod_spec: Mapping[str, Any]) -> bool:
    for container in _containers(pod_spec):
        for env in _seq(container.get("env")):
            env = _map(env)
            if env.get("name") == API_KEY_ENV and _map(_map(env.get("valueFrom")).get("secretKeyRef")).get("key"):
                return True
    return False


def _workloads(resources: Sequence[tuple[str, Props]]) -> list[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """(namespace, pod labels, pod spec) of every workload."""
    found = []
    for resource_type, props in resources:
        template = _pod_template(resource_type, props)
        if template is not None:
            namespace = _map(props.get("metadata")).get("namespace") or "default"
            found.append((namespace, _map(template[0].get("labels")), template[1]))
    return found


def _selected(service: Props, workloads: list[tuple[str, Mapping[str, Any], Mapping[str, Any]]]) -> list[Any]:
    namespace = _map(service.get("metadata")).get("namespace") or "default"
    selector = _map(_map(service.get("spec")).get("selector"))
    return [
        pod_spec
        for ns, labels, pod_spec in workloads
        if selector and ns == namespace and all(labels.get(k) == v for k, v in selector.items())
    ]


def vllm_only_behind_the_path_list(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """A LoadBalancer or NodePort Service forwards every path, /invocations and /metrics included:
    the vLLM pods (those reading VLLM_API_KEY) are reached from outside only through an Ingress."""
    workloads = _workloads(resources)
    problems = []
    for resource_type, props in resources:
        if resource_type != "kubernetes:core/v1:Service":
            continue
        kind = _map(props.get("spec")).get("type") or "ClusterIP"
        if kind not in ("LoadBalancer", "NodePort"):
            continue
        if any(_has_api_key_from_secret(pod_spec) for pod_spec in _selected(props, workloads)):
            problems.append(
                f"Service {_object_name(props)} of type {kind} exposes every path of the vLLM pods it selects; "
                "use a ClusterIP Service behind the Ingress's path list"
            )
    return problems


def public_endpoint_requires_api_key(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """An internet-facing load balancer open to 0.0.0.0/0 is acceptable only in front of pods that demand an API key.

    Cross-resource: the Service is judged by the workloads its selector picks in its namespace;
    every one of them must read VLLM_API_KEY from a Secret.
    """
    workloads = []
    for resource_type, props in resources:
        template = _pod_template(resource_type, props)
        if template is not None:
            namespace = _map(props.get("metadata")).get("namespace") or "default"
            workloads.append((namespace, _map(template[0].get("labels")), template[1]))

    problems = []
    for resource_type, props in resources:
        if resource_type != "kubernetes:core/v1:Service":
            continue
        spec = _map(props.get("spec"))
        if spec.get("type") != "LoadBalancer" or not _is_internet_facing(props):
            continue
        ranges = _source_ranges(props)
        if ranges and not WORLD_CIDRS.intersection(ranges) and not _open_ranges_problem(ranges):
            continue
        opening = "no loadBalancerSourceRanges" if not ranges else f"loadBalancerSourceRanges {ranges}"
        what = f"Service {_object_name(props)} is an internet-facing load balancer with {opening}"
        namespace = _map(props.get("metadata")).get("namespace") or "default"
        selector = _map(spec.get("selector"))
        selected = [
            pod_spec
            for ns, labels, pod_spec in workloads
            if selector and ns == namespace and all(labels.get(k) == v for k, v in selector.items())
        ]
        if not selected:
            problems.append(f"{what} and selects no workload that requires an API key ({API_KEY_ENV} from a Secret)")
        elif not all(_has_api_key_from_secret(pod_spec) for pod_spec in selected):
            problems.append(f"{what} and a workload it selects does not read {API_KEY_ENV} from a secretKeyRef")
    return problems


def _workloads_by_kind(
    resources: Sequence[tuple[str, Props]],
) -> list[tuple[str, str, Mapping[str, Any], Mapping[str, Any]]]:
    """(what, namespace, pod labels, pod spec) of every workload in the stack."""
    found = []
    for resource_type, props in resources:
        workload = _workload(resource_type, props)
        if workload is not None:
            namespace = _map(props.get("metadata")).get("namespace") or "default"
            found.append((workload[0], namespace, _map(workload[1].get("labels")), workload[2]))
    return found


def _selects(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist); {} selects every pod."""
    if not all(labels.get(k) == v for k, v in _map(selector.get("matchLabels")).items()):
        return False
    for expression in map(_map, _seq(selector.get("matchExpressions"))):
        key, operator, values = expression.get("key"), expression.get("operator"), list(_seq(expression.get("values")))
        present = key in labels
        if not {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(operator, False):
            return False
    return True


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


def _node_ranges(resources: Sequence[tuple[str, Props]]) -> list[tuple[str, Any, bool]]:
    """(what, network, whole): the stack's VPC (admitted whole is wrong) and every subnet of it
    that is not a public load-balancer subnet (tag kubernetes.io/role/elb; any overlap is wrong):
    with the VPC CNI, pods have addresses of their nodes' subnets."""
    found = []
    for resource_type, props in resources:
        cidr = props.get("cidrBlock")
        if not isinstance(cidr, str):
            continue
        if resource_type == "aws:ec2/vpc:Vpc":
            found.append((f"the whole VPC {cidr}", ipaddress.ip_network(cidr, strict=False), True))
        elif resource_type == "aws:ec2/subnet:Subnet" and "kubernetes.io/role/elb" not in _map(props.get("tags")):
            found.append((f"subnet {cidr}", ipaddress.ip_network(cidr, strict=False), False))
    return found


def vllm_port_admits_no_pod_address(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """vLLM checks its API key only under /v1 (and /v2, /inference, /cohere): a NetworkPolicy of
    the vLLM pods (those reading VLLM_API_KEY) must admit no rule open to every source and no
    ipBlock that holds the VPC or a non-public subnet, where every pod has an address."""
    vllm = [(ns, labels) for _, ns, labels, spec in _workloads_by_kind(resources) if _has_api_key_from_secret(spec)]
    ranges = _node_ranges(resources)
    problems = []
    for resource_type, props in resources:
        if resource_type != "kubernetes:networking.k8s.io/v1:NetworkPolicy":
            continue
        namespace = _map(props.get("metadata")).get("namespace") or "default"
        spec = _map(props.get("spec"))
        if not any(ns == namespace and _selects(_map(spec.get("podSelector")), labels) for ns, labels in vllm):
            continue
        name = f"NetworkPolicy {_object_name(props)}"
        for rule in map(_map, _seq(spec.get("ingress"))):
            peers = list(map(_map, _seq(rule.get("from"))))
            if not peers:
                problems.append(
                    f"{name} has an ingress rule open to every source: every pod reaches vLLM without its key"
                )
            for block in (_map(p.get("ipBlock")) for p in peers if p.get("ipBlock")):
                try:
                    net = ipaddress.ip_network(str(block.get("cidr")), strict=False)
                except ValueError:
                    continue
                excluded = [ipaddress.ip_network(str(e), strict=False) for e in _seq(block.get("except"))]
                for what, other, whole in ranges:
                    if net.version != other.version:
                        continue
                    if whole and other.subnet_of(net) or not whole and net.overlaps(other):
                        if whole or not any(other.subnet_of(e) for e in excluded if e.version == other.version):
                            problems.append(
                                f"{name} admits {net}, which holds {what}: pods there reach vLLM without its key; "
                                "admit the load balancer's subnets only"
                            )
    return problems


def _environment(resources: Sequence[tuple[str, Props]]) -> str | None:
    """The stack's `environment` tag, from its EKS cluster."""
    for resource_type, props in resources:
        if resource_type == "aws:eks/cluster:Cluster":
            return _map(props.get("tags")).get("environment")
    return None


def _revision(argv: Sequence[Any]) -> str | None:
    items = [str(a) for a in argv]
    for i, item in enumerate(items):
        if item == "--revision" and i + 1 < len(items):
            return items[i + 1]
        if item.startswith("--revision="):
            return item.split("=", 1)[1]
    return None


def pinned_revision_with_remote_code(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """In a prod stack, a container that runs the model repository's code (--trust-remote-code)
    pins that repository with --revision <40-hex commit>."""
    if _environment(resources) not in STRICT_ENVIRONMENTS:
        return []
    problems = []
    for what, _, _, spec in _workloads_by_kind(resources):
        for container in _containers(spec):
            argv = [*_seq(container.get("command")), *_seq(container.get("args"))]
            if REMOTE_CODE_FLAG not in argv:
                continue
            revision = _revision(argv)
            if not (revision and COMMIT_SHA.fullmatch(revision)):
                problems.append(
                    f"{what} container {container.get('name')!r} passes {REMOTE_CODE_FLAG} with --revision {revision!r}, not a 40-hex commit"
                )
    return problems


# ---------------------------------------------------------------- registry


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
        "only-allowed-paths-exposed",
        only_allowed_paths_exposed,
        "Mandatory. An Ingress forwards only the paths of components/facts/data/exposed-paths.json (/v1 prefix and /health): vLLM checks the API key only under /v1, so /invocations, /tokenize, /metrics and /docs must get the load balancer's fixed 404.",
    ),
    Rule(
        "no-plaintext-secrets",
        no_plaintext_secrets,
        "Mandatory. No secret in plain-text env values, args, command or annotations: secret-looking env vars (KEY, TOKEN, PASSWORD, SECRET) use valueFrom.secretKeyRef and no --api-key/--hf-token flag is passed.",
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
