"""NetworkPolicies of the monitoring and node-metrics namespaces: deny everything, then allow each
component only what it needs. Without them every pod of the cluster reaches Prometheus' and Alertmanager's HTTP
APIs, which need no credentials: it could read every metric, delete series, or silence the
serving alerts.

In: Prometheus' API (9090) only from Grafana, the KEDA operator (its Prometheus triggers query
observability.values.PROMETHEUS_URL) and Prometheus itself; Alertmanager's (9093) only from
Prometheus; every other port only from Prometheus, for its scrapes. The operator's webhook port
from the control plane (see network_policy.CONTROL_PLANE).
Out: DNS for all but the two exporters (which send nothing); the API server and the AWS APIs
(443, no fixed address) for the components that use them; Prometheus to every pod it scrapes and
to the kubelets (10250) and, with AMP, the Pod Identity agent; Grafana to Prometheus.
Pod labels and ports are the chart's (components/facts/data/chart-record/kube-prometheus-stack.json
and dcgm-exporter.json; tests/test_system_network_policies.py ties each to the record).
"""

from __future__ import annotations

from components.facts import keda_chart, scraper
from components.kubernetes import network_policy as np
from components.observability.values import ALERTMANAGER_PORT, DCGM_PORT, NODE_METRICS_NAMESPACE, PROMETHEUS_PORT

NAMESPACE = scraper.NAMESPACE
NAME = scraper.APP_NAME_LABEL
LABELS = {"app.kubernetes.io/part-of": "minimax-vllm"}
# Pod labels (a selector's matchLabels), from the Services the charts render for them.
ALERTMANAGER = {NAME: "alertmanager", "alertmanager": f"{scraper.STACK_FULLNAME}-alertmanager"}
GRAFANA = {NAME: "grafana"}
KUBE_STATE_METRICS = {NAME: "kube-state-metrics"}
NODE_EXPORTER = {NAME: "prometheus-node-exporter"}
DCGM_EXPORTER = {NAME: "dcgm-exporter"}
OPERATOR = {"app": "kube-prometheus-stack-operator"}
# The webhook certificate Jobs (kps-admission-create and -patch): they talk to the API server only.
ADMISSION_JOBS = {"app.kubernetes.io/component": "prometheus-operator-webhook"}
# Container ports (Prometheus', Alertmanager's and dcgm-exporter's: values.py).
RELOADER_PORT = 8080  # the operator's config-reloader sidecar (`reloader-web`) beside both
GRAFANA_PORT = 3000
KUBE_STATE_METRICS_PORTS = (8080, 8081)
NODE_EXPORTER_PORT = 9100
OPERATOR_PORT = 10250  # the operator's HTTPS listener: webhooks and /metrics
KUBELET_PORT = 10250
API_PORT = 443


def prometheus_peer() -> dict:
    return np.pods_in(NAMESPACE, scraper.pod_selector())


def policies() -> list[dict]:
    """Default deny, then one allowance per component."""
    prometheus, scrape = prometheus_peer(), [prometheus_peer()]

    def from_prometheus(*ports: int) -> dict:
        return {"from": scrape, "ports": np.tcp(*ports)}

    api = np.anywhere(API_PORT)
    return [
        np.default_deny(NAMESPACE, LABELS),
        np.allow(
            "prometheus",
            NAMESPACE,
            LABELS,
            scraper.pod_selector(),
            ingress=[
                {
                    "from": [
                        np.pods_in(NAMESPACE, {"matchLabels": GRAFANA}),
                        np.pods_in(keda_chart.NAMESPACE, {"matchLabels": keda_chart.OPERATOR}),
                        prometheus,
                    ],
                    "ports": np.tcp(PROMETHEUS_PORT),
                },
                from_prometheus(RELOADER_PORT),
            ],
            egress=[
                np.dns(),
                # Its scrape targets: pods of every namespace (each target's own policy decides
                # which port lets it in), the kubelets and the API server on the nodes' and the
                # control plane's addresses, and AMP's remote-write endpoint.
                {"to": [{"namespaceSelector": {}, "podSelector": {}}]},
                np.anywhere(API_PORT, KUBELET_PORT),
                np.pod_identity_agent(),
            ],
        ),
        np.allow(
            "alertmanager",
            NAMESPACE,
            LABELS,
            {"matchLabels": ALERTMANAGER},
            ingress=[from_prometheus(ALERTMANAGER_PORT, RELOADER_PORT)],
            egress=[np.dns(), np.anywhere(API_PORT)],  # receivers (chat, paging) over HTTPS
        ),
        np.allow(
            "grafana",
            NAMESPACE,
            LABELS,
            {"matchLabels": GRAFANA},
            ingress=[from_prometheus(GRAFANA_PORT)],
            egress=[
                np.dns(),
                {"to": [prometheus], "ports": np.tcp(PROMETHEUS_PORT)},
                api,  # its sidecars watch ConfigMaps; with AMP, the workspace's query API
                np.pod_identity_agent(),
            ],
        ),
        np.allow(
            "kube-state-metrics",
            NAMESPACE,
            LABELS,
            {"matchLabels": KUBE_STATE_METRICS},
            ingress=[from_prometheus(*KUBE_STATE_METRICS_PORTS)],
            egress=[np.dns(), api],
        ),
        np.allow(
            "operator",
            NAMESPACE,
            LABELS,
            {"matchLabels": OPERATOR},
            ingress=[
                from_prometheus(OPERATOR_PORT),
                {"from": [{"ipBlock": {"cidr": np.CONTROL_PLANE}}], "ports": np.tcp(OPERATOR_PORT)},
            ],
            egress=[np.dns(), api],
        ),
        np.allow("admission-jobs", NAMESPACE, LABELS, {"matchLabels": ADMISSION_JOBS}, egress=[np.dns(), api]),
    ]


def node_metrics_policies() -> list[dict]:
    """The exporters in node-metrics: in only Prometheus' scrapes; out nothing at all (no DNS, no
    API server, no instance metadata)."""
    scrape = [prometheus_peer()]
    return [
        np.default_deny(NODE_METRICS_NAMESPACE, LABELS),
        np.allow(
            "node-exporter",
            NODE_METRICS_NAMESPACE,
            LABELS,
            {"matchLabels": NODE_EXPORTER},
            ingress=[{"from": scrape, "ports": np.tcp(NODE_EXPORTER_PORT)}],
        ),
        np.allow(
            "dcgm-exporter",
            NODE_METRICS_NAMESPACE,
            LABELS,
            {"matchLabels": DCGM_EXPORTER},
            ingress=[{"from": scrape, "ports": np.tcp(DCGM_PORT)}],
        ),
    ]
