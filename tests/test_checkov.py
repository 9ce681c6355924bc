"""An independent scanner over what the cluster receives: checkov's Kubernetes checks on every
stack's rendered manifests (the same files `make plan` writes).

No failure may remain without a written waiver (`checkov.io/skipN` on the object, with its
reason), and no waiver may outlive its reason: with the waivers removed, checkov must fail
exactly the waived checks. checkov runs from its own virtualenv (`make test` builds
.venv-checkov); without it the test fails in CI and is skipped, saying so, elsewhere.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_policies import STACKS, rendered

from ops.plan import write_manifests

pytestmark = pytest.mark.checkov

ROOT = Path(__file__).resolve().parent.parent
CHECKOV_VENV = ROOT / ".venv-checkov"
WAIVER_PREFIX = "checkov.io/skip"
# The project's own checks (the in-cluster rules of the policy pack, in checkov's terms).
OWN_CHECKS = ROOT / "policies" / "checkov_checks"
OWN = {
    "CKV_MMV_1": "Namespace",
    "CKV_MMV_2": "ValidatingAdmissionPolicyBinding",
    "CKV_MMV_3": "TriggerAuthentication",
    "CKV_MMV_4": "Deployment",
}
# One object breaking each of the project's checks: the scanner must fail exactly these.
DEFECTS: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "unlabelled"}},
    {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "unpinned",
            "labels": {f"pod-security.kubernetes.io/{m}": "baseline" for m in ("enforce", "warn", "audit")},
        },
    },
    {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "warn-only"},
        "spec": {"policyName": "x", "validationActions": ["Warn"]},
    },
    {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": "implicit-owner", "namespace": "minimax-vllm"},
        "spec": {"podIdentity": {"provider": "aws"}},
    },
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "node-root", "namespace": "minimax-vllm"},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {
                    "containers": [{"name": "x", "image": "x:1"}],
                    "volumes": [{"name": "r", "hostPath": {"path": "/"}}],
                },
            },
        },
    },
]
# The project's own checks on the ALB Ingress (TLS on every scheme, access logs, web ACL).
EDGE_CHECKS = {"CKV_MMV_5", "CKV_MMV_6", "CKV_MMV_7"}
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
ALB = "alb.ingress.kubernetes.io"


def checkov_binary() -> str:
    """$CHECKOV, else the project's .venv-checkov; never one found by chance on the PATH."""
    path = os.environ.get("CHECKOV") or str(CHECKOV_VENV / "bin" / "checkov")
    if Path(path).is_file() or shutil.which(path):
        return path
    message = f"checkov not found at {path}: run `make {CHECKOV_VENV.name}/.installed` (or `make test`)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _without_waivers(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = copy.deepcopy(docs)
    for doc in out:
        annotations = doc.get("metadata", {}).get("annotations") or {}
        for key in [k for k in annotations if k.startswith(WAIVER_PREFIX)]:
            del annotations[key]
    return out


def _ingress_without_edge() -> dict[str, Any]:
    """The dev Ingress on plain HTTP, without access logs and without its web ACL."""
    (ing,) = [r for r in rendered("dev").of_type(INGRESS) if r.inputs["metadata"]["name"] == "vllm"]
    doc = copy.deepcopy(ing.inputs)
    a = doc["metadata"]["annotations"]
    for key in ("certificate-arn", "ssl-policy", "wafv2-acl-arn"):
        a.pop(f"{ALB}/{key}", None)
    a[f"{ALB}/listen-ports"] = json.dumps([{"HTTP": 80}])
    attributes = a[f"{ALB}/load-balancer-attributes"].split(",")
    a[f"{ALB}/load-balancer-attributes"] = ",".join(x for x in attributes if not x.startswith("access_logs."))
    doc["metadata"]["name"] = "vllm-without-edge"
    return doc


@functools.cache
def scan(tmp_root: str) -> dict[str, dict[str, set[tuple[str, str]]]]:
    """One checkov run over every stack, with and without waivers: {file label: {result: {(check, resource)}}}."""
    root = Path(tmp_root)
    for stack in STACKS:
        out = root / stack
        write_manifests(rendered(stack), out)
        docs = list(yaml.safe_load_all((out / "kubernetes.yaml").read_text()))
        (out / "unwaived.yaml").write_text(yaml.safe_dump_all(_without_waivers(docs), sort_keys=False))
        (out / "helm-releases.yaml").unlink()  # not Kubernetes objects
    (root / "defects").mkdir()
    (root / "defects" / "kubernetes.yaml").write_text(yaml.safe_dump_all(DEFECTS, sort_keys=False))
    # The dev Ingress with its edge undone, to show the project's own checks fail on it.
    (root / "regressions").mkdir()
    (root / "regressions" / "ingress.yaml").write_text(yaml.safe_dump(_ingress_without_edge(), sort_keys=False))
    run = subprocess.run(
        [
            checkov_binary(),
            "-d",
            str(root),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--external-checks-dir",
            str(OWN_CHECKS),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode in (0, 1), run.stderr[-2000:]
    reports = json.loads(run.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    results: dict[str, dict[str, set[tuple[str, str]]]] = {}
    for report in reports:
        for kind in ("failed_checks", "skipped_checks", "passed_checks"):
            for check in report.get("results", {}).get(kind, []):
                label = str(Path(check["file_path"].lstrip("/")))
                results.setdefault(label, {}).setdefault(kind, set()).add((check["check_id"], check["resource"]))
    return results


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, set[tuple[str, str]]]]:
    return scan(str(tmp_path_factory.mktemp("checkov")))


@pytest.mark.parametrize("stack", STACKS)
def test_checkov_finds_no_failure_without_a_written_waiver(stack: str, results: dict) -> None:
    found = results.get(f"{stack}/kubernetes.yaml", {})
    assert found.get("passed_checks"), f"checkov checked nothing in {stack}: {sorted(results)}"
    assert sorted(found.get("failed_checks", ())) == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_waiver_covers_a_check_that_fails_without_it(stack: str, results: dict) -> None:
    waived = results.get(f"{stack}/kubernetes.yaml", {}).get("skipped_checks", set())
    failing_without = results.get(f"{stack}/unwaived.yaml", {}).get("failed_checks", set())
    assert waived == failing_without


@pytest.mark.parametrize("stack", STACKS)
def test_the_scanner_sees_the_hardening(stack: str, results: dict) -> None:
    """The checks this project fixed pass on the vLLM Deployment (a regression fails here, not only in a waiver count)."""
    passed = {
        check for check, resource in results[f"{stack}/kubernetes.yaml"]["passed_checks"] if "Deployment" in resource
    }
    hardening = {
        "CKV_K8S_20",  # no privilege escalation
        "CKV_K8S_22",  # read-only root filesystem
        "CKV_K8S_28",  # NET_RAW dropped
        "CKV_K8S_29",  # pod securityContext
        "CKV_K8S_31",  # seccomp RuntimeDefault
        "CKV_K8S_37",  # capabilities dropped
        "CKV_K8S_38",  # no service-account token
    }
    assert hardening <= passed, sorted(hardening - passed)


def test_the_scanner_sees_a_network_policy_over_the_pods(results: dict) -> None:
    """CKV2_K8S_6 is a graph check: checkov reports it against one of the files that hold the
    same Pod, so it is judged over the whole scan."""
    outcomes = {
        kind for found in results.values() for kind, items in found.items() for c, _ in items if c == "CKV2_K8S_6"
    }
    assert outcomes == {"passed_checks"}


@pytest.mark.parametrize("stack", STACKS)
def test_the_projects_own_checks_pass_on_what_the_stack_renders(stack: str, results: dict) -> None:
    passed = results[f"{stack}/kubernetes.yaml"]["passed_checks"]
    found = {check for check, _ in passed if check in OWN}
    expected = set(OWN) - ({"CKV_MMV_3"} if stack.startswith("prod") else set())  # prod stacks run no KEDA
    assert found == expected


def test_the_projects_own_checks_fail_each_defect(results: dict) -> None:
    failed = results["defects/kubernetes.yaml"]["failed_checks"]
    assert {(c, r.split(".")[0], r.rsplit(".", 1)[-1]) for c, r in failed if c in OWN} == {
        ("CKV_MMV_1", "Namespace", "unlabelled"),
        ("CKV_MMV_1", "Namespace", "unpinned"),
        ("CKV_MMV_2", "ValidatingAdmissionPolicyBinding", "warn-only"),
        ("CKV_MMV_3", "TriggerAuthentication", "implicit-owner"),
        ("CKV_MMV_4", "Deployment", "node-root"),
    }


def test_the_checks_name_the_programs_cache_path() -> None:
    from components.facts import gpu_pool

    assert (
        f'MODEL_CACHE_HOST_PATH = "{gpu_pool.MODEL_CACHE_HOST_PATH}"'
        in (OWN_CHECKS / "hostpath_model_cache.py").read_text()
    )


@pytest.mark.parametrize("stack", STACKS)
def test_the_scanner_sees_tls_access_logs_and_the_web_acl_on_the_alb(stack: str, results: dict) -> None:
    """The project's own checkov checks pass on every stack's Ingress (deployed with its certificate)."""
    passed = {c for c, resource in results[f"{stack}/kubernetes.yaml"]["passed_checks"] if "Ingress" in resource}
    assert EDGE_CHECKS <= passed, sorted(EDGE_CHECKS - passed)


def test_the_scanner_fails_an_ingress_without_its_edge(results: dict) -> None:
    failed = {
        c for c, resource in results["regressions/ingress.yaml"].get("failed_checks", ()) if "Ingress" in resource
    }
    assert EDGE_CHECKS <= failed, sorted(EDGE_CHECKS - failed)
