"""`AgentEndpoint` over an agent's Ray actor replicas.

Routing: a new message goes to the healthy replica with the fewest calls in flight
from here, or, when it names a context (a conversation), to the replica that context
hashes to, where its earlier turns are; anything about an existing task goes to the
replica named in its id (`r<replica>-<uuid>`), so any ingress replica reaches the
owner without a lookup.
ListTasks asks every replica and merges by a2a-sdk's list order and cursor.

Transport: A2A operations travel over each replica's direct channel
(`protocol.channel`, kept by a `ReplicaChannel`), opened once through a Ray call; Ray
calls cost milliseconds of CPU each, the channel tens of microseconds. Failures enter
here and are translated here: an error raised by the agent arrives as its own
exception, a dead or restarting actor (refused connection, closed channel, Ray actor
errors) as `AgentUnavailableError`.
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

import ray
from a2a.types import a2a_pb2
from a2a.utils.errors import A2AError, InternalError, TaskNotFoundError
from a2a.utils.task import ListTasksCursor, encode_list_tasks_cursor
from google.protobuf.message import Message
from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError, RayTaskError

from actorchestra.actors.spec import actor_name
from actorchestra.protocol.channel import (
    ChannelClient,
    ChannelClosedError,
    Op,
    ReplicaStatus,
    unpack_status,
)
from actorchestra.protocol.codec import pack, unpack, unpack_optional
from actorchestra.protocol.context import CallInfo, replica_of_task
from actorchestra.protocol.endpoint import AgentEndpoint, Event
from actorchestra.protocol.errors import ActorchestraError, AgentUnavailableError

logger = logging.getLogger(__name__)

T = TypeVar("T")

_DOWN_FOR_S = 2.0  # after a failure, prefer other replicas for this long
_CONNECT_TIMEOUT_S = 2.0
_PROBE_CALL = CallInfo()  # a ping is nobody's call


class ChannelNotOpenedError(ConnectionError):
    """The replica did not hand out its channel in time: restarting, or its loop is blocked."""


_TRANSPORT_ERRORS = (
    ChannelClosedError,
    ChannelNotOpenedError,
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


class ReplicaChannel:
    """One replica's channel (or the planner's): opened through its actor handle on first
    use, and again whenever the last one closed (the actor died or restarted).

    Transport errors are raised as they are (or as `ChannelNotOpenedError`): what they
    mean is the caller's to say, a replica to avoid for the endpoint, an unhealthy one
    for the registry.
    """

    def __init__(
        self,
        handle: Any,
        connect_timeout_s: float = _CONNECT_TIMEOUT_S,
        named: tuple[str, str] | None = None,
    ) -> None:
        self.handle = handle
        self._connect_timeout_s = connect_timeout_s
        # (actor name, namespace): where to look for the replica that a deploy made in
        # place of a killed one, whose handle is dead for good
        self._named = named
        self._client: ChannelClient | None = None
        self._lock = asyncio.Lock()

    @property
    def lost(self) -> bool:
        """A channel was open and has closed since: its actor died (Ray may restart it)."""
        return self._client is not None and self._client.closed

    async def client(self) -> ChannelClient:
        client = self._client
        if client is not None and not client.closed:
            return client
        async with self._lock:
            if self._client is None or self._client.closed:
                self._client = await self._open()
            return self._client

    async def _open(self) -> ChannelClient:
        # A restarting actor would hold the Ray call until it is back; give up early so
        # the caller can go to another replica, or report this one as down.
        timeout = self._connect_timeout_s
        try:
            async with asyncio.timeout(timeout):
                try:
                    host, port, token = await self.handle.open_channel.remote()
                except ActorDiedError:
                    if not await self._found_again():
                        raise
                    host, port, token = await self.handle.open_channel.remote()
                return await ChannelClient.connect(host, port, token, timeout)
        except RayTaskError as e:
            raise _cause(e) from None
        except TimeoutError:
            raise ChannelNotOpenedError(
                f"no channel within {timeout:g}s (the actor is restarting, or its event loop "
                "is blocked)"
            ) from None

    async def _found_again(self) -> bool:
        """Whether an actor other than the dead one now has the replica's name (a
        deploy replaced it); the handle then points to it."""
        if self._named is None:
            return False
        name, namespace = self._named
        try:
            handle = await asyncio.to_thread(ray.get_actor, name, namespace)
        except ValueError:
            return False
        if handle._actor_id == self.handle._actor_id:  # no public accessor for the id
            return False
        self.handle = handle
        return True

    async def ping(self) -> ReplicaStatus:
        """The replica's status, asked over the channel (tens of microseconds, where a
        Ray call costs a millisecond on each side). A replica whose loop is blocked never
        answers: the caller bounds the wait."""
        client = await self.client()
        return unpack_status(await client.call(Op.PING, None, _PROBE_CALL))

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()


class LocalAgentEndpoint(AgentEndpoint):
    """The A2A operations of one local agent, spread over its actor replicas."""

    def __init__(self, name: str, replicas: list[Any], namespace: str | None = None) -> None:
        """`namespace`: the agent's, where a replica a deploy replaced is found again by
        its name (without it, a replica is reached only through the handle given)."""
        self.name = name
        n = len(replicas)
        self._in_flight = [0] * n
        self._down_until = [0.0] * n
        self._channels = [
            ReplicaChannel(
                handle,
                named=None if namespace is None else (actor_name(name, i), namespace),
            )
            for i, handle in enumerate(replicas)
        ]
        self._rr = itertools.count()

    # -- transport --------------------------------------------------------------------

    def _unavailable(self, index: int, err: BaseException) -> AgentUnavailableError:
        self._down_until[index] = time.monotonic() + _DOWN_FOR_S
        logger.info("agent %s replica %d unavailable: %r", self.name, index, err)
        return AgentUnavailableError(
            f"agent {self.name!r} replica {index} is not reachable (restarting or stopped); "
            "retry in a few seconds"
        )

    def take_channels(self, old: LocalAgentEndpoint) -> None:
        """Reuse `old`'s open channels for the replicas both have (this endpoint replaces
        it after the agent's replica count changed); those of replicas it alone had go
        with their actors, which the deploy retired."""
        for index in range(min(len(self._channels), len(old._channels))):
            self._channels[index] = old._channels[index]

    async def connect_all(self) -> None:
        """Open every replica's channel now, so that no first message waits for one.

        A replica that cannot be reached is left for later (it is retried on use).
        """
        await asyncio.gather(
            *(channel.client() for channel in self._channels), return_exceptions=True
        )

    async def _call(self, index: int, op: Op, request: Message, call: CallInfo) -> Any:
        self._in_flight[index] += 1
        try:
            channel = await self._channels[index].client()
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
            channel = await self._channels[index].client()
            async for packed in channel.stream(op, pack(request), call):
                yield unpack(packed)
        except _TRANSPORT_ERRORS as e:
            raise self._unavailable(index, e) from None
        finally:
            self._in_flight[index] -= 1

    # -- routing ----------------------------------------------------------------------

    def _pick(self) -> int:
        now = time.monotonic()
        up = [i for i in range(len(self._channels)) if self._down_until[i] <= now]
        candidates = up or list(range(len(self._channels)))
        low = min(self._in_flight[i] for i in candidates)
        best = [i for i in candidates if self._in_flight[i] == low]
        return best[next(self._rr) % len(best)]

    def _for_context(self, context_id: str) -> int:
        """A conversation stays on one replica (its earlier turns live there), unless down."""
        if not context_id or len(self._channels) == 1:
            return self._pick()
        index = zlib.crc32(context_id.encode()) % len(self._channels)
        return index if self._down_until[index] <= time.monotonic() else self._pick()

    def _owner(self, task_id: str) -> int | None:
        index = replica_of_task(task_id)
        return index if index is not None and index < len(self._channels) else None

    async def _on_owner(self, task_id: str, call: Callable[[int], Awaitable[T]]) -> T:
        """Run `call(index)` on the task's owner; ids we did not mint are looked up."""
        owner = self._owner(task_id)
        if owner is not None:
            return await call(owner)
        for index in range(len(self._channels)):
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
            return unpack(await self._channels[index].handle.get_card.remote())
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
            if len(self._channels) == 1:
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
        if len(self._channels) == 1:
            return await self._call(0, Op.LIST, request, call)
        pages = await asyncio.gather(
            *(self._call(i, Op.LIST, request, call) for i in range(len(self._channels))),
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
