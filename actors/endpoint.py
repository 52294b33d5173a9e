"""`AgentEndpoint` over an agent's Ray actor replicas.

Routing: a new message goes to the healthy replica with the fewest calls in flight
from here, or, when it names a context (a conversation), to the replica that context
hashes to, where its earlier turns are; anything about an existing task goes to the
replica named in its id (`r<replica>-<uuid>`), so any ingress replica reaches the
owner without a lookup.
ListTasks asks every replica and merges by a2a-sdk's list order and cursor.

Transport: A2A operations travel over each replica's direct channel
(`protocol.channel`), opened once through a Ray call; Ray calls cost milliseconds of
CPU each, the channel tens of microseconds. Failures enter here and are translated
here: an error raised by the agent arrives as its own exception, a dead or
restarting actor (refused connection, closed channel, Ray actor errors) as
`AgentUnavailableError`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from a2a.types import a2a_pb2
from a2a.utils.errors import A2AError, InternalError, TaskNotFoundError
from a2a.utils.task import ListTasksCursor, encode_list_tasks_cursor
from google.protobuf.message import Message
from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError, RayTaskError

from actorchestra.protocol.channel import ChannelClient, ChannelClosedError, Op
from actorchestra.protocol.codec import pack, unpack, unpack_optional
from actorchestra.protocol.context import CallInfo, replica_of_task
from actorchestra.protocol.endpoint import AgentEndpoint, Event
from actorchestra.protocol.errors import ActorchestraError, AgentUnavailableError

logger = logging.getLogger(__name__)

T = TypeVar("T")

_DOWN_FOR_S = 2.0  # after a failure, prefer other replicas for this long
_CONNECT_TIMEOUT_S = 2.0
_TRANSPORT_ERRORS = (
    ChannelClosedError,
    ConnectionError,
    OSError,
    TimeoutError,
    ActorDiedError,
    ActorUnavailableError,
    GetTimeoutError,
)


def _list_key(task: a2a_pb2.Task) -> tuple[bool, int, str]:
    has_ts = task.HasField("status") and task.status.HasField("timestamp")
    return (has_ts, task.status.timestamp.ToNanoseconds() if has_ts else 0, task.id)


class LocalAgentEndpoint(AgentEndpoint):
    """The A2A operations of one local agent, spread over its actor replicas."""

    def __init__(self, name: str, replicas: list[Any]) -> None:
        self.name = name
        self._replicas = replicas
        n = len(replicas)
        self._in_flight = [0] * n
        self._down_until = [0.0] * n
        self._channels: list[ChannelClient | None] = [None] * n
        self._channel_locks = [asyncio.Lock() for _ in range(n)]
        self._rr = itertools.count()

    # -- transport --------------------------------------------------------------------

    def _unavailable(self, index: int, err: BaseException) -> AgentUnavailableError:
        self._down_until[index] = time.monotonic() + _DOWN_FOR_S
        channel = self._channels[index]
        if channel is not None and channel.closed:
            self._channels[index] = None
        logger.info("agent %s replica %d unavailable: %r", self.name, index, err)
        return AgentUnavailableError(
            f"agent {self.name!r} replica {index} is not reachable (restarting or stopped); "
            "retry in a few seconds"
        )

    async def _channel(self, index: int) -> ChannelClient:
        channel = self._channels[index]
        if channel is not None and not channel.closed:
            return channel
        async with self._channel_locks[index]:
            channel = self._channels[index]
            if channel is None or channel.closed:
                try:
                    # A restarting actor would hold this call until it is back; give up
                    # early so the caller can go to another replica.
                    host, port, token = await asyncio.wait_for(
                        self._replicas[index].open_channel.remote(), _CONNECT_TIMEOUT_S
                    )
                except RayTaskError as e:
                    raise _cause(e) from None
                channel = await ChannelClient.connect(host, port, token, _CONNECT_TIMEOUT_S)
                self._channels[index] = channel
            return channel

    async def connect_all(self) -> None:
        """Open every replica's channel now, so that no first message waits for one.

        A replica that cannot be reached is left for later (it is retried on use).
        """
        await asyncio.gather(
            *(self._channel(i) for i in range(len(self._replicas))), return_exceptions=True
        )

    async def _call(self, index: int, op: Op, request: Message, call: CallInfo) -> Any:
        self._in_flight[index] += 1
        try:
            channel = await self._channel(index)
            return unpack_optional(await channel.call(op, pack(request), call))
        except _TRANSPORT_ERRORS as e:
            raise self._unavailable(index, e) from None
        finally:
            self._in_flight[index] -= 1

    async def _stream(
        self, index: int, op: Op, request: Message, call: CallInfo
    ) -> AsyncIterator[Event]:
        self._in_flight[index] += 1
        try:
            channel = await self._channel(index)
            async for packed in channel.stream(op, pack(request), call):
                yield unpack(packed)
        except _TRANSPORT_ERRORS as e:
            raise self._unavailable(index, e) from None
        finally:
            self._in_flight[index] -= 1

    # -- routing ----------------------------------------------------------------------

    def _pick(self) -> int:
        now = time.monotonic()
        up = [i for i in range(len(self._replicas)) if self._down_until[i] <= now]
        candidates = up or list(range(len(self._replicas)))
        low = min(self._in_flight[i] for i in candidates)
        best = [i for i in candidates if self._in_flight[i] == low]
        return best[next(self._rr) % len(best)]

    def _for_context(self, context_id: str) -> int:
        """A conversation stays on one replica (its earlier turns live there), unless down."""
        if not context_id or len(self._replicas) == 1:
            return self._pick()
        index = zlib.crc32(context_id.encode()) % len(self._replicas)
        return index if self._down_until[index] <= time.monotonic() else self._pick()

    def _owner(self, task_id: str) -> int | None:
        index = replica_of_task(task_id)
        return index if index is not None and index < len(self._replicas) else None

    async def _on_owner(self, task_id: str, call: Callable[[int], Awaitable[T]]) -> T:
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

    def _owner_op(self, task_id: str, op: Op, request: Message, call: CallInfo) -> Awaitable[Any]:
        return self._on_owner(task_id, lambda i: self._call(i, op, request, call))

    # -- AgentEndpoint ----------------------------------------------------------------

    async def card(self) -> a2a_pb2.AgentCard:
        index = self._pick()
        try:
            return unpack(await self._replicas[index].get_card.remote())
        except RayTaskError as e:
            raise _cause(e) from None
        except _TRANSPORT_ERRORS as e:
            raise self._unavailable(index, e) from None

    async def send_message(
        self, request: a2a_pb2.SendMessageRequest, call: CallInfo
    ) -> a2a_pb2.Task | a2a_pb2.Message:
        if request.message.task_id:
            return await self._owner_op(request.message.task_id, Op.SEND, request, call)
        first = self._for_context(request.message.context_id)
        try:
            return await self._call(first, Op.SEND, request, call)
        except AgentUnavailableError:
            if len(self._replicas) == 1:
                raise
            # Not delivered to a live actor: the next replica gets it (the dead one is
            # marked down, so _pick avoids it).
            return await self._call(self._pick(), Op.SEND, request, call)

    async def send_message_stream(
        self, request: a2a_pb2.SendMessageRequest, call: CallInfo
    ) -> AsyncIterator[Event]:
        owner = self._owner(request.message.task_id) if request.message.task_id else None
        if owner is None:
            owner = self._for_context(request.message.context_id)
        async for event in self._stream(owner, Op.STREAM, request, call):
            yield event

    async def subscribe(
        self, request: a2a_pb2.SubscribeToTaskRequest, call: CallInfo
    ) -> AsyncIterator[Event]:
        owner = self._owner(request.id)
        if owner is None:
            raise TaskNotFoundError(message=f"task {request.id!r} not found on agent {self.name!r}")
        async for event in self._stream(owner, Op.SUBSCRIBE, request, call):
            yield event

    async def get_task(self, request: a2a_pb2.GetTaskRequest, call: CallInfo) -> a2a_pb2.Task:
        return await self._owner_op(request.id, Op.GET, request, call)

    async def cancel_task(self, request: a2a_pb2.CancelTaskRequest, call: CallInfo) -> a2a_pb2.Task:
        return await self._owner_op(request.id, Op.CANCEL, request, call)

    async def list_tasks(
        self, request: a2a_pb2.ListTasksRequest, call: CallInfo
    ) -> a2a_pb2.ListTasksResponse:
        if len(self._replicas) == 1:
            return await self._call(0, Op.LIST, request, call)
        pages = await asyncio.gather(
            *(self._call(i, Op.LIST, request, call) for i in range(len(self._replicas))),
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
        return await self._owner_op(request.task_id, Op.PUSH_CREATE, request, call)

    async def get_push_config(
        self, request: a2a_pb2.GetTaskPushNotificationConfigRequest, call: CallInfo
    ) -> a2a_pb2.TaskPushNotificationConfig:
        return await self._owner_op(request.task_id, Op.PUSH_GET, request, call)

    async def list_push_configs(
        self, request: a2a_pb2.ListTaskPushNotificationConfigsRequest, call: CallInfo
    ) -> a2a_pb2.ListTaskPushNotificationConfigsResponse:
        return await self._owner_op(request.task_id, Op.PUSH_LIST, request, call)

    async def delete_push_config(
        self, request: a2a_pb2.DeleteTaskPushNotificationConfigRequest, call: CallInfo
    ) -> None:
        await self._owner_op(request.task_id, Op.PUSH_DELETE, request, call)

    async def extended_card(
        self, request: a2a_pb2.GetExtendedAgentCardRequest, call: CallInfo
    ) -> a2a_pb2.AgentCard:
        return await self._call(self._pick(), Op.EXTENDED_CARD, request, call)


def _cause(err: RayTaskError) -> BaseException:
    """The exception the agent code raised, or an internal error that names it."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, A2AError | ActorchestraError):
        return cause
    logger.error("agent actor raised %r", cause or err)
    return InternalError(message=f"agent failed: {type(cause).__name__}: {cause}")
