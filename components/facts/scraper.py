"""Who scrapes vLLM's /metrics: the Prometheus pods of kube-prometheus-stack, named once.

The vLLM NetworkPolicy admits exactly these pods (not their whole namespace: any pod there
would get in, and node-exporter, with the chart's default `hostNetwork: true`, would bring
every node's address), and
observability/values.py installs the chart under these names. Imports nothing of the project.
"""

from __future__ import annotations

NAMESPACE = "monitoring"  # kube-prometheus-stack's namespace
STACK_FULLNAME = "kps"  # the chart's `fullnameOverride`
# The Prometheus custom resource: `kube-prometheus-stack.prometheus.crname` is the fullname and
# "-prometheus" (chart 88.5.3, templates/_helpers.tpl).
PROMETHEUS_CR = f"{STACK_FULLNAME}-prometheus"
# The labels the operator puts on the pods of that resource, as the chart's own Service selects
# them (templates/prometheus/service.yaml): `app.kubernetes.io/name` is `prometheus`, or
# `prometheus-agent` with `prometheus.agentMode` (observability.mode amp).
CR_NAME_LABEL = "operator.prometheus.io/name"
APP_NAME_LABEL = "app.kubernetes.io/name"
APP_NAMES = ("prometheus", "prometheus-agent")


def pod_selector() -> dict:
    """A label selector for the Prometheus pods, server or agent."""
    return {
        "matchLabels": {CR_NAME_LABEL: PROMETHEUS_CR},
        "matchExpressions": [{"key": APP_NAME_LABEL, "operator": "In", "values": list(APP_NAMES)}],
    }
