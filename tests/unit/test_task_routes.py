"""The task API over ASGI, without Ray: whose tasks a caller may see, cancel, delete, stream.

The routes are mounted on a bare FastAPI app the way the ingress mounts them (auth
middleware, runtime error answers) in front of a real `Planner` in this process (real
agent actor classes, real DuckDB history under `tmp_path`), through the same calls the
Ray handle offers (`InProcessPlanner`). The WebSocket is driven as an ASGI server would
drive it, and once through uvicorn on a loopback socket, for what only a real handshake
shows.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from actorchestra.actors.planner.service import Planner
from actorchestra.actors.spec import AgentSpec
from actorchestra.serve_apps.identity import AuthTokens
from actorchestra.serve_apps.task_routes import add_task_routes
from tests.auth_helpers import assert_ws_token_refused, browser_subprotocols
from tests.unit.planner_helpers import InProcessPlanner, make_planner
from tests.unit.runtime_app import runtime_app, runtime_client, served

ANA_TOKEN = "ana-token-0123456789abcdef"
BOB_TOKEN = "bob-token-0123456789abcdef"
TOKENS = {"ana": SecretStr(ANA_TOKEN), "bob": SecretStr(BOB_TOKEN)}

SPECS = {
    "echo": AgentSpec(name="echo", cls="actorchestra.actors.examples:EchoAgent"),
    "sleeper": AgentSpec(name="sleeper", cls="actorchestra.actors.examples:SleepAgent"),
}


@pytest.fixture
async def planner(tmp_path: Path) -> AsyncIterator[Planner]:
    """A planner with `echo` and `sleeper`; its DuckDB store closed after the test."""
    planner = make_planner(tmp_path, SPECS)
    try:
        yield planner
    finally:
        await planner.store.close()


def make_app(planner: Planner, tokens: dict[str, SecretStr] | None) -> FastAPI:
    """The task routes as the ingress mounts them: auth first, runtime errors answered."""
    auth = AuthTokens(tokens)
    app = runtime_app(auth)
    add_task_routes(app, InProcessPlanner(planner), auth)
    return app


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def echo_task(**extra: Any) -> dict[str, Any]:
    steps = [{"agent": "echo", "input": "hello"}]
    return {"input": "say hello", "workflow": {"kind": "parallel", "steps": steps}, **extra}


def sleep_task(seconds: float) -> dict[str, Any]:
    steps = [{"agent": "sleeper", "input": str(seconds)}]
    return {"input": "sleep", "workflow": {"kind": "parallel", "steps": steps}}


async def submit(http: httpx.AsyncClient, token: str | None, body: dict[str, Any]) -> str:
    r = await http.post("/v1/tasks", json=body, headers=bearer(token))
    assert r.status_code == 202, r.text
    task_id: str = r.json()["task_id"]
    return task_id


async def finished(planner: Planner, task_id: str) -> dict[str, Any]:
    """The task once its final event is out (read in-process, past the routes)."""
    async for event in planner.stream_events(task_id):
        if event["kind"] == "final":
            break
    return await planner.get(task_id)


def sse_kinds(text: str) -> list[str]:
    return [
        line.removeprefix("event:").strip()
        for line in text.splitlines()
        if line.startswith("event:")
    ]


def not_found(r: httpx.Response, task_id: str) -> None:
    """The answer to a task that is not the caller's: an unknown id's, word for word."""
    assert r.status_code == 404, r.text
    assert r.json() == {
        "error": {"code": 404, "reason": "TASK_NOT_FOUND", "message": f"no task {task_id!r}"}
    }


# -- with auth: the token is the owner --------------------------------------------------------


async def test_with_auth_a_task_is_its_submitters_alone(planner: Planner) -> None:
    async with runtime_client(make_app(planner, TOKENS)) as http:
        ana_task = await submit(http, ANA_TOKEN, echo_task())
        bob_task = await submit(http, BOB_TOKEN, echo_task(user_id="bob"))
        assert (await finished(planner, ana_task))["user_id"] == "ana"  # from the token
        await finished(planner, bob_task)

        # Ana sees her task, its events, and only her tasks in the list.
        r = await http.get(f"/v1/tasks/{ana_task}", headers=bearer(ANA_TOKEN))
        assert r.status_code == 200 and r.json()["state"] == "completed"
        r = await http.get(f"/v1/tasks/{ana_task}/events", headers=bearer(ANA_TOKEN))
        assert r.status_code == 200 and sse_kinds(r.text)[-1] == "final"
        listed = (await http.get("/v1/tasks", headers=bearer(ANA_TOKEN))).json()["tasks"]
        assert [t["task_id"] for t in listed] == [ana_task]
        r = await http.get("/v1/tasks", params={"user_id": "ana"}, headers=bearer(ANA_TOKEN))
        assert [t["task_id"] for t in r.json()["tasks"]] == [ana_task]

        # To bob her task is an unknown id, whatever he does with it.
        unknown = "00000000-0000-0000-0000-000000000000"
        not_found(await http.get(f"/v1/tasks/{unknown}", headers=bearer(BOB_TOKEN)), unknown)
        not_found(await http.get(f"/v1/tasks/{ana_task}", headers=bearer(BOB_TOKEN)), ana_task)
        r = await http.get(f"/v1/tasks/{ana_task}/events", headers=bearer(BOB_TOKEN))
        not_found(r, ana_task)
        r = await http.post(f"/v1/tasks/{ana_task}/cancel", headers=bearer(BOB_TOKEN))
        not_found(r, ana_task)
        not_found(await http.delete(f"/v1/tasks/{ana_task}", headers=bearer(BOB_TOKEN)), ana_task)
        listed = (await http.get("/v1/tasks", headers=bearer(BOB_TOKEN))).json()["tasks"]
        assert [t["task_id"] for t in listed] == [bob_task]
        # Naming ana does not get him her list either.
        r = await http.get("/v1/tasks", params={"user_id": "ana"}, headers=bearer(BOB_TOKEN))
        assert r.status_code == 403
        assert "not the authenticated caller" in r.json()["error"]["message"]

        # Bob's attempts left ana's task as it was; she deletes it.
        assert (await planner.get(ana_task))["state"] == "completed"
        r = await http.delete(f"/v1/tasks/{ana_task}", headers=bearer(ANA_TOKEN))
        assert r.status_code == 204
        not_found(await http.get(f"/v1/tasks/{ana_task}", headers=bearer(ANA_TOKEN)), ana_task)


async def test_with_auth_every_task_route_needs_the_callers_token(planner: Planner) -> None:
    async with runtime_client(make_app(planner, TOKENS)) as http:
        task_id = await submit(http, ANA_TOKEN, echo_task())
        await finished(planner, task_id)
        for method, path in [
            ("POST", "/v1/tasks"),
            ("GET", "/v1/tasks"),
            ("GET", f"/v1/tasks/{task_id}"),
            ("GET", f"/v1/tasks/{task_id}/events"),
            ("POST", f"/v1/tasks/{task_id}/cancel"),
            ("DELETE", f"/v1/tasks/{task_id}"),
        ]:
            body = echo_task() if path == "/v1/tasks" and method == "POST" else None
            r = await http.request(method, path, json=body)
            assert r.status_code == 401, (method, path, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
            assert "ACTORCHESTRA_AUTH_TOKENS" in r.json()["error"]["message"]
            r = await http.request(method, path, json=body, headers=bearer("not-a-token"))
            assert r.status_code == 401 and "not-a-token" not in r.text
        assert (await planner.get(task_id))["state"] == "completed"  # nothing was deleted

        # Submitting for someone else is refused; nothing is queued.
        r = await http.post("/v1/tasks", json=echo_task(user_id="bob"), headers=bearer(ANA_TOKEN))
        assert r.status_code == 403
        assert "not the authenticated caller" in r.json()["error"]["message"]
        assert len((await planner.list())["tasks"]) == 1


async def test_with_auth_only_the_owner_cancels_a_running_task(planner: Planner) -> None:
    async with runtime_client(make_app(planner, TOKENS)) as http:
        task_id = await submit(http, ANA_TOKEN, sleep_task(30))
        r = await http.post(f"/v1/tasks/{task_id}/cancel", headers=bearer(BOB_TOKEN))
        not_found(r, task_id)
        assert (await planner.get(task_id))["state"] in ("pending", "planning", "running")
        r = await http.post(f"/v1/tasks/{task_id}/cancel", headers=bearer(ANA_TOKEN))
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "canceled"


async def test_with_auth_a_task_without_an_owner_is_nobodys(planner: Planner) -> None:
    """Submitted anonymously (an A2A call to the orchestrator without a token)."""
    task_id = await planner.submit(echo_task())
    await finished(planner, task_id)
    async with runtime_client(make_app(planner, TOKENS)) as http:
        not_found(await http.get(f"/v1/tasks/{task_id}", headers=bearer(ANA_TOKEN)), task_id)
        listed = (await http.get("/v1/tasks", headers=bearer(ANA_TOKEN))).json()["tasks"]
        assert listed == []


# -- the WebSocket, driven as an ASGI server would ------------------------------------------


@dataclass
class WsSession:
    """What a WebSocket client saw: the handshake's answer, the JSON messages, the close."""

    accepted: bool
    subprotocol: str | None
    sent: list[dict[str, Any]]
    code: int | None
    reason: str


async def websocket(
    app: FastAPI, path: str, token: str | None, subprotocols: list[str] | None = None
) -> WsSession:
    """Open `path` as a WebSocket on a server without the denial-response extension."""
    headers = [
        (b"host", b"runtime"),
        *[(k.lower().encode(), v.encode()) for k, v in bearer(token).items()],
    ]
    if subprotocols:
        headers.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode()))
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("runtime", 80),
        "subprotocols": subprotocols or [],
    }
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    incoming.put_nowait({"type": "websocket.connect"})
    session = WsSession(False, None, [], None, "")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.accept":
            session.accepted, session.subprotocol = True, message.get("subprotocol")
        elif message["type"] == "websocket.send":
            session.sent.append(json.loads(message["text"]))
        elif message["type"] == "websocket.close" and session.code is None:
            session.code, session.reason = message.get("code"), message.get("reason") or ""

    async with asyncio.timeout(20):
        await app(scope, incoming.get, send)
    return session


async def test_with_auth_the_websocket_streams_only_to_the_owner(planner: Planner) -> None:
    app = make_app(planner, TOKENS)
    async with runtime_client(app) as http:
        task_id = await submit(http, ANA_TOKEN, echo_task())
    await finished(planner, task_id)
    path = f"/v1/tasks/{task_id}/ws"

    ws = await websocket(app, path, ANA_TOKEN)
    assert ws.code == 1000 and ws.sent[-1]["kind"] == "final"
    ws = await websocket(app, path, BOB_TOKEN)
    assert ws.code == 4404
    assert ws.sent == [
        {"error": {"code": 404, "reason": "TASK_NOT_FOUND", "message": f"no task {task_id!r}"}}
    ]
    ws = await websocket(app, path, None)
    assert ws.code == 4401 and ws.sent[0]["error"]["reason"] == "UNAUTHENTICATED"


async def test_with_auth_a_browser_sends_its_token_as_a_subprotocol(planner: Planner) -> None:
    app = make_app(planner, TOKENS)
    async with runtime_client(app) as http:
        task_id = await submit(http, ANA_TOKEN, echo_task())
    await finished(planner, task_id)
    path = f"/v1/tasks/{task_id}/ws"

    ws = await websocket(app, path, None, browser_subprotocols(ANA_TOKEN))
    assert ws.subprotocol == "actorchestra.v1"  # never the token back
    assert ws.code == 1000 and ws.sent[-1]["kind"] == "final"
    # The token's user is the caller, as with the header: bob's token does not reach it.
    ws = await websocket(app, path, None, browser_subprotocols(BOB_TOKEN))
    assert (ws.subprotocol, ws.code) == ("actorchestra.v1", 4404)
    # No token at all: accepted with the subprotocol, so a browser can read the error.
    ws = await websocket(app, path, None, ["actorchestra.v1"])
    assert (ws.subprotocol, ws.code) == ("actorchestra.v1", 4401)
    assert "ACTORCHESTRA_AUTH_TOKENS" in ws.sent[0]["error"]["message"]


@pytest.mark.parametrize(
    ("token", "subprotocols", "reason"),
    [
        (None, browser_subprotocols("not-a-token"), "not one this runtime accepts"),
        ("not-a-token", None, "not one this runtime accepts"),
        (None, ["actorchestra.v1", "bearer.not base64!"], "unpadded base64url"),
        (None, ["actorchestra.v1", "bearer.__8"], "unpadded base64url"),  # not UTF-8 text
    ],
)
async def test_with_auth_an_unknown_websocket_token_is_refused_before_accepting(
    planner: Planner, token: str | None, subprotocols: list[str] | None, reason: str
) -> None:
    ws = await websocket(make_app(planner, TOKENS), "/v1/tasks/any/ws", token, subprotocols)
    assert not ws.accepted and ws.sent == []
    assert ws.code == 1008  # policy violation
    assert reason in ws.reason and "not-a-token" not in ws.reason
    assert len(ws.reason.encode()) <= 123  # what a close frame can carry


async def test_over_a_socket_a_browser_token_is_accepted_and_a_wrong_one_is_a_401(
    planner: Planner,
) -> None:
    """Through uvicorn and the `websockets` client, as a browser or a script connects."""
    from websockets.asyncio.client import connect

    app = make_app(planner, TOKENS)
    async with served(app) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            task_id = await submit(http, ANA_TOKEN, echo_task())
        await finished(planner, task_id)
        url = f"{base.replace('http', 'ws')}/v1/tasks/{task_id}/ws"

        async with connect(url, subprotocols=browser_subprotocols(ANA_TOKEN)) as ws:
            assert ws.subprotocol == "actorchestra.v1"
            events = [json.loads(m) async for m in ws]
        assert events[-1]["kind"] == "final"
        # Scripts keep sending the header.
        async with connect(url, additional_headers=bearer(ANA_TOKEN)) as ws:
            assert ws.subprotocol is None
            assert [json.loads(m) async for m in ws][-1]["kind"] == "final"

        await assert_ws_token_refused(url)


# -- without auth: user_id is a label -----------------------------------------------------------


async def test_without_auth_user_id_is_a_label_anyone_may_use(planner: Planner) -> None:
    """Today's behaviour, kept: no caller is told apart, so no task is private."""
    app = make_app(planner, None)
    async with runtime_client(app) as http:
        task_id = await submit(http, None, echo_task(user_id="ana"))
        other = await submit(http, None, echo_task())
        await finished(planner, task_id)
        await finished(planner, other)
        r = await http.get(f"/v1/tasks/{task_id}")
        assert r.status_code == 200 and r.json()["user_id"] == "ana"
        r = await http.get("/v1/tasks", params={"user_id": "ana"})
        assert [t["task_id"] for t in r.json()["tasks"]] == [task_id]
        everyone = (await http.get("/v1/tasks")).json()["tasks"]
        assert {t["task_id"] for t in everyone} == {task_id, other}
        r = await http.get(f"/v1/tasks/{task_id}/events")
        assert sse_kinds(r.text)[-1] == "final"
        # A bearer header changes nothing when the runtime has no tokens.
        r = await http.get(f"/v1/tasks/{task_id}", headers=bearer(BOB_TOKEN))
        assert r.status_code == 200
        assert (await http.delete(f"/v1/tasks/{task_id}")).status_code == 204
    ws = await websocket(app, f"/v1/tasks/{other}/ws", None)
    assert ws.code == 1000 and ws.sent[-1]["kind"] == "final"
    # A browser's subprotocols are answered as with auth; the token is not looked at.
    ws = await websocket(app, f"/v1/tasks/{other}/ws", None, browser_subprotocols("any-token"))
    assert ws.subprotocol == "actorchestra.v1" and ws.sent[-1]["kind"] == "final"


@pytest.mark.parametrize("tokens", [None, TOKENS])
async def test_an_unknown_task_is_404_either_way(
    planner: Planner, tokens: dict[str, SecretStr] | None
) -> None:
    async with runtime_client(make_app(planner, tokens)) as http:
        r = await http.get("/v1/tasks/nope", headers=bearer(ANA_TOKEN if tokens else None))
    not_found(r, "nope")


def test_an_event_with_an_int_past_64_bits_is_framed_exactly() -> None:
    # orjson refuses such an int; the frame falls back to the stdlib instead of ending
    # the stream, and the number arrives as it was.
    from actorchestra.serve_apps.task_routes import _frames

    events = [
        {"seq": 1, "kind": "progress", "data": {"id": 2**70}},
        {"seq": 2, "kind": "final", "data": {"state": "completed"}},
    ]
    text = _frames(events).decode()
    assert sse_kinds(text) == ["progress", "final"]
    data = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    assert data == events
