"""`RequestGuard`: oversize and mistyped requests are answered before any handler runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from actorchestra.serve_apps.middleware import RequestGuard, route_path

LIMIT = 1024


class Downstream:
    """A tiny Starlette app that records every request that reached it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []

        async def endpoint(request: Request) -> JSONResponse:
            body = await request.body()
            self.seen.append((request.method, request.url.path, len(body)))
            return JSONResponse({"ok": True, "bytes": len(body)})

        methods = ["GET", "POST", "PUT"]
        self.app = Starlette(
            routes=[
                Route("/a2a/{name}", endpoint, methods=methods),
                Route("/a2a/{name}/{rest:path}", endpoint, methods=methods),
                Route("/v1/{rest:path}", endpoint, methods=methods),
            ]
        )


@pytest.fixture
def downstream() -> Downstream:
    return Downstream()


@pytest.fixture
async def client(downstream: Downstream) -> AsyncIterator[httpx.AsyncClient]:
    guarded = RequestGuard(downstream.app, max_body_bytes=LIMIT)
    transport = httpx.ASGITransport(app=guarded)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress.test") as c:
        yield c


JSON = {"content-type": "application/json"}


async def test_oversize_jsonrpc_post_gets_a_jsonrpc_error(
    client: httpx.AsyncClient, downstream: Downstream
) -> None:
    r = await client.post("/a2a/x", content=b"x" * (LIMIT + 1), headers=JSON)
    assert r.status_code == 413
    body = r.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert body["error"]["code"] == -32600
    assert f"over {LIMIT} bytes" in body["error"]["message"]
    assert "ACTORCHESTRA_MAX_BODY_BYTES" in body["error"]["message"]
    assert downstream.seen == []


async def test_oversize_rest_post_gets_the_http_json_error(
    client: httpx.AsyncClient, downstream: Downstream
) -> None:
    r = await client.post("/a2a/x/message:send", content=b"x" * (LIMIT * 5), headers=JSON)
    assert r.status_code == 413
    error = r.json()["error"]
    assert error["code"] == 413
    assert error["status"] == "PAYLOAD_TOO_LARGE"
    assert f"at least {LIMIT * 5}" in error["message"]
    assert "jsonrpc" not in r.json()
    assert downstream.seen == []


async def test_jsonrpc_path_with_trailing_slash_is_jsonrpc(client: httpx.AsyncClient) -> None:
    r = await client.post("/a2a/x/", content=b"x" * (LIMIT + 1), headers=JSON)
    assert r.status_code == 413
    assert r.json()["jsonrpc"] == "2.0"


async def _chunks(total: int, size: int = 256) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


@pytest.mark.parametrize(("path", "jsonrpc"), [("/a2a/x", True), ("/a2a/x/message:send", False)])
async def test_streamed_body_without_content_length_is_cut_off(
    client: httpx.AsyncClient, downstream: Downstream, path: str, jsonrpc: bool
) -> None:
    request = client.build_request("POST", path, content=_chunks(LIMIT * 4), headers=JSON)
    assert "content-length" not in request.headers
    r = await client.send(request)
    assert r.status_code == 413
    body = r.json()
    if jsonrpc:
        assert body["jsonrpc"] == "2.0" and body["error"]["code"] == -32600
    else:
        assert body["error"]["status"] == "PAYLOAD_TOO_LARGE"
    assert f"over {LIMIT} bytes" in body["error"]["message"]
    assert downstream.seen == []  # the handler never ran


async def test_streamed_body_within_the_limit_passes_whole(
    client: httpx.AsyncClient, downstream: Downstream
) -> None:
    r = await client.post("/a2a/x", content=_chunks(LIMIT - 24, size=100), headers=JSON)
    assert r.status_code == 200
    assert r.json() == {"ok": True, "bytes": LIMIT - 24}
    assert downstream.seen == [("POST", "/a2a/x", LIMIT - 24)]


async def test_a_bare_asgi_app_never_sees_an_oversize_streamed_body() -> None:
    reached: list[bool] = []

    async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        reached.append(True)
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read it all"})

    transport = httpx.ASGITransport(app=RequestGuard(raw_app, max_body_bytes=LIMIT))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress.test") as c:
        r = await c.post("/a2a/x", content=_chunks(LIMIT * 2), headers=JSON)
        assert r.status_code == 413
        assert r.json()["jsonrpc"] == "2.0"
        assert reached == []
        r = await c.post("/a2a/x", content=_chunks(LIMIT // 2), headers=JSON)
        assert (r.status_code, r.content) == (200, b"read it all")


async def test_a_bodyless_a2a_post_needs_no_content_type(
    client: httpx.AsyncClient, downstream: Downstream
) -> None:
    # The official client's `tasks/{id}:subscribe` is a POST without a body or a type.
    r = await client.post("/a2a/x/tasks/t1:subscribe")
    assert r.status_code == 200
    assert downstream.seen == [("POST", "/a2a/x/tasks/t1:subscribe", 0)]


@pytest.mark.parametrize(("path", "jsonrpc"), [("/a2a/x", True), ("/a2a/x/message:send", False)])
async def test_non_json_a2a_post_is_415(
    client: httpx.AsyncClient, downstream: Downstream, path: str, jsonrpc: bool
) -> None:
    r = await client.post(path, content=b"hello", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    body = r.json()
    message = body["error"]["message"]
    assert "Content-Type text/plain is not accepted" in message
    if jsonrpc:
        assert body["jsonrpc"] == "2.0" and body["error"]["code"] == -32600
    else:
        assert body["error"]["status"] == "UNSUPPORTED_MEDIA_TYPE"
    assert downstream.seen == []


async def test_a2a_post_without_content_type_is_415(client: httpx.AsyncClient) -> None:
    r = await client.post("/a2a/x", content=b"{}")
    assert r.status_code == 415
    assert "Content-Type none" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "ctype", ["application/json", "application/json; charset=utf-8", "application/a2a+json"]
)
async def test_json_within_the_limit_passes(
    client: httpx.AsyncClient, downstream: Downstream, ctype: str
) -> None:
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {}}'
    r = await client.post("/a2a/x", content=body, headers={"content-type": ctype})
    assert r.status_code == 200
    assert r.json() == {"ok": True, "bytes": len(body)}
    assert downstream.seen == [("POST", "/a2a/x", len(body))]


async def test_exactly_the_limit_passes(client: httpx.AsyncClient, downstream: Downstream) -> None:
    r = await client.post("/a2a/x/message:send", content=b"x" * LIMIT, headers=JSON)
    assert r.status_code == 200
    assert downstream.seen == [("POST", "/a2a/x/message:send", LIMIT)]


async def test_get_passes_untouched(client: httpx.AsyncClient, downstream: Downstream) -> None:
    r = await client.get("/a2a/x/.well-known/agent-card.json")
    assert r.status_code == 200
    assert downstream.seen == [("GET", "/a2a/x/.well-known/agent-card.json", 0)]


async def test_content_type_is_only_checked_under_a2a(
    client: httpx.AsyncClient, downstream: Downstream
) -> None:
    r = await client.post(
        "/v1/notes", content=b"plain text", headers={"content-type": "text/plain"}
    )
    assert r.status_code == 200
    assert downstream.seen == [("POST", "/v1/notes", len(b"plain text"))]
    r = await client.put("/v1/notes", content=b"x" * (LIMIT + 1))
    assert r.status_code == 413
    assert r.json()["error"]["status"] == "PAYLOAD_TOO_LARGE"


async def test_under_a_route_prefix_the_a2a_paths_are_still_known(downstream: Downstream) -> None:
    """Serve's `route_prefix` (uvicorn's `--root-path`) stays in `path`; `root_path` names it."""
    guarded = RequestGuard(downstream.app, max_body_bytes=LIMIT)
    transport = httpx.ASGITransport(app=guarded, root_path="/auth")
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress.test") as c:
        r = await c.post("/auth/a2a/x", content=b"hello", headers={"content-type": "text/plain"})
        assert r.status_code == 415 and r.json()["jsonrpc"] == "2.0"
        r = await c.post("/auth/a2a/x", content=b"x" * (LIMIT + 1), headers=JSON)
        assert r.status_code == 413 and r.json()["jsonrpc"] == "2.0"
        r = await c.post("/auth/v1/notes", content=b"plain", headers={"content-type": "text/plain"})
        assert r.status_code == 200
    assert downstream.seen == [("POST", "/auth/v1/notes", 5)]


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({"path": "/a2a/x"}, "/a2a/x"),
        ({"path": "/auth/a2a/x", "root_path": "/auth"}, "/a2a/x"),
        ({"path": "/auth", "root_path": "/auth"}, ""),
        ({"path": "/authx/a2a/x", "root_path": "/auth"}, "/authx/a2a/x"),  # not under it
        # inside a Mount, `root_path` has grown; the app's own root is `app_root_path`
        (
            {"path": "/auth/a2a/x/t/a2a/y", "root_path": "/auth/a2a/x/t", "app_root_path": "/auth"},
            "/a2a/x/t/a2a/y",
        ),
    ],
)
def test_route_path_is_the_path_under_the_apps_root(scope: dict[str, str], expected: str) -> None:
    assert route_path(scope) == expected
