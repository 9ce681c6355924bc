"""CRDs as program resources, applied from the release a pinned chart ships them from.

Helm installs a chart's `crds/` once and never upgrades them, so a chart bump would run new
controllers on old CRDs; both charts' READMEs ask for a CRD step before each upgrade. Here the
CRDs are a `kubernetes.yaml.v2.ConfigGroup` (server-side apply, the provider's default) of
the upstream files at the chart's appVersion, the releases install with `skip_crds` and depend
on the group, and a chart bump changes the group's files, so `make plan BASE=...` shows it.
The files are fetched at deploy time from the pinned release; none is copied into this repo.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.facts import versions

# kube-prometheus-stack README, "Upgrading CRDs": the operator's CRDs at the chart's appVersion.
PROMETHEUS_OPERATOR_CRDS = (
    "alertmanagerconfigs",
    "alertmanagers",
    "podmonitors",
    "probes",
    "prometheusagents",
    "prometheuses",
    "prometheusrules",
    "scrapeconfigs",
    "servicemonitors",
    "thanosrulers",
)
_PROMETHEUS_OPERATOR_RAW = "https://raw.githubusercontent.com/prometheus-operator/prometheus-operator"
# The controller chart's crds/crds.yaml (IngressClassParams, TargetGroupBinding) at its appVersion.
_LB_CONTROLLER_RAW = "https://raw.githubusercontent.com/kubernetes-sigs/aws-load-balancer-controller"


def prometheus_operator_crd_urls() -> list[str]:
    base = f"{_PROMETHEUS_OPERATOR_RAW}/{versions.PROMETHEUS_OPERATOR_APP}/example/prometheus-operator-crd"
    return [f"{base}/monitoring.coreos.com_{name}.yaml" for name in PROMETHEUS_OPERATOR_CRDS]


def lb_controller_crd_urls() -> list[str]:
    app = versions.AWS_LOAD_BALANCER_CONTROLLER_APP
    return [f"{_LB_CONTROLLER_RAW}/{app}/helm/aws-load-balancer-controller/crds/crds.yaml"]


def crd_group(name: str, urls: list[str], opts: pulumi.ResourceOptions) -> k8s.yaml.v2.ConfigGroup:
    """The CRDs at `urls`, applied by the program; releases of their chart depend on it."""
    return k8s.yaml.v2.ConfigGroup(name, files=urls, opts=opts)
