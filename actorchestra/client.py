"""The Python client of the task API.

    async with Client("http://127.0.0.1:8000") as client:
        task = await client.run("research X and then write a summary",
                                on_event=lambda e: print(e["kind"], e["data"]))
        print(task["state"], task["result"])

`events` follows the live stream and, if the connection drops, reconnects with
`Last-Event-ID` so no event is lost or repeated; while the runtime answers 503 (its
planner restarting) it retries, with the same back-off. A task that was running in a
planner that stopped ends with a final event in state `failed` ("interrupted: ...").

A runtime with auth (`ACTORCHESTRA_AUTH_TOKENS`) takes the caller from a bearer token:
`Client(url, token=...)`, or `ACTORCHESTRA_TOKEN` in the environment (or `.env`) when
`token` is left out. Every request carries it as `Authorization: Bearer <token>`; a
refused one raises `ClientError` with status 401 (no token, or one the runtime does not
know) or 403.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from pydantic import SecretStr

from actorchestra.actors.json_codec import json_loads
from actorchestra.settings import ClientSettings

logger = logging.getLogger(__name__)

OnEvent = Callable[[dict[str, Any]], Awaitable[None] | None]
RECONNECTS = 8  # retries in a row of a dropped event stream or a 503 (about 25 s)


class ClientError(Exception):
    """The runtime refused a request; `status` is the HTTP status, `message` its reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class Client:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        http: httpx.AsyncClient | None = None,
        *,
        token: str | SecretStr | None = None,
    ) -> None:
        """`token`: the bearer token; None reads ACTORCHESTRA_TOKEN, a blank one sends none.

        A given `http` client is used as it is, its own headers included; the token is
        added to each request, not to that client.
        """
        self.base_url = base_url.rstrip("/")
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None))
        if token is None:
            token = ClientSettings().token
        elif isinstance(token, str):
            token = SecretStr(token) if token.strip() else None
        self._token: SecretStr | None = token

    @property
    def has_token(self) -> bool:
        """Whether requests carry a bearer token (the token itself is never shown)."""
        return self._token is not None

    def _auth(self) -> dict[str, str]:
        return bearer_headers(self._token)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        r = await self._http.request(
            method, f"{self.base_url}{path}", headers=self._auth(), **kwargs
        )
        if r.status_code >= 400:
            raise ClientError(r.status_code, response_reason(r))
        return r.json() if r.content else None

    async def submit(
        self,
        input: str,
        *,
        workflow: dict[str, Any] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        **options: Any,
    ) -> str:
        """Submit a task; returns its id at once."""
        body: dict[str, Any] = {"input": input, **options}
        for key, value in (
            ("workflow", workflow),
            ("user_id", user_id),
            ("session_id", session_id),
        ):
            if value is not None:
                body[key] = value
        return (await self._json("POST", "/v1/tasks", json=body))["task_id"]

    async def get(self, task_id: str) -> dict[str, Any]:
        return await self._json("GET", f"/v1/tasks/{task_id}")

    async def list(self, **filters: Any) -> dict[str, Any]:
        params = {k: v for k, v in filters.items() if v is not None}
        return await self._json("GET", "/v1/tasks", params=params)

    async def cancel(self, task_id: str) -> dict[str, Any]:
        return await self._json("POST", f"/v1/tasks/{task_id}/cancel")

    async def delete(self, task_id: str) -> None:
        await self._json("DELETE", f"/v1/tasks/{task_id}")

    async def events(
        self, task_id: str, after: int = 0, reconnects: int = RECONNECTS
    ) -> AsyncIterator[dict[str, Any]]:
        """The task's events from after `after` until its final one, resuming on drops.

        A dropped connection, or a 503 while the runtime's planner restarts, is retried
        up to `reconnects` times in a row (back-off 0.4 s doubling to 5 s: about 25 s
        with the default), resuming after the last event received.
        """
        last, retry = after, _Retry(reconnects)
        while True:
            try:
                async for event in self._sse(task_id, last):
                    last = event["seq"]
                    retry.succeeded()
                    yield event
                    if event["kind"] == "final":
                        return
                return  # the stream ended without a final event: the task is gone
            except (httpx.TransportError, httpx.RemoteProtocolError, ClientError) as e:
                await retry.wait_or_raise(e)
                logger.info("event stream dropped (%r); resuming after %d", e, last)

    async def _sse(self, task_id: str, after: int) -> AsyncIterator[dict[str, Any]]:
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(after), **self._auth()}
        url = f"{self.base_url}/v1/tasks/{task_id}/events"
        async with self._http.stream("GET", url, headers=headers) as r:
            if r.status_code >= 400:
                await r.aread()
                raise ClientError(r.status_code, response_reason(r))
            async for data in sse_data(r.aiter_bytes()):
                yield json_loads(data)

    async def wait(
        self,
        task_id: str,
        on_event: OnEvent | None = None,
        timeout_s: float | None = None,
        reconnects: int = RECONNECTS,
    ) -> dict[str, Any]:
        """Follow the task to its end, calling `on_event` for each event; returns the task.

        `reconnects` bounds the retries in a row, as for `events`: of the event stream,
        then of the read of the finished task."""

        async def follow() -> None:
            async for event in self.events(task_id, reconnects=reconnects):
                if on_event is not None:
                    maybe = on_event(event)
                    if asyncio.iscoroutine(maybe):
                        await maybe

        await asyncio.wait_for(follow(), timeout_s)
        retry = _Retry(reconnects)
        while True:
            try:
                return await self.get(task_id)
            except ClientError as e:
                await retry.wait_or_raise(e)

    async def run(
        self,
        input: str,
        on_event: OnEvent | None = None,
        timeout_s: float | None = None,
        reconnects: int = RECONNECTS,
        **submit_options: Any,
    ) -> dict[str, Any]:
        """Submit and wait: the finished task (its state, result, subtasks, usage)."""
        task_id = await self.submit(input, **submit_options)
        return await self.wait(task_id, on_event, timeout_s, reconnects)


class _Retry:
    """Retries in a row of one call: a dropped connection, or a 503 while the runtime's
    planner restarts, waits its back-off (0.4 s doubling to 5 s) and is tried again, up
    to `limit` times in a row; any other refusal is raised at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.failures = 0

    def succeeded(self) -> None:
        self.failures = 0

    async def wait_or_raise(self, error: Exception) -> None:
        if isinstance(error, ClientError) and error.status != 503:
            raise error
        self.failures += 1
        if self.failures > self.limit:
            raise error
        await asyncio.sleep(min(0.2 * 2**self.failures, 5.0))


async def sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The data of each Server-Sent Event in a byte stream, as the format defines it.

    An event is a block of lines ended by a blank line; its data is its `data:` lines'
    values (one leading space dropped) joined by line feeds, and an event without
    any is skipped, as is one the stream ends in the middle of. Lines end in LF, CRLF
    or CR. Framed from whole chunks rather than line by line (httpx's `aiter_lines`):
    half the CPU for a fan-out's 2,000 events, which a client on the same machine as
    the runtime takes from it.
    """
    parts: list[bytes] = []  # the stream since the last whole event, LF line ends only
    cr = False  # the last chunk ended in CR: a line end, or the first half of a CRLF
    stream = aiter(chunks)
    while True:
        chunk = await anext(stream, None)
        ended = chunk is None
        if ended:
            if not cr:
                return
            chunk = b""  # the CR held back ends a line, which may end an event
        if cr:
            chunk, cr = b"\r" + chunk, False
        if b"\r" in chunk:
            if chunk.endswith(b"\r") and not ended:
                chunk, cr = chunk[:-1], True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        split = parts and parts[-1].endswith(b"\n") and chunk.startswith(b"\n")
        if not split and b"\n\n" not in chunk:
            if chunk:
                parts.append(chunk)
            continue
        *events, rest = b"".join((*parts, chunk)).split(b"\n\n")
        parts = [rest] if rest else []
        for event in events:
            data = [line[5:] for line in event.split(b"\n") if line.startswith(b"data:")]
            if len(data) == 1:
                value = data[0]
                yield value[1:] if value.startswith(b" ") else value
            elif data:
                yield b"\n".join(d[1:] if d.startswith(b" ") else d for d in data)


def bearer_headers(token: SecretStr | None) -> dict[str, str]:
    """The Authorization header a token makes; none without one."""
    return {} if token is None else {"Authorization": f"Bearer {token.get_secret_value()}"}


def response_reason(r: httpx.Response) -> str:
    """The reason an error answer gives: the runtime's `error.message`, else its body."""
    try:
        body = r.json()
    except ValueError:
        return r.text[:500]
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if "detail" in body:
            return json.dumps(body["detail"])
    return json.dumps(body)[:500]
