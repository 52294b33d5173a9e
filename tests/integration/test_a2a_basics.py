"""Discovery, send and stream through the ingress with the official a2a-sdk client."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from a2a.helpers import new_text_message
from a2a.types import a2a_pb2
from a2a.utils.constants import TransportProtocol

from tests.integration.conftest import Runtime, make_client

pytestmark = pytest.mark.integration

TRANSPORTS = [TransportProtocol.JSONRPC.value, TransportProtocol.HTTP_JSON.value]


def user_message(text: str, **kw: str) -> a2a_pb2.Message:
    msg = new_text_message(text, role=a2a_pb2.Role.ROLE_USER)
    for k, v in kw.items():
        setattr(msg, k, v)
    return msg


async def test_card_is_derived_from_the_agent_class(runtime: Runtime, http: httpx.AsyncClient):
    r = await http.get(runtime.card_url("text"))
    assert r.status_code == 200
    assert "max-age" in r.headers["cache-control"]
    card = r.json()
    assert card["name"] == "text"
    skills = {s["id"]: s for s in card["skills"]}
    assert {"word_count", "uppercase", "stream", "greet"} <= set(skills)
    assert "count" in skills["word_count"]["tags"]
    assert skills["uppercase"]["examples"] == ["uppercase: hello"]
    bindings = {i["protocolBinding"]: i["url"] for i in card["supportedInterfaces"]}
    assert bindings == {
        "JSONRPC": f"{runtime.base_url}/a2a/text",
        "HTTP+JSON": f"{runtime.base_url}/a2a/text",
    }
    assert card["capabilities"]["streaming"] is True
    assert card["capabilities"]["pushNotifications"] is True


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_send_message_returns_completed_task(
    runtime: Runtime, http: httpx.AsyncClient, transport: str
):
    client = await make_client(runtime, "text", http, transport, streaming=False)
    events = [
        e
        async for e in client.send_message(
            a2a_pb2.SendMessageRequest(message=user_message("uppercase: hello a2a"))
        )
    ]
    task = events[-1].task
    assert task.status.state == a2a_pb2.TaskState.TASK_STATE_COMPLETED
    assert task.artifacts[0].parts[0].text == "HELLO A2A"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_stream_delivers_chunks_in_order(
    runtime: Runtime, http: httpx.AsyncClient, transport: str
):
    client = await make_client(runtime, "text", http, transport)
    chunks, states = [], []
    request = a2a_pb2.SendMessageRequest(message=user_message("stream 4"))
    async for event in client.send_message(request):
        if event.HasField("artifact_update"):
            chunks.append(event.artifact_update)
        if event.HasField("status_update"):
            states.append(event.status_update.status.state)
    assert "".join(c.artifact.parts[0].text for c in chunks) == "1\n2\n3\n4\n"
    assert [c.append for c in chunks] == [False, True, True, True]
    assert chunks[-1].last_chunk
    assert states[-1] == a2a_pb2.TaskState.TASK_STATE_COMPLETED


async def test_openapi_docs_describe_runtime_and_agent_routes(
    runtime: Runtime, http: httpx.AsyncClient
):
    assert (await http.get(f"{runtime.base_url}/docs")).status_code == 200
    spec = (await http.get(f"{runtime.base_url}/openapi.json")).json()
    paths = set(spec["paths"])
    assert {"/health", "/v1/agents", "/v1/agents/{name}"} <= paths
    assert {"/a2a/text", "/a2a/text/message:send", "/a2a/text/tasks/{id}"} <= paths
    assert "/a2a/text/.well-known/agent-card.json" in paths


def _mapped(pid: int) -> str:
    """The files a process maps (its shared libraries among them)."""
    return Path(f"/proc/{pid}/maps").read_text()


async def test_agent_processes_start_without_arrow_and_import_it_on_demand(
    runtime: Runtime, http: httpx.AsyncClient
):
    """Ray's serializer setup would map pyarrow and numpy into every agent process (about
    35 MB each); agent actors start without them, and a skill that needs pyarrow has it."""
    echo = (await http.get(f"{runtime.base_url}/v1/agents/echo")).json()
    for replica in echo["replicas"]:
        maps = _mapped(replica["pid"])
        assert "libarrow" not in maps and "numpy" not in maps
    client = await make_client(runtime, "lab", http, streaming=False)
    events = [
        e
        async for e in client.send_message(
            a2a_pb2.SendMessageRequest(message=user_message("arrow 1 2 3 4"))
        )
    ]
    task = events[-1].task
    assert task.status.state == a2a_pb2.TaskState.TASK_STATE_COMPLETED, task.status
    assert task.artifacts[0].parts[0].text == "4 rows, sum 10"
