"""Metrics, dashboards and alerts for the serving stack: kube-prometheus-stack and dcgm-exporter.

Where things run: Prometheus, Alertmanager, Grafana, the operator and kube-state-metrics on
the system nodes (node selector), never on a p5; dcgm-exporter only on the GPU nodes (the
node group's label and taint, from gpu_pool); node-exporter on every node, so the NVMe model
cache on the GPU nodes is measured too.

vLLM's /metrics is scraped inside the cluster only, by a PodMonitor on the pods' port 8000
(the endpoint exposes only /v1/*). Nothing of the monitoring stack gets a load balancer:
operators port-forward (ops verify prints the commands).

Modes (observability.mode): `in-cluster` keeps samples in Prometheus on the system node's disk
and evaluates the PrometheusRule there; `amp` runs Prometheus in agent mode and remote-writes
every sample (SigV4, IAM through EKS Pod Identity) to an Amazon Managed Service for Prometheus
workspace, which evaluates the same rules; Grafana queries the workspace. The AMP managed
collector was not chosen: it reads a plain Prometheus scrape config rather than
PodMonitor/ServiceMonitor objects, and scrapes from ENIs in the VPC subnets rather than from
the Prometheus pods the vLLM NetworkPolicy admits (docs/operations.md, Network exposure).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import yaml

from components.aws.cluster import SYSTEM_POOL_LABEL
from components.facts import gpu_pool, image_pins, scraper, versions
from components.kubernetes import pod_security_admission as psa
from components.observability import alerts, dashboards, dcgm_fields
from components.serving import profiles, routing, workload
from components.settings.observability import ObservabilitySettings

NAMESPACE = alerts.MONITORING_NAMESPACE
# Short, fixed object names: the port-forward commands and Pod Identity associations name them.
STACK_FULLNAME = scraper.STACK_FULLNAME
PROMETHEUS_SERVICE = f"{STACK_FULLNAME}-prometheus"
ALERTMANAGER_SERVICE = f"{STACK_FULLNAME}-alertmanager"
GRAFANA_SERVICE = "grafana"
PROMETHEUS_SERVICE_ACCOUNT = f"{STACK_FULLNAME}-prometheus"
GRAFANA_SERVICE_ACCOUNT = "grafana"
GRAFANA_ADMIN_SECRET = "grafana"  # the grafana chart generates a random admin password here
PROMETHEUS_PORT = 9090
# The one in-cluster address of Prometheus (KEDA's triggers query it): the chart's
# templates/prometheus/service.yaml names the Service `<fullname>-prometheus`, and
# components/facts/data/chart-record/kube-prometheus-stack.json holds the Service it renders.
PROMETHEUS_URL = f"http://{PROMETHEUS_SERVICE}.{NAMESPACE}.svc.cluster.local:{PROMETHEUS_PORT}"
ALERTMANAGER_PORT = 9093
GRAFANA_PORT = 80
DCGM_PORT = 9400
PODMONITOR = "vllm"
# The two exporters that read the node itself run apart from Prometheus, Alertmanager and
# Grafana, so that only they need the privileged level.
NODE_METRICS_NAMESPACE = "node-metrics"
POD_SECURITY = psa.NamespaceSecurity(
    NAMESPACE,
    psa.RESTRICTED,
    "every pod here runs as non-root with RuntimeDefault seccomp, no privilege escalation and every"
    " capability dropped: the chart's securityContexts, and prometheus-operator's own for the Prometheus"
    " and Alertmanager containers it creates; the node exporters run in node-metrics",
)
NODE_METRICS_POD_SECURITY = psa.NamespaceSecurity(
    NODE_METRICS_NAMESPACE,
    psa.PRIVILEGED,
    "node-exporter reads the node through hostPath volumes (/proc, /sys and /, for the NVMe cache's"
    " filesystem) and runs in the host PID namespace, and dcgm-exporter mounts the kubelet's"
    " pod-resources socket (hostPath) and adds SYS_ADMIN: the baseline level refuses all three",
)

SYSTEM_NODE_SELECTOR = dict([SYSTEM_POOL_LABEL])
# Requests of what the stack adds (plan: where it runs and what it costs). Prometheus memory
# follows the series count: a few clusters' worth of kube and node metrics plus vLLM's and DCGM's.
RESOURCES: dict[str, dict[str, dict[str, str]]] = {
    "prometheus": {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
    "alertmanager": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    "grafana": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    "prometheus-operator": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    "kube-state-metrics": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    "node-exporter": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
    "dcgm-exporter": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
}
NODE_EXPORTER_HOST_NETWORK = False
# Prometheus' TSDB lives in an emptyDir on the system node's root volume (no EBS CSI driver in
# this cluster, so no PersistentVolume): bounded by size as well as by time.
TSDB_SIZE_GI = 10


def sorted_keys(value: Any) -> Any:
    """The same values with every mapping's keys in order, so two renders are byte-identical."""
    if isinstance(value, dict):
        return {k: sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(v) for v in value]
    return value


def _system(component: str) -> dict[str, Any]:
    return {"nodeSelector": dict(SYSTEM_NODE_SELECTOR), "resources": RESOURCES[component]}


def _stack_image(values_key: str) -> str:
    """The kube-prometheus-stack image set through `values_key` (components/facts/data/image-pins.json)."""
    return image_pins.image(versions.KUBE_PROMETHEUS_STACK_CHART, values_key)


def stack_values(o: ObservabilitySettings, region: str, amp_endpoint: str | None = None) -> dict[str, Any]:
    """kube-prometheus-stack values (chart `versions.KUBE_PROMETHEUS_STACK_CHART`), keys as in its values.yaml."""
    agent = o.mode == "amp"
    interval = f"{o.scrape_interval_seconds}s"
    sidecar_key, sidecar_value = dashboards.SIDECAR_LABEL
    prometheus_spec: dict[str, Any] = {
        **_system("prometheus"),
        # The image of the pods the operator creates from the Prometheus resource.
        "image": {"sha": image_pins.sha(_stack_image("prometheus.prometheusSpec.image.sha"))},
        "scrapeInterval": interval,
        # Select every ServiceMonitor, PodMonitor and PrometheusRule, not only the chart's own.
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "podMonitorSelectorNilUsesHelmValues": False,
        "ruleSelectorNilUsesHelmValues": False,
        "storageSpec": {"emptyDir": {"sizeLimit": f"{TSDB_SIZE_GI + 2}Gi"}},
    }
    if agent:
        prometheus_spec["remoteWrite"] = [
            {"url": f"{amp_endpoint}api/v1/remote_write", "sigv4": {"region": region}},
        ]
    else:
        prometheus_spec |= {
            "evaluationInterval": interval,
            "retention": f"{o.retention_days}d",
            "retentionSize": f"{TSDB_SIZE_GI}GB",
        }
    grafana: dict[str, Any] = {
        **_system("grafana"),
        "fullnameOverride": GRAFANA_SERVICE,
        # The chart renders <image>:<tag>@sha256:<sha>; the tag stays the chart's own.
        "image": {"sha": image_pins.sha(_stack_image("grafana.image.sha"))},
        "serviceAccount": {"create": True, "name": GRAFANA_SERVICE_ACCOUNT},
        # The Kubernetes dashboards that come with the chart stay; this project's come from its ConfigMaps.
        "defaultDashboardsEnabled": True,
        "sidecar": {
            "image": {"sha": image_pins.sha(_stack_image("grafana.sidecar.image.sha"))},
            "dashboards": {
                "enabled": True,
                "label": sidecar_key,
                "labelValue": sidecar_value,
                "searchNamespace": NAMESPACE,
            },
            "datasources": {
                "defaultDatasourceEnabled": not agent,
                "uid": dashboards.DEFAULT_DATASOURCE_UID,
                # No in-cluster Alertmanager with AMP: no data source pointing at it either.
                "alertmanager": {"enabled": not agent},
            },
        },
    }
    if agent:
        grafana["grafana.ini"] = {"auth": {"sigv4_auth_enabled": True}}
        grafana["additionalDataSources"] = [
            {
                "name": "Amazon Managed Service for Prometheus",
                "uid": dashboards.DEFAULT_DATASOURCE_UID,
                "type": "prometheus",
                "access": "proxy",
                "isDefault": True,
                "url": amp_endpoint,
                "jsonData": {
                    "httpMethod": "POST",
                    "sigV4Auth": True,
                    "sigV4AuthType": "default",
                    "sigV4Region": region,
                },
            }
        ]
    return sorted_keys(
        {
            "fullnameOverride": STACK_FULLNAME,
            "crds": {"enabled": True},
            # EKS runs the control plane: its schedulers, controller manager and etcd cannot be
            # scraped, and kube-proxy binds its metrics to localhost. Rules for them would only fire.
            "kubeControllerManager": {"enabled": False},
            "kubeScheduler": {"enabled": False},
            "kubeEtcd": {"enabled": False},
            "kubeProxy": {"enabled": False},
            "defaultRules": {
                "create": not agent,
                "rules": {
                    "etcd": False,
                    "kubeControllerManager": False,
                    "kubeProxy": False,
                    "kubeSchedulerAlerting": False,
                    "kubeSchedulerRecording": False,
                    "windows": False,
                },
            },
            "windowsMonitoring": {"enabled": False},
            "prometheus": {
                "agentMode": agent,
                "serviceAccount": {"create": True, "name": PROMETHEUS_SERVICE_ACCOUNT},
                "prometheusSpec": prometheus_spec,
            },
            # With AMP, the workspace evaluates the rules; alerts go to its own alert manager.
            "alertmanager": {
                "enabled": not agent,
                "alertmanagerSpec": {
                    **_system("alertmanager"),
                    "image": {"sha": image_pins.sha(_stack_image("alertmanager.alertmanagerSpec.image.sha"))},
                },
            },
            "grafana": grafana,
            "prometheusOperator": {
                **_system("prometheus-operator"),
                "image": {"sha": image_pins.sha(_stack_image("prometheusOperator.image.sha"))},
                # The sidecar the operator adds to every Prometheus and Alertmanager pod.
                "prometheusConfigReloader": {
                    "image": {
                        "sha": image_pins.sha(_stack_image("prometheusOperator.prometheusConfigReloader.image.sha"))
                    }
                },
                "admissionWebhooks": {"patch": {"nodeSelector": dict(SYSTEM_NODE_SELECTOR)}},
            },
            # This chart's `image.sha` takes the digest with its `sha256:` prefix.
            "kube-state-metrics": {
                **_system("kube-state-metrics"),
                "image": {"sha": image_pins.digest(_stack_image("kube-state-metrics.image.sha"))},
            },
            # Every node, the tainted GPU nodes included: the NVMe model cache is measured there.
            # In the pod's own network namespace (the chart's default is the node's): a pod
            # address is one hop further from the instance metadata service, which answers only
            # one hop away (IMDSv2 hop limit 1), so node-exporter never holds the node role's
            # credentials. Filesystem, CPU and memory metrics are read from the node's /proc,
            # /sys and / (hostPath), as before; only node_network_* describe the pod's interface.
            "prometheus-node-exporter": {
                "hostNetwork": NODE_EXPORTER_HOST_NETWORK,
                "image": {"digest": image_pins.digest(_stack_image("prometheus-node-exporter.image.digest"))},
                "namespaceOverride": NODE_METRICS_NAMESPACE,
                "resources": RESOURCES["node-exporter"],
                "tolerations": [gpu_pool.TOLERATION, {"operator": "Exists", "effect": "NoSchedule"}],
            },
        }
    )


def dcgm_values() -> dict[str, Any]:
    """dcgm-exporter values (chart `versions.DCGM_EXPORTER_CHART`): on exactly the GPU pool, with this
    project's collector list, scraped through the chart's ServiceMonitor."""
    key, value = gpu_pool.GPU_PRESENT_LABEL
    return sorted_keys(
        {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]}]
                    }
                }
            },
            "tolerations": [gpu_pool.TOLERATION],
            # The chart's default tag, with its digest: the chart joins repository:tag.
            "image": {"tag": image_pins.tag_at_digest(image_pins.image(versions.DCGM_EXPORTER_CHART, "image.tag"))},
            "customMetrics": dcgm_fields.collector_csv(),
            "resources": RESOURCES["dcgm-exporter"],
            "serviceMonitor": {
                "enabled": True,
                "interval": "15s",
                # Name the node and fix the job, so dashboards and alerts group by node and GPU.
                "relabelings": [
                    {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"},
                    {"targetLabel": "job", "replacement": alerts.DCGM_JOB},
                ],
            },
        }
    )


def vllm_pod_monitor(o: ObservabilitySettings) -> dict[str, Any]:
    """Scrape each vLLM pod's own /metrics on its container port, from inside the cluster."""
    port_name = "http"  # workload.deployment's container port name
    return sorted_keys(
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": {
                "name": PODMONITOR,
                "namespace": NAMESPACE,
                "labels": {"app.kubernetes.io/part-of": "minimax-vllm"},
            },
            "spec": {
                "namespaceSelector": {"matchNames": [workload.NAMESPACE]},
                "selector": {"matchLabels": dict(sorted(workload.LABELS.items()))},
                "podMetricsEndpoints": [
                    {
                        "port": port_name,
                        "path": "/metrics",
                        "interval": f"{o.scrape_interval_seconds}s",
                        "relabelings": [{"targetLabel": "job", "replacement": alerts.VLLM_JOB}],
                    }
                ],
            },
        }
    )


ROUTER_JOB = routing.APP  # the router's series carry job="vllm-router"


def router_pod_monitor(o: ObservabilitySettings) -> dict[str, Any]:
    """Scrape each router pod's metrics port (its own Prometheus listener, not the serving port:
    the serving port forwards /metrics to a vLLM replica)."""
    return sorted_keys(
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": {
                "name": routing.APP,
                "namespace": NAMESPACE,
                "labels": {"app.kubernetes.io/part-of": "minimax-vllm"},
            },
            "spec": {
                "namespaceSelector": {"matchNames": [workload.NAMESPACE]},
                "selector": {"matchLabels": dict(sorted(routing.LABELS.items()))},
                "podMetricsEndpoints": [
                    {
                        "port": routing.METRICS_PORT_NAME,
                        "path": routing.METRICS_PATH,
                        "interval": f"{o.scrape_interval_seconds}s",
                        "relabelings": [{"targetLabel": "job", "replacement": ROUTER_JOB}],
                    }
                ],
            },
        }
    )


# Prometheus (agent mode) only writes; Grafana only reads. Each gets its own policy on this
# workspace, so a compromised Grafana cannot forge metrics and Prometheus cannot read them.
AMP_WRITE_ACTIONS = ("aps:RemoteWrite",)
AMP_READ_ACTIONS = ("aps:GetLabels", "aps:GetMetricMetadata", "aps:GetSeries", "aps:QueryMetrics")


def amp_policy(workspace_arn: str, actions: tuple[str, ...]) -> str:
    """These AMP actions, on this workspace only."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": workspace_arn}],
        },
        sort_keys=True,
    )


def rules_document(o: ObservabilitySettings, cold_start_budget_s: int, release_namespaces: Iterable[str] = ()) -> str:
    """The alert rules as a Prometheus rule file, for an AMP rule groups namespace."""
    groups = alerts.rule_groups(o, cold_start_budget_s, release_namespaces)
    return yaml.safe_dump({"groups": groups}, sort_keys=True, width=1000)


def where(o: ObservabilitySettings) -> list[tuple[str, str, dict[str, str] | None]]:
    """(component, where it runs, requests per pod): what `make plan` lists."""
    if not o.enabled:
        return []
    on_system, on_gpu, everywhere = "system nodes", "GPU nodes (DaemonSet)", "every node (DaemonSet)"
    rows = [
        (
            "prometheus" + (" (agent, remote write to AMP)" if o.mode == "amp" else ""),
            on_system,
            RESOURCES["prometheus"]["requests"],
        ),
        ("grafana", on_system, RESOURCES["grafana"]["requests"]),
        ("prometheus-operator", on_system, RESOURCES["prometheus-operator"]["requests"]),
        ("kube-state-metrics", on_system, RESOURCES["kube-state-metrics"]["requests"]),
        ("node-exporter", everywhere, RESOURCES["node-exporter"]["requests"]),
        ("dcgm-exporter", on_gpu, RESOURCES["dcgm-exporter"]["requests"]),
    ]
    if o.mode == "in-cluster":
        rows.insert(1, ("alertmanager", on_system, RESOURCES["alertmanager"]["requests"]))
    else:
        rows.append(("AMP workspace (rules, alert manager)", "AWS managed", None))
    return rows


def port_forwards(mode: str = "in-cluster") -> dict[str, str]:
    """How an operator reaches the UIs and the metrics: kubectl port-forward, never a public address.
    With `amp` there is no in-cluster Alertmanager (the workspace's own alert manager takes its place)."""
    found = {
        "prometheus": f"kubectl -n {NAMESPACE} port-forward svc/{PROMETHEUS_SERVICE} {PROMETHEUS_PORT}:{PROMETHEUS_PORT}",
        "grafana": f"kubectl -n {NAMESPACE} port-forward svc/{GRAFANA_SERVICE} 3000:{GRAFANA_PORT}",
        "vllm": f"kubectl -n {workload.NAMESPACE} port-forward deploy/{workload.APP} {profiles.PORT}:{profiles.PORT}",
    }
    if mode == "in-cluster":
        found["alertmanager"] = (
            f"kubectl -n {NAMESPACE} port-forward svc/{ALERTMANAGER_SERVICE} {ALERTMANAGER_PORT}:{ALERTMANAGER_PORT}"
        )
    return dict(sorted(found.items()))
