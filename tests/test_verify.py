"""verify against a loopback fake of vLLM's OpenAI server, healthy and misconfigured."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ops import report, verify
from ops.__main__ import main as ops_main
from ops.report import UsageError, exit_code
from tests.fake_vllm_server import THINKING, Behaviour, FakeVllm

Start = Callable[..., FakeVllm]


@pytest.fixture
def serve() -> Iterator[Start]:
    servers: list[FakeVllm] = []

    def start(**behaviour: Any) -> FakeVllm:
        server = FakeVllm(Behaviour(**behaviour)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


SERVED = ("minimax-m2.5", "MiniMaxAI/MiniMax-M2.5")  # the alias and the Hub id (profiles.served_model_names)


def target(server: FakeVllm, parser: str | None = None, url: str | None = None) -> verify.Target:
    parser = parser or server.behaviour.reasoning
    return verify.Target(url or server.url, "minimax-m2.5", "test-key", parser, served_names=SERVED, idle_timeout=3600)


def results(server: FakeVllm, parser: str | None = None) -> dict[str, Any]:
    return {c.name: c for c in verify.run(target(server, parser), timeout=5)}


def statuses(checks: dict[str, Any]) -> dict[str, str]:
    return {name: c.status for name, c in checks.items()}


ALL = list(verify.NAMES)


@pytest.mark.parametrize(
    "shape",
    [
        {"reasoning": "minimax_m2_append_think"},
        {"reasoning": "minimax_m2"},
    ],
    ids=["append_think", "split-reasoning"],
)
def test_healthy_server_passes_every_criterion(serve: Start, shape: dict[str, str]) -> None:
    checks = results(serve(**shape))
    assert list(checks) == ALL
    assert statuses(checks) == dict.fromkeys(ALL, "PASS")


@pytest.mark.parametrize("reasoning", ["minimax_m2_append_think", "minimax_m2"])
def test_second_turn_sends_the_thinking_back_as_think_text(serve: Start, reasoning: str) -> None:
    server = serve(reasoning=reasoning)
    results(server)
    second = [b for b in server.behaviour.chat_requests() if len(b["messages"]) == 3]
    assert len(second) == 1
    assistant = second[0]["messages"][1]
    assert assistant["role"] == "assistant"
    assert f"<think>\n{THINKING}\n</think>" in assistant["content"]
    assert assistant["content"].rstrip().endswith("391")


def test_every_generation_request_carries_the_recommended_sampling(serve: Start) -> None:
    server = serve()
    results(server)
    sent = server.behaviour.chat_requests()
    assert len(sent) == 5  # chat, tool call, second turn, streaming, long stream
    for body in sent:
        assert (body["temperature"], body["top_p"], body["top_k"]) == (1.0, 0.95, 40)
    tool = next(b for b in sent if b.get("tools"))
    assert tool["tool_choice"] == "auto" and tool["tools"][0]["function"]["name"] == "get_weather"


def test_api_key_is_sent_as_a_bearer_token(serve: Start) -> None:
    server = serve()
    results(server)
    posts = [r for r in server.behaviour.requests if r["method"] == "POST" and r["path"].startswith("/v1/")]
    assert posts and all(r["authorization"] == "Bearer test-key" for r in posts)
    probes = [r for r in server.behaviour.requests if not r["path"].startswith("/v1/") and r["path"] != "/health"]
    assert probes and all(r["authorization"] == "Bearer test-key" for r in probes)  # keyed: past the web ACL


def test_tool_call_returned_as_plain_text_fails(serve: Start) -> None:
    row = results(serve(tool_as_text=True))["tool call"]
    assert row.status == "FAIL"
    assert "plain text" in row.detail and "--tool-call-parser minimax_m2" in row.fix


@pytest.mark.parametrize("reasoning", ["minimax_m2_append_think", "minimax_m2"])
def test_missing_thinking_fails_and_the_second_turn_is_skipped(serve: Start, reasoning: str) -> None:
    checks = results(serve(reasoning=reasoning, thinking=False))
    assert checks["thinking"].status == "FAIL"
    assert checks["second turn"].status == "SKIP"
    assert exit_code(checks.values()) == 1


def test_summary_does_not_count_skipped_checks_as_ok(serve: Start) -> None:
    checks = list(results(serve(healthy=False)).values())
    skips = sum(c.status == "SKIP" for c in checks)
    assert skips == len(checks) - 1
    assert report.render("verify", checks).splitlines()[-1] == f"0 ok, 1 failed, {skips} skipped"
    passing_but_skipped = [report.passed("a", "x"), report.skipped("b", "not run")]
    assert report.render("t", passing_but_skipped).splitlines()[-1] == "1 ok, 0 failed, 1 skipped"


def test_server_that_does_not_enforce_the_key_fails_auth(serve: Start) -> None:
    row = results(serve(enforce_auth=False))["auth"]
    assert row.status == "FAIL" and "200" in row.detail


@pytest.mark.parametrize(
    "server_parser,expected,hint",
    [
        ("minimax_m2_append_think", "minimax_m2", "inside content"),
        ("minimax_m2", "minimax_m2_append_think", "reasoning field"),
    ],
)
def test_thinking_in_the_other_parsers_place_fails_naming_it(
    serve: Start, server_parser: str, expected: str, hint: str
) -> None:
    row = results(serve(reasoning=server_parser), parser=expected)["thinking"]
    assert row.status == "FAIL" and hint in row.detail and server_parser in row.fix


def test_a_stream_cut_before_its_finish_reason_fails(serve: Start) -> None:
    checks = results(serve(stream_cut=True))
    row = checks["streaming"]
    assert row.status == "FAIL" and "no finish_reason" in row.detail and "endpoint.idleTimeoutSeconds" in row.fix
    assert checks["long stream"].status == "FAIL" and checks["tool call"].status == "FAIL"


def test_unhealthy_server_fails_health_and_skips_the_rest(serve: Start) -> None:
    checks = results(serve(healthy=False))
    assert checks["health"].status == "FAIL"
    assert {c.status for name, c in checks.items() if name != "health"} == {"SKIP"}


def test_unreachable_endpoint_fails_fast() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    checks = verify.run(verify.Target(f"http://127.0.0.1:{port}", "m", "k", "minimax_m2"), timeout=2)
    assert checks[0].status == "FAIL" and "unreachable" in checks[0].detail
    assert [c.name for c in checks] == ALL


def test_wrong_model_name_fails_models(serve: Start) -> None:
    server = serve()
    checks = {
        c.name: c
        for c in verify.run(verify.Target(server.url, "other", "test-key", "minimax_m2_append_think"), timeout=5)
    }
    assert checks["models"].status == "FAIL" and "minimax-m2.5" in checks["models"].detail


# --- exposure: only the listed paths reach vLLM -------------------------------------------


def test_endpoint_behind_the_alb_passes_exposure(serve: Start) -> None:
    server = serve()
    row = results(server)["exposure"]
    assert row.status == "PASS", row.detail
    # probed with the key, so the refusal is the load balancer's 404, not the web ACL's 401
    probed = {r["path"] for r in server.behaviour.requests if r["authorization"] == "Bearer test-key"}
    assert {"/invocations", "/tokenize", "/metrics", "/docs"} <= probed


def test_leaky_endpoint_that_serves_unguarded_routes_fails_exposure(serve: Start) -> None:
    checks = results(serve(behind_alb=False))
    row = checks["exposure"]
    assert row.status == "FAIL"
    for leak in ("POST /invocations 200", "POST /tokenize 200", "GET /metrics 200", "GET /docs 200"):
        assert leak in row.detail
    assert "components/serving/endpoint.py" in row.fix
    assert exit_code(checks.values()) == 1


def test_wrong_key_gets_401_on_v1_behind_the_alb(serve: Start) -> None:
    server = serve()
    c = verify.Client(server.url, "not-the-key", 5)
    assert c.call("GET", "/v1/models").status == 401
    assert c.call("GET", "/v1/models", api_key="test-key").status == 200


def test_every_probe_is_a_path_the_load_balancer_refuses() -> None:
    from components.serving import endpoint

    for _, path, _ in verify.UNGUARDED_PROBES:
        assert not endpoint.reaches_vllm(path), path


def test_the_guides_request_body_is_accepted_by_the_names_the_stack_serves(serve: Start) -> None:
    """The guide's curl sends the Hub id; the fake serves exactly the names of the rendered argv."""
    from components.platform import config
    from components.serving import profiles

    argv = profiles.vllm_argv(config.from_stack_file("prod-8gpu").serving)
    i = argv.index("--served-model-name") + 1
    names = []
    while i < len(argv) and not argv[i].startswith("--"):
        names.append(argv[i])
        i += 1
    server = serve(model=names[0], aliases=tuple(names[1:]))
    body = {"model": "MiniMaxAI/MiniMax-M2.5", "messages": [{"role": "user", "content": "Hello"}]}
    reply = verify.Client(server.url, "test-key", 5).call("POST", "/v1/chat/completions", body)
    assert reply.status == 200, reply.text
    assert reply.json()["model"] == "minimax-m2.5"  # vLLM reports the first served name
    single = serve(model=names[0], aliases=())
    assert verify.Client(single.url, "test-key", 5).call("POST", "/v1/chat/completions", body).status == 404


# --- command line and target resolution -------------------------------------------------


def test_cli_with_explicit_endpoint_exits_0_and_prints_a_table(
    serve: Start, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve()
    monkeypatch.setenv("MINIMAX_VLLM_API_KEY", "test-key")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    code = ops_main(
        [
            "verify",
            "--stack",
            "prod-8gpu",
            "--endpoint",
            server.url + "/v1/",
            "--model",
            "minimax-m2.5",
            "--timeout",
            "5",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    # + the two metrics rows; without a kubeconfig the in-cluster probe is skipped, saying how to run it,
    # and prod-8gpu runs no router, so the conversation affinity row is skipped too
    assert "tool call" in out and "PASS" in out and f"{len(ALL) + 2} ok, 0 failed, 2 skipped" in out
    assert "conversation affinity" in out and "routing.mode direct" in out
    assert re.search(r"in-cluster keyless +SKIP", out) and "--kubeconfig" in out
    assert re.search(r"metrics not public +PASS", out)
    assert "kubectl -n monitoring port-forward svc/kps-prometheus 9090:9090" in out


def test_cli_exits_1_when_a_criterion_fails(serve: Start, capsys: pytest.CaptureFixture[str]) -> None:
    server = serve(tool_as_text=True)
    code = ops_main(
        ["verify", "--endpoint", server.url, "--model", "minimax-m2.5", "--api-key", "test-key", "--timeout", "5"]
    )
    assert code == 1
    assert "fix: vLLM needs --enable-auto-tool-choice" in capsys.readouterr().out


def test_cli_without_an_api_key_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MINIMAX_VLLM_API_KEY", raising=False)
    assert ops_main(["verify", "--endpoint", "http://127.0.0.1:9", "--model", "m"]) == 2
    assert "MINIMAX_VLLM_API_KEY" in capsys.readouterr().err


def test_target_from_pulumi_stack_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(
            cmd, 0, '{"endpointUrl": "nlb.example.com", "servedModelName": "minimax-m2.5"}', ""
        )

    monkeypatch.setattr(verify.shutil, "which", lambda _: "/usr/bin/pulumi")
    monkeypatch.setattr(verify.subprocess, "run", fake_run)
    t = verify.resolve_target("prod-8gpu", None, None, "k", None)
    assert seen == [["pulumi", "stack", "output", "--json", "--stack", "prod-8gpu"]]
    assert t == verify.Target(
        "http://nlb.example.com", "minimax-m2.5", "k", "minimax_m2_append_think", SERVED, idle_timeout=3600
    )


def test_api_key_comes_from_the_stacks_secret_config_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "s3cret\n", "")

    monkeypatch.setattr(verify.shutil, "which", lambda _: "/usr/bin/pulumi")
    monkeypatch.setattr(verify.subprocess, "run", fake_run)
    t = verify.resolve_target("prod-8gpu", "https://x.example.com", "m", None, "minimax_m2")
    assert seen == [["pulumi", "config", "get", "minimax-vllm:apiKey", "--stack", "prod-8gpu"]]
    assert t.api_key == "s3cret"


def test_no_pulumi_cli_and_no_endpoint_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify.shutil, "which", lambda _: None)
    with pytest.raises(UsageError, match="--endpoint"):
        verify.resolve_target("prod-8gpu", None, None, "k", None)


def test_model_and_parser_default_from_the_stack_file() -> None:
    t = verify.resolve_target("prod-8gpu", "https://x.example.com/v1", None, "k", None)
    assert (t.endpoint, t.model, t.reasoning_parser) == (
        "https://x.example.com",
        "minimax-m2.5",
        "minimax_m2_append_think",
    )


@pytest.mark.parametrize(("anonymous", "wrong"), [(401, 200), (200, 401)], ids=["any-key-accepted", "no-key-needed"])
def test_auth_fails_when_either_a_missing_or_a_wrong_key_gets_in(anonymous: int, wrong: int) -> None:
    class Endpoint:  # answers /v1/models by the key sent: none, or a wrong one
        def call(self, method: str, path: str, body: Any = None, api_key: str | None = "k") -> Any:
            return type("Reply", (), {"status": anonymous if api_key is None else wrong})()

    row = verify.check_auth(Endpoint())
    assert row.status == "FAIL" and f"without the key: {anonymous}, with a wrong key: {wrong}" in row.detail
