"""What the pinned KEDA chart (versions.KEDA_CHART, 2.20.2) names: its namespace here, its pods'
labels and the ports they listen on, as components/facts/data/chart-record/keda.json records them
(tests/test_system_network_policies.py ties each to the record). Imports nothing of the project:
the monitoring stack (which admits the operator to Prometheus) and the scaling room both read it.
"""

from __future__ import annotations

NAMESPACE = "keda"
NAME_LABEL = "app.kubernetes.io/name"
OPERATOR = {NAME_LABEL: "keda-operator"}
METRICS_APISERVER = {NAME_LABEL: "keda-operator-metrics-apiserver"}
WEBHOOKS = {NAME_LABEL: "keda-admission-webhooks"}
OPERATOR_GRPC_PORT = 9666  # `metricsservice`: the metrics apiserver asks the operator here
METRICS_APISERVER_PORT = 6443  # `https`: the API server's aggregation layer (external.metrics.k8s.io)
WEBHOOKS_PORT = 9443  # the admission webhooks the API server calls
