"""The offline model server's HTTP contract, in-process over ASGI: shapes, errors, faults."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from actorchestra.serve_apps.model_server import ModelServerConfig
from actorchestra.serve_apps.model_server.app import create_app

MODEL = "actorchestra-offline"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(ModelServerConfig()))
    async with httpx.AsyncClient(transport=transport, base_url="http://model") as client:
        yield client


def chat_body(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


def sse_events(body: str) -> list[Any]:
    events = []
    for block in body.split("\n\n"):
        if block.strip():
            assert block.startswith("data: "), block
            data = block[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


async def test_models_are_listed(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [MODEL, "actorchestra-offline-embed"]


async def test_unknown_model_is_404_in_openai_format(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/chat/completions", json={**chat_body("hi"), "model": "gpt-9"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and error["type"] == "invalid_request_error"
    assert "gpt-9" in error["message"] and MODEL in error["message"]


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"model": MODEL}, "messages"),
        ({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, "role"),
        ({**chat_body("hi"), "max_tokens": 0}, "max_tokens"),
        ({**chat_body("hi"), "response_format": {"type": "json_schema"}}, "json_schema"),
    ],
)
async def test_bad_bodies_are_400_with_a_clear_message(
    http: httpx.AsyncClient, body: dict[str, Any], mentions: str
) -> None:
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert mentions in error["message"]


async def test_invalid_json_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "Invalid request body" in response.json()["error"]["message"]


async def test_api_key_is_enforced_only_when_configured() -> None:
    transport = httpx.ASGITransport(app=create_app(ModelServerConfig(api_key="sekret")))
    async with httpx.AsyncClient(transport=transport, base_url="http://model") as client:
        denied = await client.get("/v1/models", headers={"Authorization": "Bearer wrong"})
        assert denied.status_code == 401
        assert denied.json()["error"]["code"] == "invalid_api_key"
        assert (await client.get("/v1/models")).status_code == 401
        allowed = await client.get("/v1/models", headers={"Authorization": "Bearer sekret"})
        assert allowed.status_code == 200


async def test_completion_shape_and_determinism(http: httpx.AsyncClient) -> None:
    first = (await http.post("/v1/chat/completions", json=chat_body("What is 6 * 7?"))).json()
    second = (await http.post("/v1/chat/completions", json=chat_body("What is 6 * 7?"))).json()
    assert first["object"] == "chat.completion"
    choice = first["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "[offline model] 6 * 7 = 42.",
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop"
    usage = first["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert second["choices"] == first["choices"] and second["usage"] == first["usage"]


async def test_stream_matches_openai_chunk_format(http: httpx.AsyncClient) -> None:
    text = "Tell me about actors and mailboxes."
    plain = (await http.post("/v1/chat/completions", json=chat_body(text))).json()
    response = await http.post(
        "/v1/chat/completions",
        json=chat_body(text, stream=True, stream_options={"include_usage": True}),
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(
        c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks
    )
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert content == plain["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]
    assert all(c["usage"] is None for c in chunks[:-1])
    # one content chunk per completion token
    assert len(chunks) - 3 == plain["usage"]["completion_tokens"]


async def test_stream_without_usage_has_no_usage_field(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/chat/completions", json=chat_body("hi", stream=True))
    chunks = sse_events(response.text)[:-1]
    assert all("usage" not in c for c in chunks)


async def test_streamed_tool_call_arguments_reassemble(http: httpx.AsyncClient) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "arithmetic",
            "parameters": {
                "type": "object",
                "properties": {"expression": {"type": "string"}},
                "required": ["expression"],
            },
        },
    }
    response = await http.post(
        "/v1/chat/completions", json=chat_body("compute 2 + 2", tools=[tool], stream=True)
    )
    chunks = sse_events(response.text)[:-1]
    first = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
    assert first["function"] == {"name": "calculator", "arguments": ""}
    arguments = "".join(
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks[1:-1]
    )
    assert json.loads(arguments) == {"expression": "2 + 2"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_embeddings_float_and_base64_agree(http: httpx.AsyncClient) -> None:
    body = {"model": "actorchestra-offline-embed", "input": ["alpha beta", "gamma"]}
    floats = (await http.post("/v1/embeddings", json=body)).json()
    b64 = (await http.post("/v1/embeddings", json={**body, "encoding_format": "base64"})).json()
    assert [d["index"] for d in floats["data"]] == [0, 1]
    raw = base64.b64decode(b64["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert decoded == pytest.approx(floats["data"][0]["embedding"], abs=1e-6)
    assert floats["usage"]["prompt_tokens"] == 3
    small = (await http.post("/v1/embeddings", json={**body, "dimensions": 8})).json()
    assert len(small["data"][0]["embedding"]) == 8


async def test_injected_faults_are_served_in_order(http: httpx.AsyncClient) -> None:
    queued = await http.post("/admin/faults", json={"status": 429, "count": 2, "retry_after_s": 1})
    assert queued.json()["faults"][0]["count"] == 2
    await http.post("/admin/faults", json={"status": 503, "path": "/v1/embeddings"})
    for _ in range(2):
        limited = await http.post("/v1/chat/completions", json=chat_body("hi"))
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1"
        assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert (await http.post("/v1/chat/completions", json=chat_body("hi"))).status_code == 200
    embed = await http.post("/v1/embeddings", json={"model": MODEL, "input": "x"})
    assert embed.status_code == 503 and embed.json()["error"]["type"] == "server_error"
    stats = (await http.get("/admin/stats")).json()
    assert stats["requests"]["/v1/chat/completions"] == 3 and stats["faults_served"] == 3
    await http.post("/admin/faults", json={"status": 500, "count": 5})
    await http.delete("/admin/faults")
    assert (await http.get("/admin/faults")).json() == {"faults": []}
    assert (await http.get("/v1/models")).status_code == 200


async def test_bad_fault_spec_is_rejected(http: httpx.AsyncClient) -> None:
    response = await http.post("/admin/faults", json={"status": 200})
    assert response.status_code == 400
