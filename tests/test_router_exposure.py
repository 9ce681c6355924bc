"""What holds with the real `vllm-router` binary between the ALB and vLLM (loopback, fake vLLM):
vLLM still checks the key, because the router passes `Authorization` on untouched; the router
forwards every path, vLLM's unguarded ones included, which is why only the load balancer may
reach its port (tests/test_network_reach.py); and with data parallelism it names a rank per request."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from components.platform import config
from components.serving import endpoint, profiles, routing
from ops.routing import replay as rp
from tests.fake_vllm_server import Behaviour, FakeVllm

pytestmark = [
    pytest.mark.slow,  # starts the router binary three times (~3 s)
    pytest.mark.skipif(not rp.ROUTER.exists(), reason="vllm-router is pinned in requirements-dev.txt"),
]
KEY = "the-stack-key"


def start(fake: FakeVllm, *extra: str) -> tuple[str, subprocess.Popen[bytes]]:
    port = rp.free_port()
    args = [str(rp.ROUTER), "--host", "127.0.0.1", "--port", str(port), "--worker-urls", fake.url]
    args += ["--prometheus-host", "127.0.0.1", "--prometheus-port", str(rp.free_port())]
    args += ["--worker-startup-check-interval", "1", *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    assert rp._healthy(url, 20), "the router did not start"
    return url, proc


@pytest.fixture
def vllm_behind_router() -> Iterator[tuple[str, FakeVllm]]:
    fake = FakeVllm(Behaviour(api_key=KEY, behind_alb=False)).start()  # vLLM itself, no ALB path list
    url, proc = start(fake)
    yield url, fake
    proc.terminate()
    proc.wait(timeout=5)
    fake.stop()


def ask(url: str, method: str, path: str, key: str | None) -> int:
    body = json.dumps({"model": "minimax-m2.5", "messages": [{"role": "user", "content": "hi"}]}).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(
        url + path, data=body if method == "POST" else None, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as err:
        return err.code


def test_vllm_refuses_a_missing_or_wrong_key_that_the_router_passes_on(vllm_behind_router) -> None:
    url, fake = vllm_behind_router
    assert ask(url, "POST", "/v1/chat/completions", None) == 401
    assert ask(url, "POST", "/v1/chat/completions", "not-the-key") == 401
    assert ask(url, "POST", "/v1/chat/completions", KEY) == 200
    # vLLM answered each: the router neither dropped nor replaced the header.
    sent = [r["authorization"] for r in fake.behaviour.requests if r["path"] == "/v1/chat/completions"]
    assert sent == [None, "Bearer not-the-key", f"Bearer {KEY}"]


def test_the_router_forwards_vllms_unguarded_routes_so_only_the_alb_may_reach_it(vllm_behind_router) -> None:
    url, _ = vllm_behind_router
    for method, path in (("GET", "/metrics"), ("GET", "/tokenize"), ("POST", "/invocations")):
        assert not endpoint.reaches_vllm(path), f"the ALB forwards {path}"  # the ALB refuses it
        assert ask(url, method, path, None) == 200, f"{method} {path} through the router without a key"


def test_dp8_ep_requests_name_every_data_parallel_rank() -> None:
    s = config.from_stack_file("prod-8gpu")
    raw = config.split_stack_config(config.read_stack_file("prod-8gpu"))[0]
    dp = config.parse(
        {**raw, "serving": {**raw["serving"], "profile": "dp8-ep", "maxModelLen": 131072}}, "prod-8gpu", s.region
    )
    rank_flag = next(a for a in routing.args(dp.routing, dp.serving, dp.endpoint) if "data-parallel" in a)
    fake = FakeVllm(Behaviour(api_key=KEY, behind_alb=False)).start()
    url, proc = start(fake, *rank_flag.split("="), "--policy", "consistent_hash")
    try:
        for session in range(64):
            body = json.dumps({"model": "minimax-m2.5", "messages": [{"role": "user", "content": "hi"}]}).encode()
            headers = {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {KEY}",
                "x-session-id": f"s{session}",
            }
            request = urllib.request.Request(url + "/v1/chat/completions", data=body, headers=headers)
            with urllib.request.urlopen(request, timeout=10) as reply:
                reply.read()
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        fake.stop()
    ranks = {r["dp_rank"] for r in fake.behaviour.requests if r["path"] == "/v1/chat/completions"}
    vllm_ranks = int(profiles.vllm_argv(dp.serving)[profiles.vllm_argv(dp.serving).index("--data-parallel-size") + 1])
    assert ranks == {str(i) for i in range(vllm_ranks)}
