"""Serve any `AgentEndpoint` through a2a-sdk's routes.

a2a-sdk's route builders take a `RequestHandler`; this adapter is that handler for an
endpoint that lives elsewhere (a Ray actor, a remote server). It carries the caller's
identity across as a `CallInfo` and turns runtime errors into protocol errors at this
one boundary.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable
from typing import TypeVar

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.request_handler import RequestHandler, validate_request_params
from a2a.types import a2a_pb2

from actorchestra.protocol.context import CallInfo
from actorchestra.protocol.endpoint import AgentEndpoint, Event
from actorchestra.protocol.errors import ActorchestraError, to_a2a_error

T = TypeVar("T")


async def _translated(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except ActorchestraError as e:
        raise to_a2a_error(e) from e


class EndpointRequestHandler(RequestHandler):
    """a2a-sdk `RequestHandler` that forwards every operation to an `AgentEndpoint`."""

    def __init__(self, endpoint: AgentEndpoint) -> None:
        self.endpoint = endpoint

    @validate_request_params
    async def on_get_task(
        self, params: a2a_pb2.GetTaskRequest, context: ServerCallContext
    ) -> a2a_pb2.Task | None:
        return await _translated(
            self.endpoint.get_task(params, CallInfo.from_server_context(context))
        )

    @validate_request_params
    async def on_list_tasks(
        self, params: a2a_pb2.ListTasksRequest, context: ServerCallContext
    ) -> a2a_pb2.ListTasksResponse:
        return await _translated(
            self.endpoint.list_tasks(params, CallInfo.from_server_context(context))
        )

    @validate_request_params
    async def on_cancel_task(
        self, params: a2a_pb2.CancelTaskRequest, context: ServerCallContext
    ) -> a2a_pb2.Task | None:
        return await _translated(
            self.endpoint.cancel_task(params, CallInfo.from_server_context(context))
        )

    @validate_request_params
    async def on_message_send(
        self, params: a2a_pb2.SendMessageRequest, context: ServerCallContext
    ) -> a2a_pb2.Task | a2a_pb2.Message:
        return await _translated(
            self.endpoint.send_message(params, CallInfo.from_server_context(context))
        )

    @validate_request_params
    async def on_message_send_stream(
        self, params: a2a_pb2.SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        stream = self.endpoint.send_message_stream(params, CallInfo.from_server_context(context))
        async for event in _translated_stream(stream):
            yield event

    @validate_request_params
    async def on_subscribe_to_task(
        self, params: a2a_pb2.SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        stream = self.endpoint.subscribe(params, CallInfo.from_server_context(context))
        async for event in _translated_stream(stream):
            yield event

    @validate_request_params
    async def on_create_task_push_notification_config(
        self, params: a2a_pb2.TaskPushNotificationConfig, context: ServerCallContext
    ) -> a2a_pb2.TaskPushNotificationConfig:
        return await _translated(
            self.endpoint.create_push_config(params, CallInfo.from_server_context(context))
        )

    @validate_request_params
    async def on_get_task_push_notification_config(
        self, params: a2a_pb2.GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> a2a_pb2.TaskPushNotificationConfig:
        return await _translated(
            self.endpoint.get_push_config(params, CallInfo.from_server_context(context))
        )

    @validate_request_params
    async def on_list_task_push_notification_configs(
        self, params: a2a_pb2.ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> a2a_pb2.ListTaskPushNotificationConfigsResponse:
        return await _translated(
            self.endpoint.list_push_configs(params, CallInfo.from_server_context(context))
        )

    @validate_request_params
    async def on_delete_task_push_notification_config(
        self, params: a2a_pb2.DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        await _translated(
            self.endpoint.delete_push_config(params, CallInfo.from_server_context(context))
        )

    @validate_request_params
    async def on_get_extended_agent_card(
        self, params: a2a_pb2.GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> a2a_pb2.AgentCard:
        return await _translated(
            self.endpoint.extended_card(params, CallInfo.from_server_context(context))
        )


async def _translated_stream(stream: AsyncGenerator[Event] | object) -> AsyncGenerator[Event]:
    try:
        async for event in stream:  # type: ignore[union-attr]
            yield event
    except ActorchestraError as e:
        raise to_a2a_error(e) from e
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
