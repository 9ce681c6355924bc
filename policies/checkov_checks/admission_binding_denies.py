"""CKV_MMV_2: a ValidatingAdmissionPolicyBinding refuses (Deny), not only warns or audits."""

from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.kubernetes.checks.resource.base_spec_check import BaseK8Check


class AdmissionBindingDenies(BaseK8Check):
    def __init__(self) -> None:
        super().__init__(
            name="ValidatingAdmissionPolicyBinding denies what its policy refuses",
            id="CKV_MMV_2",
            categories=(CheckCategories.KUBERNETES,),
            supported_entities=("ValidatingAdmissionPolicyBinding",),
        )

    def scan_spec_conf(self, conf: dict[str, Any]) -> CheckResult:
        actions = (conf.get("spec") or {}).get("validationActions") or []
        return CheckResult.PASSED if "Deny" in actions else CheckResult.FAILED


check = AdmissionBindingDenies()
