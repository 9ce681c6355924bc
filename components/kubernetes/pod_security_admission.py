"""Pod Security Admission: the level each namespace of the stack enforces, as namespace labels.

Every namespace the stack creates or installs into carries `enforce`, `warn` and `audit` at one
level, each with a pinned `*-version`, so the rules do not move when the control plane is
upgraded. `enforce` refuses pods; `warn` and `audit` also judge Deployments, DaemonSets and Jobs
(enforce looks at pods only), so a template that breaks the level is reported when it is
applied, not found later as a controller that creates no pods.

The level of a namespace is the strictest one its pods pass, declared beside the code that
creates the namespace, with the reason; tests/test_pod_security_admission.py evaluates every
rendered pod (the stack's and the pinned charts' recorded ones) against the Pod Security
Standards and fails when a level is looser than needed or refuses a pod.
"""

from __future__ import annotations

from dataclasses import dataclass

PRIVILEGED = "privileged"
BASELINE = "baseline"
RESTRICTED = "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)  # loosest first
MODES = ("enforce", "warn", "audit")
# The Pod Security Standards version the labels pin: the oldest Kubernetes minor version a stack
# may run (components/facts/versions.py EKS_ADDON_VERSIONS); an API server of a later version
# still evaluates the rules of this one.
VERSION = "v1.34"
LABEL_PREFIX = "pod-security.kubernetes.io"


@dataclass(frozen=True)
class NamespaceSecurity:
    """A namespace's Pod Security level and why it is not stricter."""

    namespace: str
    level: str
    why: str

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"{self.namespace}: unknown Pod Security level {self.level!r}, not one of {LEVELS}")

    def labels(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for mode in MODES:
            found[f"{LABEL_PREFIX}/{mode}"] = self.level
            found[f"{LABEL_PREFIX}/{mode}-version"] = VERSION
        return found


def namespace(security: NamespaceSecurity, labels: dict[str, str] | None = None) -> dict:
    """The Namespace object, its own labels and the Pod Security labels."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": security.namespace, "labels": {**(labels or {}), **security.labels()}},
    }


# kube-system exists before the stack (EKS creates it); the stack installs the load balancer
# controller and the Cluster Autoscaler into it, so it gets its labels by a server-side patch.
KUBE_SYSTEM = NamespaceSecurity(
    "kube-system",
    PRIVILEGED,
    "EKS's own add-ons run there: the VPC CNI's aws-node, kube-proxy and the Pod Identity agent "
    "use the node's network and hostPath volumes, and aws-node's init container is privileged",
)
