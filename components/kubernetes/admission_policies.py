"""ValidatingAdmissionPolicies (admissionregistration.k8s.io/v1, GA since Kubernetes 1.30) that
the API server evaluates itself: no webhook, nothing to run or keep up.

- Pod limits in the vLLM namespace. Its Pod Security level is `privileged`, since the model
  cache is a hostPath, and that level alone would admit any pod. The policy refuses what the
  baseline level refuses and the serving pods do not need: a hostPath other than the one cache
  path, the node's network, PID or IPC namespace, privileged containers, capabilities outside
  the baseline set, host ports. It judges pods (and ephemeral debug containers) and the
  templates of Deployments, DaemonSets, StatefulSets, ReplicaSets, Jobs and CronJobs, so a
  refused template fails at apply time.
- KEDA objects only in the vLLM namespace. KEDA acts with its operator's AWS identity for a
  TriggerAuthentication with `podIdentity.identityOwner: keda`; anyone who could create one
  elsewhere (or a ClusterTriggerAuthentication) could read CloudWatch with it.

The CEL expressions live only here; tests/test_admission_policies.py evaluates these very
strings (cel-python) against the rendered pods and against pods that must be refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

API_VERSION = "admissionregistration.k8s.io/v1"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# The capabilities the Pod Security Standards' baseline level allows a container to add.
BASELINE_CAPABILITIES = (
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
)
WRITES = ["CREATE", "UPDATE"]
POD_RESOURCES = (
    ("", "v1", ("pods", "pods/ephemeralcontainers")),
    ("apps", "v1", ("daemonsets", "deployments", "replicasets", "statefulsets")),
    ("batch", "v1", ("cronjobs", "jobs")),
)
KEDA_GROUP, KEDA_VERSION = "keda.sh", "v1alpha1"
KEDA_RESOURCES = ("clustertriggerauthentications", "scaledjobs", "scaledobjects", "triggerauthentications")

# The pod spec of any of POD_RESOURCES, and every container of it.
POD_SPEC = (
    "object.kind == 'Pod' ? object.spec : "
    "(object.kind == 'CronJob' ? object.spec.jobTemplate.spec.template.spec : object.spec.template.spec)"
)
CONTAINERS = (
    "variables.spec.containers"
    " + (has(variables.spec.initContainers) ? variables.spec.initContainers : [])"
    " + (has(variables.spec.ephemeralContainers) ? variables.spec.ephemeralContainers : [])"
)


def _cel_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid CEL string literal


def pod_validations(host_path: str) -> list[dict[str, str]]:
    """Each rule with the message a refused user reads."""
    caps = "[" + ", ".join(_cel_string(c) for c in BASELINE_CAPABILITIES) + "]"
    return [
        {
            "expression": "!has(variables.spec.volumes) || variables.spec.volumes.all(v, !has(v.hostPath)"
            f" || v.hostPath.path == {_cel_string(host_path)})",
            "message": f"the only hostPath volume admitted here is the model cache {host_path}",
        },
        {
            "expression": " && ".join(
                f"!(has(variables.spec.{f}) && variables.spec.{f})" for f in ("hostNetwork", "hostPID", "hostIPC")
            ),
            "message": "pods here may not use the node's network, PID or IPC namespace",
        },
        {
            "expression": "variables.containers.all(c, !has(c.securityContext)"
            " || !has(c.securityContext.privileged) || !c.securityContext.privileged)",
            "message": "privileged containers are refused here",
        },
        {
            "expression": "variables.containers.all(c, !has(c.securityContext)"
            " || !has(c.securityContext.capabilities) || !has(c.securityContext.capabilities.add)"
            f" || c.securityContext.capabilities.add.all(a, a in {caps}))",
            "message": "containers here may add only the capabilities the baseline Pod Security level allows",
        },
        {
            "expression": "variables.containers.all(c, !has(c.ports) || c.ports.all(p, !has(p.hostPort) || p.hostPort == 0))",
            "message": "host ports are refused here",
        },
    ]


def _binding(name: str, namespace: str | None, labels: Mapping[str, str]) -> dict:
    spec: dict = {"policyName": name, "validationActions": ["Deny"]}
    if namespace is not None:
        spec["matchResources"] = {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}}
    return {
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": spec,
    }


def pod_limits(namespace: str, host_path: str, labels: Mapping[str, str]) -> tuple[dict, dict]:
    """The policy and its binding to `namespace`: pods there may mount only `host_path`."""
    name = f"{namespace}-pod-limits"
    rules = [
        {"apiGroups": [group], "apiVersions": [version], "operations": list(WRITES), "resources": list(resources)}
        for group, version, resources in POD_RESOURCES
    ]
    policy = {
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": rules},
            "variables": [{"name": "spec", "expression": POD_SPEC}, {"name": "containers", "expression": CONTAINERS}],
            "validations": pod_validations(host_path),
        },
    }
    return policy, _binding(name, namespace, labels)


def keda_objects_only_in(namespace: str, labels: Mapping[str, str]) -> tuple[dict, dict]:
    """KEDA's objects are admitted only in `namespace`; a ClusterTriggerAuthentication never."""
    name = "keda-objects-only-in-" + namespace
    policy = {
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [KEDA_GROUP],
                        "apiVersions": ["*"],
                        "operations": list(WRITES),
                        "resources": list(KEDA_RESOURCES),
                        "scope": "*",
                    }
                ]
            },
            "validations": [
                {
                    "expression": f"has(object.metadata.namespace) && object.metadata.namespace == {_cel_string(namespace)}",
                    "message": f"KEDA objects are admitted only in namespace {namespace}: KEDA acts on them with its"
                    " own AWS identity",
                }
            ],
        },
    }
    # No namespace selector: the binding matches every namespace and cluster-scoped objects.
    return policy, _binding(name, None, labels)
