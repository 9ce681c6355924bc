"""The MiniMax serving guides' pass criteria, checked against a deployed endpoint after `pulumi up`.

Standard library only (urllib), so verifying needs nothing beyond Python. Each request
sends MiniMax's recommended sampling; the second turn sends the first answer back with
its thinking, because MiniMax documents that stripping `<think>` degrades quality.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from components.platform.config import from_stack_file
from components.serving import endpoint
from components.settings.stack import PROJECT
from ops.chat import (
    APPEND_THINK,
    REASONING_FIELDS,
    SAMPLING,
    Client,
    Reply,
    Unreachable,
    chat_body,
    history_message,
    message_of,
    split_thinking,
    thinking_text,
)
from ops.report import Check, UsageError, failed, passed, skipped

SPLIT_THINK = "minimax_m2"

# The smoke-test tool of the MiniMax-M2 vLLM recipe.
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Return current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
FIRST_QUESTION = "What is 17 * 23? Think it through, then answer with the number."
SECOND_QUESTION = "Now add 100 to that result. Answer with the number."
TOOL_QUESTION = "Use the get_weather tool for Athens, then summarize."
TEXT_TOOL_MARKERS = ("get_weather", "<minimax:tool_call>", "<invoke", "tool_call")

# Routes vLLM serves without checking the key (its middleware guards only /v1, /v2, /inference
# and /cohere); the load balancer must answer them itself. The request bodies are valid, so a
# leaky endpoint runs them rather than rejecting a malformed request ("chat": a one-token chat body).
UNGUARDED_PROBES: tuple[tuple[str, str, dict[str, Any] | str | None], ...] = (
    ("POST", "/invocations", "chat"),
    ("POST", "/tokenize", {"prompt": "ping"}),
    ("GET", "/metrics", None),
    ("GET", "/docs", None),
    ("GET", "/openapi.json", None),
)
REFUSED = (401, 403, 404)

PARSER_FIX = "check the vLLM argv (`make plan`): --enable-auto-tool-choice --tool-call-parser minimax_m2 --reasoning-parser <parser>"


@dataclass(frozen=True)
class Target:
    """What to verify: where the endpoint is, what it serves and how thinking is returned."""

    endpoint: str
    model: str
    api_key: str
    reasoning_parser: str


# --- where the endpoint is --------------------------------------------------------------


def normalize_endpoint(url: str) -> str:
    """Accept `host`, `http://host/`, `http://host/v1`: the checks add the paths themselves."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    return url[: -len("/v1")] if url.endswith("/v1") else url


def _pulumi(*args: str) -> str:
    """Run the pulumi CLI and return its output; any failure is a usage error that says what ran."""
    if not shutil.which("pulumi"):
        raise UsageError("the pulumi CLI is not installed; pass --endpoint URL --model NAME and --api-key")
    cmd = ["pulumi", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired as err:
        raise UsageError(f"`{' '.join(cmd)}` timed out") from err
    if done.returncode != 0:
        raise UsageError(f"`{' '.join(cmd)}` failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def stack_outputs(stack: str) -> dict[str, Any]:
    """The deployed stack's outputs (endpointUrl, servedModelName)."""
    return json.loads(_pulumi("stack", "output", "--json", "--stack", stack) or "{}")


def stack_api_key(stack: str) -> str:
    """The endpoint's key from the stack's secret config, decrypted by the CLI and never stored."""
    return _pulumi("config", "get", f"{PROJECT}:apiKey", "--stack", stack).strip()


def resolve_target(
    stack: str, endpoint: str | None, model: str | None, api_key: str | None, reasoning_parser: str | None
) -> Target:
    """Flags first, then the stack's outputs, then the stack file; a missing piece is a usage error."""
    outputs = stack_outputs(stack) if not endpoint else {}
    endpoint = endpoint or outputs.get("endpointUrl")
    if not endpoint:
        raise UsageError(f"stack {stack} has no output endpointUrl (is it deployed?); pass --endpoint URL")
    if not api_key and shutil.which("pulumi"):
        api_key = stack_api_key(stack)
    if not api_key:
        raise UsageError(
            "the endpoint requires an API key: pass --api-key or set MINIMAX_VLLM_API_KEY"
            f" (e.g. `export MINIMAX_VLLM_API_KEY=$(pulumi config get {PROJECT}:apiKey)`)"
        )
    model = model or outputs.get("servedModelName")
    if not model or not reasoning_parser:
        serving = from_stack_file(stack).serving
        model = model or serving.served_model_name
        reasoning_parser = reasoning_parser or serving.reasoning_parser
    return Target(normalize_endpoint(endpoint), model, api_key, reasoning_parser)


# --- the checks ------------------------------------------------------------------------


def check_health(c: Client) -> Check:
    reply = c.call("GET", "/health", api_key=None)
    if reply.status == 200:
        return passed("health", "GET /health 200")
    return failed(
        "health",
        f"GET /health {reply.status}: {reply.text}",
        "kubectl -n <namespace> logs deploy/<vllm deployment>: the server may still be loading the model weights (components/facts/catalog.py: weights_gb)",
    )


def check_models(c: Client, model: str) -> Check:
    reply = c.call("GET", "/v1/models")
    if reply.status == 401:
        return failed(
            "models", "GET /v1/models with the API key: 401", "use the stack's key: `pulumi config get apiKey`"
        )
    ids = [m.get("id") for m in reply.json().get("data", []) if isinstance(m, dict)]
    if reply.status == 200 and model in ids:
        return passed("models", f"serves {model}")
    return failed(
        "models",
        f"GET /v1/models {reply.status}: served {ids or reply.text}, expected {model}",
        "pass --model <served name> or check serving.servedModelName",
    )


def check_auth(c: Client) -> Check:
    anonymous = c.call("GET", "/v1/models", api_key=None).status
    wrong = c.call("GET", "/v1/models", api_key="not-the-key").status
    if anonymous == 401 and wrong == 401:
        return passed("auth", "requests without the key or with a wrong key: 401")
    return failed(
        "auth",
        f"without the key: {anonymous}, with a wrong key: {wrong} (expected 401)",
        "vLLM must run with the API key (VLLM_API_KEY from the Kubernetes Secret)",
    )


def check_exposure(c: Client, model: str) -> Check:
    """Only the listed paths reach vLLM: every unguarded route is refused without a key."""
    leaks = []
    for method, path, body in UNGUARDED_PROBES:
        if body == "chat":
            body = chat_body(model, [{"role": "user", "content": "ping"}], max_tokens=1)
        status = c.call(method, path, body, api_key=None).status
        if status not in REFUSED:
            leaks.append(f"{method} {path} {status}")
    exposed = ", ".join(p.path for p in endpoint.EXPOSED_PATHS)
    if not leaks:
        probes = ", ".join(path for _, path, _ in UNGUARDED_PROBES)
        return passed("exposure", f"{probes} refused without a key; only {exposed} forwarded")
    return failed(
        "exposure",
        f"answered without a key: {'; '.join(leaks)}",
        f"expose vLLM only through the Ingress of components/serving/endpoint.py (paths {exposed}, a fixed 404 for the rest); "
        "no LoadBalancer or NodePort Service may select the vLLM pods",
    )


def check_chat(reply: Reply) -> Check:
    if reply.status != 200:
        return failed("chat", f"POST /v1/chat/completions {reply.status}: {reply.text}", PARSER_FIX)
    _, _, answer = split_thinking(message_of(reply))
    if answer:
        return passed("chat", f"answer: {answer[:60]!r}")
    finish = (reply.json().get("choices") or [{}])[0].get("finish_reason")
    return failed(
        "chat", f"no answer besides thinking (finish_reason {finish})", "raise max_tokens or check the server log"
    )


def check_thinking(reply: Reply, parser: str) -> Check:
    if reply.status != 200:
        return skipped("thinking", "no chat answer to inspect")
    inline, separate, _ = split_thinking(message_of(reply))
    if parser == APPEND_THINK and inline:
        return passed("thinking", f"{len(inline)} chars inside content as <think>...</think> ({parser})")
    if parser == SPLIT_THINK and separate:
        return passed("thinking", f"{len(separate)} chars in the reasoning field ({parser})")
    if parser == APPEND_THINK and separate:
        return failed(
            "thinking",
            "thinking came in the separate reasoning field, not inside content",
            f"the server runs --reasoning-parser {SPLIT_THINK}: verify with --reasoning-parser {SPLIT_THINK}, or set serving.reasoningParser {APPEND_THINK}",
        )
    if parser == SPLIT_THINK and inline:
        return failed(
            "thinking",
            "thinking came inside content, not in the reasoning field",
            f"the server runs --reasoning-parser {APPEND_THINK}: verify with --reasoning-parser {APPEND_THINK}, or set serving.reasoningParser {SPLIT_THINK}",
        )
    return failed("thinking", f"no thinking in the answer (expected with {parser})", PARSER_FIX)


def check_tool_call(reply: Reply) -> Check:
    if reply.status != 200:
        return failed("tool call", f"POST /v1/chat/completions with tools {reply.status}: {reply.text}", PARSER_FIX)
    message = message_of(reply)
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        if fn.get("name") != "get_weather":
            continue
        try:
            args = json.loads(fn.get("arguments") or "")
        except ValueError:
            return failed("tool call", f"get_weather arguments are not JSON: {fn.get('arguments')!r}", PARSER_FIX)
        return passed("tool call", f"structured tool_calls: get_weather({json.dumps(args)})")
    _, _, answer = split_thinking(message)
    if any(marker in answer for marker in TEXT_TOOL_MARKERS):
        return failed(
            "tool call",
            f"the tool call came back as plain text: {answer[:80]!r}",
            "vLLM needs --enable-auto-tool-choice --tool-call-parser minimax_m2",
        )
    return failed("tool call", f"no tool_calls entry for get_weather (answer: {answer[:60]!r})", PARSER_FIX)


def check_second_turn(c: Client, target: Target, first: Reply) -> Check:
    if first.status != 200:
        return skipped("second turn", "no first answer to continue from")
    message = message_of(first)
    thinking = thinking_text(message, target.reasoning_parser)
    if not thinking:
        return skipped("second turn", "the first answer has no thinking to send back (see thinking)")
    history = [
        {"role": "user", "content": FIRST_QUESTION},
        history_message(message, target.reasoning_parser),
        {"role": "user", "content": SECOND_QUESTION},
    ]
    reply = c.call("POST", "/v1/chat/completions", chat_body(target.model, history))
    _, _, answer = split_thinking(message_of(reply))
    if reply.status == 200 and answer:
        return passed("second turn", f"history carried {len(thinking)} chars of <think>; answer: {answer[:40]!r}")
    return failed(
        "second turn",
        f"POST with the thinking in history {reply.status}: {reply.text}",
        "check the server log for chat template errors",
    )


def check_sampling(c: Client, replies: list[Reply]) -> Check:
    generation = [p for p in c.sent if "messages" in p]
    wrong = [p for p in generation if any(p.get(k) != v for k, v in SAMPLING.items())]
    rejected = [r.status for r in replies if r.status == 400]
    shown = ", ".join(f"{k}={v}" for k, v in SAMPLING.items())
    if generation and not wrong and not rejected:
        return passed("sampling", f"all {len(generation)} generation requests sent {shown}")
    return failed(
        "sampling",
        f"{len(wrong)} request(s) without {shown}; {len(rejected)} rejected with 400",
        "the vLLM release must accept top_k (a vLLM extension to the OpenAI API)",
    )


def check_streaming(c: Client, target: Target) -> Check:
    status, lines = c.stream(
        "/v1/chat/completions", chat_body(target.model, [{"role": "user", "content": "Say hello."}], stream=True)
    )
    if status != 200:
        return failed("streaming", f"POST stream=true {status}: {''.join(lines)[:200]}")
    chunks, text, done = 0, 0, False
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            done = True
            break
        chunks += 1
        try:
            delta = (json.loads(data).get("choices") or [{}])[0].get("delta") or {}
        except ValueError:
            return failed("streaming", f"chunk is not JSON: {data[:80]!r}")
        text += sum(len(delta.get(k) or "") for k in ("content", *REASONING_FIELDS))
    if done and chunks and text:
        return passed("streaming", f"{chunks} SSE chunks, ended with data: [DONE]")
    if not done:
        return failed(
            "streaming",
            f"{chunks} chunks, no closing data: [DONE]",
            "the load balancer or a proxy cut the stream: check endpoint.idleTimeoutSeconds",
        )
    return failed("streaming", f"{chunks} chunks carried no text")


def run(target: Target, timeout: float = 300.0) -> list[Check]:
    """Every criterion in order; later ones are skipped when the endpoint does not answer."""
    c = Client(target.endpoint, target.api_key, timeout)
    names = [
        "health",
        "models",
        "auth",
        "exposure",
        "chat",
        "thinking",
        "tool call",
        "second turn",
        "streaming",
        "sampling",
    ]
    checks: list[Check] = []
    try:
        checks.append(check_health(c))
        if checks[0].failed:
            return checks + [skipped(n, "endpoint not healthy") for n in names[1:]]
        checks += [check_models(c, target.model), check_auth(c), check_exposure(c, target.model)]
        first = c.call(
            "POST", "/v1/chat/completions", chat_body(target.model, [{"role": "user", "content": FIRST_QUESTION}])
        )
        checks += [check_chat(first), check_thinking(first, target.reasoning_parser)]
        tool = c.call(
            "POST",
            "/v1/chat/completions",
            chat_body(
                target.model, [{"role": "user", "content": TOOL_QUESTION}], tools=[WEATHER_TOOL], tool_choice="auto"
            ),
        )
        checks.append(check_tool_call(tool))
        checks.append(check_second_turn(c, target, first))
        checks.append(check_streaming(c, target))
        checks.append(check_sampling(c, [first, tool]))
    except Unreachable as err:
        done = {ch.name for ch in checks}
        pending = [n for n in names if n not in done]
        checks.append(
            failed(
                pending[0],
                f"unreachable: {err}",
                "check the ALB DNS name, endpoint.sourceRanges (your IP must be allowed) and that the pods are Ready",
            )
        )
        checks += [skipped(n, "endpoint unreachable") for n in pending[1:]]
    return checks


def main(target: Target, timeout: float = 300.0) -> tuple[str, list[Check]]:
    title = f"verify: {target.endpoint} model {target.model} (reasoning parser {target.reasoning_parser})"
    return title, run(target, timeout)
