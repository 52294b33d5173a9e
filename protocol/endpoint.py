"""The endpoint interface: one agent, reached as a local actor or over HTTP.

The methods are the A2A operations with a2a-sdk's proto types. The ingress serves an
endpoint through a2a-sdk's route builders (via `EndpointRequestHandler`), and the
planner calls endpoints directly; neither cares whether the agent is a Ray actor or a
third-party server.

Cancellation contract: cancelling the awaiting coroutine (or closing a stream) only
stops the caller from waiting; the task keeps running where it runs. To stop a task,
call `cancel_task`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from a2a.types import a2a_pb2

from actorchestra.protocol.context import CallInfo

Event = (
    a2a_pb2.Task | a2a_pb2.Message | a2a_pb2.TaskStatusUpdateEvent | a2a_pb2.TaskArtifactUpdateEvent
)


class AgentEndpoint(ABC):
    """The A2A operations of one agent, whatever carries them."""

    name: str

    @abstractmethod
    async def card(self) -> a2a_pb2.AgentCard: ...

    @abstractmethod
    async def send_message(
        self, request: a2a_pb2.SendMessageRequest, call: CallInfo
    ) -> a2a_pb2.Task | a2a_pb2.Message: ...

    @abstractmethod
    def send_message_stream(
        self, request: a2a_pb2.SendMessageRequest, call: CallInfo
    ) -> AsyncIterator[Event]: ...

    @abstractmethod
    async def get_task(self, request: a2a_pb2.GetTaskRequest, call: CallInfo) -> a2a_pb2.Task: ...

    @abstractmethod
    async def list_tasks(
        self, request: a2a_pb2.ListTasksRequest, call: CallInfo
    ) -> a2a_pb2.ListTasksResponse: ...

    @abstractmethod
    async def cancel_task(
        self, request: a2a_pb2.CancelTaskRequest, call: CallInfo
    ) -> a2a_pb2.Task: ...

    @abstractmethod
    def subscribe(
        self, request: a2a_pb2.SubscribeToTaskRequest, call: CallInfo
    ) -> AsyncIterator[Event]: ...

    @abstractmethod
    async def create_push_config(
        self, request: a2a_pb2.TaskPushNotificationConfig, call: CallInfo
    ) -> a2a_pb2.TaskPushNotificationConfig: ...

    @abstractmethod
    async def get_push_config(
        self, request: a2a_pb2.GetTaskPushNotificationConfigRequest, call: CallInfo
    ) -> a2a_pb2.TaskPushNotificationConfig: ...

    @abstractmethod
    async def list_push_configs(
        self, request: a2a_pb2.ListTaskPushNotificationConfigsRequest, call: CallInfo
    ) -> a2a_pb2.ListTaskPushNotificationConfigsResponse: ...

    @abstractmethod
    async def delete_push_config(
        self, request: a2a_pb2.DeleteTaskPushNotificationConfigRequest, call: CallInfo
    ) -> None: ...

    @abstractmethod
    async def extended_card(
        self, request: a2a_pb2.GetExtendedAgentCardRequest, call: CallInfo
    ) -> a2a_pb2.AgentCard: ...
