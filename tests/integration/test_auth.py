"""A runtime with auth under real Serve: bearer tokens through the proxy, end to end.

The session's runtime has no auth, so this module deploys a second, small one (one echo
agent) with `auth_tokens` into the session's Serve: an application of its own under the
route prefix `/auth` (the session's owns `/`), with its own Ray namespace (registry,
planner, agent actors) and data dir, removed with the module. Callers reach it through
Serve's proxy as they would any runtime served under a prefix.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from actorchestra.client import Client, ClientError
from tests.auth_helpers import assert_ws_token_refused, bearer, browser_subprotocols
from tests.integration.conftest import Runtime, wait_for

pytestmark = pytest.mark.integration

APP = "actorchestra-auth"
PREFIX = "/auth"
NAMESPACE = "actorchestra-test-auth"
ALICE_TOKEN = "alice-token-0123456789abcdef"
BOB_TOKEN = "bob-token-0123456789abcdef"
WORKFLOW = {"kind": "parallel", "steps": [{"id": "say", "skill": "echo", "input": "hi alice"}]}


@pytest.fixture(scope="module")
def auth_base(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The auth runtime's base URL (the session's proxy, under `PREFIX`)."""
    from ray import serve

    from actorchestra.actors.runtime import kill_namespace
    from actorchestra.serve_apps.builder import build_runtime

    base = runtime.base_url + PREFIX
    data_dir: Path = tmp_path_factory.mktemp("auth-runtime")
    app = build_runtime(
        {
            "agents": [{"name": "echo", "cls": "actorchestra.actors.examples:EchoAgent"}],
            "runtime": {
                "namespace": NAMESPACE,
                "public_url": base,
                "health_interval_s": 0.5,
                "llm_offline": True,
                "data_dir": str(data_dir),
                "auth_tokens": {"alice": ALICE_TOKEN, "bob": BOB_TOKEN},
                "agent": {"llm": {"base_url": runtime.model_server.base_url}},
            },
        }
    )
    try:
        serve.run(app, name=APP, route_prefix=PREFIX)
        wait_for(lambda: _healthy(base), timeout=60, what="auth runtime healthy")
        yield base
    finally:
        serve.delete(APP)
        kill_namespace(NAMESPACE)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=2).json().get("status") == "healthy"
    except (httpx.HTTPError, ValueError):
        return False


@pytest.fixture
async def alice(auth_base: str) -> AsyncIterator[Client]:
    async with Client(auth_base, token=ALICE_TOKEN) as client:
        yield client


async def test_tasks_need_a_token_and_belong_to_its_user(
    auth_base: str, http: httpx.AsyncClient
) -> None:
    body: dict[str, Any] = {"input": "hi", "workflow": WORKFLOW, "synthesize": False}
    r = await http.post(f"{auth_base}/v1/tasks", json=body)
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert "Authorization: Bearer <token>" in r.json()["error"]["message"]

    r = await http.post(f"{auth_base}/v1/tasks", json=body, headers=bearer("not-a-token"))
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"

    r = await http.post(f"{auth_base}/v1/tasks", json=body, headers=bearer(ALICE_TOKEN))
    assert r.status_code == 202, r.text
    task_id = r.json()["task_id"]
    # The links it answers with name the route prefix the runtime is served under.
    assert r.headers["Location"] == f"{PREFIX}/v1/tasks/{task_id}"
    assert r.json()["events"] == f"{PREFIX}/v1/tasks/{task_id}/events"
    r = await http.get(f"{auth_base}/v1/tasks/{task_id}", headers=bearer(ALICE_TOKEN))
    assert r.status_code == 200 and r.json()["user_id"] == "alice"

    # To bob, alice's task is exactly an unknown one.
    r = await http.get(f"{auth_base}/v1/tasks/{task_id}", headers=bearer(BOB_TOKEN))
    unknown = await http.get(f"{auth_base}/v1/tasks/no-such-task", headers=bearer(BOB_TOKEN))
    assert (r.status_code, unknown.status_code) == (404, 404)
    assert r.json()["error"]["message"] == f"no task {task_id!r}"
    r = await http.get(f"{auth_base}/v1/tasks", headers=bearer(BOB_TOKEN))
    assert task_id not in {t["task_id"] for t in r.json()["tasks"]}
    r = await http.post(
        f"{auth_base}/v1/tasks", json={**body, "user_id": "alice"}, headers=bearer(BOB_TOKEN)
    )
    assert r.status_code == 403, r.text


async def test_registry_changes_need_a_token_reading_does_not(
    auth_base: str, http: httpx.AsyncClient
) -> None:
    card = {"card_url": "http://127.0.0.1:9/.well-known/agent-card.json"}
    r = await http.post(f"{auth_base}/v1/agents", json=card)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert "agent registry" in r.json()["error"]["message"]
    r = await http.delete(f"{auth_base}/v1/agents/echo")
    assert r.status_code == 401
    # With a token the request gets past the gate to the registry's own checks.
    r = await http.post(f"{auth_base}/v1/agents", json=card, headers=bearer(BOB_TOKEN))
    assert r.status_code == 403 and "127.0.0.1" in r.json()["error"]["message"]

    r = await http.get(f"{auth_base}/v1/agents")
    assert r.status_code == 200 and "echo" in {a["name"] for a in r.json()["agents"]}
    r = await http.get(f"{auth_base}/a2a/echo/.well-known/agent-card.json")
    assert r.status_code == 200
    assert {i["url"] for i in r.json()["supportedInterfaces"]} == {f"{auth_base}/a2a/echo"}


async def test_a_browser_authenticates_the_events_websocket_by_subprotocol(
    auth_base: str, alice: Client
) -> None:
    task = await alice.run("ws", workflow=WORKFLOW, synthesize=False, timeout_s=30)
    url = auth_base.replace("http", "ws", 1) + f"/v1/tasks/{task['task_id']}/ws"

    async with connect(url, subprotocols=browser_subprotocols(ALICE_TOKEN)) as ws:
        assert ws.subprotocol == "actorchestra.v1"  # never the token back
        events = [json.loads(m) async for m in ws]
    assert events[0]["kind"] == "planned" and events[-1]["kind"] == "final"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

    # Bob is let in, and told the task does not exist.
    async with connect(url, subprotocols=browser_subprotocols(BOB_TOKEN)) as ws:
        error = json.loads(await ws.recv())
        await ws.wait_closed()
    assert error["error"]["code"] == 404 and ws.close_code == 4404

    await assert_ws_token_refused(url)


async def test_the_python_client_sends_its_token(auth_base: str, alice: Client) -> None:
    task = await alice.run("client", workflow=WORKFLOW, synthesize=False, timeout_s=30)
    assert task["state"] == "completed", task["error"]
    assert task["user_id"] == "alice"
    assert task["subtasks"][0]["output"] == "hi alice"

    async with Client(auth_base, token="") as anonymous:
        assert not anonymous.has_token
        with pytest.raises(ClientError) as err:
            await anonymous.submit("no token", workflow=WORKFLOW)
    assert err.value.status == 401
    assert "Authorization: Bearer <token>" in err.value.message


async def test_under_a_route_prefix_a2a_errors_keep_the_json_rpc_shape(
    auth_base: str, http: httpx.AsyncClient
) -> None:
    """This runtime is served under `/auth`: the ingress still knows its JSON-RPC paths."""
    url = f"{auth_base}/a2a/echo"
    r = await http.post(url, content=b"hi", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["jsonrpc"] == "2.0", r.text
    r = await http.post(url, json={"jsonrpc": "2.0", "id": 1}, headers=bearer("not-a-token"))
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["jsonrpc"] == "2.0" and r.json()["error"]["code"] == -32600
    r = await http.post(f"{auth_base}/a2a/nobody", json={})
    assert r.status_code == 404 and r.json()["error"]["code"] == -32601, r.text
    assert r.json()["jsonrpc"] == "2.0"
