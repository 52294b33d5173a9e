"""The 2-replica `text` agent: work spreads over both, and every task stays reachable."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from a2a.client import Client
from a2a.types import a2a_pb2
from a2a.utils.errors import TaskNotFoundError

from tests.integration.a2a_helpers import (
    TRANSPORTS,
    State,
    artifact_text,
    get_task,
    new_context,
    numbers,
    request,
    send,
)
from tests.integration.conftest import Runtime, make_client

pytestmark = pytest.mark.integration


async def _one_per_replica(client: Client, text: str, **kw: object) -> dict[str, a2a_pb2.Task]:
    """Send `text` until a task has landed on each replica; the task per id prefix."""
    landed: dict[str, a2a_pb2.Task] = {}
    for _ in range(20):  # each in a conversation of its own, so any replica may take it
        task = await send(client, request(text, context_id=new_context(), **kw))
        landed.setdefault(task.id[:3], task)
        if set(landed) == {"r0-", "r1-"}:
            return landed
    raise AssertionError(f"tasks landed only on {sorted(landed)}")


async def test_concurrent_conversations_land_on_both_replicas(
    runtime: Runtime, http: httpx.AsyncClient
):
    client = await make_client(runtime, "text", http, streaming=False)
    tasks = await asyncio.gather(
        *(
            send(client, request(f"uppercase: task {i}", context_id=new_context()))
            for i in range(20)
        )
    )
    assert {t.id[:3] for t in tasks} == {"r0-", "r1-"}
    assert sorted(artifact_text(t) for t in tasks) == sorted(f"TASK {i}" for i in range(20))

    health = (await http.get(f"{runtime.base_url}/v1/agents/text")).json()
    assert [r["index"] for r in health["replicas"]] == [0, 1]
    assert len({r["pid"] for r in health["replicas"]}) == 2, "two replicas, two processes"


async def test_one_conversation_stays_on_one_replica(runtime: Runtime, http: httpx.AsyncClient):
    client = await make_client(runtime, "text", http, streaming=False)
    ctx = new_context()
    tasks = await asyncio.gather(
        *(send(client, request(f"uppercase: turn {i}", context_id=ctx)) for i in range(6))
    )
    assert len({t.id[:3] for t in tasks}) == 1, [t.id for t in tasks]
    assert all(t.status.state == State.TASK_STATE_COMPLETED for t in tasks)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_get_task_reaches_either_replica(
    runtime: Runtime, http: httpx.AsyncClient, transport: str
):
    client = await make_client(runtime, "text", http, transport, streaming=False)
    landed = await _one_per_replica(client, "uppercase: where am i")
    for task in landed.values():
        again = await get_task(client, task.id)
        assert again.id == task.id
        assert again.status.state == State.TASK_STATE_COMPLETED
        assert artifact_text(again) == "WHERE AM I"

    # An id naming a replica that never made it is not found (not an internal error).
    forged = "r1-" + landed["r0-"].id[3:]
    with pytest.raises(TaskNotFoundError):
        await get_task(client, forged)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cancel_task_reaches_either_replica(
    runtime: Runtime, http: httpx.AsyncClient, transport: str
):
    client = await make_client(runtime, "text", http, transport, streaming=False)
    landed = await _one_per_replica(
        client, "stream 100", metadata={"delay": 0.1}, return_immediately=True
    )
    for task in landed.values():
        canceled = await client.cancel_task(a2a_pb2.CancelTaskRequest(id=task.id))
        assert canceled.status.state == State.TASK_STATE_CANCELED
        stored = await get_task(client, task.id)
        assert stored.status.state == State.TASK_STATE_CANCELED
        assert len(numbers(artifact_text(stored))) < 100, "stopped before the end"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_subscribe_reaches_either_replica(
    runtime: Runtime, http: httpx.AsyncClient, transport: str
):
    sender = await make_client(runtime, "text", http, transport, streaming=False)
    landed = await _one_per_replica(
        sender, "stream 10", metadata={"delay": 0.1}, return_immediately=True
    )
    client = await make_client(runtime, "text", http, transport)

    async def follow(task_id: str) -> tuple[list[int], int]:
        seen: list[int] = []
        last_state = State.TASK_STATE_UNSPECIFIED
        async for event in client.subscribe(a2a_pb2.SubscribeToTaskRequest(id=task_id)):
            if event.HasField("task"):
                seen = numbers(artifact_text(event.task))
                last_state = event.task.status.state
            elif event.HasField("artifact_update"):
                assert event.artifact_update.task_id == task_id
                seen.extend(numbers(event.artifact_update.artifact.parts[0].text))
            elif event.HasField("status_update"):
                last_state = event.status_update.status.state
        return seen, last_state

    results = await asyncio.gather(*(follow(t.id) for t in landed.values()))
    for seen, last_state in results:
        assert seen == list(range(1, 11))
        assert last_state == State.TASK_STATE_COMPLETED
