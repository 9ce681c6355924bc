"""What every rule of the pack shares: the values it judges against, and readers of a resource's
properties that accept the policy engine's read-only proxies.

Properties arrive from the policy engine as read-only Mapping/Sequence proxies that raise
when a value is unknown during preview; the helpers below accept any Mapping/Sequence and
the rules read only the fields they judge, so an unknown subnet id or KMS ARN never stops
a rule that does not look at it. The pack imports nothing from the project: it runs in its
own virtualenv with only `policies/` on the path. It reads one data file of the project, the
list of paths the load balancer may forward (components/facts/data/exposed-paths.json), so the
Ingress, the tests and the pack judge against the same list.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

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
# token bound to a Role that only reads pods. Its image lies in the stack's own ECR repository
# `<registry>/minimax-vllm/<cluster>/vllm-router` (components/aws/image_registry.py PREFIX and
# ROUTER; tests/test_routing.py keeps them equal).
STACK_REPOSITORY_PREFIX = "minimax-vllm"
API_READER_IMAGE = "vllm-router"


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


EXPOSED_PATHS_FILE = Path(__file__).resolve().parents[2] / "components" / "facts" / "data" / "exposed-paths.json"


# (path, pathType) pairs an Ingress may forward to a backend; everything else gets a 404.
ALLOWED_PATHS = frozenset((p["path"], p["pathType"]) for p in json.loads(EXPOSED_PATHS_FILE.read_text())["paths"])


IPV6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")


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


def _workloads(resources: Sequence[tuple[str, Props]]) -> list[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """(namespace, pod labels, pod spec) of every workload."""
    found = []
    for resource_type, props in resources:
        template = _pod_template(resource_type, props)
        if template is not None:
            namespace = _map(props.get("metadata")).get("namespace") or "default"
            found.append((namespace, _map(template[0].get("labels")), template[1]))
    return found


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
