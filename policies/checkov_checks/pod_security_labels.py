"""CKV_MMV_1: a Namespace enforces, warns and audits a Pod Security level, each with a pinned version."""

from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.kubernetes.checks.resource.base_spec_check import BaseK8Check

LEVELS = ("privileged", "baseline", "restricted")


class PodSecurityLabels(BaseK8Check):
    def __init__(self) -> None:
        super().__init__(
            name="Namespace enforces, warns and audits a pinned Pod Security level",
            id="CKV_MMV_1",
            categories=(CheckCategories.KUBERNETES,),
            supported_entities=("Namespace",),
        )

    def scan_spec_conf(self, conf: dict[str, Any]) -> CheckResult:
        labels = (conf.get("metadata") or {}).get("labels") or {}
        for mode in ("enforce", "warn", "audit"):
            if labels.get(f"pod-security.kubernetes.io/{mode}") not in LEVELS:
                return CheckResult.FAILED
            if not str(labels.get(f"pod-security.kubernetes.io/{mode}-version") or "").startswith("v1."):
                return CheckResult.FAILED
        return CheckResult.PASSED


check = PodSecurityLabels()
