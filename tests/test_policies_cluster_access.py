"""The pack's in-cluster access rules: every shipped stack passes them (tests/test_policies.py
runs each registered rule on every stack), and each refuses the defect it names."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from components.facts import gpu_pool
from policies.rules import cluster_access, common
from tests.test_policies import rendered

Resources = list[tuple[str, dict[str, Any]]]


def resources(stack: str = "dev") -> Resources:
    return [(r.type, copy.deepcopy(r.inputs)) for r in rendered(stack).resources]


def _kind(found: Resources, kind: str) -> list[dict[str, Any]]:
    return [p for t, p in found if t.endswith(f":{kind}")]


def _drop_labels(found: Resources) -> Resources:
    (ns,) = [p for p in _kind(found, "Namespace") if p["metadata"]["name"] == "keda"]
    del ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
    return found


def _unpinned(found: Resources) -> Resources:
    (ns,) = [p for p in _kind(found, "NamespacePatch")]
    del ns["metadata"]["labels"]["pod-security.kubernetes.io/audit-version"]
    return found


def _no_namespace_object(found: Resources) -> Resources:
    return [
        (t, p) for t, p in found if not (t.endswith(":Namespace") and p["metadata"]["name"] == "nvidia-device-plugin")
    ]


def _warn_only(found: Resources) -> Resources:
    for b in _kind(found, "ValidatingAdmissionPolicyBinding"):
        b["spec"]["validationActions"] = ["Warn"]
    return found


def _any_path(found: Resources) -> Resources:
    for p in _kind(found, "ValidatingAdmissionPolicy"):
        p["spec"]["validations"] = [
            v for v in p["spec"]["validations"] if gpu_pool.MODEL_CACHE_HOST_PATH not in v["expression"]
        ]
    return found


def _no_keda_fence(found: Resources) -> Resources:
    return [
        (t, p)
        for t, p in found
        if not (t.endswith("ValidatingAdmissionPolicyBinding") and "keda" in p["spec"]["policyName"])
    ]


def _no_default_deny(found: Resources) -> Resources:
    return [
        (t, p)
        for t, p in found
        if not (
            t.endswith(":NetworkPolicy")
            and p["metadata"]["namespace"] == "monitoring"
            and p["metadata"]["name"] == "default-deny"
        )
    ]


DEFECTS: list[tuple[Callable[[Resources], list[str]], Callable[[Resources], Resources], str]] = [
    (cluster_access.namespace_pod_security, _drop_labels, "namespace keda has no pod-security.kubernetes.io/enforce"),
    (
        cluster_access.namespace_pod_security,
        _unpinned,
        "kube-system does not pin pod-security.kubernetes.io/audit-version",
    ),
    (cluster_access.namespace_pod_security, _no_namespace_object, "namespace nvidia-device-plugin is used but"),
    (cluster_access.hostpath_namespaces_fenced, _warn_only, "which no Deny-bound admission policy limits"),
    (cluster_access.hostpath_namespaces_fenced, _any_path, "which no Deny-bound admission policy limits"),
    (cluster_access.keda_objects_fenced, _no_keda_fence, "no Deny-bound admission policy limits where"),
    (
        cluster_access.system_namespaces_default_deny,
        _no_default_deny,
        "namespace monitoring has a Helm release but no default-deny",
    ),
]


@pytest.mark.parametrize(("rule", "defect", "says"), DEFECTS, ids=[f"{r.__name__}-{d.__name__}" for r, d, _ in DEFECTS])
def test_each_stack_rule_refuses_its_defect(rule, defect, says):
    assert rule(resources()) == []
    messages = rule(defect(resources()))
    assert any(says in m for m in messages), messages


def test_the_pack_names_the_same_cache_path():
    assert common.MODEL_CACHE_HOST_PATH == gpu_pool.MODEL_CACHE_HOST_PATH
