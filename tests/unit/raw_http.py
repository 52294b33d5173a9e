"""A bare HTTP/1.1 server on asyncio streams, for the unit tests of the SSRF guards.

`httpx.MockTransport` would hide what those tests check: which address a request
really reached, and whether a redirect to a refused address was followed. This server
listens on a real socket, records the head of every request it is sent, and answers
with whatever the test's route says; each connection carries one request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RequestHead:
    """The request line and headers of one request (header names in lower case)."""

    method: str
    path: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Reply:
    """What a route answers: `status` as in `200 OK`; `before` is awaited first.

    Content-Length and `Connection: close` are added to `headers`.
    """

    status: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    before: Callable[[], Awaitable[object]] | None = None


Route = Callable[[RequestHead], Reply]


@dataclass
class RawHttpServer:
    """The server as a test sees it: where it listens, and every request that reached it."""

    port: int = 0
    requests: list[RequestHead] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


def parse_head(raw: bytes) -> RequestHead:
    request_line, *lines = raw.decode("latin-1").split("\r\n")
    method, path, _version = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return RequestHead(method, path, headers)


@contextlib.asynccontextmanager
async def raw_http_server(route: Route, host: str = "127.0.0.1") -> AsyncIterator[RawHttpServer]:
    """Serve `route` on `host` (a free port) until the block ends.

    On the way out it stops listening and waits for the requests still being answered;
    a route whose `before` waits on an event must have it set by then.
    """
    state = RawHttpServer()
    answering: set[asyncio.Task[object]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        answering.add(task)
        try:
            head = parse_head(await reader.readuntil(b"\r\n\r\n"))
            state.requests.append(head)
            reply = route(head)
            if reply.before is not None:
                await reply.before()
            lines = [f"HTTP/1.1 {reply.status}", *(f"{k}: {v}" for k, v in reply.headers.items())]
            lines += [f"Content-Length: {len(reply.body)}", "Connection: close", "", ""]
            writer.write("\r\n".join(lines).encode("latin-1") + reply.body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            answering.discard(task)

    server = await asyncio.start_server(handle, host, 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()
        await asyncio.gather(*answering)
