"""Small helpers the integration tests share: building requests, reading answers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from a2a.client import Client
from a2a.helpers import new_text_message
from a2a.types import a2a_pb2
from a2a.utils.constants import TransportProtocol

from tests.integration.conftest import Runtime, async_wait_for

TRANSPORTS = [TransportProtocol.JSONRPC.value, TransportProtocol.HTTP_JSON.value]

State = a2a_pb2.TaskState
TERMINAL = {
    State.TASK_STATE_COMPLETED,
    State.TASK_STATE_FAILED,
    State.TASK_STATE_CANCELED,
    State.TASK_STATE_REJECTED,
}

# Raw HTTP calls name the protocol version, as the official client does.
A2A_HEADERS = {"A2A-Version": "1.0", "Content-Type": "application/json"}


def new_context() -> str:
    """A context id of the test's own, so that lists filtered by it see only its tasks."""
    return f"ctx-{uuid.uuid4()}"


def request(
    text: str,
    *,
    context_id: str,
    task_id: str = "",
    metadata: dict[str, Any] | None = None,
    return_immediately: bool = False,
    push: a2a_pb2.TaskPushNotificationConfig | None = None,
) -> a2a_pb2.SendMessageRequest:
    """A SendMessage request; `metadata` is the request's (what skills see as ctx.metadata)."""
    msg = new_text_message(text, role=a2a_pb2.Role.ROLE_USER, context_id=context_id)
    if task_id:
        msg.task_id = task_id
    req = a2a_pb2.SendMessageRequest(message=msg)
    if metadata:
        req.metadata.update(metadata)
    if return_immediately:
        req.configuration.return_immediately = True
    if push is not None:
        req.configuration.task_push_notification_config.CopyFrom(push)
    return req


async def send(client: Client, req: a2a_pb2.SendMessageRequest) -> a2a_pb2.Task:
    """The task a non-streaming SendMessage answers with."""
    events = [e async for e in client.send_message(req)]
    assert len(events) == 1 and events[0].HasField("task"), events
    return events[0].task


async def get_task(client: Client, task_id: str, history_length: int | None = None) -> a2a_pb2.Task:
    req = a2a_pb2.GetTaskRequest(id=task_id)
    if history_length is not None:
        req.history_length = history_length
    return await client.get_task(req)


async def wait_state(
    client: Client, task_id: str, states: set[int], within: float = 15
) -> a2a_pb2.Task:
    """Poll GetTask until the task is in one of `states`; returns that task."""
    seen: list[a2a_pb2.Task] = []

    async def reached() -> bool:
        seen.append(await get_task(client, task_id))
        return seen[-1].status.state in states

    names = sorted(State.Name(s) for s in states)
    await async_wait_for(reached, within, f"task {task_id} in {names}")
    return seen[-1]


def texts(message: a2a_pb2.Message) -> str:
    return "".join(p.text for p in message.parts if p.HasField("text"))


def artifact_text(task: a2a_pb2.Task) -> str:
    return "".join(p.text for a in task.artifacts for p in a.parts if p.HasField("text"))


def numbers(text: str) -> list[int]:
    """The counted numbers in a `stream` skill's output ("1\\n2\\n..." -> [1, 2, ...])."""
    return [int(n) for n in text.split()]


async def list_all(client: Client, req: a2a_pb2.ListTasksRequest) -> list[list[a2a_pb2.Task]]:
    """Every page of a ListTasks, following next_page_token to the end."""
    pages: list[list[a2a_pb2.Task]] = []
    token = ""
    while True:
        page_req = a2a_pb2.ListTasksRequest()
        page_req.CopyFrom(req)
        page_req.page_token = token
        resp = await client.list_tasks(page_req)
        pages.append(list(resp.tasks))
        token = resp.next_page_token
        if not token:
            return pages
        assert len(pages) < 50, "ListTasks pagination does not end"


async def stream_events(
    events: AsyncIterator[a2a_pb2.StreamResponse],
) -> list[a2a_pb2.StreamResponse]:
    return [e async for e in events]


async def jsonrpc(
    http: httpx.AsyncClient, runtime: Runtime, agent: str, method: str, params: Any
) -> httpx.Response:
    """A raw JSON-RPC call, for what the official client would never send."""
    return await http.post(
        f"{runtime.base_url}/a2a/{agent}",
        json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
        headers=A2A_HEADERS,
    )
