"""The KEDA objects that carry the replica autoscaling policy of components/scaling/policy.py, and
the policy in words for `make plan` and `make scaling` (pure: no Pulumi)."""

from __future__ import annotations

from typing import Any

from components.scaling import policy as scaling
from components.scaling.policy import (
    AWS_TRIGGER_AUTH,
    NAMESPACE,
    SCALED_OBJECT,
    WAKE_METRIC,
    ReplicaPolicy,
    wake_load_balancer_name,
)
from components.serving import workload

IDENTITY_OWNER = "keda"

# --- manifests ----------------------------------------------------------------------------


def scaled_object(policy: ReplicaPolicy, labels: dict[str, str]) -> dict[str, Any]:
    """The ScaledObject on the vLLM Deployment. KEDA owns its HPA and, through it, spec.replicas."""
    b = policy.behavior
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload.APP},
        "pollingInterval": policy.polling_interval_seconds,
        "cooldownPeriod": policy.cooldown_seconds,
        "initialCooldownPeriod": policy.initial_cooldown_seconds,
        "minReplicaCount": policy.min_replicas,
        "maxReplicaCount": policy.max_replicas,
        "advanced": {
            # Deleting the ScaledObject leaves the replicas as they are.
            "restoreToOriginalReplicaCount": False,
            "horizontalPodAutoscalerConfig": {
                "name": workload.APP,
                "behavior": {"scaleUp": b.scale_up.manifest(), "scaleDown": b.scale_down.manifest()},
            },
        },
        "triggers": [t.manifest() for t in policy.triggers],
    }
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {
            "name": SCALED_OBJECT,
            "namespace": NAMESPACE,
            "labels": dict(labels),
            # Its Ready condition needs Prometheus: `pulumi up` must not wait on it, `destroy` must
            # wait for KEDA to clear its finalizer (components/serving/workload.py NO_READY_WAIT).
            "annotations": dict(workload.NO_READY_WAIT),
        },
        "spec": spec,
    }


def aws_trigger_authentication(labels: dict[str, str]) -> dict[str, Any]:
    """CloudWatch access with the KEDA operator's own identity (EKS Pod Identity).

    `identityOwner: keda` (the CRD's other value, `workload`, would use the scaled Deployment's
    service account, that is the vLLM pods', which run the model repository's code and hold no
    AWS role). Written out, not left to KEDA's default; only this namespace may hold KEDA objects
    (components/kubernetes/admission_policies.py keda_objects_only_in)."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": AWS_TRIGGER_AUTH, "namespace": NAMESPACE, "labels": dict(labels)},
        "spec": {"podIdentity": {"provider": "aws", "identityOwner": IDENTITY_OWNER}},
    }


def describe(policy: ReplicaPolicy) -> list[str]:
    """Lines for the plan: bounds, triggers, behavior."""
    b = policy.behavior
    lines = [
        f"replicas {policy.min_replicas}..{policy.max_replicas} (KEDA ScaledObject {NAMESPACE}/{SCALED_OBJECT}, "
        f"{policy.replicas_per_node} per GPU node)"
        + (
            f"; to zero after {policy.cooldown_seconds // 60} min with no active trigger"
            if policy.scale_to_zero
            else ""
        ),
    ]
    for t in policy.triggers:
        if t.type == "prometheus":
            what = f"{t.metadata['query']} / {scaling.num(t.target)} per replica"
        elif t.type == "cron":
            what = (
                f"{t.metadata['desiredReplicas']} replica(s) from cron '{t.metadata['start']}' to '{t.metadata['end']}' "
                f"({t.metadata['timezone']}; opens one cold start early so replicas serve at the start hour)"
            )
        else:
            what = (
                f"{WAKE_METRIC} of ALB {wake_load_balancer_name(t.metadata['expression'])} > 0 wakes from zero "
                "(the ALB answers 503 itself while no replica is ready)"
            )
        lines.append(f"trigger {t.name} ({t.type}): {what}")
    up, down = b.scale_up, b.scale_down
    lines.append(
        f"scale up: window {up.stabilization_window_seconds}s, at most {up.policies[0].value} replica(s) per "
        f"{up.policies[0].period_seconds}s; scale down: window {down.stabilization_window_seconds}s, "
        f"{down.policies[0].value} replica per {down.policies[0].period_seconds}s"
    )
    lines += [f"note: {n}" for n in policy.notes]
    return lines
