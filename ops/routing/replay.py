"""Replay multi-turn agent conversations through the real `vllm-router` binary on loopback.

One place for the replay: tests/test_routing_replay.py asserts on it and `make routing` prints it.
The replicas are tests/fake_vllm_server.py fakes that count prefix-cache hits the way vLLM's
automatic prefix caching would (a prompt extending one the replica already served is a hit).
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.serving.router_flags import RESILIENCE
from tests.fake_vllm_server import BACKEND_HEADER, Behaviour, FakeVllm

ROUTER = Path(sys.executable).with_name("vllm-router")
API_KEY = "test-key"
SESSION_HEADER = "x-session-id"  # one of the headers consistent_hash reads (router src/policies/hash_key.rs)

# How long a router process may take to answer /health: it starts in under a second alone, but the
# full test run shares two cores with checkov and vLLM's parser.
START_WAIT_S = 60


@dataclass(frozen=True)
class Turn:
    session: str
    messages: tuple[dict[str, str], ...]


def trace(sessions: int = 61, turns: int = 4, context_chars: int = 2000) -> list[Turn]:
    """Agent conversations interleaved round by round, in a seeded random order within a round
    (as independent agents arrive): each turn resends the whole history."""
    rng = random.Random(7)
    history: dict[str, list[dict[str, str]]] = {}
    out: list[Turn] = []
    for t in range(turns):
        for s in rng.sample(range(sessions), sessions):
            sid = f"s{s:03d}"
            msgs = history.setdefault(
                sid, [{"role": "system", "content": f"agent {sid} tools " * (context_chars // 16)}]
            )
            if t:
                msgs.append({"role": "assistant", "content": f"result of step {t - 1} for {sid}"})
            msgs.append({"role": "user", "content": f"step {t}: observation for {sid} " * 8})
            out.append(Turn(sid, tuple(dict(m) for m in msgs)))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Fleet:
    """N fake replicas and one or more router processes, all on 127.0.0.1. With several routers,
    requests go to them in turn, as the ALB spreads them over the router pods (round robin)."""

    policy: str
    replicas: int = 3
    extra: tuple[str, ...] = ()
    routers: int = 1
    resilience: tuple[str, ...] = RESILIENCE  # the cluster's; a test may shorten a timer in it
    fakes: list[FakeVllm] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    sent: int = 0

    def __enter__(self) -> Fleet:
        self.fakes = [FakeVllm(Behaviour(api_key=API_KEY)).start() for _ in range(self.replicas)]
        for _ in range(self.routers):
            port = free_port()
            args = [str(ROUTER), "--host", "127.0.0.1", "--port", str(port), "--policy", self.policy]
            args += ["--worker-urls", *[f.url for f in self.fakes], "--prometheus-host", "127.0.0.1"]
            args += ["--prometheus-port", str(free_port()), "--worker-startup-timeout-secs", "20"]
            args += ["--worker-startup-check-interval", "1", "--health-check-interval-secs", "1"]
            self.ports.append(port)
            self.procs.append(
                subprocess.Popen(
                    [*args, *self.resilience, *self.extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
        for port in self.ports:
            if not _healthy(f"http://127.0.0.1:{port}", START_WAIT_S):
                self.__exit__()
                raise RuntimeError(f"vllm-router ({self.policy}) did not become healthy in {START_WAIT_S} s")
        return self

    def __exit__(self, *_: Any) -> None:
        for proc in self.procs:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        for f in self.fakes:
            if f._thread.is_alive():
                f.stop()

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        return self.procs[0]

    @property
    def url(self) -> str:
        """The router the next request goes to."""
        return f"http://127.0.0.1:{self.ports[self.sent % len(self.ports)]}"

    def add(self) -> FakeVllm:
        """A new replica, registered the way discovery would: the router's /add_worker API."""
        fake = FakeVllm(Behaviour(api_key=API_KEY)).start()
        self.fakes.append(fake)
        for port in self.ports:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/add_worker?url={fake.url}", method="POST")
            with urllib.request.urlopen(req, timeout=10) as r:
                r.read()
        return fake

    def send(self, turn: Turn) -> str:
        """One chat request through the router; the port of the replica that answered."""
        body = json.dumps({"model": "minimax-m2.5", "messages": list(turn.messages)}).encode()
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {API_KEY}",
            SESSION_HEADER: turn.session,
        }
        req = urllib.request.Request(f"{self.url}/v1/chat/completions", data=body, headers=headers)
        self.sent += 1
        with urllib.request.urlopen(req, timeout=15) as r:
            r.read()
            return str(r.headers[BACKEND_HEADER])


@dataclass
class Outcome:
    """What a replay measured: per turn, who served it; per replica, its prefix-cache counters."""

    served: list[tuple[str, str]]  # (session, backend port) in trace order
    replicas: tuple[str, ...]  # every replica's port, those that took nothing included
    failed: int
    prefill_tokens: int
    cached_tokens: int
    hits: int

    def affinity(self) -> float:
        """Share of follow-up turns served by the replica that served the conversation's previous turn."""
        last: dict[str, str] = {}
        same = total = 0
        for sid, backend in self.served:
            if sid in last:
                total += 1
                same += last[sid] == backend
            last[sid] = backend
        return same / total if total else 0.0

    def session_homes(self) -> dict[str, str]:
        return {sid: backend for sid, backend in self.served}

    def balance(self) -> float:
        """Largest deviation of a replica's share of sessions from an even split (0.1 = within 10%);
        a replica that took no session counts (1.0 or more: some replica sat idle)."""
        counts = Counter(self.session_homes().values())
        mean = sum(counts.values()) / len(self.replicas)
        return max(abs(counts.get(r, 0) - mean) / mean for r in self.replicas)

    def sessions_per_replica(self) -> list[int]:
        counts = Counter(self.session_homes().values())
        return sorted((counts.get(r, 0) for r in self.replicas), reverse=True)


def run(fleet: Fleet, turns: list[Turn], on_turn: Any = None) -> Outcome:
    served: list[tuple[str, str]] = []
    failed = 0
    for i, turn in enumerate(turns):
        if on_turn:
            on_turn(i, fleet)
        try:
            served.append((turn.session, fleet.send(turn)))
        except (OSError, urllib.error.URLError):
            failed += 1
    b = [f.behaviour for f in fleet.fakes]
    return Outcome(
        served,
        tuple(str(f._server.server_address[1]) for f in fleet.fakes),
        failed,
        sum(x.prefill_tokens for x in b),
        sum(x.cached_tokens for x in b),
        sum(x.cache_hits for x in b),
    )


def _healthy(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as r:
                if r.status == 200:
                    return True
        except (OSError, urllib.error.URLError):
            time.sleep(0.2)
    return False


def replay(policy: str, replicas: int = 3, turns: list[Turn] | None = None, routers: int = 1) -> Outcome:
    with Fleet(policy, replicas, routers=routers) as fleet:
        return run(fleet, turns or trace())
