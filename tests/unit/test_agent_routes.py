"""The agent registry over ASGI, without Ray: who may add and remove third-party agents.

The routes are mounted the way the ingress mounts them (auth middleware, runtime error
answers) in front of a real `RegistryService` in this process, through the calls the
Ray handle offers (`InProcessRegistry`); the third party's card is served on loopback
(`card_server`), which each registry here allows.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from actorchestra.actors.registry_service import RegistryService
from actorchestra.serve_apps.agent_routes import add_agent_routes
from actorchestra.serve_apps.identity import AuthTokens
from tests.unit.card_server import CardServer
from tests.unit.runtime_app import runtime_app, runtime_client

ANA_TOKEN = "ana-token-0123456789abcdef"
TOKENS = {"ana": SecretStr(ANA_TOKEN)}
LOCAL = "echo"  # an agent from the config, as the ingress names them


class InProcessRegistry:
    """The calls of `actors.runtime.RegistryHandle`, on a registry in this process."""

    def __init__(self, service: RegistryService) -> None:
        self.service = service

    async def register_remote(self, card_url: str, name: str | None = None) -> dict[str, Any]:
        return await self.service.register_remote(card_url, name)

    async def list(self) -> list[dict[str, Any]]:
        return await self.service.summaries()

    async def get(self, name: str) -> dict[str, Any]:
        return await self.service.summary(name)

    async def find(
        self, skill: str | None = None, tag: str | None = None, query: str | None = None
    ) -> list[dict[str, Any]]:
        return await self.service.find_summaries(skill, tag, query)

    async def remove(self, name: str) -> None:
        await self.service.remove(name)


def make_app(card_server: CardServer, tokens: dict[str, SecretStr] | None) -> FastAPI:
    auth = AuthTokens(tokens)
    app = runtime_app(auth)
    service = RegistryService("test", allowed_hosts=[card_server.allowed])
    add_agent_routes(app, InProcessRegistry(service), {LOCAL}, auth)
    return app


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def names(http: httpx.AsyncClient) -> list[str]:
    """The registry's agents, as anyone may list them."""
    r = await http.get("/v1/agents")
    assert r.status_code == 200, r.text
    return [a["name"] for a in r.json()["agents"]]


def needs_a_token(r: httpx.Response) -> None:
    """The 401 of every route that needs a caller: the task API's and chat's, word for word."""
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json() == {
        "error": {
            "code": 401,
            "reason": "UNAUTHENTICATED",
            "message": "this runtime identifies agent registry callers: send "
            "`Authorization: Bearer <token>` with a token from ACTORCHESTRA_AUTH_TOKENS",
        }
    }


async def test_with_auth_registering_and_removing_an_agent_needs_a_token(
    card_server: CardServer,
) -> None:
    async with runtime_client(make_app(card_server, TOKENS)) as http:
        body = {"card_url": card_server.card_url, "name": "forecast"}
        needs_a_token(await http.post("/v1/agents", json=body))
        # the 401 comes first, before the body is looked at
        needs_a_token(await http.post("/v1/agents", json={"name": "no card_url"}))
        r = await http.post("/v1/agents", json=body, headers=bearer("not-a-token"))
        assert r.status_code == 401 and "not-a-token" not in r.text
        assert card_server.paths == []  # nothing was fetched for them
        assert await names(http) == []

        r = await http.post("/v1/agents", json=body, headers=bearer(ANA_TOKEN))
        assert r.status_code == 201, r.text
        assert r.json()["name"] == "forecast" and r.json()["kind"] == "remote"
        assert await names(http) == ["forecast"]

        needs_a_token(await http.delete("/v1/agents/forecast"))
        assert await names(http) == ["forecast"]
        r = await http.delete("/v1/agents/forecast", headers=bearer(ANA_TOKEN))
        assert r.status_code == 204, r.text
        assert await names(http) == []

        # A token does not remove the config's own agents.
        r = await http.delete(f"/v1/agents/{LOCAL}", headers=bearer(ANA_TOKEN))
        assert r.status_code == 422
        assert "local agent from the config" in r.json()["error"]["message"]


@pytest.mark.parametrize("token", [None, "any-token-at-all-0123456789"])
async def test_without_auth_anyone_registers_and_removes(
    card_server: CardServer, token: str | None
) -> None:
    """Today's behaviour, kept: without tokens configured, no caller is told apart."""
    async with runtime_client(make_app(card_server, None)) as http:
        body = {"card_url": card_server.card_url, "name": "forecast"}
        r = await http.post("/v1/agents", json=body, headers=bearer(token))
        assert r.status_code == 201, r.text
        assert await names(http) == ["forecast"]
        r = await http.delete("/v1/agents/forecast", headers=bearer(token))
        assert r.status_code == 204, r.text
        assert await names(http) == []
