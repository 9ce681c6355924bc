"""CKV_MMV_4: a workload mounts no hostPath but the model cache (the path policies/rules/common.py names)."""

from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.kubernetes.checks.resource.base_spec_check import BaseK8Check

MODEL_CACHE_HOST_PATH = "/mnt/k8s-disks/0/minimax-vllm-cache"  # tests/test_checkov.py ties it to the program's


class HostPathModelCache(BaseK8Check):
    def __init__(self) -> None:
        super().__init__(
            name="The only hostPath a workload mounts is the model cache",
            id="CKV_MMV_4",
            categories=(CheckCategories.KUBERNETES,),
            supported_entities=("Pod", "Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job", "CronJob"),
        )

    def scan_spec_conf(self, conf: dict[str, Any]) -> CheckResult:
        spec = conf.get("spec") or {}
        if conf.get("kind") == "CronJob":
            spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        if conf.get("kind") != "Pod":
            spec = ((spec.get("template") or {}).get("spec")) or {}
        for volume in spec.get("volumes") or []:
            host = volume.get("hostPath") if isinstance(volume, dict) else None
            if host is not None and host.get("path") != MODEL_CACHE_HOST_PATH:
                return CheckResult.FAILED
        return CheckResult.PASSED


check = HostPathModelCache()
