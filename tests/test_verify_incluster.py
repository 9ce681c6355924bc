"""verify's in-cluster probe: its pod manifest, its script run for real, and the verdict logic."""

from __future__ import annotations

import json
import socket
import subprocess
from typing import Any

import kubernetes_validate
import pytest

from components.facts import versions
from components.serving import profiles, workload
from ops.endpoint_checks import incluster as probe
from tests.fake_vllm_server import Behaviour, FakeVllm
from tests.test_kubernetes_layer import SERVICE, rendered

MODEL = "minimax-m2.5"


def manifest() -> dict[str, Any]:
    return probe.pod("keyless-probe-abc123", MODEL)


def test_the_pod_runs_in_another_namespace_with_no_key_and_no_token() -> None:
    pod = manifest()
    assert pod["metadata"]["namespace"] == probe.PROBE_NAMESPACE != workload.NAMESPACE
    text = json.dumps(pod).lower()
    assert "authorization" not in text and "bearer" not in text and "api-key" not in text
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False and spec["restartPolicy"] == "Never"
    assert 0 < spec["activeDeadlineSeconds"] <= 300
    (c,) = spec["containers"]
    assert c["image"] == versions.PROBE_IMAGE and c["command"][:2] == ["sh", "-c"]


def test_the_pod_meets_the_restricted_pod_security_profile_and_the_schema() -> None:
    pod = manifest()
    kubernetes_validate.validate(pod, f"{versions.KUBERNETES_VERSION}.0", strict=True)
    spec, (c,) = pod["spec"], pod["spec"]["containers"]
    assert (
        spec["securityContext"]["runAsNonRoot"]
        and spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    )
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def test_the_script_asks_the_unguarded_routes_of_the_vllm_service() -> None:
    command = manifest()["spec"]["containers"][0]["command"][2]
    url = f"http://{workload.APP}.{workload.NAMESPACE}.svc.cluster.local:{profiles.PORT}"
    for method, path in (("POST", "/invocations"), ("GET", "/tokenize"), ("GET", "/metrics")):
        assert f"-X {method}" in command and f"{url}{path}" in command


@pytest.mark.parametrize("stack", ["dev", "prod-8gpu"])
def test_the_probed_address_is_the_service_the_stack_renders(stack: str) -> None:
    svc = rendered(stack).named(SERVICE, workload.APP).inputs
    host, port = probe.service_url().removeprefix("http://").split(":")
    name, namespace = host.split(".")[:2]
    assert (svc["metadata"]["name"], svc["metadata"]["namespace"]) == (name, namespace)
    assert int(port) in [p["port"] for p in svc["spec"]["ports"]]


# --- the script, run with the local curl against loopback ----------------------------------


def run_script(url: str) -> str:
    done = subprocess.run(["sh", "-c", probe.script(url, MODEL)], capture_output=True, text=True, timeout=60)
    return done.stdout


def test_a_vllm_that_answers_without_a_key_fails_the_row() -> None:
    server = FakeVllm(Behaviour(behind_alb=False)).start()
    try:
        log = run_script(server.url)
    finally:
        server.stop()
    row = probe.judge(probe.verdicts(log, MODEL))
    assert row.status == "FAIL"
    for seen in ("POST /invocations: answered HTTP 200", "GET /metrics: answered HTTP 200"):
        assert seen in row.detail
    assert "NetworkPolicy" in row.fix
    posted = [r for r in server.behaviour.requests if r["path"] == "/invocations"]
    assert posted and posted[0]["authorization"] is None and posted[0]["body"]["model"] == MODEL


def test_any_http_answer_even_a_refusal_fails_the_row() -> None:
    server = FakeVllm(Behaviour()).start()  # behind the load balancer: 404 for these paths
    try:
        row = probe.judge(probe.verdicts(run_script(server.url), MODEL))
    finally:
        server.stop()
    assert row.status == "FAIL" and "answered HTTP 404" in row.detail


def test_no_connection_passes_the_row() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    row = probe.judge(probe.verdicts(run_script(f"http://127.0.0.1:{port}"), MODEL))
    assert row.status == "PASS", row.detail
    assert row.detail.count("no connection (refused)") == 3


# --- the verdicts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "refused", "what"),
    [
        ("POST /invocations 000 0.000000 28", True, "no connection (timed out)"),
        ("POST /invocations 000 0.000000 7", True, "no connection (refused)"),
        ("POST /invocations 401 0.001200 0", False, "answered HTTP 401"),
        ("POST /invocations 000 0.001200 28", False, "connected, no answer"),
        ("POST /invocations 000 0.000000 6", False, "could not probe (curl exit 6)"),
    ],
)
def test_each_outcome_of_a_probe(line: str, refused: bool, what: str) -> None:
    first = probe.verdicts(line, MODEL)[0]
    assert (first.refused, first.what.startswith(what)) == (refused, True)


def test_a_probe_without_its_line_fails() -> None:
    log = "POST /invocations 000 0.000000 28\nGET /tokenize 000 0.000000 28\n"
    row = probe.judge(probe.verdicts(log, MODEL))
    assert row.status == "FAIL" and "GET /metrics: no result" in row.detail


# --- running it with kubectl ----------------------------------------------------------------


class Kubectl:
    def __init__(self, log: str = "", create_rc: int = 0, wait_rc: int = 0):
        self.calls: list[tuple[list[str], str | None]] = []
        self.log, self.create_rc, self.wait_rc = log, create_rc, wait_rc

    def __call__(self, args: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
        self.calls.append((args, stdin))
        rc = {"create": self.create_rc, "wait": self.wait_rc}.get(args[0], 0)
        out = self.log if args[0] == "logs" else ""
        return subprocess.CompletedProcess(args, rc, out, "boom" if rc else "")


REFUSED_LOG = "\n".join(f"{m} {p} 000 0.000000 28" for m, p, _ in probe.probes(MODEL))


def test_the_pod_is_created_waited_for_read_and_deleted() -> None:
    k = Kubectl(REFUSED_LOG)
    row = probe.run("kubeconfig", MODEL, "keyless-probe-abc123", k)
    assert row.status == "PASS"
    assert [c[0][0] for c in k.calls] == ["create", "wait", "logs", "delete"]
    assert json.loads(k.calls[0][1] or "") == probe.pod("keyless-probe-abc123", MODEL)
    assert k.calls[-1][0][:2] == ["delete", "pod/keyless-probe-abc123"] and "default" in k.calls[-1][0]


def test_the_pod_is_deleted_even_when_it_never_finishes() -> None:
    k = Kubectl("", wait_rc=1)
    row = probe.run("kubeconfig", MODEL, "p", k)
    assert row.status == "FAIL" and "did not finish" in row.detail
    assert k.calls[-1][0][0] == "delete"


def test_a_pod_that_cannot_be_created_fails_and_nothing_is_left_to_delete() -> None:
    k = Kubectl(create_rc=1)
    row = probe.run("kubeconfig", MODEL, "p", k)
    assert row.status == "FAIL" and "kubectl create: boom" in row.detail
    assert [c[0][0] for c in k.calls] == ["create"]


def test_without_a_kubeconfig_the_row_is_skipped_with_how_to_run_it() -> None:
    row = probe.run(None, MODEL, "p", Kubectl())
    assert row.status == "SKIP" and "pulumi stack output kubeconfig --show-secrets" in row.detail


def test_no_kubectl_on_the_path_fails_the_row_with_the_fix() -> None:
    def missing(args: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError("[Errno 2] No such file or directory: 'kubectl'")

    row = probe.run("kubeconfig", MODEL, "p", missing)
    assert row.status == "FAIL" and "No such file" in row.detail and "install kubectl" in row.fix
