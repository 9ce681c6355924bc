"""verify's checks through the `openai` client, each made to fail by a fake that gets one thing wrong."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ops import verify
from tests.fake_vllm_server import Behaviour, FakeVllm
from tests.idle_proxy import IdleTimeoutProxy
from tests.test_verify import SERVED, target


@pytest.fixture
def fake() -> Iterator[Any]:
    started: list[Any] = []

    def start(**behaviour: Any) -> FakeVllm:
        server = FakeVllm(Behaviour(**behaviour)).start()
        started.append(server)
        return server

    yield start
    for s in started:
        s.stop()


def run(server: FakeVllm, **changes: Any) -> dict[str, Any]:
    t = target(server)
    t = verify.Target(**{**t.__dict__, **changes})
    return {c.name: c for c in verify.run(t, timeout=5)}


def test_models_must_list_the_hub_id_as_well_as_the_alias(fake: Any) -> None:
    row = run(fake(aliases=()))["models"]
    assert row.status == "FAIL" and "missing ['MiniMaxAI/MiniMax-M2.5']" in row.detail
    assert run(fake())["models"].detail == f"serves {', '.join(SERVED)}"


def test_a_wrong_key_that_gets_in_fails_auth(fake: Any) -> None:
    row = run(fake(any_key=True))["auth"]
    assert row.status == "FAIL" and "with a wrong key: 200" in row.detail


def test_reasoning_under_the_older_field_name_fails_both_thinking_rows(fake: Any) -> None:
    checks = run(fake(reasoning="minimax_m2", reasoning_field="reasoning_content"))
    for name in ("thinking", "streaming"):
        assert checks[name].status == "FAIL", name
        assert "`reasoning_content`, the field of older vLLM releases" in checks[name].detail
    assert "serving.imageTag" in checks["thinking"].fix


def test_a_reasoning_delta_after_the_answer_started_fails_streaming(fake: Any) -> None:
    row = run(fake(reasoning="minimax_m2", reasoning_late=True))["streaming"]
    assert row.status == "FAIL" and "after the answer had started" in row.detail


def test_streamed_thinking_in_content_fails_when_the_split_parser_is_expected(fake: Any) -> None:
    server = fake(reasoning="minimax_m2_append_think")
    row = run(server, reasoning_parser="minimax_m2")["streaming"]
    assert row.status == "FAIL" and "inside content" in row.detail and "minimax_m2_append_think" in row.fix


def test_streamed_split_thinking_fails_when_append_think_is_expected(fake: Any) -> None:
    row = run(fake(reasoning="minimax_m2"), reasoning_parser="minimax_m2_append_think")["streaming"]
    assert row.status == "FAIL" and "separate reasoning field" in row.detail


def test_tool_call_arguments_that_do_not_join_into_json_fail(fake: Any) -> None:
    row = run(fake(tool_arguments=('{"city": ', '"Athens"')))["tool call"]
    assert row.status == "FAIL" and "not JSON" in row.detail and '\'{"city": "Athens"\'' in row.detail


def test_a_tool_call_streamed_in_pieces_is_assembled(fake: Any) -> None:
    row = run(fake(tool_arguments=("{", '"ci', 'ty": "Ath', 'ens"', "}")))["tool call"]
    assert row.status == "PASS" and 'get_weather({"city": "Athens"})' in row.detail


def test_a_long_stream_outlives_a_short_idle_timeout_while_tokens_flow(fake: Any) -> None:
    server = fake(stream_pieces=8, stream_pause=0.06)
    host, port = server.url.removeprefix("http://").split(":")
    proxy = IdleTimeoutProxy((host, int(port)), idle_timeout=0.4).start()
    try:
        checks = run(server, endpoint=proxy.url, idle_timeout=0.4)
    finally:
        proxy.stop()
    row = checks["long stream"]
    assert row.status == "PASS", row.detail
    assert "outlived the idle timeout (0.4 s)" in row.detail and proxy.cut == 0


def test_a_pause_longer_than_the_idle_timeout_cuts_the_long_stream_and_fails(fake: Any) -> None:
    server = fake(stream_pieces=3, stream_pause=0.5)
    host, port = server.url.removeprefix("http://").split(":")
    proxy = IdleTimeoutProxy((host, int(port)), idle_timeout=0.2).start()
    try:
        checks = run(server, endpoint=proxy.url, idle_timeout=0.2)
    finally:
        proxy.stop()
    row = checks["long stream"]
    assert row.status == "FAIL" and row.detail.startswith("cut: ") and proxy.cut >= 1
    assert "the idle timeout (0.2 s)" in row.fix and "endpoint.idleTimeoutSeconds" in row.fix


def test_chat_and_its_stream_fail_when_the_server_does_not_serve_the_name(fake: Any) -> None:
    checks = run(fake(), model="not-served")
    assert checks["chat"].status == "FAIL" and checks["chat"].detail.startswith("POST /v1/chat/completions 404")
    assert checks["streaming"].status == "FAIL" and "404" in checks["streaming"].detail


def test_sampling_fails_on_a_request_sent_without_the_recommended_values() -> None:
    from ops.endpoint_checks import client as verify_client

    sent = [{"messages": [], **verify.SAMPLING}, {"messages": [], "temperature": 1.0, "top_p": 0.95}]
    row = verify_client.check_sampling(sent, verify.SAMPLING, [])
    assert row.status == "FAIL" and row.detail.startswith("1 request(s) without temperature=1.0, top_p=0.95, top_k=40")
    assert verify_client.check_sampling(sent[:1], verify.SAMPLING, []).status == "PASS"
