"""`AgentEndpoint` over plain `AgentActor`s in this process: the in-memory version.

Same codec and routing by task id as the Ray-backed endpoint, no Ray: for unit tests
of whatever talks to agents (the planner), and for benchmarks' in-process floors.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

from a2a.types import a2a_pb2

from actorchestra.actors.agent_actor import AgentActor
from actorchestra.protocol.codec import pack, unpack
from actorchestra.protocol.context import CallInfo, replica_of_task
from actorchestra.protocol.endpoint import AgentEndpoint, Event


class InProcessAgentEndpoint(AgentEndpoint):
    def __init__(self, name: str, replicas: list[AgentActor]) -> None:
        self.name = name
        self._replicas = replicas
        self._rr = itertools.count()

    def _pick(self, task_id: str = "") -> AgentActor:
        owner = replica_of_task(task_id) if task_id else None
        if owner is not None and owner < len(self._replicas):
            return self._replicas[owner]
        return self._replicas[next(self._rr) % len(self._replicas)]

    async def card(self) -> a2a_pb2.AgentCard:
        return unpack(await self._replicas[0].get_card())

    async def send_message(
        self, request: a2a_pb2.SendMessageRequest, call: CallInfo
    ) -> a2a_pb2.Task | a2a_pb2.Message:
        actor = self._pick(request.message.task_id)
        return unpack(await actor.send_message(pack(request), call))

    async def send_message_stream(
        self, request: a2a_pb2.SendMessageRequest, call: CallInfo
    ) -> AsyncIterator[Event]:
        actor = self._pick(request.message.task_id)
        async for packed in actor.send_message_stream(pack(request), call):
            yield unpack(packed)

    async def get_task(self, request: a2a_pb2.GetTaskRequest, call: CallInfo) -> a2a_pb2.Task:
        return unpack(await self._pick(request.id).get_task(pack(request), call))

    async def list_tasks(
        self, request: a2a_pb2.ListTasksRequest, call: CallInfo
    ) -> a2a_pb2.ListTasksResponse:
        return unpack(await self._replicas[0].list_tasks(pack(request), call))

    async def cancel_task(self, request: a2a_pb2.CancelTaskRequest, call: CallInfo) -> a2a_pb2.Task:
        return unpack(await self._pick(request.id).cancel_task(pack(request), call))

    async def subscribe(
        self, request: a2a_pb2.SubscribeToTaskRequest, call: CallInfo
    ) -> AsyncIterator[Event]:
        async for packed in self._pick(request.id).subscribe(pack(request), call):
            yield unpack(packed)

    async def create_push_config(
        self, request: a2a_pb2.TaskPushNotificationConfig, call: CallInfo
    ) -> a2a_pb2.TaskPushNotificationConfig:
        return unpack(await self._pick(request.task_id).create_push_config(pack(request), call))

    async def get_push_config(
        self, request: a2a_pb2.GetTaskPushNotificationConfigRequest, call: CallInfo
    ) -> a2a_pb2.TaskPushNotificationConfig:
        return unpack(await self._pick(request.task_id).get_push_config(pack(request), call))

    async def list_push_configs(
        self, request: a2a_pb2.ListTaskPushNotificationConfigsRequest, call: CallInfo
    ) -> a2a_pb2.ListTaskPushNotificationConfigsResponse:
        return unpack(await self._pick(request.task_id).list_push_configs(pack(request), call))

    async def delete_push_config(
        self, request: a2a_pb2.DeleteTaskPushNotificationConfigRequest, call: CallInfo
    ) -> None:
        await self._pick(request.task_id).delete_push_config(pack(request), call)

    async def extended_card(
        self, request: a2a_pb2.GetExtendedAgentCardRequest, call: CallInfo
    ) -> a2a_pb2.AgentCard:
        return unpack(await self._pick().extended_card(pack(request), call))
