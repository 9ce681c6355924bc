"""The router hop: ALB -> router -> vLLM, judged across the stack's objects.

vLLM's router forwards every path to a replica, /tokenize, /invocations and /metrics included
(vllm-router 0.1.17's transparent proxy; tests/test_router_exposure.py runs the binary), and those
answer without the key. So once an Ingress sends traffic to pods that are not vLLM's (the router),
the router's serving port is as sensitive as vLLM's: it may admit the load balancer's addresses and
no pod, and vLLM's port may admit no address at all (the ALB would bypass the router) and, in its
own namespace, no pod but the router's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .common import Props, _containers, _map, _object_name, _pod_template, _selects, _seq
from .exposure import _has_api_key_from_secret, _node_ranges, _ranges_problems

NAME_LABEL = "app.kubernetes.io/name"
# The node's weight stager (components/weights/staging.NAME; tests/test_policies.py holds them equal).
STAGER_NAME = "stage-weights"

NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
Workload = tuple[str, Mapping[str, Any], Mapping[str, Any]]  # namespace, pod labels, pod spec


def _workloads(resources: Sequence[tuple[str, Props]]) -> list[Workload]:
    found = []
    for resource_type, props in resources:
        template = _pod_template(resource_type, props)
        if template is not None:
            namespace = _map(props.get("metadata")).get("namespace") or "default"
            found.append((namespace, _map(template[0].get("labels")), template[1]))
    return found


def _ingress_services(resources: Sequence[tuple[str, Props]]) -> set[tuple[str, str]]:
    """(namespace, Service name) of every Ingress backend."""
    found = set()
    for resource_type, props in resources:
        if resource_type != "kubernetes:networking.k8s.io/v1:Ingress":
            continue
        namespace = _map(props.get("metadata")).get("namespace") or "default"
        spec = _map(props.get("spec"))
        paths = [_map(p) for rule in _seq(spec.get("rules")) for p in _seq(_map(_map(rule).get("http")).get("paths"))]
        backends = [_map(spec.get("defaultBackend")), *(_map(p.get("backend")) for p in paths)]
        found |= {(namespace, str(_map(b.get("service")).get("name"))) for b in backends if b.get("service")}
    return found


def _port_number(port: Any, spec: Mapping[str, Any]) -> int | None:
    if isinstance(port, int):
        return port
    for container in _containers(spec):
        for p in map(_map, _seq(container.get("ports"))):
            if p.get("name") == port:
                return p.get("containerPort")
    return None


def _routers(resources: Sequence[tuple[str, Props]]) -> list[tuple[str, Mapping[str, Any], int | None]]:
    """(namespace, pod labels, serving port) of the pods an Ingress sends to that are not vLLM's."""
    backends = _ingress_services(resources)
    workloads = _workloads(resources)
    found = []
    for resource_type, props in resources:
        meta = _map(props.get("metadata"))
        namespace = meta.get("namespace") or "default"
        if resource_type != "kubernetes:core/v1:Service" or (namespace, meta.get("name")) not in backends:
            continue
        spec = _map(props.get("spec"))
        selector = _map(spec.get("selector"))
        ports = [_map(p).get("targetPort") or _map(p).get("port") for p in _seq(spec.get("ports"))]
        for ns, labels, pod in workloads:
            if selector and ns == namespace and all(labels.get(k) == v for k, v in selector.items()):
                if not _has_api_key_from_secret(pod):
                    found += [(ns, labels, _port_number(port, pod)) for port in ports]
    return found


def _covers(rule: Mapping[str, Any], port: int | None) -> bool:
    ports = list(map(_map, _seq(rule.get("ports"))))
    return not ports or port is None or any(p.get("port") in (None, port) for p in ports)


def router_port_admits_only_the_load_balancer(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """A NetworkPolicy of the router's pods admits on its serving port no rule open to every source,
    no pod (by label) and no address where pods live (the VPC, a subnet not tagged for load balancers)."""
    fronts = _routers(resources)
    ranges = _node_ranges(resources)
    problems = []
    for resource_type, props in resources:
        if resource_type != NETPOL:
            continue
        namespace = _map(props.get("metadata")).get("namespace") or "default"
        spec = _map(props.get("spec"))
        name = f"NetworkPolicy {_object_name(props)}"
        for ns, labels, port in fronts:
            if ns != namespace or not _selects(_map(spec.get("podSelector")), labels):
                continue
            for rule in map(_map, _seq(spec.get("ingress"))):
                if not _covers(rule, port):
                    continue
                peers = list(map(_map, _seq(rule.get("from"))))
                if not peers:
                    problems.append(f"{name} opens the router's port {port} to every source")
                if any(p.get("podSelector") is not None or p.get("namespaceSelector") is not None for p in peers):
                    problems.append(
                        f"{name} admits pods to the router's port {port}: the router forwards /tokenize,"
                        " /invocations and /metrics to vLLM without the key; admit the load balancer's subnets only"
                    )
                problems += _ranges_problems(name, peers, ranges, "the router")
    return problems


def vllm_admits_only_the_router(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """With a router in front, a NetworkPolicy of the vLLM pods admits no address (the load balancer
    would bypass the router) and, in vLLM's namespace, no pod but the router's, and the node's
    weight stager (it waits for /health before it publishes the compile cache; it runs only the
    project's own code)."""
    fronts = _routers(resources)
    if not fronts:
        return []
    workloads = _workloads(resources)
    vllm = [(ns, labels) for ns, labels, pod in workloads if _has_api_key_from_secret(pod)]
    problems = []
    for resource_type, props in resources:
        if resource_type != NETPOL:
            continue
        namespace = _map(props.get("metadata")).get("namespace") or "default"
        spec = _map(props.get("spec"))
        if not any(ns == namespace and _selects(_map(spec.get("podSelector")), labels) for ns, labels in vllm):
            continue
        name = f"NetworkPolicy {_object_name(props)}"
        router_labels = [labels for ns, labels, _ in fronts if ns == namespace]
        for rule in map(_map, _seq(spec.get("ingress"))):
            for peer in map(_map, _seq(rule.get("from"))):
                if peer.get("ipBlock"):
                    cidr = _map(peer.get("ipBlock")).get("cidr")
                    problems.append(f"{name} admits {cidr} to vLLM: requests must come through the router's pods")
                elif peer.get("namespaceSelector") is None:
                    selector = _map(peer.get("podSelector"))
                    strangers = [
                        dict(labels)
                        for ns, labels, _ in workloads
                        if ns == namespace
                        and _selects(selector, labels)
                        and labels not in router_labels
                        and labels.get(NAME_LABEL) != STAGER_NAME
                    ]
                    stager_only = selector.get("matchLabels", {}).get(NAME_LABEL) == STAGER_NAME
                    if (
                        not selector
                        or strangers
                        or not (stager_only or any(_selects(selector, r) for r in router_labels))
                    ):
                        problems.append(
                            f"{name} admits pods other than the router's to vLLM ({strangers or 'every pod'})"
                        )
    return problems
