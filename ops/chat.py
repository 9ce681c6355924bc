"""Talking to a deployed endpoint with the standard library: a tiny OpenAI-wire client that sends
MiniMax's recommended sampling with every generation request, and readers of its chat answers
(thinking inline as `<think>` or in a separate reasoning field, per reasoning parser)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# Recommended sampling from the model card; top_k is a vLLM extension sent top-level.
SAMPLING = {"temperature": 1.0, "top_p": 0.95, "top_k": 40}


MAX_TOKENS = 2048


APPEND_THINK = "minimax_m2_append_think"


# vLLM's field for split-out thinking; newer releases call it `reasoning`.
REASONING_FIELDS = ("reasoning_content", "reasoning")


_THINK = re.compile(r"<think>(.*?)</think>", re.S)


class Unreachable(Exception):
    """The endpoint did not answer at all (DNS, connection refused, timeout)."""


@dataclass
class Reply:
    status: int
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")[:300]


_OWN_KEY = object()


@dataclass
class Client:
    """A tiny OpenAI-wire client; records the payload of every request for the report."""

    endpoint: str
    api_key: str | None
    timeout: float
    sent: list[dict[str, Any]] = field(default_factory=list)

    def _request(
        self, method: str, path: str, payload: dict[str, Any] | None, api_key: str | None
    ) -> urllib.request.Request:
        headers = {"Accept": "application/json"}
        data = None
        if payload is not None:
            data = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
            self.sent.append(payload)
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return urllib.request.Request(self.endpoint + path, data=data, headers=headers, method=method)

    def call(self, method: str, path: str, payload: dict[str, Any] | None = None, *, api_key: Any = _OWN_KEY) -> Reply:
        """`api_key=None` sends no key, a string sends that key instead of the client's own."""
        key = self.api_key if api_key is _OWN_KEY else api_key
        try:
            with urllib.request.urlopen(self._request(method, path, payload, key), timeout=self.timeout) as resp:
                return Reply(resp.status, resp.read())
        except urllib.error.HTTPError as err:
            return Reply(err.code, err.read())
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
            raise Unreachable(f"{method} {self.endpoint}{path}: {getattr(err, 'reason', err)}") from err

    def stream(self, path: str, payload: dict[str, Any]) -> tuple[int, Iterator[str]]:
        """Status and the SSE lines of a streaming request, read as they arrive."""
        try:
            resp = urllib.request.urlopen(self._request("POST", path, payload, self.api_key), timeout=self.timeout)
        except urllib.error.HTTPError as err:
            return err.code, iter([err.read().decode("utf-8", "replace")])
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
            raise Unreachable(f"POST {self.endpoint}{path}: {getattr(err, 'reason', err)}") from err

        def lines() -> Iterator[str]:
            with resp:
                for raw in resp:
                    yield raw.decode("utf-8", "replace").rstrip("\r\n")

        return resp.status, lines()


def chat_body(model: str, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Every generation request goes through here, so every one carries the recommended sampling."""
    return {"model": model, "messages": messages, "max_tokens": MAX_TOKENS, **SAMPLING, **extra}


def message_of(reply: Reply) -> dict[str, Any]:
    choices = reply.json().get("choices") or [{}]
    return choices[0].get("message") or {}


def split_thinking(message: dict[str, Any]) -> tuple[str, str, str]:
    """(thinking inside content, thinking in the reasoning field, answer text without thinking)."""
    content = message.get("content") or ""
    inline = "".join(_THINK.findall(content))
    answer = _THINK.sub("", content)
    if not inline and "</think>" in content:  # opening tag in the prompt, closing one in the output
        inline, _, answer = content.partition("</think>")
    separate = next(
        (message[f] for f in REASONING_FIELDS if isinstance(message.get(f), str) and message[f].strip()), ""
    )
    return inline.strip(), separate.strip(), answer.strip()


def thinking_text(message: dict[str, Any], parser: str) -> str:
    inline, separate, _ = split_thinking(message)
    return inline if parser == APPEND_THINK else separate


def history_message(message: dict[str, Any], parser: str) -> dict[str, Any]:
    """The assistant turn as a client must send it back: thinking kept as `<think>...</think>`."""
    if parser == APPEND_THINK:
        return {"role": "assistant", "content": message.get("content") or ""}
    _, separate, answer = split_thinking(message)
    content = f"<think>\n{separate}\n</think>\n\n{answer}" if separate else answer
    return {"role": "assistant", "content": content}
