"""The LLM surface over HTTP: /health's LLM section, /v1/llm/*, and /v1/chat (JSON and SSE).

The `writer` agent is an `LLMAgent` calling the offline model server that the runtime
fixture started as the `model-server` actor (what `actorchestra up` does when no LLM
endpoint is configured), reached by the real `openai` client inside the agent actor.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import ray
from a2a.helpers import new_text_message
from a2a.types import a2a_pb2

from actorchestra.serve_apps.model_server import ModelServerHandle
from actorchestra.serve_apps.model_server.actor import (
    MODEL_SERVER_ACTOR,
    ensure_offline_model_server,
)
from tests.integration.conftest import Runtime, free_port, make_client, wait_for

pytestmark = pytest.mark.integration

OFFLINE_MODEL = "actorchestra-offline"


@pytest.fixture
def model_server(runtime: Runtime) -> Iterator[ModelServerHandle]:
    """The runtime's model server, with any faults a test queued cleared when it ends."""
    runtime.model_server.clear_faults()
    try:
        yield runtime.model_server
    finally:
        runtime.model_server.clear_faults()


def session() -> str:
    return f"session-{uuid.uuid4()}"


async def chat(http: httpx.AsyncClient, runtime: Runtime, **body: Any) -> httpx.Response:
    return await http.post(f"{runtime.base_url}/v1/chat", json=body)


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of a Server-Sent Events response."""
    event, data = "message", []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())


async def chat_stream(
    http: httpx.AsyncClient, runtime: Runtime, **body: Any
) -> list[tuple[str, dict[str, Any]]]:
    async with http.stream("POST", f"{runtime.base_url}/v1/chat", json=body) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        return [e async for e in sse_events(r)]


# -- /health and /v1/llm ------------------------------------------------------------------


async def test_health_reports_the_offline_llm_endpoint(runtime: Runtime, http: httpx.AsyncClient):
    body = (await http.get(f"{runtime.base_url}/health")).json()
    llm = body["llm"]
    assert llm["base_url"] == runtime.model_server.base_url
    assert llm["offline"] is True
    assert llm["model"] == OFFLINE_MODEL
    assert llm["reachable"] is True
    assert 0 < llm["latency_ms"] < 2000
    assert "error" not in llm
    # ... and it is the `model-server` actor of the runtime's namespace that answers.
    actor = ray.get_actor(MODEL_SERVER_ACTOR, namespace=runtime.namespace)
    assert ray.get(actor.root_url.remote()) == runtime.model_server.root_url


def _pid(actor: Any) -> int | None:
    """The process serving `actor` now; None while it is dead or restarting."""
    try:
        return ray.get(actor.__ray_call__.remote(lambda _self: os.getpid()), timeout=5)
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
        return None


def _answers(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/models", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_restarted_model_server_comes_back_on_the_same_url(runtime: Runtime):
    """Ray restarts a dead `model-server` actor where the agents already look.

    Port 0 (any free port) is the hard case: the port is chosen once, before the actor
    exists. A second model-server actor (another namespace) takes the kill, so the
    runtime's own keeps serving the other tests.
    """
    namespace = f"{runtime.namespace}-restart"
    server = ensure_offline_model_server(namespace, 0)
    try:
        actor = ray.get_actor(MODEL_SERVER_ACTOR, namespace=namespace)
        before = _pid(actor)
        assert before is not None and _answers(server.base_url)

        ray.kill(actor, no_restart=False)  # what a crash looks like to Ray

        wait_for(lambda: _pid(actor) not in (None, before), timeout=60, what="the actor restarted")
        assert ray.get(actor.root_url.remote()) == server.root_url
        wait_for(lambda: _answers(server.base_url), timeout=30, what="it answers again")
        # And `up` run again finds it where it was.
        assert ensure_offline_model_server(namespace, 0).root_url == server.root_url
    finally:
        server.stop()


async def test_models_lists_what_the_endpoint_serves(runtime: Runtime, http: httpx.AsyncClient):
    r = await http.get(f"{runtime.base_url}/v1/llm/models")
    assert r.status_code == 200
    body = r.json()
    assert body["base_url"] == runtime.model_server.base_url
    assert body["default_model"] == OFFLINE_MODEL and body["offline"] is True
    assert OFFLINE_MODEL in body["models"]


async def test_connection_to_the_configured_endpoint(runtime: Runtime, http: httpx.AsyncClient):
    r = await http.post(f"{runtime.base_url}/v1/llm/test-connection")
    assert r.status_code == 200
    report = r.json()
    assert report["ok"] is True, report
    assert report["error"] is None
    assert report["latency_ms"] > 0
    assert report["base_url"] == runtime.model_server.base_url
    assert OFFLINE_MODEL in report["models"]


async def test_connection_to_a_model_the_endpoint_lacks(runtime: Runtime, http: httpx.AsyncClient):
    r = await http.post(
        f"{runtime.base_url}/v1/llm/test-connection", json={"model": "gpt-nonexistent"}
    )
    assert r.status_code == 200
    report = r.json()
    assert report["ok"] is False
    assert "gpt-nonexistent" in report["error"] and "ACTORCHESTRA_LLM_MODEL" in report["error"]


async def test_connection_to_the_configured_endpoint_named_in_the_body(
    runtime: Runtime, http: httpx.AsyncClient
):
    """The offline server is on 127.0.0.1: named explicitly, it is still ours to probe."""
    r = await http.post(
        f"{runtime.base_url}/v1/llm/test-connection",
        json={"base_url": runtime.model_server.base_url},
    )
    assert r.status_code == 200
    assert r.json()["ok"] is True, r.json()


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1:{free}", "loopback"),  # the ingress's own machine, another port
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("192.168.1.1", "private"),
    ],
)
async def test_connection_to_a_private_or_local_address_is_refused(
    runtime: Runtime, http: httpx.AsyncClient, host: str, reason: str
):
    """The ingress must not be a way into the network it runs in (SSRF)."""
    url = f"http://{host.format(free=free_port())}/latest/v1"
    r = await http.post(
        f"{runtime.base_url}/v1/llm/test-connection",
        json={"base_url": url, "api_key": "sk-test", "timeout_s": 5},
    )
    assert r.status_code == 403
    error = r.json()["error"]
    assert error["reason"] == "ADDRESS_REFUSED"
    assert f"a {reason} address" in error["message"]
    # ... and says what to set to allow it.
    assert "ACTORCHESTRA_ALLOWED_HOSTS" in error["message"]
    assert "sk-test" not in r.text


async def test_connection_to_a_host_that_does_not_resolve_is_reported_not_a_500(
    runtime: Runtime, http: httpx.AsyncClient
):
    url = "http://model-server.invalid/v1"
    r = await http.post(
        f"{runtime.base_url}/v1/llm/test-connection",
        json={"base_url": url, "api_key": "sk-test", "timeout_s": 5},
    )
    assert r.status_code == 200
    report = r.json()
    assert report["ok"] is False
    assert report["base_url"] == url
    assert f"Cannot resolve the model server at {url}" in report["error"]
    assert "sk-test" not in r.text


async def test_connection_with_a_bad_body_is_422(runtime: Runtime, http: httpx.AsyncClient):
    r = await http.post(f"{runtime.base_url}/v1/llm/test-connection", json={"base_url": "ftp://x"})
    assert r.status_code == 422
    assert "base_url must be an http:// or https:// URL" in r.json()["error"]["message"]


# -- /v1/chat ------------------------------------------------------------------------------


async def test_chat_answers_with_the_agents_reply(runtime: Runtime, http: httpx.AsyncClient):
    r = await chat(http, runtime, agent="writer", message="Draft a note about actors")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["agent"] == "writer" and body["session_id"]
    assert body["state"] == "completed"
    assert body["task_id"]
    # The writer role's system prompt reached the model, and its answer came back.
    assert body["reply"].startswith("[offline model, acting as a")
    assert "note about actors" in body["reply"]
    usage = body["usage"]
    assert usage["model"] == OFFLINE_MODEL
    assert usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0
    assert type(usage["completion_tokens"]) is int  # counts stay counts through A2A metadata
    assert usage["attempts"] == 1


async def test_chat_without_a_session_starts_one(runtime: Runtime, http: httpx.AsyncClient):
    r = await chat(http, runtime, agent="writer", message="hello")
    assert r.status_code == 200
    assert r.json()["session_id"]


async def test_chat_streams_tokens_that_add_up_to_the_reply(
    runtime: Runtime, http: httpx.AsyncClient
):
    events = await chat_stream(
        http,
        runtime,
        agent="writer",
        message="Write 300 words about actor runtimes",
        stream=True,
    )
    names = [name for name, _ in events]
    assert names[-1] == "done", names
    tokens = [data["text"] for name, data in events if name == "token"]
    assert len(tokens) > 1, "a 300-word reply arrives in more than one piece"
    done = events[-1][1]
    assert "".join(tokens) == done["reply"]
    assert done["state"] == "completed"
    assert done["usage"]["completion_tokens"] == 300
    states = [data["state"] for name, data in events if name == "status"]
    assert "working" in states and states[-1] == "completed"
    assert names.index("token") < len(names) - 2, "tokens come before the end of the turn"


async def test_a_session_remembers_its_earlier_turns_per_user(
    runtime: Runtime, http: httpx.AsyncClient
):
    first = (
        await chat(
            http,
            runtime,
            agent="writer",
            message="My project is called Quarkfish and it schedules actors.",
            user_id="alice",
        )
    ).json()
    assert first["memory"]["turns_kept"] == 0
    sid = first["session_id"]  # issued by the runtime, for alice
    question = "What did I say my project is called?"
    second = (
        await chat(http, runtime, agent="writer", message=question, session_id=sid, user_id="alice")
    ).json()
    # The second prompt carried the first turn (the question and the answer to it).
    assert second["memory"]["turns_kept"] == 2
    assert second["usage"]["prompt_tokens"] > first["usage"]["prompt_tokens"] + 20

    # Bob, in his own session, starts from nothing.
    bob = (await chat(http, runtime, agent="writer", message=question, user_id="bob")).json()
    assert bob["state"] == "completed" and bob["session_id"] != sid
    assert bob["memory"]["turns_kept"] == 0

    # And alice's next turn still sees her two turns, not bob's.
    third = (
        await chat(
            http, runtime, agent="writer", message="Thanks!", session_id=sid, user_id="alice"
        )
    ).json()
    assert third["memory"]["turns_kept"] == 4


async def test_nobody_reads_a_session_they_were_not_given(
    runtime: Runtime, http: httpx.AsyncClient
):
    """Without auth a user_id is only a label: the session id is what guards the memory."""
    first = await chat(
        http, runtime, agent="writer", message="The vault code is 9172.", user_id="alice"
    )
    sid = first.json()["session_id"]
    question = "What is the vault code?"
    attempts = [
        {"session_id": sid, "user_id": "bob"},  # alice's session, another user
        {"session_id": sid},  # alice's session, no user
        {"session_id": "s1", "user_id": "alice"},  # a made-up session, alice's name
        {"session_id": f"{sid.split('.')[0]}.{'0' * 32}", "user_id": "alice"},  # a forged tag
    ]
    for attempt in attempts:
        r = await chat(http, runtime, agent="writer", message=question, **attempt)
        assert r.status_code == 403, (attempt, r.text)
        error = r.json()["error"]
        assert error["reason"] == "FORBIDDEN"
        assert "Leave session_id out to start a session" in error["message"]
        assert "9172" not in r.text
    # The stream is guarded the same way, before anything is streamed.
    r = await http.post(
        f"{runtime.base_url}/v1/chat",
        json={"agent": "writer", "message": question, "session_id": sid, "stream": True},
    )
    assert r.status_code == 403


async def test_chat_with_an_unknown_agent_is_404_naming_the_agents(
    runtime: Runtime, http: httpx.AsyncClient
):
    r = await chat(http, runtime, agent="poet", message="hi")
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["reason"] == "AGENT_NOT_FOUND"
    assert "'poet'" in error["message"] and "writer" in error["message"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"agent": "writer", "message": "   "}, "message: Value error, message is empty"),
        ({"agent": "writer"}, "message: Field required"),
        ({"message": "hi"}, "agent: Field required"),
        ({"agent": "writer", "message": "hi", "stream": "maybe"}, "stream:"),
        ({"agent": "writer", "message": "hi", "colour": "red"}, "colour: Extra inputs"),
    ],
)
async def test_chat_bad_input_is_422_with_a_message(
    runtime: Runtime, http: httpx.AsyncClient, body: dict[str, Any], problem: str
):
    r = await http.post(f"{runtime.base_url}/v1/chat", json=body)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["reason"] == "INVALID_INPUT"
    assert problem in error["message"], error["message"]


async def test_chat_with_a_body_that_is_not_json_is_422(runtime: Runtime, http: httpx.AsyncClient):
    r = await http.post(
        f"{runtime.base_url}/v1/chat",
        content=b"agent=writer",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["error"]["message"].startswith("invalid request body:")


# -- A2A straight to the LLM agent ------------------------------------------------------------


async def test_a2a_streaming_call_to_the_llm_agent(runtime: Runtime, http: httpx.AsyncClient):
    """What any A2A client sees: the card's skills, then coalesced artifact chunks."""
    client = await make_client(runtime, "writer", http)
    card = (await http.get(runtime.card_url("writer"))).json()
    assert "write" in {s["id"] for s in card["skills"]}
    assert card["capabilities"]["streaming"] is True
    message = new_text_message(
        "Write 200 words about message passing",
        role=a2a_pb2.Role.ROLE_USER,
        context_id=session(),
    )
    chunks: list[str] = []
    final: a2a_pb2.TaskStatusUpdateEvent | None = None
    async for event in client.send_message(a2a_pb2.SendMessageRequest(message=message)):
        if event.HasField("artifact_update"):
            chunks.append("".join(p.text for p in event.artifact_update.artifact.parts))
        elif event.HasField("status_update"):
            final = event.status_update
    assert final is not None and final.status.state == a2a_pb2.TaskState.TASK_STATE_COMPLETED
    text = "".join(chunks)
    assert text.startswith("[offline model, acting as a")
    llm = final.metadata["llm"]
    assert llm["completion_tokens"] == 200
    # Coalesced: far fewer events than tokens, yet more than one.
    assert 1 < len(chunks) < 200


# -- model failures --------------------------------------------------------------------------


async def test_a_model_that_keeps_failing_fails_the_turn_with_the_reason(
    runtime: Runtime, http: httpx.AsyncClient, model_server: ModelServerHandle
):
    model_server.add_fault(status=500, count=3, path="/v1/chat", message="GPU on fire")
    r = await chat(http, runtime, agent="writer", message="Draft a haiku")
    assert r.status_code == 502
    body = r.json()
    assert body["state"] == "failed" and body["task_id"]
    assert body["reply"] == ""
    error = body["error"]
    assert "still answered HTTP 500 after 3 attempts" in error
    assert model_server.base_url in error and "GPU on fire" in error


async def test_a_streamed_turn_reports_a_model_failure_as_an_error_event(
    runtime: Runtime, http: httpx.AsyncClient, model_server: ModelServerHandle
):
    model_server.add_fault(status=500, count=3, path="/v1/chat")
    events = await chat_stream(http, runtime, agent="writer", message="Draft a haiku", stream=True)
    name, data = events[-1]
    assert name == "error", events
    assert data["state"] == "failed"
    assert "still answered HTTP 500 after 3 attempts" in data["error"]
    assert "done" not in [n for n, _ in events]


async def test_a_model_that_recovers_within_the_retries_answers(
    runtime: Runtime, http: httpx.AsyncClient, model_server: ModelServerHandle
):
    model_server.add_fault(status=500, count=2, path="/v1/chat")
    r = await chat(http, runtime, agent="writer", message="Draft a haiku")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "completed" and body["reply"]
    assert body["usage"]["attempts"] == 3
