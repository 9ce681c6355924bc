"""The verify tests' fake speaks the pinned vLLM release's wire format: each answer and stream
chunk it sends is checked against vLLM's own response classes, field by field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from ops import verify
from ops.endpoint_checks import client as verify_client
from tests.fake_vllm_server import QUEUE_FULL, Behaviour, FakeVllm

pytestmark = pytest.mark.vllm

SHAPES = [
    {"reasoning": "minimax_m2"},
    {"reasoning": "minimax_m2_append_think"},
    {"reasoning": "minimax_m2", "tool_as_text": True},
]


@pytest.fixture(params=SHAPES, ids=["split", "append_think", "tool-as-text"])
def server(request: pytest.FixtureRequest) -> Iterator[FakeVllm]:
    s = FakeVllm(Behaviour(**request.param)).start()
    yield s
    s.stop()


def bodies(tools: bool) -> dict[str, Any]:
    extra = {"tools": [verify.WEATHER_TOOL], "tool_choice": "auto"} if tools else {}
    return verify.chat_body("minimax-m2.5", [{"role": "user", "content": "hi"}], **extra)


def sse(server: FakeVllm, body: dict[str, Any]) -> list[dict[str, Any]]:
    lines = verify.Client(server.url, "test-key", 5).call("POST", "/v1/chat/completions", {**body, "stream": True})
    data = [ln[len("data: ") :] for ln in lines.body.decode().splitlines() if ln.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


def fields(cls: type) -> set[str]:
    return set(cls.model_fields)


@pytest.mark.parametrize("tools", [False, True], ids=["chat", "tools"])
def test_every_stream_chunk_is_a_vllm_chunk_with_only_its_fields(server: FakeVllm, tools: bool) -> None:
    from vllm.entrypoints.generate.base.protocol import DeltaMessage, DeltaToolCall
    from vllm.entrypoints.openai.chat_completion.protocol import (
        ChatCompletionResponseStreamChoice,
        ChatCompletionStreamResponse,
    )

    for chunk in sse(server, bodies(tools)):
        ChatCompletionStreamResponse.model_validate(chunk)
        assert set(chunk) <= fields(ChatCompletionStreamResponse), chunk
        for choice in chunk["choices"]:
            assert set(choice) <= fields(ChatCompletionResponseStreamChoice), choice
            assert set(choice["delta"]) <= fields(DeltaMessage), choice["delta"]
            for call in choice["delta"].get("tool_calls", []):
                assert set(call) <= fields(DeltaToolCall), call


@pytest.mark.parametrize("tools", [False, True], ids=["chat", "tools"])
def test_every_answer_is_a_vllm_answer_with_only_its_fields(server: FakeVllm, tools: bool) -> None:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionResponse, ChatMessage

    reply = verify.Client(server.url, "test-key", 5).call("POST", "/v1/chat/completions", bodies(tools)).json()
    ChatCompletionResponse.model_validate(reply)
    for choice in reply["choices"]:
        assert set(choice["message"]) <= fields(ChatMessage), choice["message"]


def test_verify_reads_thinking_from_the_releases_field_and_the_older_name_is_not_one() -> None:
    from vllm.entrypoints.generate.base.protocol import DeltaMessage
    from vllm.entrypoints.openai.chat_completion.protocol import ChatMessage

    for cls in (DeltaMessage, ChatMessage):
        assert verify_client.REASONING_FIELD in fields(cls)
        assert verify_client.OLD_REASONING_FIELD not in fields(cls)


def test_the_split_parser_streams_thinking_apart_and_append_think_inside_content() -> None:
    """The two parsers of the release, on the same text, as verify expects them."""
    from vllm.reasoning.minimax_m2_reasoning_parser import MiniMaxM2AppendThinkReasoningParser

    parser = MiniMaxM2AppendThinkReasoningParser.__new__(MiniMaxM2AppendThinkReasoningParser)
    first = parser.extract_reasoning_streaming("", "x", "x", [], [1], [1])
    assert first.content == "<think>x" and first.reasoning is None
    assert parser.extract_reasoning("thought</think>answer", None) == (None, "<think>thought</think>answer")


def test_a_full_fake_answers_what_the_release_answers_over_its_admission_cap() -> None:
    """The 503 a replica at --max-num-queued-reqs sends, from the release's own exception and error
    builder; it is raised before a response starts (`_preflight`), so a stream gets it as well."""
    import inspect

    from vllm.entrypoints.generate.base.serving import GenerateBaseServing
    from vllm.entrypoints.serve.exception_handling.error_response import create_error_response
    from vllm.exceptions import QueueOverflowError

    assert create_error_response(QueueOverflowError()).model_dump() == QUEUE_FULL
    assert "check_admission" in inspect.getsource(GenerateBaseServing._preflight)
    fake = FakeVllm(Behaviour(full=True)).start()
    try:
        for stream in (False, True):
            body = {**bodies(False), "stream": stream}
            answer = verify.Client(fake.url, "test-key", 5).call("POST", "/v1/chat/completions", body)
            assert answer.status == 503 and json.loads(answer.body) == QUEUE_FULL
    finally:
        fake.stop()
