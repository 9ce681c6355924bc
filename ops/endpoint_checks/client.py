"""`ops verify`'s generation checks, made with the `openai` client users call the endpoint with.

What vLLM 0.32.0 sends (vllm/entrypoints/openai/chat_completion/protocol.py, generate/base/protocol.py):
a message or a stream delta carries `content`, `reasoning` (the thinking, when the server runs
`--reasoning-parser minimax_m2`; `reasoning_content` is only the older name, accepted on input)
and `tool_calls`; a streamed tool call arrives as deltas by `index`: first its `id`, `type` and
function `name`, then `arguments` in pieces. `minimax_m2_append_think` leaves the thinking inside
`content` as `<think>...</think>`. The `openai` types do not declare `reasoning`: it is an extra
field of the parsed object.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai

from ops.report import Check, failed, passed, skipped

# The pinned release's field for split-out thinking; the older name, only to say what a server sent.
REASONING_FIELD = "reasoning"
OLD_REASONING_FIELD = "reasoning_content"
APPEND_THINK = "minimax_m2_append_think"
SPLIT_THINK = "minimax_m2"
PARSER_FIX = "check the vLLM argv (`make plan`): --enable-auto-tool-choice --tool-call-parser minimax_m2 --reasoning-parser <parser>"


def client(endpoint: str, api_key: str, timeout: float, sent: list[dict[str, Any]] | None = None) -> openai.OpenAI:
    """An `openai` client on the endpoint, no retries (a retry would hide a failure); every JSON
    body it sends is appended to `sent`, as the server received it."""

    def record(request: httpx2.Request) -> None:
        if sent is not None and request.content:
            sent.append(json.loads(request.content))

    http = httpx2.Client(timeout=timeout, event_hooks={"request": [record]})
    return openai.OpenAI(base_url=f"{endpoint}/v1", api_key=api_key, max_retries=0, timeout=timeout, http_client=http)


# Request fields vLLM adds to the OpenAI API: the client sends them in `extra_body`, as users must.
VLLM_EXTENSIONS = ("top_k",)


def _create_args(body: dict[str, Any]) -> dict[str, Any]:
    args = {k: v for k, v in body.items() if k not in VLLM_EXTENSIONS}
    extra = {k: body[k] for k in VLLM_EXTENSIONS if k in body}
    return {**args, "extra_body": extra} if extra else args


def error_text(err: Exception) -> str:
    status = getattr(err, "status_code", None)
    return f"{status}: {err}"[:300] if status else f"{type(err).__name__}: {err}"[:300]


# --- one answer, streamed or not -----------------------------------------------------------


@dataclass
class Answer:
    """What came back, the same whether it was streamed or not."""

    content: str = ""
    reasoning: str = ""
    old_reasoning: str = ""  # thinking under the older field name (not the pinned release's)
    tool_calls: dict[int, dict[str, str]] = field(default_factory=dict)
    finish_reason: str | None = None
    error: str | None = None
    chunks: int = 0
    reasoning_after_content: bool = False  # a reasoning delta came after a content delta
    first_chunk_s: float = 0.0
    longest_gap_s: float = 0.0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def _extra(obj: Any, name: str) -> str:
    value = getattr(obj, name, None) or (getattr(obj, "model_extra", None) or {}).get(name)
    return value if isinstance(value, str) else ""


def ask(oc: openai.OpenAI, body: dict[str, Any]) -> Answer:
    """A non-streamed chat completion, read into an Answer."""
    start = time.monotonic()
    try:
        reply = oc.chat.completions.create(**_create_args(body))
    except openai.APIError as err:
        return Answer(error=error_text(err), seconds=time.monotonic() - start)
    if not reply.choices:
        return Answer(error="200 with no choices", seconds=time.monotonic() - start)
    choice = reply.choices[0]
    m = choice.message
    answer = Answer(
        content=m.content or "",
        reasoning=_extra(m, REASONING_FIELD),
        old_reasoning=_extra(m, OLD_REASONING_FIELD),
        finish_reason=choice.finish_reason,
        chunks=1,
        seconds=time.monotonic() - start,
    )
    for i, call in enumerate(m.tool_calls or []):
        fn = getattr(call, "function", None)
        answer.tool_calls[i] = {"id": call.id, "name": fn.name if fn else "", "arguments": fn.arguments if fn else ""}
    return answer


def stream(oc: openai.OpenAI, body: dict[str, Any]) -> Answer:
    """A streamed chat completion: deltas joined, tool calls assembled by index, the timing kept."""
    answer, start = Answer(), time.monotonic()
    last = start
    try:
        for chunk in oc.chat.completions.create(**_create_args(body), stream=True):
            now = time.monotonic()
            if not answer.chunks:
                answer.first_chunk_s = now - start
            else:
                answer.longest_gap_s = max(answer.longest_gap_s, now - last)
            last, answer.chunks = now, answer.chunks + 1
            for choice in chunk.choices:
                _take(answer, choice.delta)
                answer.finish_reason = choice.finish_reason or answer.finish_reason
    except openai.APIError as err:
        answer.error = error_text(err)
    answer.seconds = time.monotonic() - start
    return answer


def _take(answer: Answer, delta: Any) -> None:
    if delta is None:
        return
    reasoning = _extra(delta, REASONING_FIELD)
    if reasoning and answer.content:
        answer.reasoning_after_content = True
    answer.reasoning += reasoning
    answer.old_reasoning += _extra(delta, OLD_REASONING_FIELD)
    answer.content += delta.content or ""
    for call in delta.tool_calls or []:
        slot = answer.tool_calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
        slot["id"] = call.id or slot["id"]
        fn = call.function
        if fn is not None:
            slot["name"] += fn.name or ""
            slot["arguments"] += fn.arguments or ""


def split_inline(content: str) -> tuple[str, str]:
    """(thinking inside `<think>...</think>`, the answer after it)."""
    if "</think>" not in content:
        return "", content.strip()
    thinking, _, rest = content.partition("</think>")
    return thinking.replace("<think>", "", 1).strip(), rest.strip()


# --- the checks ------------------------------------------------------------------------


def check_models(oc: openai.OpenAI, expected: tuple[str, ...]) -> Check:
    """`/v1/models` lists every name clients may send: the short alias and the Hub id."""
    try:
        ids = [m.id for m in oc.models.list()]
    except openai.AuthenticationError:
        return failed(
            "models", "GET /v1/models with the API key: 401", "use the stack's key: `pulumi config get apiKey`"
        )
    except openai.APIError as err:
        return failed("models", f"GET /v1/models {error_text(err)}", "check the server log")
    missing = [name for name in expected if name not in ids]
    if not missing:
        return passed("models", f"serves {', '.join(expected)}")
    return failed(
        "models",
        f"GET /v1/models lists {ids}, missing {missing}",
        "pass --model <served name>, or check serving.servedModelName and the --served-model-name of `make plan`",
    )


def check_wrong_key(oc: openai.OpenAI) -> tuple[bool, str]:
    """(refused, what happened) for `models.list()` with a key that is not the endpoint's."""
    try:
        oc.models.list()
    except openai.AuthenticationError:
        return True, "401"
    except openai.APIError as err:
        return False, error_text(err)
    return False, "200"


def check_chat(a: Answer, parser: str) -> Check:
    if not a.ok:
        return failed("chat", f"POST /v1/chat/completions {a.error}", PARSER_FIX)
    answer = split_inline(a.content)[1] if parser == APPEND_THINK else a.content.strip()
    if answer:
        return passed("chat", f"answer: {answer[:60]!r}")
    return failed(
        "chat",
        f"no answer besides thinking (finish_reason {a.finish_reason})",
        "raise max_tokens or check the server log",
    )


def check_thinking(a: Answer, parser: str, name: str = "thinking") -> Check:
    """Where the thinking arrives, by the server's reasoning parser: separate, or inside content."""
    if not a.ok:
        return skipped(name, "no answer to inspect")
    inline, _ = split_inline(a.content)
    if a.old_reasoning and not a.reasoning:
        return failed(
            name,
            f"thinking came in `{OLD_REASONING_FIELD}`, the field of older vLLM releases, not `{REASONING_FIELD}`",
            "the server is not the pinned vLLM release: check serving.imageTag and the running image",
        )
    if parser == SPLIT_THINK:
        if inline or "<think>" in a.content:
            return failed(
                name,
                "thinking came inside content, not in the reasoning field",
                f"the server runs --reasoning-parser {APPEND_THINK}: verify with --reasoning-parser {APPEND_THINK},"
                f" or set serving.reasoningParser {SPLIT_THINK}",
            )
        if a.reasoning_after_content:
            return failed(name, "a reasoning delta came after the answer had started", PARSER_FIX)
        if a.reasoning.strip():
            return passed(name, f"{len(a.reasoning)} chars in `{REASONING_FIELD}`, apart from the answer ({parser})")
    else:
        if a.reasoning.strip():
            return failed(
                name,
                "thinking came in the separate reasoning field, not inside content",
                f"the server runs --reasoning-parser {SPLIT_THINK}: verify with --reasoning-parser {SPLIT_THINK},"
                f" or set serving.reasoningParser {APPEND_THINK}",
            )
        if inline and a.content.lstrip().startswith("<think>"):
            return passed(name, f"{len(inline)} chars inside content as <think>...</think> ({parser})")
    return failed(name, f"no thinking in the answer (expected with {parser})", PARSER_FIX)


def check_tool_call(a: Answer) -> Check:
    """A streamed tool call parsed by minimax_m2: one get_weather call, its arguments JSON."""
    if not a.ok:
        return failed("tool call", f"POST /v1/chat/completions with tools {a.error}", PARSER_FIX)
    for call in a.tool_calls.values():
        if call["name"] != "get_weather":
            continue
        try:
            args = json.loads(call["arguments"] or "")
        except ValueError:
            return failed("tool call", f"get_weather arguments are not JSON: {call['arguments']!r}", PARSER_FIX)
        if not call["id"] or a.finish_reason != "tool_calls":
            return failed(
                "tool call",
                f"get_weather without an id or with finish_reason {a.finish_reason!r} (expected tool_calls)",
                PARSER_FIX,
            )
        return passed("tool call", f"streamed tool_calls: get_weather({json.dumps(args)}), finish_reason tool_calls")
    _, answer = split_inline(a.content)
    if any(marker in answer for marker in ("get_weather", "<minimax:tool_call>", "<invoke", "tool_call")):
        return failed(
            "tool call",
            f"the tool call came back as plain text: {answer[:80]!r}",
            "vLLM needs --enable-auto-tool-choice --tool-call-parser minimax_m2",
        )
    return failed("tool call", f"no tool_calls entry for get_weather (answer: {answer[:60]!r})", PARSER_FIX)


def check_streaming(a: Answer, parser: str) -> Check:
    """A streamed chat: it ends with a finish_reason, and its answer arrives apart from its thinking."""
    cut = "the load balancer or a proxy cut the stream: check endpoint.idleTimeoutSeconds"
    if not a.ok:
        return failed("streaming", f"stream=true: {a.error} after {a.chunks} chunks", cut)
    if a.finish_reason is None:
        return failed("streaming", f"{a.chunks} chunks and no finish_reason: the stream ended early", cut)
    thinking = check_thinking(a, parser, "streaming")
    if thinking.failed:
        return thinking
    answer = split_inline(a.content)[1] if parser == APPEND_THINK else a.content.strip()
    if not answer:
        return failed("streaming", f"{a.chunks} chunks carried no answer besides thinking")
    return passed("streaming", f"{a.chunks} chunks, finish_reason {a.finish_reason}; {thinking.detail}")


def check_long_stream(a: Answer, idle_timeout: float | None) -> Check:
    """A long answer streams to its end: tokens keep the connection busy, so only a silence longer
    than the load balancer's idle timeout may cut it, never the stream's total length."""
    limit = f"the idle timeout ({idle_timeout:g} s)" if idle_timeout else "the idle timeout"
    timing = f"{a.chunks} chunks over {a.seconds:.1f} s, first after {a.first_chunk_s:.1f} s, longest silence {a.longest_gap_s:.1f} s"
    if a.ok and a.finish_reason:
        outlived = f"; outlived {limit}" if idle_timeout and a.seconds > idle_timeout else ""
        return passed("long stream", f"{timing}, finish_reason {a.finish_reason}{outlived}")
    return failed(
        "long stream",
        f"cut: {a.error or 'no finish_reason'} ({timing})",
        f"a silence longer than {limit} closes the connection: check endpoint.idleTimeoutSeconds"
        " and any proxy between you and the load balancer",
    )


def check_sampling(sent: list[dict[str, Any]], sampling: dict[str, Any], answers: list[Answer]) -> Check:
    """Every generation request the client really sent carried the recommended sampling."""
    generation = [p for p in sent if "messages" in p]
    wrong = [p for p in generation if any(p.get(k) != v for k, v in sampling.items())]
    rejected = [a for a in answers if a.error and a.error.startswith("400")]
    shown = ", ".join(f"{k}={v}" for k, v in sampling.items())
    if generation and not wrong and not rejected:
        return passed("sampling", f"all {len(generation)} generation requests sent {shown}")
    return failed(
        "sampling",
        f"{len(wrong)} request(s) without {shown}; {len(rejected)} rejected with 400",
        "the vLLM release must accept top_k (a vLLM extension to the OpenAI API)",
    )
