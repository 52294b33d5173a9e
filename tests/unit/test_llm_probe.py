"""The connection probe (`/health`, `POST /v1/llm/test-connection`) against a server that
answers, but not as an OpenAI-compatible one would: a report that says so, never a crash."""

from __future__ import annotations

from actorchestra.actors.llm.client import LLMClient
from actorchestra.actors.llm.config import LLMConfig
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
