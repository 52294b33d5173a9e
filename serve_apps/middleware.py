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

from starlette.exceptions import HTTPException

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSONRPC_PATH = re.compile(r"^/a2a/[^/]+/?$")
_JSON_TYPES = ("application/json", "application/a2a+json")


class _TooLarge(HTTPException):
    """Raised from `receive` mid-body; handlers that read the body see an HTTP 413."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=413, detail=detail)


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


def error_payload(path: str, status: int, code: int, message: str) -> dict[str, Any]:
    """A JSON-RPC error for the JSON-RPC endpoint, the HTTP+JSON error body elsewhere."""
    if _JSONRPC_PATH.match(path):
        return {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    return {
        "error": {"code": status, "status": _STATUS_NAMES.get(status, "ERROR"), "message": message}
    }


_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
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
        path: str = scope["path"]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        limit = self.max_body_bytes
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await send_json(
                send, 413, error_payload(path, 413, -32600, _too_large(int(length), limit))
            )
            return
        if path.startswith("/a2a/"):
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype not in _JSON_TYPES:
                shown = ctype or "none"
                await send_json(
                    send,
                    415,
                    error_payload(
                        path,
                        415,
                        -32600,
                        f"Content-Type {shown} is not accepted; send application/json",
                    ),
                )
                return

        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(_too_large(seen, limit))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await send_json(
                    send, 413, error_payload(path, 413, -32600, _too_large(seen, limit))
                )


def _too_large(size: int, limit: int) -> str:
    return (
        f"request body is over {limit} bytes (at least {size}); "
        "send less, or raise ACTORCHESTRA_MAX_BODY_BYTES"
    )
