"""The routing path `make plan` prints: what the rendered Ingress sends traffic to."""

from __future__ import annotations

from components.serving import routing
from components.settings.stack import Settings
from ops.offline.engine import Rendering

INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"


def routing_lines(settings: Settings, rendering: Rendering) -> list[str]:
    backends = sorted(
        {
            p["backend"]["service"]["name"]
            for ing in rendering.of_type(INGRESS)
            for rule in ing.inputs["spec"].get("rules", [])
            for p in rule["http"]["paths"]
        }
    )
    r = settings.routing
    if backends == [routing.APP]:
        return [
            f"  ALB -> Service {routing.APP} ({routing.REPLICAS} router pods, policy {r.policy}, "
            f"session header {r.session_header}) -> vLLM pods found by discovery"
        ]
    line = f"  ALB -> Service {', '.join(backends)} -> vLLM pods (no router)"
    if settings.can_have_replicas:
        line += (
            "; more than one prefix cache serves this stack, so turns scatter: "
            "pulumi config rm --path 'routing.mode' (the router is the default here)"
        )
    return [line]
