"""The model client against a server that answers, but not as an OpenAI-compatible one
would: the connection probe (`/health`, `POST /v1/llm/test-connection`) reports it, a
stream that carries an error or a malformed chunk fails with a clear `LLMError`."""

from __future__ import annotations

from actorchestra.actors.llm.client import LLMClient
from actorchestra.actors.llm.config import LLMConfig
from actorchestra.actors.llm.errors import LLMError, LLMResponseError
from tests.unit.raw_http import Reply, RequestHead, raw_http_server


def _not_openai(head: RequestHead) -> Reply:
    return Reply("200 OK", {"Content-Type": "text/plain"}, b"hello from some other server")


async def test_a_server_that_is_not_openai_compatible_gets_a_clear_report() -> None:
    async with raw_http_server(_not_openai) as server:
        client = LLMClient(LLMConfig(base_url=f"{server.base}/v1", model="m", max_retries=0))
        report = await client.test_connection(timeout_s=5)
    assert report.ok is False
    assert "something other than a model list" in (report.error or "")
    assert server.paths == ["/v1/models"]


def _sse(*events: str) -> bytes:
    return "".join(f"data: {e}\n\n" for e in events).encode()


def _stream_then(tail: str) -> object:
    first = '{"model": "m", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}'

    def route(head: RequestHead) -> Reply:
        return Reply("200 OK", {"Content-Type": "text/event-stream"}, _sse(first, tail))

    return route


async def _pieces_until_error(tail: str) -> tuple[list[str], LLMError]:
    pieces: list[str] = []
    async with raw_http_server(_stream_then(tail)) as server:  # type: ignore[arg-type]
        client = LLMClient(LLMConfig(base_url=f"{server.base}/v1", model="m", max_retries=0))
        try:
            async for delta in client.stream([{"role": "user", "content": "hi"}]):
                if delta.text:
                    pieces.append(delta.text)
        except LLMError as e:
            return pieces, e
        finally:
            await client.aclose()
    raise AssertionError(f"the stream ended without an error: {pieces}")


async def test_an_error_event_in_a_stream_fails_it_with_the_servers_message() -> None:
    pieces, error = await _pieces_until_error('{"error": {"message": "the GPU fell over"}}')
    assert pieces == ["Hel"]  # what came before the error still reached the caller
    assert "the GPU fell over" in error.message


async def test_a_stream_chunk_that_is_not_an_object_is_a_clear_error() -> None:
    pieces, error = await _pieces_until_error('["not", "a", "chunk"]')
    assert pieces == ["Hel"]
    assert isinstance(error, LLMResponseError)
    assert "not a JSON object" in error.message


async def test_a_stream_chunk_that_is_not_json_is_a_clear_error() -> None:
    pieces, error = await _pieces_until_error("{half a chunk")
    assert pieces == ["Hel"]
    assert isinstance(error, LLMResponseError)
    assert "cannot read" in error.message
