"""Every pinned version in one place: a bump is a one-line change that the tests re-check."""

from __future__ import annotations

# The vLLM release whose `vllm serve` parser the tests run (requirements-dev.txt pins the
# same release; tests/test_versions.py keeps the two equal).
VLLM_RELEASE = "0.32.0"
VLLM_IMAGE = f"vllm/vllm-openai:v{VLLM_RELEASE}"

# EKS control plane and the Kubernetes schemas the rendered manifests are validated against.
KUBERNETES_VERSION = "1.34"
