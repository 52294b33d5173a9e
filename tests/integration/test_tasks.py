"""Task operations through the ingress: GetTask, ListTasks, CancelTask, multi-turn, polling."""

from __future__ import annotations

import httpx
import pytest
from a2a.types import a2a_pb2
from a2a.utils.errors import TaskNotCancelableError
from google.protobuf.timestamp_pb2 import Timestamp

from tests.integration.a2a_helpers import (
    TRANSPORTS,
    State,
    artifact_text,
    get_task,
    list_all,
    new_context,
    request,
    send,
    texts,
    wait_state,
)
from tests.integration.conftest import Runtime, make_client

pytestmark = pytest.mark.integration


async def _greet_conversation(client, context_id: str, name: str) -> tuple[a2a_pb2.Task, ...]:
    first = await send(client, request("greet me", context_id=context_id))
    second = await send(client, request(name, context_id=context_id, task_id=first.id))
    return first, second


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_multi_turn_task_asks_for_input_then_completes(
    runtime: Runtime, http: httpx.AsyncClient, transport: str
):
    client = await make_client(runtime, "text", http, transport, streaming=False)
    ctx = new_context()
    first, second = await _greet_conversation(client, ctx, "Ada")

    assert first.status.state == State.TASK_STATE_INPUT_REQUIRED
    assert texts(first.status.message) == "What is your name?"
    assert second.id == first.id and second.context_id == ctx
    assert second.status.state == State.TASK_STATE_COMPLETED
    assert artifact_text(second) == "Hello, Ada!"

    stored = await get_task(client, first.id)
    users = [texts(m) for m in stored.history if m.role == a2a_pb2.Role.ROLE_USER]
    agents = [texts(m) for m in stored.history if m.role == a2a_pb2.Role.ROLE_AGENT]
    assert users == ["greet me", "Ada"]
    assert "What is your name?" in agents


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_get_task_history_length_keeps_the_latest_messages(
    runtime: Runtime, http: httpx.AsyncClient, transport: str
):
    client = await make_client(runtime, "text", http, transport, streaming=False)
    first, _ = await _greet_conversation(client, new_context(), "Grace")

    full = await get_task(client, first.id)
    assert len(full.history) >= 3  # greet me, the question, Grace
    last_two = await get_task(client, first.id, history_length=2)
    assert list(last_two.history) == list(full.history)[-2:]
    assert texts(last_two.history[-1]) == "Grace"
    assert last_two.status.state == State.TASK_STATE_COMPLETED
    assert artifact_text(last_two) == "Hello, Grace!"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_list_tasks_filters_by_context_and_status(
    runtime: Runtime, http: httpx.AsyncClient, transport: str
):
    client = await make_client(runtime, "text", http, transport, streaming=False)
    ctx, other = new_context(), new_context()
    done = [await send(client, request(f"uppercase: {i}", context_id=ctx)) for i in range(4)]
    waiting = await send(client, request("greet me", context_id=ctx))
    elsewhere = await send(client, request("uppercase: not mine", context_id=other))

    listed = await client.list_tasks(a2a_pb2.ListTasksRequest(context_id=ctx))
    assert {t.id for t in listed.tasks} == {t.id for t in [*done, waiting]}
    assert elsewhere.id not in {t.id for t in listed.tasks}
    assert listed.total_size == 5
    assert all(t.context_id == ctx for t in listed.tasks)

    completed = await client.list_tasks(
        a2a_pb2.ListTasksRequest(context_id=ctx, status=State.TASK_STATE_COMPLETED)
    )
    assert {t.id for t in completed.tasks} == {t.id for t in done}
    needs_input = await client.list_tasks(
        a2a_pb2.ListTasksRequest(context_id=ctx, status=State.TASK_STATE_INPUT_REQUIRED)
    )
    assert [t.id for t in needs_input.tasks] == [waiting.id]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_list_tasks_pages_across_replicas_without_gaps_or_repeats(
    runtime: Runtime, http: httpx.AsyncClient, transport: str
):
    """Tasks of many conversations, so both replicas hold some: one merged, paged list."""
    client = await make_client(runtime, "text", http, transport, streaming=False)
    since = Timestamp()
    since.GetCurrentTime()
    sent = [
        await send(client, request(f"uppercase: {i}", context_id=new_context())) for i in range(12)
    ]
    assert {t.id[:3] for t in sent} == {"r0-", "r1-"}

    query = a2a_pb2.ListTasksRequest(
        status=State.TASK_STATE_COMPLETED, status_timestamp_after=since, page_size=5
    )
    pages = await list_all(client, query)
    listed = [t for p in pages for t in p]
    assert all(len(p) == 5 for p in pages[:-1]) and 1 <= len(pages[-1]) <= 5
    assert len({t.id for t in listed}) == len(listed), "a task was listed twice"
    assert {t.id for t in sent} <= {t.id for t in listed}, "a task went missing"
    stamps = [t.status.timestamp.ToNanoseconds() for t in listed]
    assert stamps == sorted(stamps, reverse=True), "most recently updated first"


async def test_cancel_running_task_shows_canceled(runtime: Runtime, http: httpx.AsyncClient):
    client = await make_client(runtime, "lab", http, streaming=False)
    task = await send(
        client, request("sleep 30", context_id=new_context(), return_immediately=True)
    )
    assert task.status.state not in {State.TASK_STATE_COMPLETED, State.TASK_STATE_FAILED}

    canceled = await client.cancel_task(a2a_pb2.CancelTaskRequest(id=task.id))
    assert canceled.id == task.id
    assert canceled.status.state == State.TASK_STATE_CANCELED
    assert (await get_task(client, task.id)).status.state == State.TASK_STATE_CANCELED


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cancel_finished_task_is_not_cancelable(
    runtime: Runtime, http: httpx.AsyncClient, transport: str
):
    client = await make_client(runtime, "echo", http, transport, streaming=False)
    task = await send(client, request("done already", context_id=new_context()))
    assert task.status.state == State.TASK_STATE_COMPLETED

    with pytest.raises(TaskNotCancelableError):
        await client.cancel_task(a2a_pb2.CancelTaskRequest(id=task.id))
    assert (await get_task(client, task.id)).status.state == State.TASK_STATE_COMPLETED


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_return_immediately_answers_before_the_task_finishes(
    runtime: Runtime, http: httpx.AsyncClient, transport: str
):
    client = await make_client(runtime, "lab", http, transport, streaming=False)
    task = await send(
        client, request("sleep 0.5", context_id=new_context(), return_immediately=True)
    )
    assert task.status.state in {State.TASK_STATE_SUBMITTED, State.TASK_STATE_WORKING}
    assert not task.artifacts

    done = await wait_state(client, task.id, {State.TASK_STATE_COMPLETED})
    assert artifact_text(done) == "slept 0.5"
