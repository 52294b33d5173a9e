"""The model client against the offline model server: the real `openai` client over HTTP.

Nothing is mocked: faults (429, 500, hangs) are injected into the server through its
admin API, and the client meets them on a real socket.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from actorchestra.actors.llm import (
    LLMAuthError,
    LLMClient,
    LLMConfig,
    LLMDelta,
    LLMModelNotFoundError,
    LLMTimeoutError,
    LLMUnavailableError,
    ModelPrice,
)
from actorchestra.actors.planner.planning import PLAN_SCHEMA
from actorchestra.serve_apps.model_server import (
    ModelServerConfig,
    ModelServerHandle,
    start_model_server,
    start_model_server_process,
)
from tests import llm_fixtures

pytestmark = pytest.mark.integration

model_server = llm_fixtures.model_server
faulty_model_server = llm_fixtures.faulty_model_server

MODEL = "actorchestra-offline"
CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
            "additionalProperties": False,
        },
    },
}
SKILLS = [
    {
        "id": "web.fetch",
        "name": "Fetch web page",
        "description": "Download a URL",
        "tags": ["web", "http"],
    },
    {
        "id": "text.summarize",
        "name": "Summarize",
        "description": "Summarise a text",
        "tags": ["summary"],
    },
    {
        "id": "text.translate",
        "name": "Translate",
        "description": "Translate into a language",
        "tags": ["language"],
    },
]


def config_for(server: ModelServerHandle, **overrides: Any) -> LLMConfig:
    base: dict[str, Any] = {
        "base_url": server.base_url,
        "timeout_s": 5.0,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
    }
    return LLMConfig(**{**base, **overrides})


@pytest.fixture
async def llm(model_server: ModelServerHandle) -> AsyncIterator[LLMClient]:
    prices = {MODEL: ModelPrice(input_per_1m=1.0, output_per_1m=2.0)}
    async with LLMClient(config_for(model_server, prices=prices)) as client:
        yield client


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[ModelServerHandle]:
    handle = start_model_server(ModelServerConfig(api_key="right-key"))
    try:
        yield handle
    finally:
        handle.stop()


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def requests_to(server: ModelServerHandle, path: str = "/v1/chat/completions") -> int:
    return int(server.stats()["requests"].get(path, 0))


async def collect(stream: AsyncIterator[LLMDelta]) -> tuple[list[str], LLMDelta]:
    pieces: list[str] = []
    async with contextlib.aclosing(stream):  # type: ignore[type-var]
        async for delta in stream:
            if delta.is_final:
                return pieces, delta
            pieces.append(delta.text)
    raise AssertionError("stream ended without a final delta")


async def test_complete_reports_text_usage_and_cost(llm: LLMClient) -> None:
    result = await llm.complete(user("What is 6 * 7?"))
    assert result.text == "[offline model] 6 * 7 = 42."
    assert result.model == MODEL and result.finish_reason == "stop" and result.attempts == 1
    usage = result.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens == 10
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert result.cost_usd == pytest.approx((usage.prompt_tokens + 2 * 10) / 1e6)
    assert result.latency_s > 0


async def test_unpriced_model_costs_nothing_but_reports_usage(
    model_server: ModelServerHandle,
) -> None:
    config = config_for(model_server, agent_models={"writer": "actorchestra-offline-embed"})
    async with LLMClient(config) as client:
        result = await client.complete(user("hello"), agent="writer")
    assert result.model == "actorchestra-offline-embed"
    assert result.cost_usd == 0.0 and result.usage.total_tokens > 0


async def test_stream_yields_pieces_then_the_result(llm: LLMClient) -> None:
    pieces, final = await collect(llm.stream(user("Tell me about actors and mailboxes.")))
    result = final.result
    assert result is not None
    assert "".join(pieces) == result.text
    assert result.text.startswith("[offline model]")
    assert len(pieces) == result.usage.completion_tokens
    assert result.first_token_s is not None and result.cost_usd > 0


async def test_a_2000_token_reply_streams(llm: LLMClient) -> None:
    pieces, final = await collect(
        llm.stream(user("Write a long essay about actors."), max_tokens=2000)
    )
    assert final.result is not None
    assert len(pieces) == 2000 == final.result.usage.completion_tokens


async def test_tool_call_round_trip(llm: LLMClient) -> None:
    messages = user("Please compute 17 * 3 + 1")
    first = await llm.complete(messages, tools=[CALCULATOR])
    assert first.finish_reason == "tool_calls" and first.text is None
    (call,) = first.tool_calls
    arguments = call.parsed_arguments()
    jsonschema.validate(arguments, CALCULATOR["function"]["parameters"])
    assert arguments == {"expression": "17 * 3 + 1"}
    answer = str(17 * 3 + 1)
    followup = [
        *messages,
        first.assistant_message(),
        {"role": "tool", "tool_call_id": call.id, "content": answer},
    ]
    final = await llm.complete(followup, tools=[CALCULATOR])
    assert not final.tool_calls
    assert final.text is not None and "52" in final.text and "calculator" in final.text


async def test_streamed_tool_call_is_assembled(llm: LLMClient) -> None:
    pieces, final = await collect(llm.stream(user("compute 2 + 2"), tools=[CALCULATOR]))
    assert pieces == []
    assert final.result is not None and final.result.text is None
    (call,) = final.result.tool_calls
    assert call.name == "calculator" and call.parsed_arguments() == {"expression": "2 + 2"}


class Weather(BaseModel):
    city: str
    temperature_c: float = Field(ge=-90, le=60)
    conditions: list[str] = Field(min_length=1)


async def test_structured_output_with_a_pydantic_model(llm: LLMClient) -> None:
    result = await llm.complete(
        user("Report the weather in Paris: 21 degrees and sunny"), response_format=Weather
    )
    assert isinstance(result.parsed, Weather)
    assert result.parsed.city == "Paris" and result.parsed.temperature_c == 21


async def test_structured_output_with_a_json_schema(llm: LLMClient) -> None:
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 40},
            "priority": {"type": "string", "enum": ["low", "medium", "high"]},
            "estimate_hours": {"type": "integer", "minimum": 1, "maximum": 40},
            "labels": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 2,
                "uniqueItems": True,
            },
        },
        "required": ["title", "priority", "estimate_hours", "labels"],
        "additionalProperties": False,
    }
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "ticket", "schema": schema, "strict": True},
    }
    result = await llm.complete(
        user("File a high priority ticket: fix the login page, 3 hours"),
        response_format=response_format,
    )
    jsonschema.validate(result.parsed, schema)
    assert result.parsed["priority"] == "high" and result.parsed["estimate_hours"] == 3
    assert json.loads(result.text or "") == result.parsed


async def test_planning_prompt_gives_a_plan(llm: LLMClient) -> None:
    schema = PLAN_SCHEMA  # the schema the planner asks with
    system = "You are a planner. Skills:\n" + json.dumps(SKILLS)
    result = await llm.complete(
        [
            {"role": "system", "content": system},
            *user(
                "Fetch https://example.com/news, summarise it, then translate the summary to "
                "Spanish"
            ),
        ],
        response_format={"type": "json_schema", "json_schema": {"name": "plan", "schema": schema}},
    )
    subtasks = result.parsed["subtasks"]
    assert [s["skill"] for s in subtasks] == ["web.fetch", "text.summarize", "text.translate"]
    assert subtasks[2]["depends_on"] == [subtasks[1]["id"]]


async def test_embeddings_put_similar_texts_close(llm: LLMClient) -> None:
    result = await llm.embed(
        ["actors exchange messages", "an actor sends a message", "bananas grow in the tropics"]
    )
    a, b, c = result.vectors
    assert len(a) == 384 and result.usage.prompt_tokens > 0

    def cos(x: list[float], y: list[float]) -> float:
        return sum(p * q for p, q in zip(x, y, strict=True))

    assert cos(a, b) > 0.25 > 0.1 > cos(a, c)


async def test_429_then_success_waits_for_retry_after(
    faulty_model_server: ModelServerHandle, llm: LLMClient
) -> None:
    before = requests_to(faulty_model_server)
    faulty_model_server.add_fault(status=429, count=1, retry_after_s=0.3)
    started = time.perf_counter()
    result = await llm.complete(user("hello"))
    elapsed = time.perf_counter() - started
    assert result.attempts == 2 and result.text
    assert elapsed >= 0.3  # backoff alone would be ~0.01 s: Retry-After was honoured
    assert requests_to(faulty_model_server) - before == 2


async def test_500_three_times_is_a_clear_failure(faulty_model_server: ModelServerHandle) -> None:
    before = requests_to(faulty_model_server)
    faulty_model_server.add_fault(status=500, count=3)
    async with LLMClient(config_for(faulty_model_server, max_retries=2)) as client:
        with pytest.raises(LLMUnavailableError) as caught:
            await client.complete(user("hello"))
    assert "HTTP 500 after 3 attempts" in caught.value.message
    assert caught.value.http_status == 503
    assert requests_to(faulty_model_server) - before == 3


async def test_a_hang_times_out(faulty_model_server: ModelServerHandle) -> None:
    faulty_model_server.add_fault(kind="hang", count=2)
    async with LLMClient(config_for(faulty_model_server, timeout_s=0.3, max_retries=1)) as client:
        started = time.perf_counter()
        with pytest.raises(LLMTimeoutError) as caught:
            await client.complete(user("hello"))
    assert 0.6 <= time.perf_counter() - started < 3
    assert "did not answer within 0.3s (2 attempts)" in caught.value.message
    assert "ACTORCHESTRA_LLM_BASE_URL" in caught.value.message


async def test_a_hang_then_an_answer_succeeds_on_retry(
    faulty_model_server: ModelServerHandle,
) -> None:
    faulty_model_server.add_fault(kind="hang", count=1)
    async with LLMClient(config_for(faulty_model_server, timeout_s=0.3, max_retries=1)) as client:
        pieces, final = await collect(client.stream(user("hello")))
    assert final.result is not None and final.result.attempts == 2 and pieces


async def test_latency_knobs_slow_the_answer(faulty_model_server: ModelServerHandle) -> None:
    faulty_model_server.set_latency(latency_s=0.1, token_latency_s=0.01)
    try:
        async with LLMClient(config_for(faulty_model_server)) as client:
            pieces, final = await collect(
                client.stream(user("hello"), extra_body={"offline_reply_tokens": 20})
            )
    finally:
        faulty_model_server.set_latency()
    assert final.result is not None and len(pieces) == 20
    assert final.result.first_token_s is not None and final.result.first_token_s >= 0.1
    assert final.result.latency_s >= 0.1 + 20 * 0.01


async def test_a_stall_mid_stream_is_a_timeout(faulty_model_server: ModelServerHandle) -> None:
    faulty_model_server.set_latency(token_latency_s=0.5)
    pieces: list[str] = []
    try:
        async with LLMClient(config_for(faulty_model_server, timeout_s=0.2)) as client:
            with pytest.raises(LLMTimeoutError) as caught:
                async with contextlib.aclosing(client.stream(user("hello"))) as stream:
                    async for delta in stream:
                        pieces.append(delta.text)
    finally:
        faulty_model_server.set_latency()
    assert pieces == []  # the stream opened (role chunk), then stalled before a token
    assert "(1 attempt)" in caught.value.message  # a stream that opened is not retried


async def test_wrong_api_key_says_which_setting_to_fix(keyed_server: ModelServerHandle) -> None:
    async with LLMClient(config_for(keyed_server, api_key="wrong-key")) as client:
        with pytest.raises(LLMAuthError) as caught:
            await client.complete(user("hello"))
    assert "ACTORCHESTRA_LLM_API_KEY" in caught.value.message
    assert "HTTP 401" in caught.value.message
    async with LLMClient(config_for(keyed_server, api_key="right-key")) as client:
        assert (await client.complete(user("hello"))).text


async def test_unknown_model_says_which_setting_to_fix(
    llm: LLMClient,
    model_server: ModelServerHandle,
) -> None:
    before = requests_to(model_server)
    with pytest.raises(LLMModelNotFoundError) as caught:
        await llm.complete(user("hello"), model="gpt-nonexistent")
    message = caught.value.message
    assert "'gpt-nonexistent'" in message and "ACTORCHESTRA_LLM_MODEL" in message
    assert requests_to(model_server) - before == 1  # not retried


async def test_injected_openai_client_does_not_retry_on_its_own(
    faulty_model_server: ModelServerHandle,
) -> None:
    raw = openai.AsyncOpenAI(base_url=faulty_model_server.base_url, api_key="x", max_retries=5)
    faulty_model_server.add_fault(status=503, count=1)
    before = requests_to(faulty_model_server)
    try:
        client = LLMClient(config_for(faulty_model_server, max_retries=0), raw)
        with pytest.raises(LLMUnavailableError):
            await client.complete(user("hello"))
        assert requests_to(faulty_model_server) - before == 1
    finally:
        await raw.close()


async def test_official_client_honours_the_servers_retry_after(
    faulty_model_server: ModelServerHandle,
) -> None:
    faulty_model_server.add_fault(status=429, count=1, retry_after_s=0.4)
    async with openai.AsyncOpenAI(
        base_url=faulty_model_server.base_url, api_key="x", max_retries=1
    ) as raw:
        started = time.perf_counter()
        await raw.chat.completions.create(model=MODEL, messages=user("hello"))  # type: ignore[arg-type]
        assert time.perf_counter() - started >= 0.4


async def test_connection_report(
    llm: LLMClient,
    model_server: ModelServerHandle,
) -> None:
    report = await llm.test_connection()
    assert report.ok and report.error is None and MODEL in report.models
    async with LLMClient(config_for(model_server, model="nope")) as client:
        wrong = await client.test_connection()
    assert not wrong.ok and wrong.error and "ACTORCHESTRA_LLM_MODEL" in wrong.error
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    async with LLMClient(LLMConfig(base_url=f"http://127.0.0.1:{closed_port}/v1")) as client:
        down = await client.test_connection(timeout_s=1)
    assert not down.ok and down.error and "Cannot reach" in down.error
    assert await llm.list_models() == [MODEL, "actorchestra-offline-embed"]


async def test_server_runs_as_a_subprocess() -> None:
    handle = start_model_server_process(ModelServerConfig(models=["only-model"]))
    try:
        async with LLMClient(LLMConfig(base_url=handle.base_url, model="only-model")) as client:
            assert await client.list_models() == ["only-model"]
            result = await client.complete(user("What is 2 + 2?"))
        assert result.text == "[offline model] 2 + 2 = 4."
    finally:
        handle.stop()
