"""`ops verify`'s routing row: two turns of one conversation reach the same vLLM replica.

Through the public endpoint (the ALB spreads requests over both router pods), verify sends two
turns of one new conversation with the stack's session header, and reads every router pod's
`vllm_router_processed_requests_total{worker=...}` before and after (ops/routing/affinity.py).
One worker took both turns: pass. The two turns went to two workers: fail. Other traffic moved
the counters as well: no verdict (run it when the endpoint is quiet).

The router's metrics port admits only Prometheus (NetworkPolicy), so verify reads it through
`kubectl port-forward`, which enters the pod's own network namespace.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from components.serving import routing, workload
from ops.report import Check, failed, passed, skipped
from ops.routing import affinity

ROW = "conversation affinity"
# Sends one chat request (messages, extra headers) through the endpoint.
Post = Callable[[list[dict[str, str]], dict[str, str]], None]
# Every router pod's metrics text.
Scrape = Callable[[], list[str]]
FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)")


def turns(conversation: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """A new conversation (its own system prompt, so no replica holds it yet) and its second turn."""
    system = {"role": "system", "content": f"Conversation {conversation}: answer in one word."}
    first = [system, {"role": "user", "content": "Name a colour."}]
    return first, [*first, {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another one."}]


def _moved(before: list[str], after: list[str]) -> Counter[str]:
    moved: Counter[str] = Counter()
    for b, a in zip(before, after, strict=True):
        moved.update(affinity.served_by(b, a))
    return moved


def check(post: Post, scrape: Scrape, session_header: str) -> Check:
    conversation = secrets.token_hex(8)
    first, second = turns(conversation)
    before = scrape()
    for messages in (first, second):
        post(messages, {session_header: conversation})
    moved = _moved(before, scrape())
    shown = ", ".join(f"{w} +{n:g}" for w, n in sorted(moved.items())) or "no worker counted them"
    if len(moved) == 1 and sum(moved.values()) >= 2:
        return passed(ROW, f"both turns of conversation {conversation} reached {next(iter(moved))}")
    if sum(moved.values()) == 2 and len(moved) == 2:
        return failed(
            ROW,
            f"the two turns of conversation {conversation} reached two replicas ({shown})",
            "routing.policy consistent-hash keeps a conversation on its replica across both router pods;"
            f" clients must send its id in the {session_header} header",
        )
    return skipped(ROW, f"other traffic moved the router's counters ({shown}): run verify when the endpoint is quiet")


def post_through(endpoint: str, api_key: str, model: str, timeout: float) -> Post:
    def post(messages: list[dict[str, str]], headers: dict[str, str]) -> None:
        body = json.dumps({"model": model, "messages": messages, "max_tokens": 16}).encode()
        request = urllib.request.Request(
            f"{endpoint}/v1/chat/completions",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}", **headers},
        )
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            reply.read()

    return post


@dataclass(frozen=True)
class Kubectl:
    kubeconfig: str
    timeout: float = 60.0

    def command(self, args: list[str]) -> list[str]:
        return ["kubectl", "--kubeconfig", self.kubeconfig, *args]

    def __call__(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(args), capture_output=True, text=True, timeout=self.timeout, check=False)


def run(kubeconfig: str | None, routing_mode: str, post: Post, session_header: str) -> Check:
    """The row as `ops verify` runs it: only where the stack runs the router, with a kubeconfig."""
    if routing_mode != "router":
        return skipped(ROW, f"routing.mode {routing_mode}: no router")
    if not kubeconfig:
        return skipped(ROW, "no kubeconfig: pass --kubeconfig to read the router pods' metrics")
    try:
        return check(post, port_forward_scrape(Kubectl(kubeconfig)), session_header)
    except (OSError, subprocess.TimeoutExpired, urllib.error.URLError) as err:
        return failed(
            ROW, f"could not read the router's metrics or send the turns: {err}", "check kubectl and the kubeconfig"
        )


def port_forward_scrape(kubectl: Kubectl, popen: Callable[..., Any] = subprocess.Popen) -> Scrape:
    """Every router pod's metrics, each read through `kubectl port-forward` to its metrics port."""
    selector = ",".join(f"{k}={v}" for k, v in sorted(routing.LABELS.items()))

    def scrape() -> list[str]:
        names = kubectl(["get", "pods", "-n", workload.NAMESPACE, "-l", selector, "-o", "name"]).stdout.split()
        texts = []
        for name in sorted(names):
            args = ["port-forward", "-n", workload.NAMESPACE, name, f":{routing.METRICS_PORT}"]
            forward = popen(kubectl.command(args), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            try:
                found = FORWARDING.search(forward.stdout.readline() or "")
                if not found:
                    raise OSError(f"kubectl port-forward {name}: no local port")
                with urllib.request.urlopen(f"http://127.0.0.1:{found.group(1)}/metrics", timeout=10) as reply:
                    texts.append(reply.read().decode())
            finally:
                forward.terminate()
        return texts

    return scrape
