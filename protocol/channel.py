"""A direct, framed request channel between the ingress and an agent actor (or the planner).

Ray actor calls cost 2 to 3 ms of CPU on each side here, more than forwarding an A2A
request should. The data path therefore uses one long-lived TCP connection per
(caller, actor replica): requests are pipelined, answered out of order, and streams
flow as item frames. Ray still owns the actor (lifecycle, name, restarts); the channel
address and its secret token are handed out over a Ray call, so only Ray-authenticated
callers can connect.

The registry's health probe travels here too (`Op.PING`), for the same reason: a ping
every second to every replica is a steady cost while nothing else happens. So do the task
API's submissions and event streams to the planner (`Op.TASK_SUBMIT`, `Op.TASK_EVENTS`,
JSON payloads): on the path of every task, where a Ray call took 3-5 ms to arrive.

Frame: `!IIBB` header (payload length, request id, op, flags) + payload.
Request payload: u16 length + CallInfo JSON, then the packed proto (u8 length + type
name, proto bytes); PING carries no proto. Response flags: OK (one result), ITEM / END
(stream), ERR (error JSON). A result is packed the same way: an A2A proto, or for PING
the replica's `ReplicaStatus` as JSON under the type name `STATUS_TYPE`, a name
`codec.unpack` refuses, so the two cannot be confused.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from enum import IntEnum

from a2a.utils import errors as a2a_errors
from pydantic import BaseModel

from actorchestra.protocol import errors as runtime_errors
from actorchestra.protocol.codec import Packed
from actorchestra.protocol.context import CallInfo

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("!IIBB")
_MAX_FRAME = 64 * 1024 * 1024


class Op(IntEnum):
    HELLO = 0
    SEND = 1
    STREAM = 2
    GET = 3
    LIST = 4
    CANCEL = 5
    SUBSCRIBE = 6
    PUSH_CREATE = 7
    PUSH_GET = 8
    PUSH_LIST = 9
    PUSH_DELETE = 10
    EXTENDED_CARD = 11
    CLOSE_STREAM = 12  # the caller stopped reading a stream: stop producing it
    PING = 13  # the replica's status: the registry's health and load signal
    # The task API's hot path to the planner (`actors.planner.actor`), JSON payloads:
    TASK_SUBMIT = 14  # a task body in, its id out
    TASK_EVENTS = 15  # a task's events, one item per batch


STREAMING_OPS = {Op.STREAM, Op.SUBSCRIBE, Op.TASK_EVENTS}


class Flag(IntEnum):
    OK = 0
    ITEM = 1
    END = 2
    ERR = 3


class ChannelClosedError(ConnectionError):
    """The connection to the actor is gone (actor died or restarted)."""


class ReplicaStatus(BaseModel):
    """What a replica answers to PING: the registry's health and load signal."""

    agent: str
    replica: int
    in_flight: int
    tasks: int
    pid: int
    started_at: float


STATUS_TYPE = "actorchestra.ReplicaStatus"


def pack_status(status: ReplicaStatus) -> Packed:
    return (STATUS_TYPE, status.model_dump_json().encode())


def unpack_status(packed: Packed | None) -> ReplicaStatus:
    if packed is None or packed[0] != STATUS_TYPE:
        raise ValueError(f"not a replica status: {packed[0] if packed else None!r}")
    return ReplicaStatus.model_validate_json(packed[1])


# -- encoding ---------------------------------------------------------------------------


def _encode_request(call: CallInfo, packed: Packed | None) -> bytes:
    info = json.dumps(
        [call.user, call.authenticated, call.tenant, sorted(call.extensions), call.method]
    ).encode()
    out = struct.pack("!H", len(info)) + info
    if packed is not None:
        name = packed[0].encode()
        out += struct.pack("!B", len(name)) + name + packed[1]
    return out


def _decode_request(payload: bytes) -> tuple[CallInfo, Packed | None]:
    (n,) = struct.unpack_from("!H", payload)
    user, authenticated, tenant, extensions, method = json.loads(payload[2 : 2 + n])
    call = CallInfo(user, authenticated, tenant, frozenset(extensions), method)
    rest = payload[2 + n :]
    if not rest:
        return call, None
    m = rest[0]
    return call, (rest[1 : 1 + m].decode(), bytes(rest[1 + m :]))


def _encode_packed(packed: Packed | None) -> bytes:
    if packed is None:
        return b""
    name = packed[0].encode()
    return struct.pack("!B", len(name)) + name + packed[1]


def _decode_packed(payload: bytes) -> Packed | None:
    if not payload:
        return None
    m = payload[0]
    return payload[1 : 1 + m].decode(), bytes(payload[1 + m :])


def encode_error(err: BaseException) -> bytes:
    if isinstance(err, a2a_errors.A2AError):
        body = {"kind": "a2a", "type": type(err).__name__, "message": err.message, "data": err.data}
    elif isinstance(err, runtime_errors.ActorchestraError):
        body = {"kind": "runtime", "type": type(err).__name__, "message": err.message}
    else:
        body = {"kind": "internal", "type": type(err).__name__, "message": str(err)}
    return json.dumps(body, default=str).encode()


def decode_error(payload: bytes) -> Exception:
    body = json.loads(payload)
    message = body.get("message") or ""
    if body.get("kind") == "a2a":
        cls = getattr(a2a_errors, body.get("type", ""), None)
        if isinstance(cls, type) and issubclass(cls, a2a_errors.A2AError):
            return cls(message=message, data=body.get("data"))
    if body.get("kind") == "runtime":
        cls = getattr(runtime_errors, body.get("type", ""), None)
        if isinstance(cls, type) and issubclass(cls, runtime_errors.ActorchestraError):
            return cls(message)
    return a2a_errors.InternalError(message=f"agent failed: {body.get('type')}: {message}")


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, int, int, bytes]:
    header = await reader.readexactly(_HEADER.size)
    length, req_id, op, flags = _HEADER.unpack(header)
    if length > _MAX_FRAME:
        raise ChannelClosedError(f"frame of {length} bytes is over the limit")
    return req_id, op, flags, await reader.readexactly(length)


def _frame(req_id: int, op: int, flags: int, payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), req_id, op, flags) + payload


# -- server -----------------------------------------------------------------------------

Handler = Callable[[Op, Packed | None, CallInfo], Awaitable[Packed | None]]
StreamHandler = Callable[[Op, Packed, CallInfo], AsyncIterator[Packed]]


class ChannelServer:
    """Serves requests on behalf of one agent actor; each request runs as its own task."""

    def __init__(self, handler: Handler, stream_handler: StreamHandler, token: str) -> None:
        self._handler = handler
        self._stream_handler = stream_handler
        self._token = token.encode()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self, host: str) -> int:
        self._server = await asyncio.start_server(self._serve, host, 0)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop serving: no new connections, and the open ones are closed, as if the
        actor had died (its callers see the channel close)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for writer in list(self._connections):
            writer.close()

    def _track(self, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        streams: dict[int, asyncio.Task[None]] = {}
        self._connections.add(writer)
        try:
            req_id, op, _, payload = await _read_frame(reader)
            if op != Op.HELLO or payload != self._token:
                logger.warning("channel: refused a connection with a wrong token")
                return
            writer.write(_frame(req_id, Op.HELLO, Flag.OK, b""))
            while True:
                req_id, op, _, payload = await _read_frame(reader)
                if op == Op.CLOSE_STREAM:
                    task = streams.pop(req_id, None)
                    if task is not None:
                        task.cancel()
                    continue
                call, packed = _decode_request(payload)
                if op in STREAMING_OPS:
                    assert packed is not None
                    streams[req_id] = self._track(
                        self._run_stream(writer, req_id, Op(op), packed, call, streams),
                        f"channel-stream-{req_id}",
                    )
                else:
                    self._track(
                        self._run_one(writer, req_id, Op(op), packed, call), f"channel-{req_id}"
                    )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._connections.discard(writer)
            for task in streams.values():
                task.cancel()
            writer.close()

    async def _run_one(
        self,
        writer: asyncio.StreamWriter,
        req_id: int,
        op: Op,
        packed: Packed | None,
        call: CallInfo,
    ) -> None:
        try:
            result = await self._handler(op, packed, call)
        except Exception as e:  # reported to the caller; the channel stays up
            writer.write(_frame(req_id, op, Flag.ERR, encode_error(e)))
        else:
            writer.write(_frame(req_id, op, Flag.OK, _encode_packed(result)))
        await _drain(writer)

    async def _run_stream(
        self,
        writer: asyncio.StreamWriter,
        req_id: int,
        op: Op,
        packed: Packed,
        call: CallInfo,
        streams: dict[int, asyncio.Task[None]],
    ) -> None:
        stream = self._stream_handler(op, packed, call)
        try:
            async for item in stream:
                writer.write(_frame(req_id, op, Flag.ITEM, _encode_packed(item)))
                await _drain(writer)
            writer.write(_frame(req_id, op, Flag.END, b""))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # reported to the caller as the end of the stream
            writer.write(_frame(req_id, op, Flag.ERR, encode_error(e)))
        finally:
            streams.pop(req_id, None)
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        await _drain(writer)


class LazyChannel:
    """An actor's channel server, started on the first call for its address.

    What the actor hands its callers over a Ray call (`open_channel`): host, port and a
    secret token made for this server. Concurrent first calls start one server.
    """

    def __init__(self, handler: Handler, stream_handler: StreamHandler) -> None:
        self._handler = handler
        self._stream_handler = stream_handler
        self._lock = asyncio.Lock()
        self._open: tuple[ChannelServer, str, int, str] | None = None

    async def address(self, host: str) -> tuple[str, int, str]:
        """Start the server on `host` (once); its host, port and token."""
        async with self._lock:
            if self._open is None:
                token = secrets.token_hex(16)
                server = ChannelServer(self._handler, self._stream_handler, token)
                self._open = (server, host, await server.start(host), token)
        _, host, port, token = self._open
        return host, port, token

    async def close(self) -> None:
        """Stop the server if it started (see `ChannelServer.close`)."""
        if self._open is not None:
            await self._open[0].close()


async def _drain(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        await writer.drain()


# -- client -----------------------------------------------------------------------------


class CorkedWriter:
    """Frames written in one event-loop turn leave together, at the end of that turn.

    A planner's sweep sends a batch message to each of 50 replicas in one loop turn;
    written one by one, each frame wakes its agent at once, and on a small machine the
    woken agents take the CPU from the sweep before it has sent the rest (session 9: 50
    sends took 100-170 ms of wall time for 12 ms of CPU). Corked, the sweep's frames go
    out after it, and several frames for one connection go in one write. Past
    `limit` bytes pending, the frames go at once, so a long turn does not hoard them.
    """

    __slots__ = ("_limit", "_pending", "_size", "writer")

    def __init__(self, writer: asyncio.StreamWriter, limit: int = 256 * 1024) -> None:
        self.writer = writer
        self._limit = limit
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        self._pending.append(data)
        self._size += len(data)
        if self._size >= self._limit:
            self.flush()
        elif len(self._pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop running here (a stream closed late): no turn
                self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        if not self.writer.is_closing():
            self.writer.write(data)


class ChannelClient:
    """One pipelined connection to an agent actor's channel."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._waiters: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self._streams: dict[int, asyncio.Queue[tuple[int, bytes]]] = {}
        self._out = CorkedWriter(writer)
        self._closed: BaseException | None = None
        self._reader_task = asyncio.create_task(self._read_loop(), name="channel-reader")

    @classmethod
    async def connect(
        cls, host: str, port: int, token: str, connect_timeout_s: float = 5.0
    ) -> ChannelClient:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), connect_timeout_s
        )
        writer.write(_frame(0, Op.HELLO, Flag.OK, token.encode()))
        _, op, flags, _ = await asyncio.wait_for(_read_frame(reader), connect_timeout_s)
        if op != Op.HELLO or flags != Flag.OK:
            writer.close()
            raise ChannelClosedError("the agent refused the channel handshake")
        return cls(reader, writer)

    @property
    def closed(self) -> bool:
        return self._closed is not None

    async def close(self) -> None:
        self._out.flush()
        self._writer.close()
        self._reader_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader_task

    async def _read_loop(self) -> None:
        try:
            while True:
                req_id, _, flags, payload = await _read_frame(self._reader)
                queue = self._streams.get(req_id)
                if queue is not None:
                    queue.put_nowait((flags, payload))
                    continue
                future = self._waiters.pop(req_id, None)
                if future is not None and not future.done():
                    future.set_result((flags, payload))
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as e:
            self._fail(ChannelClosedError(f"channel closed: {e!r}"))
        except asyncio.CancelledError:
            self._fail(ChannelClosedError("channel closed"))
            raise

    def _fail(self, err: BaseException) -> None:
        self._closed = err
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(err)
        self._waiters.clear()
        for queue in self._streams.values():
            queue.put_nowait((-1, b""))

    def _send(self, req_id: int, op: Op, payload: bytes) -> None:
        if self._closed is not None:
            raise ChannelClosedError(str(self._closed))
        self._out.write(_frame(req_id, op, Flag.OK, payload))

    async def call(self, op: Op, packed: Packed | None, call: CallInfo) -> Packed | None:
        req_id = next(self._ids)
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._waiters[req_id] = future
        try:
            self._send(req_id, op, _encode_request(call, packed))
            flags, payload = await future
        finally:
            self._waiters.pop(req_id, None)
        if flags == Flag.ERR:
            raise decode_error(payload)
        return _decode_packed(payload)

    async def stream(self, op: Op, packed: Packed, call: CallInfo) -> AsyncIterator[Packed]:
        req_id = next(self._ids)
        queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._streams[req_id] = queue
        finished = False
        try:
            self._send(req_id, op, _encode_request(call, packed))
            while True:
                flags, payload = await queue.get()
                if flags == -1:
                    raise ChannelClosedError(str(self._closed))
                if flags == Flag.ERR:
                    finished = True
                    raise decode_error(payload)
                if flags == Flag.END:
                    finished = True
                    return
                item = _decode_packed(payload)
                if item is not None:
                    yield item
        finally:
            self._streams.pop(req_id, None)
            if not finished and self._closed is None:
                with contextlib.suppress(ChannelClosedError):
                    self._send(req_id, Op.CLOSE_STREAM, b"")
