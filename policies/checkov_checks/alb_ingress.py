"""The project's own checkov checks on the ALB Ingress (run by tests/test_checkov.py with
`--external-checks-dir policies/checkov_checks`): TLS on every scheme, access logs, a web ACL.

The same rules as the policy pack's policies/rules/edge.py, judged by an independent scanner on
the manifests `make plan` writes. Loaded by checkov from its own virtualenv, never imported by
the project.
"""

from __future__ import annotations

import json
from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.kubernetes.checks.resource.base_spec_check import BaseK8Check

ALB = "alb.ingress.kubernetes.io"
PLAIN_HTTP_ACCEPTED = "minimax-vllm/plain-http-accepted"


def _alb_annotations(conf: dict[str, Any]) -> dict[str, Any] | None:
    annotations = (conf.get("metadata") or {}).get("annotations") or {}
    if isinstance(annotations, list):  # checkov's runner wraps the mapping in a list (kubernetes_utils)
        annotations = {k: v for item in annotations if isinstance(item, dict) for k, v in item.items()}
    if (conf.get("spec") or {}).get("ingressClassName") != "alb" and not any(
        k.startswith(f"{ALB}/") for k in annotations
    ):
        return None
    return annotations


class AlbTls(BaseK8Check):
    def __init__(self) -> None:
        super().__init__(
            name="ALB Ingress listens only on HTTPS with a restricted TLS policy, internal ones too",
            id="CKV_MMV_5",
            categories=(CheckCategories.ENCRYPTION,),
            supported_entities=("Ingress",),
        )

    def scan_spec_conf(self, conf: dict[str, Any]) -> CheckResult:
        a = _alb_annotations(conf)
        if a is None:
            return CheckResult.UNKNOWN
        if a.get(PLAIN_HTTP_ACCEPTED) == "true":
            return CheckResult.PASSED  # the stack's loud, documented opt-out
        try:
            listeners = json.loads(a.get(f"{ALB}/listen-ports") or '[{"HTTP": 80}]')
        except ValueError:
            return CheckResult.FAILED
        https_only = all(set(item) == {"HTTPS"} for item in listeners)
        restricted = "-Res-" in str(a.get(f"{ALB}/ssl-policy") or "")
        return (
            CheckResult.PASSED if https_only and a.get(f"{ALB}/certificate-arn") and restricted else CheckResult.FAILED
        )


class AlbAccessLogs(BaseK8Check):
    def __init__(self) -> None:
        super().__init__(
            name="ALB Ingress writes access logs to S3",
            id="CKV_MMV_6",
            categories=(CheckCategories.LOGGING,),
            supported_entities=("Ingress",),
        )

    def scan_spec_conf(self, conf: dict[str, Any]) -> CheckResult:
        a = _alb_annotations(conf)
        if a is None:
            return CheckResult.UNKNOWN
        raw = str(a.get(f"{ALB}/load-balancer-attributes") or "")
        attributes = dict(item.split("=", 1) for item in raw.split(",") if "=" in item)
        ok = attributes.get("access_logs.s3.enabled") == "true" and attributes.get("access_logs.s3.bucket")
        return CheckResult.PASSED if ok else CheckResult.FAILED


class AlbWebAcl(BaseK8Check):
    def __init__(self) -> None:
        super().__init__(
            name="ALB Ingress is associated with a WAFv2 web ACL",
            id="CKV_MMV_7",
            categories=(CheckCategories.NETWORKING,),
            supported_entities=("Ingress",),
        )

    def scan_spec_conf(self, conf: dict[str, Any]) -> CheckResult:
        a = _alb_annotations(conf)
        if a is None:
            return CheckResult.UNKNOWN
        return CheckResult.PASSED if a.get(f"{ALB}/wafv2-acl-arn") else CheckResult.FAILED


tls = AlbTls()
access_logs = AlbAccessLogs()
web_acl = AlbWebAcl()
