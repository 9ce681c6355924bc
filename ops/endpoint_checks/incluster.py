"""`ops verify`'s in-cluster row: a pod of another namespace, without the key, must not reach vLLM.

vLLM 0.32.0 checks the key only under /v1, /v2, /inference and /cohere, and always answers
`POST /invocations`, `/tokenize` and `/metrics`. The load balancer refuses those paths (the
exposure row); inside the cluster only the vLLM NetworkPolicy keeps other pods away. A
short-lived pod in PROBE_NAMESPACE asks the vLLM Service for them with no key. The verdict per
request: no TCP connection (the policy drops the packets: a connect timeout, or a refusal) is a
pass; any HTTP answer, even 401 or 404, or a connection that opened, means a pod outside the
admitted sources reached vLLM; a probe that could not run (DNS, image) proves nothing and fails.

The pod spec is a pure function of the stack's names; `kubectl` runs it (create, wait, logs,
delete), with the kubeconfig of `pulumi stack output kubeconfig --show-secrets`.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from components.facts import versions
from components.serving import profiles, workload
from ops.report import Check, failed, passed, skipped

NAME = "keyless-probe"
PROBE_NAMESPACE = "default"  # any namespace but the vLLM one; `default` exists in every cluster
CONNECT_TIMEOUT = 5
MAX_TIME = 15
DEADLINE = 120  # activeDeadlineSeconds: the pod ends even if verify is interrupted
# curl's exit codes when no connection was made: 7 connection refused, 28 timed out.
NO_CONNECTION = (7, 28)
ROW = "in-cluster keyless"


def service_url() -> str:
    """The vLLM Service as any pod of the cluster addresses it."""
    return f"http://{workload.APP}.{workload.NAMESPACE}.svc.cluster.local:{profiles.PORT}"


def probes(model: str) -> tuple[tuple[str, str, str | None], ...]:
    """(method, path, JSON body): valid requests, so a reachable vLLM runs them."""
    chat = {"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
    return (
        ("POST", "/invocations", json.dumps(chat, sort_keys=True)),
        ("GET", "/tokenize", None),
        ("GET", "/metrics", None),
    )


def script(url: str, model: str) -> str:
    """One line per probe: `<method> <path> <http code> <seconds to connect> <curl exit code>`."""
    lines = ["set -u"]
    for method, path, body in probes(model):
        data = f" -H 'Content-Type: application/json' --data {shlex.quote(body)}" if body else ""
        lines.append(
            f"code=$(curl -s -o /dev/null -w '%{{http_code}} %{{time_connect}}' -X {method}{data}"
            f" --connect-timeout {CONNECT_TIMEOUT} --max-time {MAX_TIME} {shlex.quote(url + path)});"
            f' echo "{method} {path} $code $?"'
        )
    return "\n".join(lines)


def pod(name: str, model: str) -> dict:
    """The probe pod: no key, no service account token, the restricted Pod Security profile."""
    labels = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": workload.LABELS["app.kubernetes.io/part-of"]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": PROBE_NAMESPACE, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": DEADLINE,
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": versions.PROBE_IMAGE_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": versions.PROBE_IMAGE,
                    "command": ["sh", "-c", script(service_url(), model)],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                }
            ],
        },
    }


@dataclass(frozen=True)
class Outcome:
    method: str
    path: str
    refused: bool
    what: str


def verdicts(log: str, model: str) -> list[Outcome]:
    """Each probe's outcome from the pod's log; a probe without its line could not run."""
    seen: dict[tuple[str, str], Outcome] = {}
    for line in log.splitlines():
        parts = line.split()
        if len(parts) != 5:
            continue
        method, path, code, connect, exit_code = parts
        try:
            connected, status = float(connect) > 0, int(exit_code)
        except ValueError:
            continue
        if code != "000":
            outcome = Outcome(method, path, False, f"answered HTTP {code}")
        elif connected:
            outcome = Outcome(method, path, False, f"connected, no answer (curl exit {status})")
        elif status in NO_CONNECTION:
            outcome = Outcome(method, path, True, "no connection" + (" (timed out)" if status == 28 else " (refused)"))
        else:
            outcome = Outcome(method, path, False, f"could not probe (curl exit {status})")
        seen[(method, path)] = outcome
    return [seen.get((m, p), Outcome(m, p, False, "no result (the probe did not run)")) for m, p, _ in probes(model)]


def judge(outcomes: Sequence[Outcome]) -> Check:
    shown = "; ".join(f"{o.method} {o.path}: {o.what}" for o in outcomes)
    if all(o.refused for o in outcomes):
        return passed(ROW, f"from namespace {PROBE_NAMESPACE} without a key: {shown}")
    return failed(
        ROW,
        f"from namespace {PROBE_NAMESPACE} without a key: {shown}",
        f"a pod outside the load balancer and monitoring path reached vLLM's unguarded routes: the vLLM NetworkPolicy"
        f" must admit port {profiles.PORT} only from the load balancer and the monitoring namespace"
        f" (kubectl -n {workload.NAMESPACE} get networkpolicy -o yaml)",
    )


Kubectl = Callable[[list[str], str | None], subprocess.CompletedProcess[str]]


def kubectl(kubeconfig: str, timeout: float) -> Kubectl:
    def run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", "--kubeconfig", kubeconfig, *args]
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)

    return run


def run(kubeconfig: str | None, model: str, name: str, k: Kubectl | None = None) -> Check:
    """Create the pod, wait for it to finish, read its log, delete it (always)."""
    if not kubeconfig:
        return skipped(
            ROW,
            "no kubeconfig: pass --kubeconfig (pulumi stack output kubeconfig --show-secrets > kubeconfig)"
            " to probe vLLM from another namespace without a key",
        )
    k = k or kubectl(kubeconfig, DEADLINE + 30)
    try:
        return _probe(k, model, name)
    except (OSError, subprocess.TimeoutExpired) as err:  # no kubectl on PATH, or it hung
        return failed(ROW, f"kubectl: {err}", "install kubectl (https://kubernetes.io/docs/tasks/tools/) and retry")


def _probe(k: Kubectl, model: str, name: str) -> Check:
    where = ["-n", PROBE_NAMESPACE]
    created = k(["create", "-f", "-", "-o", "name"], json.dumps(pod(name, model), sort_keys=True))
    if created.returncode != 0:
        return failed(
            ROW, f"kubectl create: {created.stderr.strip()[:200]}", "check the kubeconfig and its access entry"
        )
    try:
        done = k(
            ["wait", f"pod/{name}", *where, "--for=jsonpath={.status.phase}=Succeeded", f"--timeout={DEADLINE}s"],
            None,
        )
        log = k(["logs", f"pod/{name}", *where], None)
        if done.returncode != 0 and not log.stdout.strip():
            return failed(
                ROW,
                f"the probe pod did not finish: {done.stderr.strip()[:200]}",
                f"kubectl -n {PROBE_NAMESPACE} describe pod {name}",
            )
        return judge(verdicts(log.stdout, model))
    finally:
        k(["delete", f"pod/{name}", *where, "--wait=false", "--ignore-not-found"], None)
