"""The LLM and chat routes over ASGI, without Ray: who may probe what, who may read what.

The routes are mounted on a bare FastAPI app the way the ingress mounts them (auth
middleware, runtime error answers), the model is the offline model server on loopback
(a thread), and the chat agent is a real `AgentActor` in this process, so chat memory
is the real per-(user, session) task store.
"""

from __future__ import annotations

import json
import stat
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError

from actorchestra.actors.agent import Agent, SkillContext, skill
from actorchestra.actors.agent_actor import AgentActor
from actorchestra.actors.inprocess import InProcessAgentEndpoint
from actorchestra.actors.llm import LLMConfig
from actorchestra.actors.spec import AgentSpec
from actorchestra.protocol.errors import ConfigError
from actorchestra.serve_apps.a2a_routes import mount_agent
from actorchestra.serve_apps.config import RuntimeOptions
from actorchestra.serve_apps.identity import (
    SESSION_KEY_FILE,
    ChatIdentity,
    SessionIds,
    session_secret,
)
from actorchestra.serve_apps.llm_routes import LLMEndpoint, mount_llm_routes
from actorchestra.serve_apps.model_server import (
    ModelServerConfig,
    ModelServerHandle,
    start_model_server,
)
from actorchestra.settings import Settings
from tests import llm_fixtures
from tests.unit.raw_http import RawHttpServer, Reply, RequestHead, raw_http_server
from tests.unit.runtime_app import runtime_app, runtime_client

model_server = llm_fixtures.model_server

RUNTIME_KEY = "sk-runtime-secret"
ANA_TOKEN = "ana-token-0123456789abcdef"
BOB_TOKEN = "bob-token-0123456789abcdef"


class WhoAgent(Agent):
    """Says who it was called by and how much of the conversation it was shown."""

    name = "who"

    @skill(tags=["who"])
    async def who(self, ctx: SkillContext) -> str:
        """Report the caller and the earlier turns it sees."""
        earlier = [t.text for t in ctx.conversation if t.role == "user"]
        return json.dumps({"user": ctx.user, "earlier": earlier})


_LIVE_ACTORS: list[AgentActor] = []  # as in test_agent_actor: actors outlive their tests


def who_endpoint() -> InProcessAgentEndpoint:
    actor = AgentActor(AgentSpec(name="who", cls=f"{__name__}:WhoAgent"), 0, "http://x/a2a/who")
    _LIVE_ACTORS.append(actor)
    return InProcessAgentEndpoint("who", [actor])


@pytest.fixture(scope="module")
def keyed_model_server() -> Iterator[ModelServerHandle]:
    """The runtime's configured model server; it wants the runtime's key."""
    handle = start_model_server(ModelServerConfig(api_key=RUNTIME_KEY))
    try:
        yield handle
    finally:
        handle.stop()


async def make_app(llm: LLMEndpoint, identity: ChatIdentity) -> FastAPI:
    """The routes as the ingress mounts them: auth first, the agent's A2A surface too."""
    app = runtime_app(identity.tokens)
    endpoint = who_endpoint()
    mount_llm_routes(app, {"who": endpoint}, llm, identity)
    mount_agent(app, "who", await endpoint.card(), endpoint, "no-cache")
    return app


def llm_endpoint(server: ModelServerHandle, allowed: list[str] | None = None) -> LLMEndpoint:
    config = LLMConfig(base_url=server.base_url, api_key=SecretStr(RUNTIME_KEY), max_retries=0)
    return LLMEndpoint(config, offline=True, allowed_hosts=allowed or [])


def open_identity(tmp_path: Path) -> ChatIdentity:
    return ChatIdentity.from_options({}, None, tmp_path)


def token_identity() -> ChatIdentity:
    tokens = {"ana": SecretStr(ANA_TOKEN), "bob": SecretStr(BOB_TOKEN)}
    return ChatIdentity.from_options(tokens, None, "/nonexistent")


# -- a stand-in model server that records what reaches it ------------------------------------


MODELS = {
    "object": "list",
    "data": [{"id": "m", "object": "model", "created": 0, "owned_by": "x"}],
}


@pytest.fixture
async def recorder() -> AsyncIterator[RawHttpServer]:
    """Answers `/v1/models`; `/hop/v1/models` redirects to 127.0.0.2 on the same port.

    It listens on every address, so a followed redirect to 127.0.0.2 would reach it
    and be recorded: the only thing in the way is the guard.
    """

    def route(request: RequestHead) -> Reply:
        if request.path.startswith("/hop/"):
            location = f"http://127.0.0.2:{server.port}/v1/models"
            return Reply("307 Temporary Redirect", {"Location": location})
        return Reply("200 OK", {"Content-Type": "application/json"}, json.dumps(MODELS).encode())

    async with raw_http_server(route, "0.0.0.0") as server:
        yield server


# -- POST /v1/llm/test-connection --------------------------------------------------------------


async def test_the_configured_endpoint_is_probed_with_the_runtime_key(
    keyed_model_server: ModelServerHandle, tmp_path: Path
) -> None:
    app = await make_app(llm_endpoint(keyed_model_server), open_identity(tmp_path))
    async with runtime_client(app) as http:
        plain = (await http.post("/v1/llm/test-connection")).json()
        named = await http.post(
            "/v1/llm/test-connection", json={"base_url": keyed_model_server.base_url}
        )
    assert plain["ok"] is True, plain
    # Named explicitly it is still the runtime's endpoint (on 127.0.0.1): reachable, key sent.
    assert named.status_code == 200
    assert named.json()["ok"] is True, named.json()


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1:{other}", "loopback"),  # the endpoint's host, another port
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("10.0.0.7:8000", "private"),
        ("[::1]:8000", "loopback"),
        ("[::ffff:169.254.169.254]", "link-local (IPv4 169.254.169.254 inside IPv6)"),
    ],
)
async def test_a_private_or_local_endpoint_is_refused_with_what_to_set(
    keyed_model_server: ModelServerHandle, tmp_path: Path, host: str, reason: str
) -> None:
    url = f"http://{host.format(other=keyed_model_server.port + 1)}/v1"
    app = await make_app(llm_endpoint(keyed_model_server), open_identity(tmp_path))
    async with runtime_client(app) as http:
        r = await http.post("/v1/llm/test-connection", json={"base_url": url})
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["reason"] == "ADDRESS_REFUSED"
    assert f"a {reason} address" in error["message"]
    assert "ACTORCHESTRA_ALLOWED_HOSTS" in error["message"]
    assert "ACTORCHESTRA_LLM_BASE_URL" in error["message"]


async def test_an_allowed_host_is_probed_without_the_runtime_key(
    keyed_model_server: ModelServerHandle, recorder: RawHttpServer, tmp_path: Path
) -> None:
    other = f"http://127.0.0.1:{recorder.port}/v1"
    app = await make_app(llm_endpoint(keyed_model_server, ["127.0.0.1"]), open_identity(tmp_path))
    async with runtime_client(app) as http:
        anonymous = (await http.post("/v1/llm/test-connection", json={"base_url": other})).json()
        keyed = await http.post(
            "/v1/llm/test-connection",
            json={"base_url": other, "api_key": "sk-caller", "model": "m"},
        )
    assert anonymous["models"] == ["m"]  # it answered (the default model is not "m")
    assert keyed.json()["ok"] is True
    auths = [r.headers.get("authorization", "") for r in recorder.requests]
    assert len(auths) == 2 and not any(RUNTIME_KEY in a for a in auths), auths
    assert auths[1] == "Bearer sk-caller"


async def test_a_redirect_to_a_refused_address_is_not_followed(
    keyed_model_server: ModelServerHandle, recorder: RawHttpServer, tmp_path: Path
) -> None:
    hop = f"http://127.0.0.1:{recorder.port}/hop/v1"
    app = await make_app(llm_endpoint(keyed_model_server, ["127.0.0.1"]), open_identity(tmp_path))
    async with runtime_client(app) as http:
        r = await http.post("/v1/llm/test-connection", json={"base_url": hop})
    assert r.status_code == 403, r.text
    assert "127.0.0.2, a loopback address" in r.json()["error"]["message"]
    assert recorder.paths == ["/hop/v1/models"]


async def test_a_host_that_does_not_resolve_is_reported(
    keyed_model_server: ModelServerHandle, tmp_path: Path
) -> None:
    app = await make_app(llm_endpoint(keyed_model_server), open_identity(tmp_path))
    async with runtime_client(app) as http:
        r = await http.post("/v1/llm/test-connection", json={"base_url": "http://model.invalid/v1"})
    assert r.status_code == 200
    report = r.json()
    assert report["ok"] is False
    assert "Cannot resolve the model server at http://model.invalid/v1" in report["error"]


# -- POST /v1/chat without auth: runtime-issued sessions, bound to the user label -------------


async def chat(http: httpx.AsyncClient, token: str | None = None, **body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http.post("/v1/chat", json={"agent": "who", **body}, headers=headers)


def reply(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    return json.loads(r.json()["reply"])


async def test_without_auth_only_the_session_the_runtime_issued_continues(
    model_server: ModelServerHandle, tmp_path: Path
) -> None:
    app = await make_app(llm_endpoint(model_server), open_identity(tmp_path))
    async with runtime_client(app) as http:
        first = await chat(http, message="my secret is 42", user_id="ana")
        sid = first.json()["session_id"]
        assert reply(first) == {"user": "ana", "earlier": []}
        again = reply(await chat(http, message="what was it?", user_id="ana", session_id=sid))
        assert again == {"user": "ana", "earlier": ["my secret is 42"]}

        # Claiming ana's name is not enough: the session id must be one issued to her...
        for guess in ("s1", sid.split(".")[0], f"{sid.split('.')[0]}.{'0' * 32}"):
            r = await chat(http, message="what was it?", user_id="ana", session_id=guess)
            assert r.status_code == 403, r.text
            assert "Leave session_id out to start a session" in r.json()["error"]["message"]
        # ... and her id is no use to anyone else.
        r = await chat(http, message="what was it?", user_id="bob", session_id=sid)
        assert r.status_code == 403
        r = await chat(http, message="what was it?", session_id=sid)
        assert r.status_code == 403


def test_issued_session_ids_are_random_and_bound_to_their_user() -> None:
    ids = SessionIds(b"k" * 32)
    a, b = ids.issue("ana"), ids.issue("ana")
    assert a != b and len(a.split(".")[0]) == 32  # 128 random bits
    assert ids.valid("ana", a) and not ids.valid("bob", a) and not ids.valid("", a)
    assert not SessionIds(b"x" * 32).valid("ana", a)  # another runtime's key
    assert not ids.valid("ana", "s1") and not ids.valid("ana", a[:-1])


def test_the_session_key_is_made_once_private_and_kept(tmp_path: Path) -> None:
    key = session_secret(None, tmp_path / "state")
    path = tmp_path / "state" / SESSION_KEY_FILE
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert session_secret(None, tmp_path / "state") == key  # a restart accepts the same ids
    assert session_secret(SecretStr("configured"), tmp_path / "state") == b"configured"
    path.write_text("not hex")
    with pytest.raises(ConfigError, match="delete it"):
        session_secret(None, tmp_path / "state")


# -- POST /v1/chat with auth: the bearer token is the user --------------------------------------


async def test_with_auth_the_token_is_the_user(model_server: ModelServerHandle) -> None:
    app = await make_app(llm_endpoint(model_server), token_identity())
    async with runtime_client(app) as http:
        # Authenticated callers name their own sessions; each sees only its own turns.
        first = reply(await chat(http, ANA_TOKEN, message="my secret is 42", session_id="s1"))
        assert first == {"user": "ana", "earlier": []}
        again = reply(await chat(http, ANA_TOKEN, message="and?", session_id="s1", user_id="ana"))
        assert again["earlier"] == ["my secret is 42"]
        bob = reply(await chat(http, BOB_TOKEN, message="what was it?", session_id="s1"))
        assert bob == {"user": "bob", "earlier": []}

        # Bob cannot speak as ana, and nobody speaks without a token.
        r = await chat(http, BOB_TOKEN, message="what was it?", session_id="s1", user_id="ana")
        assert r.status_code == 403
        assert "not the authenticated caller" in r.json()["error"]["message"]
        r = await chat(http, message="what was it?", session_id="s1", user_id="ana")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert "ACTORCHESTRA_AUTH_TOKENS" in r.json()["error"]["message"]
        r = await chat(http, "not-a-token", message="hi", session_id="s1")
        assert r.status_code == 401
        assert "not-a-token" not in r.text


async def a2a_who(http: httpx.AsyncClient, context_id: str, token: str | None) -> dict[str, Any]:
    """What the agent says over A2A JSON-RPC, as a caller holding `token` (or none)."""
    headers = {"A2A-Version": "1.0", **({"Authorization": f"Bearer {token}"} if token else {})}
    message = {
        "messageId": uuid.uuid4().hex,
        "contextId": context_id,
        "role": "ROLE_USER",
        "parts": [{"text": "who am I?"}],
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    r = await http.post("/a2a/who", json=body, headers=headers)
    assert r.status_code == 200, r.text
    task = r.json()["result"]["task"]
    answer: dict[str, Any] = json.loads(task["artifacts"][0]["parts"][0]["text"])
    return answer


async def test_with_auth_a2a_callers_are_their_token_too(model_server: ModelServerHandle) -> None:
    app = await make_app(llm_endpoint(model_server), token_identity())
    async with runtime_client(app) as http:
        reply(await chat(http, ANA_TOKEN, message="my secret is 42", session_id="s2"))
        # The same user over A2A, in the same context, is in the same conversation ...
        assert await a2a_who(http, "s2", ANA_TOKEN) == {
            "user": "ana",
            "earlier": ["my secret is 42"],
        }
        # ... an anonymous A2A caller naming that context is not.
        assert await a2a_who(http, "s2", None) == {"user": "", "earlier": []}


def test_auth_tokens_come_from_the_environment_as_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACTORCHESTRA_AUTH_TOKENS", f"ana={ANA_TOKEN}, bob={BOB_TOKEN}")
    monkeypatch.setenv("ACTORCHESTRA_SESSION_SECRET", "s" * 40)
    runtime = RuntimeOptions.model_validate(Settings().runtime_options())
    assert {u: t.get_secret_value() for u, t in runtime.auth_tokens.items()} == {
        "ana": ANA_TOKEN,
        "bob": BOB_TOKEN,
    }
    assert ANA_TOKEN not in repr(runtime) and "s" * 40 not in repr(runtime)
    monkeypatch.setenv("ACTORCHESTRA_AUTH_TOKENS", f"ana={ANA_TOKEN},{BOB_TOKEN}")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "item 2 is not `user=token`" in str(info.value) and BOB_TOKEN not in str(info.value)


def test_a_short_token_is_refused() -> None:
    with pytest.raises(ValidationError, match="shorter than 16 characters"):
        RuntimeOptions(auth_tokens={"ana": SecretStr("1234")})
