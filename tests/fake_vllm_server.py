"""A loopback stand-in for vLLM's OpenAI-compatible server, for the verify tests.

Speaks the wire format of `vllm serve --enable-auto-tool-choice --tool-call-parser
minimax_m2 --reasoning-parser <parser> --api-key ...`, can be told to misbehave in the
ways the MiniMax guides warn about, and records every request so tests can inspect what was sent.

By default it stands behind the load balancer as deployed: only the paths of
components/serving/endpoint.py reach it, the rest get the ALB's fixed 404. `behind_alb=False` is the
leaky shape: vLLM's unguarded routes (/invocations, /tokenize, /metrics, /docs) answer anyone.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from components.serving import endpoint

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
    reasoning_field: str = "reasoning_content"  # newer vLLM releases: "reasoning"
    enforce_auth: bool = True
    thinking: bool = True
    tool_as_text: bool = False
    stream_done: bool = True
    healthy: bool = True
    requests: list[dict[str, Any]] = field(default_factory=list)

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
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        b = self.server.behaviour
        return not b.enforce_auth or self.headers.get("Authorization") == f"Bearer {b.api_key}"

    def _record(self, body: Any) -> None:
        self.server.behaviour.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
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
        if body.get("stream"):
            return self._stream()
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

    def _stream(self) -> None:
        b = self.server.behaviour
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        deltas = [{"role": "assistant", "content": ""}]
        if b.thinking:
            deltas.append(
                {b.reasoning_field: "Greeting."}
                if b.reasoning == "minimax_m2"
                else {"content": "<think>Greeting.</think>"}
            )
        deltas += [{"content": "Hel"}, {"content": "lo"}]
        for delta in deltas:
            chunk = {
                "id": "chatcmpl-2",
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        if b.stream_done:
            self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    behaviour: Behaviour


class FakeVllm:
    """Start on 127.0.0.1 with an ephemeral port; `stop` shuts it down and joins the thread."""

    def __init__(self, behaviour: Behaviour | None = None):
        self.behaviour = behaviour or Behaviour()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.behaviour = self.behaviour
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
