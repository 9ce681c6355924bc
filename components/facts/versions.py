"""Every pinned version in one place: a bump is a one-line change that the tests re-check."""

from __future__ import annotations

# The vLLM release whose `vllm serve` parser the tests run (requirements-dev.txt pins the
# same release; tests/test_versions.py keeps the two equal).
VLLM_RELEASE = "0.32.0"
VLLM_IMAGE_REPOSITORY = "vllm/vllm-openai"
VLLM_IMAGE = f"{VLLM_IMAGE_REPOSITORY}:v{VLLM_RELEASE}"
# The image's manifest digest per tag, so a re-pushed tag cannot change what runs. Recorded
# from the registry by `python -m ops preflight --record-digest` (it rewrites this line), and
# re-checked by every preflight: prod stacks are refused while their tag has none.
VLLM_IMAGE_DIGESTS: dict[str, str] = {}

# EKS control plane and the Kubernetes schemas the rendered manifests are validated against.
KUBERNETES_VERSION = "1.35"  # standard support to 2027-03; 1.34 leaves it on 2026-12-02

# EKS managed add-ons, pinned per Kubernetes version: an add-on build is only supported on
# the control-plane versions AWS lists for it. Before `pulumi up`, or to bump a pin, check with
# `aws eks describe-addon-versions --kubernetes-version <v> --addon-name <name>`.
# The pod identity agent does not follow the Kubernetes minor, so one build serves both.
EKS_ADDON_VERSIONS: dict[str, dict[str, str]] = {
    "1.34": {
        "vpc-cni": "v1.20.4-eksbuild.2",
        "kube-proxy": "v1.34.0-eksbuild.2",
        "coredns": "v1.12.3-eksbuild.1",
        "eks-pod-identity-agent": "v1.3.10-eksbuild.2",
    },
    "1.35": {
        "vpc-cni": "v1.21.1-eksbuild.3",
        "kube-proxy": "v1.35.0-eksbuild.2",
        "coredns": "v1.13.2-eksbuild.1",
        "eks-pod-identity-agent": "v1.3.10-eksbuild.2",
    },
}

# Helm charts of the Kubernetes layer.
NVIDIA_DEVICE_PLUGIN_CHART = ("https://nvidia.github.io/k8s-device-plugin", "nvidia-device-plugin", "0.20.1")
AWS_LOAD_BALANCER_CONTROLLER_CHART = ("https://aws.github.io/eks-charts", "aws-load-balancer-controller", "3.5.0")
# The chart's appVersion (Chart.yaml of chart 3.5.0): its CRDs are applied from that release.
AWS_LOAD_BALANCER_CONTROLLER_APP = "v3.5.0"

# Monitoring (components/observability/values.py). kube-prometheus-stack 88.5.3 ships the Prometheus
# operator v0.93.1 (chart appVersion). dcgm-exporter 4.8.2 runs image 4.5.3-4.8.2-distroless
# (the chart's default tag); its metric names are in components/observability/dcgm_fields.py, and 4.9 renames
# them, so a bump there means updating that table first.
KUBE_PROMETHEUS_STACK_CHART = ("https://prometheus-community.github.io/helm-charts", "kube-prometheus-stack", "88.5.3")
PROMETHEUS_OPERATOR_APP = "v0.93.1"  # the chart's appVersion: its CRDs are applied from that release
DCGM_EXPORTER_CHART = ("https://nvidia.github.io/dcgm-exporter/helm-charts", "dcgm-exporter", "4.8.2")

# Autoscaling. KEDA scales the vLLM Deployment; the Cluster Autoscaler scales the GPU managed
# node group (docs/scaling.md says why not Karpenter). Chart 2.20.2 installs KEDA 2.20.2, whose
# ScaledObject schema the rendered objects are checked against.
KEDA_CHART = ("https://kedacore.github.io/charts", "keda", "2.20.2")
# Chart 9.59.0 (app 1.35.0). The autoscaler's minor must equal the control plane's, so the image
# is pinned per Kubernetes version (registry.k8s.io/autoscaling/cluster-autoscaler releases).
CLUSTER_AUTOSCALER_CHART = ("https://kubernetes.github.io/autoscaler", "cluster-autoscaler", "9.59.0")
CLUSTER_AUTOSCALER_IMAGE_TAGS: dict[str, str] = {"1.34": "v1.34.5", "1.35": "v1.35.2"}

# `ops verify`'s in-cluster probe (ops/endpoint_checks/incluster.py): curl, as user curl_user (uid 100).
PROBE_IMAGE = "docker.io/curlimages/curl:8.16.0"
PROBE_IMAGE_UID = 100
