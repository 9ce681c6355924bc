"""The hops a request takes in a rendered stack, found from the objects themselves: the Ingress's
backend Service, the pods that Service selects, and (with the router) the vLLM pods behind it.

The exposure tests follow these hops instead of assuming the ALB reaches vLLM directly, so they
check whatever path the stack renders: ALB -> vLLM, or ALB -> router -> vLLM.
"""

from __future__ import annotations

from typing import Any

from ops.offline.engine import Rendering, Resource

INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def backends(r: Rendering) -> set[str]:
    """The Service names the Ingress sends requests to."""
    ing = r.one(INGRESS).inputs["spec"]
    return {p["backend"]["service"]["name"] for rule in ing["rules"] for p in rule["http"]["paths"]}


def front_service(r: Rendering) -> Resource:
    (name,) = backends(r)
    return r.named(SERVICE, name)


def selected(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def front(r: Rendering) -> Resource:
    """The one Deployment whose pods the Ingress's Service selects: the pods the ALB targets."""
    selector = front_service(r).inputs["spec"]["selector"]
    (found,) = [
        d for d in r.of_type(DEPLOYMENT) if selected(selector, d.inputs["spec"]["template"]["metadata"]["labels"])
    ]
    return found


def routed(r: Rendering, vllm: Resource) -> bool:
    """Whether the ALB reaches another workload that forwards to vLLM (the router)."""
    return front(r).urn != vllm.urn


def container(deployment: Resource) -> dict[str, Any]:
    (c,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
    return c


def labels(deployment: Resource) -> dict[str, str]:
    return dict(deployment.inputs["spec"]["template"]["metadata"]["labels"])


def policies_for(r: Rendering, deployment: Resource) -> list[dict[str, Any]]:
    """The NetworkPolicies (but the namespace's default deny) that select the Deployment's pods."""
    ns, pod_labels = deployment.inputs["metadata"]["namespace"], labels(deployment)
    return [
        p.inputs
        for p in r.of_type(NETPOL)
        if p.inputs["metadata"]["namespace"] == ns
        and p.inputs["spec"]["podSelector"].get("matchLabels")
        and selected(p.inputs["spec"]["podSelector"]["matchLabels"], pod_labels)
    ]


def policy_for(r: Rendering, deployment: Resource) -> dict[str, Any]:
    (found,) = policies_for(r, deployment)
    return found


def flag(argv: list[str], name: str) -> str:
    """A flag's value in `--name value` or `--name=value` form."""
    for i, a in enumerate(argv):
        if a == name:
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    raise KeyError(name)
