"""ASGI guards in front of every route: body size and content type.

They answer before any handler runs, so an oversize or mistyped request costs
nothing downstream, and the answer is the protocol's error shape: a JSON-RPC error
for the JSON-RPC endpoint, the HTTP+JSON error body elsewhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import JSONResponse

from actorchestra.protocol.errors import ActorchestraError, error_body

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSONRPC_PATH = re.compile(r"^/a2a/[^/]+/?$")
_JSON_TYPES = ("application/json", "application/a2a+json")


async def send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def route_path(scope: Scope) -> str:
    """The path under the app's root: `/a2a/...`, `/v1/...`, whatever prefix it is served at.

    Under a Serve `route_prefix` (or uvicorn's `--root-path`) `path` still starts with
    the prefix, which the app's own routes do not name. The app's root is Starlette's
    `app_root_path` once a `Mount` has lengthened `root_path` for its sub-routes.
    """
    path: str = scope["path"]
    root: str = scope.get("app_root_path", scope.get("root_path", ""))
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


def error_payload(scope: Scope, status: int, code: int, message: str) -> dict[str, Any]:
    """A JSON-RPC error for the JSON-RPC endpoint, the HTTP+JSON error body elsewhere.

    Which endpoint the request is for is read from its route path (`route_path`), not
    the URL's: under a route prefix the two differ.
    """
    if _JSONRPC_PATH.match(route_path(scope)):
        return {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    return {
        "error": {"code": status, "status": _STATUS_NAMES.get(status, "ERROR"), "message": message}
    }


def runtime_error_response(exc: ActorchestraError) -> JSONResponse:
    """The HTTP answer to a runtime error raised by a route (its status, from the table)."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    return JSONResponse(error_body(exc), status_code=exc.http_status, headers=headers)


_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    503: "UNAVAILABLE",
}


class RequestGuard:
    """Refuses bodies over `max_body_bytes` (413) and non-JSON A2A posts (415)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        limit = self.max_body_bytes
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await send_json(
                send, 413, error_payload(scope, 413, -32600, _too_large(int(length), limit))
            )
            return
        if length is None:
            # No declared length (a chunked body): read it here, up to the limit, so an
            # oversize body gets the same 413 before any handler runs. A handler meeting
            # the overflow itself would answer in its own way (a2a-sdk's REST routes
            # turn any exception into a 500).
            body = await _read_body(receive, limit)
            if body is None:
                return  # the client went away
            if isinstance(body, int):
                await send_json(
                    send, 413, error_payload(scope, 413, -32600, _too_large(body, limit))
                )
                return
            receive = _replay(body, receive)
            has_body = bool(body)
        else:
            has_body = length != "0"  # the HTTP server holds the body to this length
        # A body-less POST (the official client's `tasks/{id}:subscribe`) has no type.
        if path.startswith("/a2a/") and has_body:
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype not in _JSON_TYPES:
                shown = ctype or "none"
                await send_json(
                    send,
                    415,
                    error_payload(
                        scope,
                        415,
                        -32600,
                        f"Content-Type {shown} is not accepted; send application/json",
                    ),
                )
                return
        await self.app(scope, receive, send)


async def _read_body(receive: Receive, limit: int) -> bytes | int | None:
    """The whole body; or the bytes seen once over `limit`; or None if the client left."""
    chunks: list[bytes] = []
    seen = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > limit:
            return seen
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the already-read body over once, then defers to the server."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


def _too_large(size: int, limit: int) -> str:
    return (
        f"request body is over {limit} bytes (at least {size}); "
        "send less, or raise ACTORCHESTRA_MAX_BODY_BYTES"
    )
