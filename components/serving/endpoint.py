"""The endpoint as plain Kubernetes objects: an ALB Ingress with an explicit path list.

vLLM checks the API key only under /v1 (and /v2, /inference, /cohere); /invocations,
/tokenize, /metrics, /docs and more answer without it. So the load balancer forwards only the
paths in `EXPOSED_PATHS` (one data file, read by the tests and the policy pack too) and
answers every other path itself with a fixed 404. The Service stays ClusterIP, so /metrics
is reachable inside the cluster only.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from components.facts import DATA
from components.facts.timeline import HEALTH_CHECK
from components.kubernetes.ingress import INGRESS_CLASS
from components.serving import workload

if TYPE_CHECKING:
    from components.settings.endpoint import EndpointSettings

EXPOSED_PATHS_FILE = DATA / "exposed-paths.json"
# Listener action for every path not listed: the controller builds it from this annotation.
REFUSE_ACTION = "refuse-404"
# TLS 1.3 and 1.2, restricted to forward-secret AEAD ciphers, with hybrid post-quantum key
# exchange for clients that offer it: the policy the ALB documentation recommends ("Security
# policies for your Application Load Balancer"; the console's default).
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"
ANNOTATION = "alb.ingress.kubernetes.io"
# The subnets the ALB is placed in: ids or Name tags, at least two zones (v3.5.0 docs,
# "Ingress annotations", `subnets`).
SUBNETS_ANNOTATION = f"{ANNOTATION}/subnets"
PLAIN_HTTP_ACCEPTED = "minimax-vllm/plain-http-accepted"
# The controller names the ALB from this annotation (v3.5.0 docs, "Ingress annotations"; longer
# than 32 characters is an error). ELB names: letters, digits and hyphens, no hyphen at either
# end, not starting with "internal-".
LOAD_BALANCER_NAME_MAX = 32
LOAD_BALANCER_NAME_PREFIX = "mmv-"


@dataclass(frozen=True)
class EdgeRefs:
    """The stack's web ACL and access-log bucket (components/aws/edge.py) as the Ingress names them."""

    web_acl_arn: Any  # str, or a Pulumi output of one
    logs_bucket: str
    logs_prefix: str


@dataclass(frozen=True)
class ExposedPath:
    path: str
    path_type: str  # Kubernetes pathType: Prefix or Exact
    reason: str

    def alb_patterns(self) -> tuple[str, ...]:
        """The ALB path-pattern values the controller (v3.5.0) makes of this Ingress path."""
        if self.path_type == "Exact":
            return (self.path,)
        base = self.path.rstrip("/")
        return (base, f"{base}/*")

    def matches(self, request_path: str) -> bool:
        path = request_path.split("?", 1)[0]
        if self.path_type == "Exact":
            return path == self.path
        base = self.path.rstrip("/")
        return path == base or path.startswith(f"{base}/")


EXPOSED_PATHS: tuple[ExposedPath, ...] = tuple(
    ExposedPath(p["path"], p["pathType"], p["reason"]) for p in json.loads(EXPOSED_PATHS_FILE.read_text())["paths"]
)


def reaches_vllm(request_path: str) -> bool:
    """Whether the load balancer forwards a request for this path to vLLM (else: its own 404)."""
    return any(p.matches(request_path) for p in EXPOSED_PATHS)


def load_balancer_name(cluster_name: str) -> str:
    """The ALB's name, fixed so the wake trigger can find its CloudWatch metrics before it exists.

    Deterministic from the cluster name (unique per account and Region): a readable part and 8 hex
    characters of its SHA-256, so two long cluster names that share a prefix still differ.
    """
    digest = hashlib.sha256(cluster_name.encode()).hexdigest()[:8]
    room = LOAD_BALANCER_NAME_MAX - len(LOAD_BALANCER_NAME_PREFIX) - len(digest) - 1
    readable = re.sub(r"[^a-z0-9]+", "-", cluster_name.lower()).strip("-")[:room].strip("-")
    return "-".join(p for p in (LOAD_BALANCER_NAME_PREFIX.rstrip("-"), readable, digest) if p)


def listener_port(endpoint: EndpointSettings) -> int:
    return 443 if endpoint.certificate_arn else 80


def url_scheme(endpoint: EndpointSettings) -> str:
    return "https" if endpoint.certificate_arn else "http"


def refuse_action() -> dict:
    return {
        "type": "fixed-response",
        "fixedResponseConfig": {
            "contentType": "application/json",
            "statusCode": "404",
            "messageBody": json.dumps({"error": "not found"}),
        },
    }


def annotations(
    endpoint: EndpointSettings,
    tags: dict[str, str],
    drain_seconds: int,
    load_balancer_name: str,
    subnets: Any = None,
    edge: EdgeRefs | None = None,
) -> dict[str, Any]:
    """The AWS Load Balancer Controller's Ingress annotations (names and values of v3.5.0).

    edge: the stack's web ACL (unless endpoint.wafAclArn names another) and the bucket the ALB
    writes its access logs to (`access_logs.s3.*` load balancer attributes, v3.5.0 docs).

    subnets: the ALB's subnet ids, comma-separated (a string, or a Pulumi output of one). Named
    explicitly, whatever the scheme: the controller would otherwise discover subnets by their
    role tags, and put an internal ALB into the private subnets, beside the nodes and pods.
    """
    a = ANNOTATION
    port = listener_port(endpoint)
    attributes = [
        # ALB default is 60 s; a long prefill or a non-streaming answer can be silent far longer.
        f"idle_timeout.timeout_seconds={endpoint.idle_timeout_seconds}",
        "routing.http.drop_invalid_header_fields.enabled=true",
    ]
    if edge:
        attributes += [
            "access_logs.s3.enabled=true",
            f"access_logs.s3.bucket={edge.logs_bucket}",
            f"access_logs.s3.prefix={edge.logs_prefix}",
        ]
    out: dict[str, Any] = {
        f"{a}/load-balancer-name": load_balancer_name,
        f"{a}/scheme": endpoint.scheme,
        f"{a}/target-type": "ip",
        # One listener only: with TLS there is no plain-HTTP port (a redirect from port 80 would
        # still carry the key in clear on the first request), so no ssl-redirect either.
        f"{a}/listen-ports": json.dumps([{"HTTPS" if endpoint.certificate_arn else "HTTP": port}]),
        f"{a}/load-balancer-attributes": ",".join(attributes),
        f"{a}/backend-protocol": "HTTP",
        f"{a}/healthcheck-protocol": "HTTP",
        f"{a}/healthcheck-path": "/health",
        f"{a}/healthcheck-port": "traffic-port",
        f"{a}/success-codes": "200",
        # Chosen from the cold-start timeline (components/facts/timeline_assumptions.py HealthCheck):
        # the healthy checks lie on every start's critical path, so the ALB's minimums.
        f"{a}/healthcheck-interval-seconds": str(HEALTH_CHECK.interval_s),
        f"{a}/healthcheck-timeout-seconds": str(HEALTH_CHECK.timeout_s),
        f"{a}/healthy-threshold-count": str(HEALTH_CHECK.healthy),
        f"{a}/unhealthy-threshold-count": str(HEALTH_CHECK.unhealthy),
        # Streams in flight get this long after a pod leaves the target group.
        f"{a}/target-group-attributes": f"deregistration_delay.timeout_seconds={drain_seconds}",
        f"{a}/tags": ",".join(f"{k}={v}" for k, v in sorted(tags.items())),
        f"{a}/actions.{REFUSE_ACTION}": json.dumps(refuse_action()),
        # `pulumi up` must not wait for the ALB (the model takes its time to load); the endpoint
        # output is read from the Ingress status once it has one. `destroy` waits for the load
        # balancer controller to delete the ALB and clear its finalizer (workload.NO_READY_WAIT).
        **workload.NO_READY_WAIT,
    }
    if subnets is not None:
        out[SUBNETS_ANNOTATION] = subnets
    if endpoint.source_ranges:
        out[f"{a}/inbound-cidrs"] = ",".join(endpoint.source_ranges)
    if endpoint.certificate_arn:
        out[f"{a}/certificate-arn"] = endpoint.certificate_arn
        out[f"{a}/ssl-policy"] = SSL_POLICY
    if endpoint.waf_acl_arn or edge:
        out[f"{a}/wafv2-acl-arn"] = endpoint.waf_acl_arn or edge.web_acl_arn  # type: ignore[union-attr]
    if not endpoint.certificate_arn:
        # Only deployable with the scheme's opt-out (endpoint.insecureAllowPlainHttpOnInternet or
        # endpoint.plainHttpAcknowledged; the deploy gate stops it otherwise); recorded on the
        # object so the policy pack sees the choice was explicit.
        out[PLAIN_HTTP_ACCEPTED] = "true" if endpoint.plain_http_accepted else "false"
    return dict(sorted(out.items()))


def ingress(
    endpoint: EndpointSettings,
    tags: dict[str, str],
    *,
    name: str,
    namespace: str,
    labels: dict[str, str],
    service_name: str,
    service_port: str,
    drain_seconds: int,
    load_balancer_name: str,
    subnets: Any = None,
    edge: EdgeRefs | None = None,
) -> dict:
    """Only the listed paths go to vLLM; the default action is the explicit fixed 404."""
    paths = [
        {
            "path": p.path,
            "pathType": p.path_type,
            "backend": {"service": {"name": service_name, "port": {"name": service_port}}},
        }
        for p in EXPOSED_PATHS
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations(endpoint, tags, drain_seconds, load_balancer_name, subnets, edge),
        },
        "spec": {
            "ingressClassName": INGRESS_CLASS,
            "defaultBackend": {"service": {"name": REFUSE_ACTION, "port": {"name": "use-annotation"}}},
            "rules": [{"http": {"paths": paths}}],
        },
    }


def service(*, name: str, namespace: str, labels: dict[str, str], port: int, target_port: str) -> dict:
    """ClusterIP: reachable in the cluster (e.g. /metrics for a scraper), never by itself from outside."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": labels,
            "ports": [{"name": target_port, "port": port, "targetPort": target_port, "protocol": "TCP"}],
        },
    }
