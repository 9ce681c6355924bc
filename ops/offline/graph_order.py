"""Pulumi's create and delete order, computed from the offline engine's recorded graph (pure).

Pulumi deletes a resource only after every resource that depends on it: through `depends_on`
or an input (both arrive as the registration's dependencies; a dependency on a component
stands for its children), through `parent` (children go before their parent) and through
`provider` (a provider's users go before the provider). Whatever nothing depends on goes in
the first parallel wave. `up` runs the same graph the other way: a resource is created only
after everything it depends on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from components.facts import versions


class Node(Protocol):
    urn: str
    type: str
    name: str
    inputs: dict[str, Any]
    parent: str
    provider: str
    dependencies: tuple[str, ...]


def provider_urn(reference: str) -> str:
    """A provider reference is `<urn>::<id>`; the URN itself contains `::`, the id does not."""
    return reference.rsplit("::", 1)[0] if reference else ""


def depends_on(resources: Sequence[Node]) -> dict[str, set[str]]:
    """For each resource, the resources it needs (dependencies, parent, provider), known ones only."""
    known = {r.urn for r in resources}
    graph = {}
    for r in resources:
        needs = set(r.dependencies) | {r.parent, provider_urn(r.provider)}
        graph[r.urn] = {n for n in needs if n in known and n != r.urn}
    return graph


def delete_waves(resources: Sequence[Node]) -> list[list[str]]:
    """Pulumi's parallel delete waves: a resource leaves once nothing left depends on it."""
    needs = depends_on(resources)
    dependents: dict[str, set[str]] = {urn: set() for urn in needs}
    for urn, deps in needs.items():
        for dep in deps:
            dependents[dep].add(urn)
    left, waves = set(needs), []
    while left:
        wave = sorted(urn for urn in left if not (dependents[urn] & left))
        if not wave:
            raise ValueError(f"dependency cycle among {sorted(left)}")
        waves.append(wave)
        left -= set(wave)
    return waves


def wave_of(resources: Sequence[Node]) -> dict[str, int]:
    return {urn: i for i, wave in enumerate(delete_waves(resources)) for urn in wave}


def created_after(resources: Sequence[Node], urn: str) -> set[str]:
    """Everything `urn` waits for on `up` (transitively)."""
    needs = depends_on(resources)
    seen, todo = set(), [urn]
    while todo:
        for dep in needs[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


# --- what the load balancer controller needs to delete a load balancer --------------------

LB_CONTROLLER_CHART = "aws-load-balancer-controller"
CONTROLLER_COMPONENT = "minimax-vllm:k8s:LoadBalancerController"
CONTROLLER_ADDONS = ("coredns", "vpc-cni", "kube-proxy", "eks-pod-identity-agent")
# Every resource of these types is on the controller's path to the ELB and EC2 APIs.
CONTROLLER_NEEDS_TYPES = (
    "aws:eks/nodeGroup:NodeGroup",
    "aws:ec2/natGateway:NatGateway",
    "aws:ec2/route:Route",
    "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/subnet:Subnet",
    "aws:eks/cluster:Cluster",
    "aws:eks/podIdentityAssociation:PodIdentityAssociation",
    "pulumi:providers:kubernetes",
)


def carries_lb_finalizer(r: Node) -> bool:
    """Objects the controller puts its finalizer on: LoadBalancer Services and Ingresses."""
    kind = r.inputs.get("kind")
    if kind == "Ingress":
        return True
    return kind == "Service" and (r.inputs.get("spec") or {}).get("type") == "LoadBalancer"


def controller_needs(resources: Sequence[Node]) -> list[Node]:
    """The controller's release and identity, nodes, networking add-ons, egress, subnets, cluster, provider."""
    components = {r.urn for r in resources if r.type == CONTROLLER_COMPONENT}
    return [
        r
        for r in resources
        if r.type in CONTROLLER_NEEDS_TYPES
        or r.parent in components
        or (r.type == "aws:eks/addon:Addon" and r.inputs.get("addonName") in CONTROLLER_ADDONS)
        or (r.type == "kubernetes:helm.sh/v3:Release" and r.inputs.get("chart") == LB_CONTROLLER_CHART)
    ]


def lb_teardown_problems(resources: Sequence[Node]) -> list[str]:
    """What `pulumi destroy` would delete no later than a load balancer object: each an orphaned load balancer."""
    waves = wave_of(resources)
    holders = [r for r in resources if carries_lb_finalizer(r)]
    if not holders:
        return []
    last = max(waves[h.urn] for h in holders)
    names = ", ".join(sorted(f"{h.inputs['kind']}/{h.name}" for h in holders))
    return [
        f"{r.type} {r.name} is deleted in wave {waves[r.urn]}, not after {names} (wave {last})"
        for r in controller_needs(resources)
        if waves[r.urn] <= last
    ]


# --- controller finalizers: destroy must wait for them ------------------------------------

# Objects a controller of this stack puts its finalizer on, by (apiVersion, kind): the
# finalizer and the chart of the release whose controller clears it. Sources: KEDA adds
# finalizer.keda.sh to ScaledObjects and TriggerAuthentications (keda pkg/controller
# finalizers); the load balancer controller adds ingress.k8s.aws/resources to Ingresses
# (its ingress group finalizer) and service.k8s.aws/resources to LoadBalancer Services.
CONTROLLER_FINALIZERS = {
    ("keda.sh/v1alpha1", "ScaledObject"): ("finalizer.keda.sh", versions.KEDA_CHART[1]),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): ("finalizer.keda.sh", versions.KEDA_CHART[1]),
    ("networking.k8s.io/v1", "Ingress"): ("ingress.k8s.aws/resources", LB_CONTROLLER_CHART),
    ("v1", "Service"): ("service.k8s.aws/resources", LB_CONTROLLER_CHART),
}
SKIP_AWAIT = "pulumi.com/skipAwait"


def finalizer_holders(resources: Sequence[Node]) -> list[tuple[Node, str, Node]]:
    """(object, finalizer, the release of the controller that clears it) for every object a
    controller of this stack finalizes (a Service only when it is a LoadBalancer)."""
    releases = {r.inputs.get("chart"): r for r in resources if r.type == "kubernetes:helm.sh/v3:Release"}
    out = []
    for r in resources:
        key = (r.inputs.get("apiVersion"), r.inputs.get("kind"))
        if key not in CONTROLLER_FINALIZERS or (key[1] == "Service" and not carries_lb_finalizer(r)):
            continue
        finalizer, chart = CONTROLLER_FINALIZERS[key]
        if chart in releases:
            out.append((r, finalizer, releases[chart]))
    return out


def finalizer_problems(resources: Sequence[Node]) -> list[str]:
    """Objects `pulumi destroy` would not wait for, or would delete no earlier than the release
    of the controller that must clear their finalizer: each a destroy that hangs."""
    waves = wave_of(resources)
    problems = []
    for obj, finalizer, release in finalizer_holders(resources):
        annotations = (obj.inputs.get("metadata") or {}).get("annotations") or {}
        if str(annotations.get(SKIP_AWAIT, "")).lower() == "true":
            problems.append(f"{obj.name} carries {SKIP_AWAIT}: destroy would not wait for {finalizer} to clear")
        if waves[obj.urn] >= waves[release.urn]:
            problems.append(
                f"{obj.name} ({finalizer}) is deleted in wave {waves[obj.urn]}, not before the release"
                f" {release.name} that clears it (wave {waves[release.urn]})"
            )
    return problems


def without_dependents(resources: Iterable[Node], urns: set[str]) -> list[Node]:
    """The same graph with every edge into `urns` removed (for tests of the check itself)."""
    from dataclasses import replace

    out = []
    for r in resources:
        deps = tuple(d for d in r.dependencies if d not in urns)
        parent = "" if r.parent in urns else r.parent
        out.append(replace(r, dependencies=deps, parent=parent))  # type: ignore[type-var]
    return out
