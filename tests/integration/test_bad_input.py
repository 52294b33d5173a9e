"""Bad requests get the protocol's errors, never a 500 or a stack trace."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from a2a.types import a2a_pb2
from a2a.utils.errors import TaskNotFoundError, UnsupportedOperationError

from tests.integration.a2a_helpers import (
    A2A_HEADERS,
    TRANSPORTS,
    State,
    get_task,
    jsonrpc,
    new_context,
    request,
    send,
    texts,
)
from tests.integration.conftest import Runtime, make_client

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024  # max_body_bytes of the test runtime
UNKNOWN_TASK = "r0-00000000-0000-4000-8000-000000000000"


def assert_clean(r: httpx.Response) -> None:
    """No internal error and no Python internals in the answer."""
    assert r.status_code != 500, r.text
    assert "Traceback" not in r.text and 'File "' not in r.text


def rpc_error(r: httpx.Response) -> dict:
    assert_clean(r)
    body = r.json()
    assert body["jsonrpc"] == "2.0"
    assert "result" not in body
    return body["error"]


def send_params(text: str = "hi") -> dict:
    return {
        "message": {
            "messageId": "m-1",
            "role": "ROLE_USER",
            "parts": [{"text": text}],
            "contextId": new_context(),
        }
    }


async def test_malformed_json_is_a_parse_error(runtime: Runtime, http: httpx.AsyncClient):
    r = await http.post(
        f"{runtime.base_url}/a2a/text", content=b'{"jsonrpc": "2.0", "id": 1,', headers=A2A_HEADERS
    )
    assert rpc_error(r)["code"] == -32700


async def test_unknown_method_is_method_not_found(runtime: Runtime, http: httpx.AsyncClient):
    r = await jsonrpc(http, runtime, "text", "tasks/teleport", {"id": "x"})
    error = rpc_error(r)
    assert error["code"] == -32601
    assert r.json()["id"] == 1


@pytest.mark.parametrize(
    "params",
    [
        {},  # no message at all
        {"message": "hello"},  # a string where a Message belongs
        {"message": {"messageId": "m-1", "role": "ROLE_USER", "parts": "not a list"}},
        {"message": {"role": "ROLE_USER", "parts": [{"text": "no message id"}]}},
    ],
)
async def test_wrong_params_are_invalid_params(
    runtime: Runtime, http: httpx.AsyncClient, params: dict
):
    r = await jsonrpc(http, runtime, "text", "SendMessage", params)
    assert rpc_error(r)["code"] == -32602


@pytest.mark.parametrize(
    ("method", "params", "says"),
    [
        ("ListTasks", {"pageSize": 0}, "minimum page size is 1"),
        ("ListTasks", {"pageSize": 1000}, "maximum page size is 100"),
        ("ListTasks", {"pageToken": "not-a-token"}, "not a valid"),
        ("ListTasks", {"historyLength": -1}, "history length must be non-negative"),
        ("GetTask", {"id": UNKNOWN_TASK, "historyLength": -1}, "history length"),
    ],
)
async def test_out_of_range_task_params_are_invalid_params(
    runtime: Runtime, http: httpx.AsyncClient, method: str, params: dict, says: str
):
    """`text` has two replicas: ListTasks asks both, and still answers with one error."""
    r = await jsonrpc(http, runtime, "text", method, params)
    error = rpc_error(r)
    assert error["code"] == -32602
    assert says in error["message"]


async def test_wrong_params_over_http_json_are_400(runtime: Runtime, http: httpx.AsyncClient):
    r = await http.post(
        f"{runtime.base_url}/a2a/text/message:send",
        json={"message": "hello"},
        headers=A2A_HEADERS,
    )
    assert_clean(r)
    assert r.status_code == 400
    assert r.json()["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/a2a/nobody"),
        ("POST", "/a2a/nobody/message:send"),
        ("GET", "/a2a/nobody/tasks/abc"),
        ("GET", "/a2a/nobody/.well-known/agent-card.json"),
    ],
)
async def test_unknown_agent_is_404_naming_the_known_agents(
    runtime: Runtime, http: httpx.AsyncClient, method: str, path: str
):
    kw = {"json": {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": send_params()}}
    r = await http.request(
        method, f"{runtime.base_url}{path}", headers=A2A_HEADERS, **(kw if method == "POST" else {})
    )
    assert_clean(r)
    assert r.status_code == 404
    message = r.json()["error"]["message"]
    assert "'nobody'" in message
    assert all(name in message for name in runtime.agents)


@pytest.mark.parametrize("task_id", [UNKNOWN_TASK, "r7-" + UNKNOWN_TASK[3:], "not-one-of-ours"])
async def test_unknown_task_is_task_not_found(
    runtime: Runtime, http: httpx.AsyncClient, task_id: str
):
    r = await jsonrpc(http, runtime, "text", "GetTask", {"id": task_id})
    assert rpc_error(r)["code"] == -32001

    r = await http.get(f"{runtime.base_url}/a2a/text/tasks/{task_id}", headers=A2A_HEADERS)
    assert_clean(r)
    assert r.status_code == 404
    assert r.json()["error"]["status"] == "NOT_FOUND"

    r = await jsonrpc(http, runtime, "text", "CancelTask", {"id": task_id})
    assert rpc_error(r)["code"] == -32001


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_unknown_task_raises_task_not_found_in_the_client(
    runtime: Runtime, http: httpx.AsyncClient, transport: str
):
    client = await make_client(runtime, "text", http, transport, streaming=False)
    with pytest.raises(TaskNotFoundError):
        await get_task(client, UNKNOWN_TASK)
    with pytest.raises(TaskNotFoundError):  # a follow-up to a task that does not exist
        await send(client, request("Ada", context_id=new_context(), task_id=UNKNOWN_TASK))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_subscribe_to_a_finished_or_unknown_task_is_refused(
    runtime: Runtime, http: httpx.AsyncClient, transport: str
):
    sender = await make_client(runtime, "text", http, transport, streaming=False)
    done = await send(sender, request("uppercase: over", context_id=new_context()))
    client = await make_client(runtime, "text", http, transport)
    with pytest.raises(UnsupportedOperationError, match="terminal state"):
        async for _ in client.subscribe(a2a_pb2.SubscribeToTaskRequest(id=done.id)):
            pass
    with pytest.raises(TaskNotFoundError):
        async for _ in client.subscribe(a2a_pb2.SubscribeToTaskRequest(id=UNKNOWN_TASK)):
            pass


def _oversize_body() -> bytes:
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": send_params()}
    body["params"]["message"]["parts"][0]["text"] = "x" * (LIMIT + 100)
    return json.dumps(body).encode()


async def _chunked(data: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize(
    ("path", "jsonrpc_shape"), [("/a2a/text", True), ("/a2a/text/message:send", False)]
)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_oversize_body_is_413(
    runtime: Runtime, http: httpx.AsyncClient, path: str, jsonrpc_shape: bool, chunked: bool
):
    data = _oversize_body()
    req = http.build_request(
        "POST",
        f"{runtime.base_url}{path}",
        content=_chunked(data) if chunked else data,
        headers=A2A_HEADERS,
    )
    assert ("content-length" in req.headers) is not chunked
    r = await http.send(req)
    assert_clean(r)
    assert r.status_code == 413
    body = r.json()
    if jsonrpc_shape:
        assert body["jsonrpc"] == "2.0" and body["error"]["code"] == -32600
    else:
        assert body["error"]["status"] == "PAYLOAD_TOO_LARGE"
    assert f"over {LIMIT} bytes" in body["error"]["message"]


async def test_chunked_body_within_the_limit_is_served(runtime: Runtime, http: httpx.AsyncClient):
    body = {"jsonrpc": "2.0", "id": 7, "method": "SendMessage", "params": send_params("echo me")}
    r = await http.post(
        f"{runtime.base_url}/a2a/echo",
        content=_chunked(json.dumps(body).encode(), size=16),
        headers=A2A_HEADERS,
    )
    assert r.status_code == 200
    task = r.json()["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert task["artifacts"][0]["parts"][0]["text"] == "echo me"


@pytest.mark.parametrize(
    ("path", "jsonrpc_shape"), [("/a2a/text", True), ("/a2a/text/message:send", False)]
)
async def test_wrong_content_type_is_415(
    runtime: Runtime, http: httpx.AsyncClient, path: str, jsonrpc_shape: bool
):
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": send_params()}
    r = await http.post(
        f"{runtime.base_url}{path}",
        content=json.dumps(body),
        headers={"Content-Type": "text/plain", "A2A-Version": "1.0"},
    )
    assert_clean(r)
    assert r.status_code == 415
    assert "Content-Type text/plain is not accepted" in r.json()["error"]["message"]
    assert ("jsonrpc" in r.json()) is jsonrpc_shape


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_failing_skill_fails_the_task_with_the_reason(
    runtime: Runtime, http: httpx.AsyncClient, transport: str
):
    client = await make_client(runtime, "lab", http, transport, streaming=False)
    task = await send(client, request("fail please", context_id=new_context()))
    assert task.status.state == State.TASK_STATE_FAILED
    assert "the lab agent failed on purpose" in texts(task.status.message)
    assert "Traceback" not in texts(task.status.message)
    stored = await get_task(client, task.id)
    assert stored.status.state == State.TASK_STATE_FAILED


async def test_unknown_skill_is_rejected_naming_the_skills(
    runtime: Runtime, http: httpx.AsyncClient
):
    client = await make_client(runtime, "text", http, streaming=False)
    task = await send(
        client, request("hello", context_id=new_context(), metadata={"skill": "juggle"})
    )
    assert task.status.state == State.TASK_STATE_REJECTED
    reason = texts(task.status.message)
    assert "'juggle'" in reason and "greet, stream, uppercase, word_count" in reason
