"""The ValidatingAdmissionPolicies as the API server would judge them: their own CEL strings,
evaluated by cel-python (a CEL implementation, pinned in requirements-dev.txt) against the
rendered objects, and against objects that must be refused.

Kubernetes evaluates a policy's variables, then each validation; a validation that is false
refuses the request with its message. Only standard CEL is used by the policies, so a
standard CEL evaluator gives the API server's answer.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import celpy
import pytest
from celpy import celtypes

from components.facts import gpu_pool
from components.kubernetes import admission_policies
from components.serving import workload
from ops.charts import record as chart_record

STACKS = chart_record.stack_names()
VAP = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"
POD_KINDS = ("Deployment", "Job", "DaemonSet", "StatefulSet")
CACHE = gpu_pool.MODEL_CACHE_HOST_PATH
ENV = celpy.Environment()


@functools.cache
def rendered(stack: str):
    return chart_record.rendering(stack)


@functools.cache
def _program(expression: str) -> Any:
    return ENV.program(ENV.compile(expression))


def refusals(policy: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    """The messages of every validation that refuses `obj` (empty: admitted)."""
    activation: dict[str, Any] = {"object": celpy.json_to_cel(obj)}
    values: dict[Any, Any] = {}
    for var in policy["spec"].get("variables") or []:
        activation["variables"] = celtypes.MapType(values)
        values[celtypes.StringType(var["name"])] = _program(var["expression"]).evaluate(activation)
    activation["variables"] = celtypes.MapType(values)
    out = []
    for v in policy["spec"]["validations"]:
        result = _program(v["expression"]).evaluate(activation)
        if isinstance(result, Exception):
            out.append(f"{v['message']} (error: {result})")  # failurePolicy Fail: an error refuses too
        elif not (isinstance(result, celtypes.BoolType) and bool(result)):
            out.append(v["message"])
    return out


def pod_limits() -> dict[str, Any]:
    policy, _ = admission_policies.pod_limits(workload.NAMESPACE, CACHE, workload.LABELS)
    return policy


def serving_objects(stack: str) -> list[dict[str, Any]]:
    """Every rendered workload in the vLLM namespace, and a Pod made from each template."""
    found = []
    for o in rendered(stack).kubernetes_objects():
        inputs = o.inputs
        if inputs["kind"] in POD_KINDS and inputs["metadata"]["namespace"] == workload.NAMESPACE:
            found.append(inputs)
            template = inputs["spec"]["template"]
            found.append(
                {"apiVersion": "v1", "kind": "Pod", "metadata": template["metadata"], "spec": template["spec"]}
            )
    return found


def vllm_pod(stack: str = "prod-8gpu") -> dict[str, Any]:
    (pod,) = [o for o in serving_objects(stack) if o["kind"] == "Pod" and o["metadata"]["labels"] == workload.LABELS]
    return copy.deepcopy(pod)


@pytest.mark.parametrize("stack", STACKS)
def test_the_policy_in_force_is_the_one_tested_and_admits_every_rendered_serving_workload(stack):
    r = rendered(stack)
    (policy,) = [p.inputs for p in r.of_type(VAP) if p.inputs["metadata"]["name"] == f"{workload.NAMESPACE}-pod-limits"]
    assert policy["spec"] == pod_limits()["spec"]
    objects = serving_objects(stack)
    assert any(o["kind"] == "Pod" for o in objects)
    for obj in objects:
        assert refusals(policy, obj) == [], f"{obj['kind']} {obj['metadata'].get('name')} would be refused"


@pytest.mark.parametrize("stack", STACKS)
def test_the_binding_denies_in_the_vllm_namespace_before_any_pod_is_created(stack):
    r = rendered(stack)
    name = f"{workload.NAMESPACE}-pod-limits"
    (binding,) = [b for b in r.of_type(BINDING) if b.inputs["spec"]["policyName"] == name]
    (policy,) = [p for p in r.of_type(VAP) if p.inputs["metadata"]["name"] == name]
    spec = binding.inputs["spec"]
    assert spec["validationActions"] == ["Deny"]
    assert spec["matchResources"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": workload.NAMESPACE}
    }
    assert policy.inputs["spec"]["failurePolicy"] == "Fail"
    assert policy.urn in binding.dependencies
    deployment = r.vllm_deployment()
    assert binding.urn in deployment.dependencies, "the vLLM pods may be created before the policy binds"


def _set_volume_path(pod, path):
    (cache,) = [v for v in pod["spec"]["volumes"] if "hostPath" in v]
    cache["hostPath"]["path"] = path


def _first_container(pod) -> dict:
    return pod["spec"]["containers"][0].setdefault("securityContext", {})


REFUSED = {
    "another hostPath": lambda p: p["spec"]["volumes"].append({"name": "etc", "hostPath": {"path": "/etc"}}),
    "the node's root": lambda p: _set_volume_path(p, "/"),
    "a path that climbs out of the cache": lambda p: _set_volume_path(p, CACHE + "/../../etc"),
    "the cache's parent": lambda p: _set_volume_path(p, CACHE.rsplit("/", 1)[0]),
    "hostNetwork": lambda p: p["spec"].update(hostNetwork=True),
    "hostPID": lambda p: p["spec"].update(hostPID=True),
    "hostIPC": lambda p: p["spec"].update(hostIPC=True),
    "a privileged container": lambda p: _first_container(p).update(privileged=True),
    "a privileged init container": lambda p: (
        p["spec"]
        .setdefault("initContainers", [])
        .append({"name": "x", "image": "busybox", "securityContext": {"privileged": True}})
    ),
    "a privileged debug container": lambda p: (
        p["spec"]
        .setdefault("ephemeralContainers", [])
        .append({"name": "debug", "image": "busybox", "securityContext": {"privileged": True}})
    ),
    "SYS_ADMIN": lambda p: _first_container(p).update(capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]}),
    "a host port": lambda p: p["spec"]["containers"][0]["ports"].append({"containerPort": 9100, "hostPort": 9100}),
}


@pytest.mark.parametrize("defect", sorted(REFUSED))
def test_a_pod_that_reaches_further_than_the_serving_pod_is_refused(defect):
    pod = vllm_pod()
    assert refusals(pod_limits(), pod) == []
    REFUSED[defect](pod)
    assert refusals(pod_limits(), pod), f"a pod with {defect} is admitted"


@pytest.mark.parametrize("kind", ["Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job", "CronJob"])
def test_templates_of_every_workload_kind_are_judged_too(kind):
    pod = vllm_pod()
    REFUSED["another hostPath"](pod)
    template = {"metadata": pod["metadata"], "spec": pod["spec"]}
    spec = {"jobTemplate": {"spec": {"template": template}}} if kind == "CronJob" else {"template": template}
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "x", "namespace": workload.NAMESPACE}, "spec": spec}
    assert refusals(pod_limits(), obj)
    kinds = {r for rule in pod_limits()["spec"]["matchConstraints"]["resourceRules"] for r in rule["resources"]}
    assert f"{kind.lower()}s" in kinds


def test_a_node_level_stager_on_the_same_cache_is_admitted():
    """A DaemonSet that mounts only the cache hostPath, without the node's namespaces or privilege."""
    pod = vllm_pod()
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "stager"}, "spec": {"template": pod}}
    assert refusals(pod_limits(), ds) == []


# --- KEDA objects -------------------------------------------------------------------------------


def keda_policy() -> dict[str, Any]:
    policy, _ = admission_policies.keda_objects_only_in(workload.NAMESPACE, workload.LABELS)
    return policy


def test_the_rendered_keda_objects_are_admitted_and_the_same_elsewhere_refused():
    r = rendered("dev")
    (policy,) = [p.inputs for p in r.of_type(VAP) if p.inputs["metadata"]["name"].startswith("keda-")]
    assert policy["spec"] == keda_policy()["spec"]
    (binding,) = [b.inputs for b in r.of_type(BINDING) if b.inputs["spec"]["policyName"] == policy["metadata"]["name"]]
    assert "matchResources" not in binding["spec"] and binding["spec"]["validationActions"] == ["Deny"]
    keda = [o.inputs for o in r.kubernetes_objects() if o.inputs["apiVersion"].startswith("keda.sh/")]
    assert {o["kind"] for o in keda} == {"ScaledObject", "TriggerAuthentication"}
    for obj in keda:
        assert refusals(policy, obj) == []
        elsewhere = copy.deepcopy(obj)
        elsewhere["metadata"]["namespace"] = "default"
        assert refusals(policy, elsewhere), f"a {obj['kind']} in namespace default is admitted"
        cluster = copy.deepcopy(obj)
        cluster["kind"] = "ClusterTriggerAuthentication"
        del cluster["metadata"]["namespace"]
        assert refusals(policy, cluster)
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    assert {"scaledobjects", "triggerauthentications", "clustertriggerauthentications", "scaledjobs"} <= {
        res for rule in rules for res in rule["resources"]
    }
    assert all(rule["scope"] == "*" for rule in rules)
