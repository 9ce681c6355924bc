"""A loopback stand-in for vLLM's OpenAI-compatible server, for the verify tests.

Speaks the wire format of vLLM 0.32.0's `vllm serve --enable-auto-tool-choice --tool-call-parser
minimax_m2 --reasoning-parser <parser> --api-key ...`: thinking in `reasoning` (minimax_m2) or as
`<think>...</think>` inside content (minimax_m2_append_think); streams as SSE `data:` chunks of
`chat.completion.chunk` with deltas, tool calls as `tool_calls` deltas by index (id, type and name
first, then the arguments in pieces), a last chunk with the finish_reason, then `data: [DONE]`.
tests/vllm/test_fake_wire.py checks these shapes against the release's own protocol classes.
It can be told to misbehave in the ways the MiniMax guides warn about, and records every request.

By default it stands behind the load balancer as deployed: only the paths of
components/serving/endpoint.py reach it, the rest get the ALB's fixed 404. `behind_alb=False` is the
leaky shape: vLLM's unguarded routes (/invocations, /tokenize, /metrics, /docs) answer anyone.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from components.serving import endpoint

BACKEND_HEADER = "x-fake-backend"  # which fake answered: its port (replays count affinity by it)
# vLLM 0.32.0's answer when admitting a request would pass --max-num-queued-reqs: QueueOverflowError
# (vllm/exceptions.py) through create_error_response, before any response starts, streamed or not.
QUEUE_FULL = {
    "error": {
        "message": "The engine is currently busy and cannot accept new requests. "
        "Please try again later or on a different instance.",
        "type": "Service Unavailable",
        "param": None,
        "code": 503,
    }
}
THINKING = "The user wants 17 * 23. 17 * 20 = 340, 17 * 3 = 51, 340 + 51 = 391."
ANSWER = "391"


@dataclass
class Behaviour:
    """How the fake server answers; the defaults are a healthy, correctly configured vLLM."""

    api_key: str = "test-key"
    model: str = "minimax-m2.5"  # the first --served-model-name: reported in responses
    aliases: tuple[str, ...] = ("MiniMaxAI/MiniMax-M2.5",)  # the other served names
    behind_alb: bool = True
    reasoning: str = "minimax_m2_append_think"  # or "minimax_m2"
    reasoning_field: str = "reasoning"  # vLLM 0.32.0's; older releases sent "reasoning_content"
    enforce_auth: bool = True
    any_key: bool = False  # a key is required, but any key is taken
    thinking: bool = True
    tool_as_text: bool = False
    tool_arguments: tuple[str, ...] = ('{"city": ', '"Athens"}')  # the argument pieces a stream carries
    reasoning_late: bool = False  # a leaky parser: a reasoning delta after the answer started
    stream_done: bool = True
    stream_cut: bool = False  # the stream stops without a finish_reason (a cut connection)
    stream_pieces: int = 2  # content deltas of a streamed answer
    stream_pause: float = 0.0  # seconds between two chunks
    healthy: bool = True
    full: bool = False  # at vLLM's admission cap (--max-num-queued-reqs): a chat request gets its 503 at once
    requests: list[dict[str, Any]] = field(default_factory=list)
    # The prefix cache, as vLLM's automatic prefix caching sees it: a replica holds every prompt it
    # has served; a prompt that starts with a held one (an earlier turn of the same conversation)
    # is a hit, and only the rest is prefilled. Token counts are characters / 4.
    held: set[str] = field(default_factory=set)
    cache_hits: int = 0
    prefill_tokens: int = 0
    cached_tokens: int = 0

    def admit(self, messages: list[dict[str, Any]]) -> None:
        """Count one prompt against the prefix cache and hold it for the turns that follow."""
        keys = [json.dumps(messages[:i], sort_keys=True) for i in range(1, len(messages) + 1)]
        cached = next((k for k in reversed(keys[:-1]) if k in self.held), "")
        self.cache_hits += bool(cached)
        self.cached_tokens += len(cached) // 4
        self.prefill_tokens += (len(keys[-1]) - len(cached)) // 4
        self.held.add(keys[-1])

    @property
    def served_names(self) -> tuple[str, ...]:
        return (self.model, *self.aliases)

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests if r["path"] == "/v1/chat/completions"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 5  # a stuck test client cannot hold a handler thread forever

    def log_message(self, *_: Any) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header(BACKEND_HEADER, str(self.server.server_address[1]))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        b = self.server.behaviour
        sent = self.headers.get("Authorization") or ""
        return not b.enforce_auth or sent == f"Bearer {b.api_key}" or (b.any_key and sent.startswith("Bearer "))

    def _record(self, body: Any) -> None:
        self.server.behaviour.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
                "dp_rank": self.headers.get("X-data-parallel-rank"),  # a router's data-parallel pick
                "body": body,
            }
        )

    def _refused_by_alb(self) -> bool:
        """The load balancer's listener rules: unlisted paths get its fixed 404."""
        if self.server.behaviour.behind_alb and not endpoint.reaches_vllm(self.path):
            self._send(404, {"error": "not found"})
            return True
        return False

    def _unguarded(self) -> bool:
        """vLLM's routes that its key middleware does not guard (the leaky shape reaches them)."""
        if self.path in ("/metrics",):
            body = b"vllm:num_requests_running 0\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path in ("/docs", "/openapi.json"):
            self._send(200, {"openapi": "3.1.0"})
        elif self.path == "/tokenize":
            self._send(200, {"tokens": [1, 2], "count": 2})
        elif self.path == "/invocations":
            self._send(200, self._completion({"messages": [{"role": "user", "content": "ping"}]}))
        else:
            return False
        return True

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        b = self.server.behaviour
        self._record(None)
        if self._refused_by_alb() or self._unguarded():
            return
        if self.path == "/health":
            self.send_response(200 if b.healthy else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/v1/models":
            if not self._authorized():
                self._send(401, {"error": "Unauthorized"})
            else:
                cards = [{"id": name, "object": "model", "owned_by": "vllm"} for name in b.served_names]
                self._send(200, {"object": "list", "data": cards})
        else:
            self._send(404, {"detail": "Not Found"})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self._record(body)
        if self._refused_by_alb() or self._unguarded():
            return None
        if self.path != "/v1/chat/completions":
            return self._send(404, {"detail": "Not Found"})
        if not self._authorized():
            return self._send(401, {"error": "Unauthorized"})
        if body.get("model") not in self.server.behaviour.served_names:
            return self._send(404, {"object": "error", "message": f"The model `{body.get('model')}` does not exist."})
        if self.server.behaviour.full:
            return self._send(503, QUEUE_FULL)
        with self.server.lock:
            self.server.behaviour.admit(list(body.get("messages") or []))
        if body.get("stream"):
            return self._stream(body)
        return self._send(200, self._completion(body))

    def _message(self, answer: str) -> dict[str, Any]:
        b = self.server.behaviour
        if b.reasoning == "minimax_m2_append_think":
            content = f"<think>\n{THINKING}\n</think>\n\n{answer}" if b.thinking else answer
            return {"role": "assistant", "content": content, "tool_calls": []}
        message: dict[str, Any] = {"role": "assistant", "content": answer, "tool_calls": []}
        if b.thinking:
            message[b.reasoning_field] = THINKING
        return message

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        b = self.server.behaviour
        finish = "stop"
        if body.get("tools"):
            if b.tool_as_text:
                message = self._message(
                    '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Athens</parameter>\n</invoke>\n</minimax:tool_call>'
                )
            else:
                message = self._message("")
                message["content"] = message["content"].replace("\n\n", "") or None
                message["tool_calls"] = [
                    {
                        "id": "chatcmpl-tool-1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": json.dumps({"city": "Athens"})},
                    }
                ]
                finish = "tool_calls"
        else:
            message = self._message("491" if len(body.get("messages", [])) > 1 else ANSWER)
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": b.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 40, "total_tokens": 60},
        }

    def _deltas(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """The deltas of a streamed answer and its finish_reason, as vLLM's parsers emit them."""
        b = self.server.behaviour
        split = b.reasoning == "minimax_m2"
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        if b.thinking:
            pieces = [THINKING[:30], THINKING[30:]]
            if split:
                deltas += [{b.reasoning_field: p} for p in pieces]
            else:  # minimax_m2_append_think: "<think>" before the first piece, the rest is content
                deltas += [{"content": "<think>" + pieces[0]}, {"content": pieces[1] + "</think>\n\n"}]
        if body.get("tools") and not b.tool_as_text:
            deltas.append(
                {
                    "tool_calls": [
                        {"index": 0, "id": "chatcmpl-tool-1", "type": "function", "function": {"name": "get_weather"}}
                    ]
                }
            )
            deltas += [{"tool_calls": [{"index": 0, "function": {"arguments": a}}]} for a in b.tool_arguments]
            return deltas, "tool_calls"
        if body.get("tools"):
            deltas.append(
                {
                    "content": '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Athens</parameter>\n</invoke>\n</minimax:tool_call>'
                }
            )
            return deltas, "stop"
        words = ["Hel", "lo", *[f" {i}" for i in range(max(0, b.stream_pieces - 2))]][: max(1, b.stream_pieces)]
        deltas += [{"content": w} for w in words]
        if b.reasoning_late and split:
            deltas.append({b.reasoning_field: "one more thought"})
        return deltas, "stop"

    def _stream(self, body: dict[str, Any]) -> None:
        b = self.server.behaviour
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        deltas, finish = self._deltas(body)
        choices = [[{"index": 0, "delta": d, "finish_reason": None}] for d in deltas]
        if not b.stream_cut:
            choices.append([{"index": 0, "delta": {"content": ""}, "finish_reason": finish}])
        for choice in choices:
            chunk = {
                "id": "chatcmpl-2",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": b.model,
                "choices": choice,
            }
            try:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            except OSError:  # the client or a proxy in between closed the connection
                return
            time.sleep(b.stream_pause)
        if b.stream_done and not b.stream_cut:
            self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    behaviour: Behaviour
    lock: threading.Lock


class FakeVllm:
    """Start on 127.0.0.1 with an ephemeral port; `stop` shuts it down and joins the thread."""

    def __init__(self, behaviour: Behaviour | None = None):
        self.behaviour = behaviour or Behaviour()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.behaviour = self.behaviour
        self._server.lock = threading.Lock()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeVllm:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
