"""A ValidatingAdmissionPolicy and its binding as Pulumi resources, from the plain dicts of
components/kubernetes/admission_policies.py (so tests and `make plan` read what the cluster gets)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s


def policy_with_binding(name: str, policy: dict, binding: dict, opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
    """The binding after its policy: a binding to a missing policy admits everything meanwhile."""
    made = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
        f"{name}-policy", metadata=policy["metadata"], spec=policy["spec"], opts=opts
    )
    bound = k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
        f"{name}-binding",
        metadata=binding["metadata"],
        spec=binding["spec"],
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[made])),
    )
    return [made, bound]
