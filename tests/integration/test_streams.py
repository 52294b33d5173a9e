"""Streaming: leaving a stream and resubscribing to the task picks up where it is."""

from __future__ import annotations

from contextlib import aclosing

import httpx
import pytest
from a2a.types import a2a_pb2

from tests.integration.a2a_helpers import (
    TRANSPORTS,
    State,
    artifact_text,
    get_task,
    new_context,
    numbers,
    request,
)
from tests.integration.conftest import Runtime, make_client

pytestmark = pytest.mark.integration

N = 20


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_resubscribe_mid_stream_delivers_the_rest(
    runtime: Runtime, http: httpx.AsyncClient, transport: str
):
    client = await make_client(runtime, "text", http, transport)
    req = request(f"stream {N}", context_id=new_context(), metadata={"delay": 0.1})

    task_id, first_part = "", []
    async with aclosing(client.send_message(req)) as events:
        async for event in events:
            if event.HasField("task"):
                task_id = event.task.id
            elif event.HasField("artifact_update"):
                task_id = event.artifact_update.task_id
                first_part.extend(numbers(event.artifact_update.artifact.parts[0].text))
                if len(first_part) == 3:
                    break
    assert first_part == [1, 2, 3]
    assert (await get_task(client, task_id)).status.state == State.TASK_STATE_WORKING

    snapshot: list[int] = []
    second_part: list[int] = []
    states: list[int] = []
    async for event in client.subscribe(a2a_pb2.SubscribeToTaskRequest(id=task_id)):
        if event.HasField("task"):  # the resubscription may open with a snapshot
            assert event.task.id == task_id
            snapshot = numbers(artifact_text(event.task))
        elif event.HasField("artifact_update"):
            assert event.artifact_update.append, "a resubscriber only sees appended chunks"
            second_part.extend(numbers(event.artifact_update.artifact.parts[0].text))
        elif event.HasField("status_update"):
            states.append(event.status_update.status.state)

    assert second_part, "the task was still streaming when we resubscribed"
    assert second_part[-1] == N
    assert second_part == list(range(second_part[0], N + 1)), "in order, no gaps"
    if snapshot:
        assert snapshot == list(range(1, len(snapshot) + 1))
        assert snapshot[-1] + 1 == second_part[0], "the snapshot and the live part meet"
    assert set(first_part) | set(snapshot) | set(second_part) == set(range(1, N + 1))
    assert states[-1] == State.TASK_STATE_COMPLETED

    final = await get_task(client, task_id)
    assert final.status.state == State.TASK_STATE_COMPLETED
    assert numbers(artifact_text(final)) == list(range(1, N + 1))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_stream_reports_progress_then_completes(
    runtime: Runtime, http: httpx.AsyncClient, transport: str
):
    """Each chunk is preceded by a working-state progress note the skill published."""
    client = await make_client(runtime, "text", http, transport)
    req = request("stream 3", context_id=new_context(), metadata={"delay": 0.01})
    notes = []
    async for event in client.send_message(req):
        if event.HasField("status_update") and event.status_update.status.HasField("message"):
            notes.append(event.status_update.status.message.parts[0].text)
    assert notes == ["counted 1 of 3", "counted 2 of 3", "counted 3 of 3"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cancel_ends_an_open_stream_with_canceled(
    runtime: Runtime, http: httpx.AsyncClient, transport: str
):
    client = await make_client(runtime, "text", http, transport)
    req = request("stream 100", context_id=new_context(), metadata={"delay": 0.1})
    chunks: list[int] = []
    states: list[int] = []
    async for event in client.send_message(req):
        if event.HasField("artifact_update"):
            chunks.extend(numbers(event.artifact_update.artifact.parts[0].text))
            if len(chunks) == 2:  # cancel from another call while this stream stays open
                task_id = event.artifact_update.task_id
                canceled = await client.cancel_task(a2a_pb2.CancelTaskRequest(id=task_id))
                assert canceled.status.state == State.TASK_STATE_CANCELED
        elif event.HasField("status_update"):
            states.append(event.status_update.status.state)
    assert states[-1] == State.TASK_STATE_CANCELED, "the stream ends with the cancel"
    assert 2 <= len(chunks) < 100
    assert chunks == list(range(1, len(chunks) + 1))
    assert (await get_task(client, task_id)).status.state == State.TASK_STATE_CANCELED
