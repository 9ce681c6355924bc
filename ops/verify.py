"""The MiniMax serving guides' pass criteria, checked against a deployed endpoint after `pulumi up`.

Generation goes through the `openai` client, the one users call the endpoint with
(ops/endpoint_checks/client.py); what must be refused (no key, unguarded routes) is probed with raw HTTP
(urllib), which sends exactly the request it is told. Each generation request sends MiniMax's
recommended sampling; the second turn sends the first answer back with its thinking, because
MiniMax documents that stripping `<think>` degrades quality.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from components.platform.config import from_stack_file
from components.serving import endpoint, profiles
from components.settings.stack import PROJECT
from ops.endpoint_checks import client as verify_client
from ops.endpoint_checks.client import APPEND_THINK, Answer
from ops.report import Check, UsageError, failed, passed, skipped

# Recommended sampling from the model card; top_k is a vLLM extension sent top-level.
SAMPLING = {"temperature": 1.0, "top_p": 0.95, "top_k": 40}
MAX_TOKENS = 2048

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
STREAM_QUESTION = "Say hello."
# Long enough to stream for many seconds: tokens keep the connection busy the whole time.
LONG_QUESTION = "Count from 1 to 400, one number per line, with no other text."

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


@dataclass(frozen=True)
class Target:
    """What to verify: where the endpoint is, what it serves and how thinking is returned."""

    endpoint: str
    model: str
    api_key: str
    reasoning_parser: str
    served_names: tuple[str, ...] = ()  # every name /v1/models must list (the alias and the Hub id)
    idle_timeout: float | None = None  # the load balancer's, for the long-stream row


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
    settings = from_stack_file(stack)
    model = model or outputs.get("servedModelName") or settings.serving.served_model_name
    return Target(
        normalize_endpoint(endpoint),
        model,
        api_key,
        reasoning_parser or settings.serving.reasoning_parser,
        served_names=tuple(dict.fromkeys((model, *profiles.served_model_names(settings.serving)))),
        idle_timeout=settings.endpoint.idle_timeout_seconds,
    )


# --- HTTP ------------------------------------------------------------------------------


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
    """Raw HTTP, for the requests that must be refused: exactly the method, path and key it is given."""

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


def chat_body(model: str, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Every generation request goes through here, so every one carries the recommended sampling."""
    return {"model": model, "messages": messages, "max_tokens": MAX_TOKENS, **SAMPLING, **extra}


# --- the second turn -------------------------------------------------------------------


def history_message(first: Answer, parser: str) -> dict[str, Any]:
    """The assistant turn as a client must send it back: thinking kept as `<think>...</think>`."""
    if parser == APPEND_THINK or not first.reasoning.strip():
        return {"role": "assistant", "content": first.content}
    return {"role": "assistant", "content": f"<think>\n{first.reasoning.strip()}\n</think>\n\n{first.content.strip()}"}


def check_second_turn(oc: Any, target: Target, first: Answer) -> Check:
    if not first.ok:
        return skipped("second turn", "no first answer to continue from")
    thinking = (
        verify_client.split_inline(first.content)[0] if target.reasoning_parser == APPEND_THINK else first.reasoning
    )
    if not thinking.strip():
        return skipped("second turn", "the first answer has no thinking to send back (see thinking)")
    history = [
        {"role": "user", "content": FIRST_QUESTION},
        history_message(first, target.reasoning_parser),
        {"role": "user", "content": SECOND_QUESTION},
    ]
    reply = verify_client.ask(oc, chat_body(target.model, history))
    answer = verify_client.split_inline(reply.content)[1]
    if reply.ok and answer:
        return passed(
            "second turn", f"history carried {len(thinking.strip())} chars of <think>; answer: {answer[:40]!r}"
        )
    return failed(
        "second turn",
        f"POST with the thinking in history: {reply.error or 'no answer'}",
        "check the server log for chat template errors",
    )


# --- the checks ------------------------------------------------------------------------


def check_health(c: Client) -> Check:
    # With the key: the stack's web ACL answers any request without one 401 (components/aws/edge.py).
    reply = c.call("GET", "/health")
    if reply.status == 200:
        return passed("health", "GET /health 200")
    return failed(
        "health",
        f"GET /health {reply.status}: {reply.text}",
        "kubectl -n <namespace> logs deploy/<vllm deployment>: the server may still be loading the model weights (components/facts/catalog.py: weights_gb)",
    )


def check_auth(c: Client, wrong_key_client: Any = None) -> Check:
    """No key (raw HTTP: the `openai` client always sends one) and a wrong key (the `openai` client)."""
    anonymous = c.call("GET", "/v1/models", api_key=None).status
    if wrong_key_client is None:
        wrong = c.call("GET", "/v1/models", api_key="not-the-key").status
    else:
        refused, what = verify_client.check_wrong_key(wrong_key_client)
        wrong = 401 if refused else what
    if anonymous == 401 and wrong == 401:
        return passed("auth", "requests without the key or with a wrong key: 401")
    return failed(
        "auth",
        f"without the key: {anonymous}, with a wrong key: {wrong} (expected 401)",
        "vLLM must run with the API key (VLLM_API_KEY from the Kubernetes Secret)",
    )


def check_exposure(c: Client, model: str) -> Check:
    """Only the listed paths reach vLLM: every route vLLM leaves unguarded is refused, even with
    the key (the web ACL answers a keyless request itself, so only a keyed probe shows that the
    load balancer's own 404 stands in front of the route)."""
    leaks = []
    for method, path, body in UNGUARDED_PROBES:
        if body == "chat":
            body = chat_body(model, [{"role": "user", "content": "ping"}], max_tokens=1)
        status = c.call(method, path, body).status
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


NAMES = (
    "health",
    "models",
    "auth",
    "exposure",
    "chat",
    "thinking",
    "tool call",
    "second turn",
    "streaming",
    "long stream",
    "sampling",
)


def run(target: Target, timeout: float = 300.0) -> list[Check]:
    """Every criterion in order; later ones are skipped when the endpoint does not answer."""
    c = Client(target.endpoint, target.api_key, timeout)
    sent: list[dict[str, Any]] = []
    oc = verify_client.client(target.endpoint, target.api_key, timeout, sent)
    parser = target.reasoning_parser
    checks: list[Check] = []
    try:
        checks.append(check_health(c))
        if checks[0].failed:
            return checks + [skipped(n, "endpoint not healthy") for n in NAMES[1:]]
        wrong_key = verify_client.client(target.endpoint, "not-the-key", timeout)
        checks += [
            verify_client.check_models(oc, target.served_names or (target.model,)),
            check_auth(c, wrong_key),
            check_exposure(c, target.model),
        ]
        first = verify_client.ask(oc, chat_body(target.model, [{"role": "user", "content": FIRST_QUESTION}]))
        checks += [verify_client.check_chat(first, parser), verify_client.check_thinking(first, parser)]
        tools = {"tools": [WEATHER_TOOL], "tool_choice": "auto"}
        tool = verify_client.stream(oc, chat_body(target.model, [{"role": "user", "content": TOOL_QUESTION}], **tools))
        checks.append(verify_client.check_tool_call(tool))
        checks.append(check_second_turn(oc, target, first))
        hello = verify_client.stream(oc, chat_body(target.model, [{"role": "user", "content": STREAM_QUESTION}]))
        checks.append(verify_client.check_streaming(hello, parser))
        long = verify_client.stream(oc, chat_body(target.model, [{"role": "user", "content": LONG_QUESTION}]))
        checks.append(verify_client.check_long_stream(long, target.idle_timeout))
        checks.append(verify_client.check_sampling(sent, SAMPLING, [first, tool, hello, long]))
    except Unreachable as err:
        done = {ch.name for ch in checks}
        pending = [n for n in NAMES if n not in done]
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
