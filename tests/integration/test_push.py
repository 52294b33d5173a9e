"""Push notifications: configs set with the message or afterwards, delivered to a webhook."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from a2a.types import a2a_pb2
from a2a.utils.errors import InvalidParamsError, TaskNotFoundError

from tests.integration.a2a_helpers import (
    TRANSPORTS,
    State,
    new_context,
    request,
    send,
)
from tests.integration.conftest import Runtime, Webhook, async_wait_for, make_client

pytestmark = pytest.mark.integration

TOKEN_HEADER = "x-a2a-notification-token"


def _notifications(hook: Webhook, task_id: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """(body, headers) of every notification about `task_id`, in arrival order."""
    out = []
    for body, headers in zip(list(hook.received), list(hook.headers), strict=True):
        event = next(iter(body.values()))
        if event.get("taskId", event.get("id")) == task_id:
            out.append((body, headers))
    return out


def _state(body: dict[str, Any]) -> str | None:
    event = body.get("statusUpdate") or body.get("task") or {}
    return event.get("status", {}).get("state")


def _completed(hook: Webhook, task_id: str) -> bool:
    return any(_state(b) == "TASK_STATE_COMPLETED" for b, _ in _notifications(hook, task_id))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_push_config_sent_with_the_message_gets_every_update(
    runtime: Runtime, http: httpx.AsyncClient, webhook: Webhook, transport: str
):
    client = await make_client(runtime, "text", http, transport, streaming=False)
    token = f"tok-{uuid.uuid4()}"
    push = a2a_pb2.TaskPushNotificationConfig(url=webhook.url, token=token)
    task = await send(
        client,
        request("stream 3", context_id=new_context(), metadata={"delay": 0.01}, push=push),
    )
    assert task.status.state == State.TASK_STATE_COMPLETED

    await async_wait_for(lambda: _completed(webhook, task.id), 10, "completed notification")
    got = _notifications(webhook, task.id)
    assert all(h.get(TOKEN_HEADER) == token for _, h in got)
    states = [_state(b) for b, _ in got if _state(b)]
    assert "TASK_STATE_WORKING" in states
    assert states[-1] == "TASK_STATE_COMPLETED"
    chunks = [
        b["artifactUpdate"]["artifact"]["parts"][0]["text"] for b, _ in got if "artifactUpdate" in b
    ]
    assert "".join(chunks) == "1\n2\n3\n"

    configs = await client.list_task_push_notification_configs(
        a2a_pb2.ListTaskPushNotificationConfigsRequest(task_id=task.id)
    )
    assert [(c.url, c.token, c.task_id) for c in configs.configs] == [(webhook.url, token, task.id)]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_push_configs_created_get_list_delete(
    runtime: Runtime, http: httpx.AsyncClient, webhook: Webhook, transport: str
):
    client = await make_client(runtime, "lab", http, transport, streaming=False)
    task = await send(client, request("sleep 1", context_id=new_context(), return_immediately=True))
    assert task.status.state not in {State.TASK_STATE_COMPLETED, State.TASK_STATE_FAILED}

    kept = await client.create_task_push_notification_config(
        a2a_pb2.TaskPushNotificationConfig(task_id=task.id, id="kept", url=webhook.url, token="K")
    )
    assert (kept.task_id, kept.id, kept.url, kept.token) == (task.id, "kept", webhook.url, "K")
    await client.create_task_push_notification_config(
        a2a_pb2.TaskPushNotificationConfig(task_id=task.id, id="gone", url=webhook.url, token="G")
    )

    got = await client.get_task_push_notification_config(
        a2a_pb2.GetTaskPushNotificationConfigRequest(task_id=task.id, id="gone")
    )
    assert (got.id, got.token) == ("gone", "G")
    listed = await client.list_task_push_notification_configs(
        a2a_pb2.ListTaskPushNotificationConfigsRequest(task_id=task.id)
    )
    assert sorted(c.id for c in listed.configs) == ["gone", "kept"]

    await client.delete_task_push_notification_config(
        a2a_pb2.DeleteTaskPushNotificationConfigRequest(task_id=task.id, id="gone")
    )
    listed = await client.list_task_push_notification_configs(
        a2a_pb2.ListTaskPushNotificationConfigsRequest(task_id=task.id)
    )
    assert [c.id for c in listed.configs] == ["kept"]
    with pytest.raises(TaskNotFoundError):
        await client.get_task_push_notification_config(
            a2a_pb2.GetTaskPushNotificationConfigRequest(task_id=task.id, id="gone")
        )

    await async_wait_for(lambda: _completed(webhook, task.id), 10, "completed notification")
    final = [
        h.get(TOKEN_HEADER)
        for b, h in _notifications(webhook, task.id)
        if _state(b) == "TASK_STATE_COMPLETED"
    ]
    assert final == ["K"], "only the config still set hears of the completion"


async def test_push_config_for_a_private_host_is_refused(runtime: Runtime, http: httpx.AsyncClient):
    """Only hosts the runtime allows (loopback in tests) may receive notifications."""
    client = await make_client(runtime, "echo", http, streaming=False)
    task = await send(client, request("hi", context_id=new_context()))
    with pytest.raises(InvalidParamsError):
        await client.create_task_push_notification_config(
            a2a_pb2.TaskPushNotificationConfig(task_id=task.id, url="http://10.1.2.3/hook")
        )
    listed = await client.list_task_push_notification_configs(
        a2a_pb2.ListTaskPushNotificationConfigsRequest(task_id=task.id)
    )
    assert list(listed.configs) == []
