"""Exposure rules: what the internet may reach. The EKS API endpoint, the ALB's TLS and source
ranges, the path list the Ingress forwards, and no Service that bypasses the Ingress."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from typing import Any

from .common import (
    ALB,
    ALLOWED_PATHS,
    API_KEY_ENV,
    INTERNAL_ANNOTATION,
    LB_TYPE_ANNOTATION,
    LBC_CLASS,
    PLAIN_HTTP_ACCEPTED_ANNOTATION,
    SCHEME_ANNOTATION,
    SOURCE_RANGES_ANNOTATION,
    WORLD_CIDRS,
    Props,
    _containers,
    _map,
    _object_name,
    _open_ranges_problem,
    _pod_template,
    _selects,
    _seq,
    _truthy,
    _workloads,
    _workloads_by_kind,
)


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
            problems += _ranges_problems(name, peers, ranges, "vLLM")
    return problems


def _ranges_problems(
    name: str, peers: list[Mapping[str, Any]], ranges: list[tuple[str, Any, bool]], to: str
) -> list[str]:
    """The ipBlock peers that hold the VPC or a non-public subnet (where every pod has an address)."""
    problems = []
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
                        f"{name} admits {net}, which holds {what}: pods there reach {to} without its key; "
                        "admit the load balancer's subnets only"
                    )
    return problems
