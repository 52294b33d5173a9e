"""`AgentEndpoint` over an agent's Ray actor replicas.

Routing: a new message goes to the healthy replica with the fewest calls in flight
from here; anything about an existing task goes to the replica named in its id
(`r<replica>-<uuid>`), so any ingress replica reaches the owner without a lookup.
ListTasks asks every replica and merges by a2a-sdk's list order and cursor.

Ray errors enter here and are translated here: a failure raised by the agent code
arrives as its own exception, a dead or restarting actor as `AgentUnavailableError`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from a2a.types import a2a_pb2
from a2a.utils.errors import A2AError, InternalError, TaskNotFoundError
from a2a.utils.task import ListTasksCursor, encode_list_tasks_cursor
from actorchestra.actors.batching import Batcher
from actorchestra.protocol.codec import pack, unpack
from actorchestra.protocol.context import CallInfo, replica_of_task
from actorchestra.protocol.endpoint import AgentEndpoint, Event
from actorchestra.protocol.errors import ActorchestraError, AgentUnavailableError
from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError, RayTaskError

logger = logging.getLogger(__name__)

T = TypeVar("T")

_DOWN_FOR_S = 2.0  # after a dead-actor error, avoid that replica this long


def _list_key(task: a2a_pb2.Task) -> tuple[bool, int, str]:
    has_ts = task.HasField("status") and task.status.HasField("timestamp")
    return (has_ts, task.status.timestamp.ToNanoseconds() if has_ts else 0, task.id)


class LocalAgentEndpoint(AgentEndpoint):
    """The A2A operations of one local agent, spread over its actor replicas."""

    def __init__(self, name: str, replicas: list[Any]) -> None:
        self.name = name
        self._replicas = replicas
        self._in_flight = [0] * len(replicas)
        self._down_until = [0.0] * len(replicas)
        self._rr = itertools.count()
        self._send_batchers = [
            Batcher(self._batch_submitter(i), name=f"send:{name}:{i}") for i in range(len(replicas))
        ]

    def _batch_submitter(self, index: int) -> Any:
        handle = self._replicas[index]

        async def submit(items: list[tuple[Any, CallInfo]]) -> list[Any]:
            if len(items) == 1:
                packed, call = items[0]
                return [await handle.send_message.remote(packed, call)]
            return await handle.send_message_batch.remote(items)

        return submit

    async def _send_on(
        self, index: int, request: a2a_pb2.SendMessageRequest, call: CallInfo
    ) -> Any:
        """SendMessage on one replica, batched with concurrent ones to the same replica."""
        return await self._call(index, self._send_batchers[index].call((pack(request), call)))

    # -- translation and routing ------------------------------------------------------

    def _unavailable(self, index: int, err: BaseException) -> AgentUnavailableError:
        self._down_until[index] = time.monotonic() + _DOWN_FOR_S
        reason = "restarting" if isinstance(err, ActorUnavailableError) else "not running"
        return AgentUnavailableError(
            f"agent {self.name!r} replica {index} is {reason}; retry in a few seconds"
        )

    async def _call(self, index: int, ref: Awaitable[Any]) -> Any:
        self._in_flight[index] += 1
        try:
            packed = await ref
            return None if packed is None else unpack(packed)
        except RayTaskError as e:
            raise _cause(e) from None
        except (ActorDiedError, ActorUnavailableError, GetTimeoutError) as e:
            raise self._unavailable(index, e) from None
        finally:
            self._in_flight[index] -= 1

    def _pick(self) -> int:
        now = time.monotonic()
        up = [i for i in range(len(self._replicas)) if self._down_until[i] <= now]
        candidates = up or list(range(len(self._replicas)))
        low = min(self._in_flight[i] for i in candidates)
        best = [i for i in candidates if self._in_flight[i] == low]
        return best[next(self._rr) % len(best)]

    def _owner(self, task_id: str) -> int | None:
        index = replica_of_task(task_id)
        return index if index is not None and index < len(self._replicas) else None

    async def _on_owner(self, task_id: str, call: Any) -> Any:
        """Run `call(index)` on the task's owner; ids we did not mint are looked up."""
        owner = self._owner(task_id)
        if owner is not None:
            return await call(owner)
        for index in range(len(self._replicas)):
            try:
                return await call(index)
            except TaskNotFoundError:
                continue
        raise TaskNotFoundError(message=f"task {task_id!r} not found on agent {self.name!r}")

    # -- AgentEndpoint ----------------------------------------------------------------

    async def card(self) -> a2a_pb2.AgentCard:
        index = self._pick()
        return await self._call(index, self._replicas[index].get_card.remote())

    async def send_message(
        self, request: a2a_pb2.SendMessageRequest, call: CallInfo
    ) -> a2a_pb2.Task | a2a_pb2.Message:
        if request.message.task_id:
            return await self._on_owner(
                request.message.task_id, lambda i: self._send_on(i, request, call)
            )
        first = self._pick()
        try:
            return await self._send_on(first, request, call)
        except AgentUnavailableError:
            if len(self._replicas) == 1:
                raise
            other = self._pick()  # the dead one is now marked down
            return await self._send_on(other, request, call)

    async def send_message_stream(
        self, request: a2a_pb2.SendMessageRequest, call: CallInfo
    ) -> AsyncIterator[Event]:
        if request.message.task_id:
            owner = self._owner(request.message.task_id)
            index = owner if owner is not None else self._pick()
        else:
            index = self._pick()
        gen = self._replicas[index].send_message_stream.remote(pack(request), call)
        async for event in self._drain(index, gen):
            yield event

    async def subscribe(
        self, request: a2a_pb2.SubscribeToTaskRequest, call: CallInfo
    ) -> AsyncIterator[Event]:
        owner = self._owner(request.id)
        if owner is None:
            raise TaskNotFoundError(message=f"task {request.id!r} not found on agent {self.name!r}")
        gen = self._replicas[owner].subscribe.remote(pack(request), call)
        async for event in self._drain(owner, gen):
            yield event

    async def _drain(self, index: int, gen: Any) -> AsyncIterator[Event]:
        self._in_flight[index] += 1
        try:
            async for ref in gen:
                try:
                    yield unpack(await ref)
                except RayTaskError as e:
                    raise _cause(e) from None
        except (ActorDiedError, ActorUnavailableError) as e:
            raise self._unavailable(index, e) from None
        finally:
            self._in_flight[index] -= 1

    async def get_task(self, request: a2a_pb2.GetTaskRequest, call: CallInfo) -> a2a_pb2.Task:
        return await self._on_owner(
            request.id,
            lambda i: self._call(i, self._replicas[i].get_task.remote(pack(request), call)),
        )

    async def cancel_task(self, request: a2a_pb2.CancelTaskRequest, call: CallInfo) -> a2a_pb2.Task:
        return await self._on_owner(
            request.id,
            lambda i: self._call(i, self._replicas[i].cancel_task.remote(pack(request), call)),
        )

    async def list_tasks(
        self, request: a2a_pb2.ListTasksRequest, call: CallInfo
    ) -> a2a_pb2.ListTasksResponse:
        if len(self._replicas) == 1:
            return await self._call(0, self._replicas[0].list_tasks.remote(pack(request), call))
        pages = await asyncio.gather(
            *(
                self._call(i, r.list_tasks.remote(pack(request), call))
                for i, r in enumerate(self._replicas)
            ),
            return_exceptions=True,
        )
        ok = [p for p in pages if isinstance(p, a2a_pb2.ListTasksResponse)]
        if not ok:
            err = pages[0]
            raise err if isinstance(err, BaseException) else InternalError()
        page_size = max(p.page_size for p in ok)
        merged = heapq.nlargest(page_size + 1, (t for p in ok for t in p.tasks), key=_list_key)
        more = len(merged) > page_size or any(p.next_page_token for p in ok)
        tasks = merged[:page_size]
        token = ""
        if more and tasks:
            has_ts, ts, tid = _list_key(tasks[-1])
            token = encode_list_tasks_cursor(
                ListTasksCursor(timestamp_ns=ts if has_ts else None, task_id=tid)
            )
        return a2a_pb2.ListTasksResponse(
            tasks=tasks,
            next_page_token=token,
            page_size=page_size,
            total_size=sum(p.total_size for p in ok),
        )

    async def create_push_config(
        self, request: a2a_pb2.TaskPushNotificationConfig, call: CallInfo
    ) -> a2a_pb2.TaskPushNotificationConfig:
        return await self._on_owner(
            request.task_id,
            lambda i: self._call(
                i, self._replicas[i].create_push_config.remote(pack(request), call)
            ),
        )

    async def get_push_config(
        self, request: a2a_pb2.GetTaskPushNotificationConfigRequest, call: CallInfo
    ) -> a2a_pb2.TaskPushNotificationConfig:
        return await self._on_owner(
            request.task_id,
            lambda i: self._call(i, self._replicas[i].get_push_config.remote(pack(request), call)),
        )

    async def list_push_configs(
        self, request: a2a_pb2.ListTaskPushNotificationConfigsRequest, call: CallInfo
    ) -> a2a_pb2.ListTaskPushNotificationConfigsResponse:
        return await self._on_owner(
            request.task_id,
            lambda i: self._call(
                i, self._replicas[i].list_push_configs.remote(pack(request), call)
            ),
        )

    async def delete_push_config(
        self, request: a2a_pb2.DeleteTaskPushNotificationConfigRequest, call: CallInfo
    ) -> None:
        await self._on_owner(
            request.task_id,
            lambda i: self._call(
                i, self._replicas[i].delete_push_config.remote(pack(request), call)
            ),
        )

    async def extended_card(
        self, request: a2a_pb2.GetExtendedAgentCardRequest, call: CallInfo
    ) -> a2a_pb2.AgentCard:
        index = self._pick()
        return await self._call(
            index, self._replicas[index].extended_card.remote(pack(request), call)
        )


def _cause(err: RayTaskError) -> BaseException:
    """The exception the agent code raised, or an internal error that names it."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, A2AError | ActorchestraError):
        return cause
    logger.error("agent actor raised %r", cause or err)
    return InternalError(message=f"agent failed: {type(cause).__name__}: {cause}")
