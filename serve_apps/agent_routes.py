"""The agent registry over HTTP: `/v1/agents`, to list agents and add third-party ones.

Reading the registry is open to anyone who can reach the ingress, as the agent cards
are. Changing it is not, once the runtime has auth (`serve_apps.identity`): a
registered card URL is fetched by the registry on every health probe and the agent
becomes a target of the planner's subtasks, so `POST /v1/agents` and
`DELETE /v1/agents/{name}` need a bearer token (401 without). Any authenticated caller
may register or remove a third-party agent: the registry has no owners.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from fastapi import Depends, FastAPI, Query, Request
from pydantic import BaseModel

from actorchestra.protocol.errors import InvalidInputError
from actorchestra.serve_apps.identity import AuthTokens, require_caller


class AgentBackend(Protocol):
    """What the routes need of the registry: `actors.runtime.RegistryHandle`."""

    async def register_remote(self, card_url: str, name: str | None = None) -> dict[str, Any]: ...

    async def list(self) -> list[dict[str, Any]]: ...

    async def get(self, name: str) -> dict[str, Any]: ...

    async def find(
        self, skill: str | None = None, tag: str | None = None, query: str | None = None
    ) -> list[dict[str, Any]]: ...

    async def remove(self, name: str) -> None: ...


class RegisterRemoteAgent(BaseModel):
    card_url: str
    name: str | None = None


def add_agent_routes(
    app: FastAPI, registry: AgentBackend, local_agents: Collection[str], tokens: AuthTokens
) -> None:
    """Mount the registry routes; with `tokens` enabled the app must run `install_auth`.

    `local_agents` are the config's own, which only a redeploy removes.
    """

    async def registrar(request: Request) -> None:
        """A dependency, so the 401 comes before the body is validated."""
        require_caller(tokens, request, "agent registry")

    @app.get("/v1/agents", tags=["agents"])
    async def list_agents(
        skill: str | None = Query(None, description="only agents offering this skill id"),
        tag: str | None = Query(None, description="only agents with a skill carrying this tag"),
        q: str | None = Query(None, description="free text over skill names and descriptions"),
    ) -> dict[str, Any]:
        if skill or tag or q:
            return {"agents": await registry.find(skill, tag, q)}
        return {"agents": await registry.list()}

    @app.get("/v1/agents/{name}", tags=["agents"])
    async def get_agent(name: str) -> dict[str, Any]:
        return await registry.get(name)

    @app.post("/v1/agents", status_code=201, tags=["agents"], dependencies=[Depends(registrar)])
    async def register_remote(body: RegisterRemoteAgent) -> dict[str, Any]:
        """Register a third-party A2A agent by its card URL (with auth: a bearer token).

        The registry fetches the card now and on every health probe, so the URL must
        reach a public address or one in ACTORCHESTRA_ALLOWED_HOSTS: 403 otherwise.
        """
        return await registry.register_remote(body.card_url, body.name)

    @app.delete(
        "/v1/agents/{name}", status_code=204, tags=["agents"], dependencies=[Depends(registrar)]
    )
    async def unregister(name: str) -> None:
        """Remove a third-party agent (with auth: a bearer token)."""
        if name in local_agents:
            raise InvalidInputError(
                f"{name!r} is a local agent from the config; remove it there and redeploy"
            )
        await registry.remove(name)
