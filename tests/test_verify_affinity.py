"""verify's routing row against fake replicas behind two real `vllm-router` processes on loopback:
the two turns of one conversation must reach one replica, read from the routers' own metrics."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from ops.endpoint_checks import affinity
from ops.routing import replay as rp

pytestmark = [
    pytest.mark.slow,  # starts the router binary four times (~4 s)
    pytest.mark.skipif(not rp.ROUTER.exists(), reason="vllm-router is pinned in requirements-dev.txt"),
]


def metrics_urls(fleet: rp.Fleet) -> list[str]:
    found = []
    for proc in fleet.procs:
        args = list(proc.args)  # type: ignore[arg-type]
        found.append(f"http://127.0.0.1:{args[args.index('--prometheus-port') + 1]}/metrics")
    return found


def alb(fleet: rp.Fleet) -> affinity.Post:
    """Requests spread over the router pods in turn, as the ALB does."""

    def post(messages: list[dict[str, str]], headers: dict[str, str]) -> None:
        body = json.dumps({"model": "minimax-m2.5", "messages": messages}).encode()
        auth = {"Content-Type": "application/json", "Authorization": f"Bearer {rp.API_KEY}"}
        request = urllib.request.Request(f"{fleet.url}/v1/chat/completions", data=body, headers={**auth, **headers})
        fleet.sent += 1
        with urllib.request.urlopen(request, timeout=10) as reply:
            reply.read()

    return post


def scraper(fleet: rp.Fleet) -> affinity.Scrape:
    return lambda: [urllib.request.urlopen(u, timeout=5).read().decode() for u in metrics_urls(fleet)]


def test_consistent_hashing_keeps_both_turns_on_one_replica_across_two_router_pods() -> None:
    with rp.Fleet("consistent_hash", 3, routers=2) as fleet:
        row = affinity.check(alb(fleet), scraper(fleet), rp.SESSION_HEADER)
    assert row.status == "PASS", row.detail


def test_turns_split_over_two_replicas_fail_the_row() -> None:
    with rp.Fleet("round_robin", 3) as fleet:  # one router: its round robin moves on a worker per request
        row = affinity.check(alb(fleet), scraper(fleet), rp.SESSION_HEADER)
    assert row.status == "FAIL" and "two replicas" in row.detail, row.detail
    assert "consistent-hash" in row.fix


def test_other_traffic_between_the_scrapes_gives_no_verdict() -> None:
    with rp.Fleet("consistent_hash", 3, routers=1) as fleet:
        post = alb(fleet)
        noisy = 0

        def busy(messages: list[dict[str, str]], headers: dict[str, str]) -> None:
            nonlocal noisy
            post(messages, headers)
            for i in range(3):  # another client's conversations at the same time
                post(affinity.turns(f"other-{noisy}-{i}")[0], {rp.SESSION_HEADER: f"other-{noisy}-{i}"})
            noisy += 1

        row = affinity.check(busy, scraper(fleet), rp.SESSION_HEADER)
    assert row.status == "SKIP" and "quiet" in row.detail, row.detail


class FakeKubectl:
    kubeconfig = "kc"

    def __init__(self, pods: list[str]) -> None:
        self.pods = pods
        self.asked: list[list[str]] = []

    def command(self, args: list[str]) -> list[str]:
        return ["kubectl", *args]

    def __call__(self, args: list[str]) -> Any:
        self.asked.append(args)
        return type("Done", (), {"stdout": "\n".join(self.pods)})()


def test_the_metrics_are_read_through_a_port_forward_to_each_router_pods_metrics_port() -> None:
    with rp.Fleet("consistent_hash", 3, routers=2) as fleet:
        ports = [u.split(":")[2].split("/")[0] for u in metrics_urls(fleet)]
        started: list[list[str]] = []

        class Forward:
            def __init__(self, command: list[str], **_: Any) -> None:
                started.append(command)
                port = ports[len(started) - 1]
                self.stdout = type("Out", (), {"readline": lambda _s: f"Forwarding from 127.0.0.1:{port} -> 29000\n"})()

            def terminate(self) -> None:
                pass

        kubectl = FakeKubectl(["pod/vllm-router-a", "pod/vllm-router-b"])
        texts = affinity.port_forward_scrape(kubectl, Forward)()  # type: ignore[arg-type]
    assert len(texts) == 2 and all("vllm_router_worker_health" in t for t in texts)  # each pod's own listener
    assert [c[-2:] for c in started] == [["pod/vllm-router-a", ":29000"], ["pod/vllm-router-b", ":29000"]]
    (listing,) = kubectl.asked
    assert listing[:4] == ["get", "pods", "-n", "minimax-vllm"] and "app.kubernetes.io/name=vllm-router" in listing[5]
