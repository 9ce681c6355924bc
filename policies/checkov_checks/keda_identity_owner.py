"""CKV_MMV_3: a KEDA TriggerAuthentication with podIdentity names its identityOwner."""

from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.kubernetes.checks.resource.base_spec_check import BaseK8Check


class KedaIdentityOwner(BaseK8Check):
    def __init__(self) -> None:
        super().__init__(
            name="KEDA podIdentity names its identityOwner",
            id="CKV_MMV_3",
            categories=(CheckCategories.KUBERNETES,),
            supported_entities=("TriggerAuthentication", "ClusterTriggerAuthentication"),
        )

    def scan_spec_conf(self, conf: dict[str, Any]) -> CheckResult:
        identity = (conf.get("spec") or {}).get("podIdentity")
        if identity and identity.get("identityOwner") not in ("keda", "workload"):
            return CheckResult.FAILED
        return CheckResult.PASSED


check = KedaIdentityOwner()
