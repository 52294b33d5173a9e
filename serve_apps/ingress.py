"""The Ray Serve ingress: runtime endpoints and every agent's A2A surface.

Each ingress replica makes sure the registry and the agent actors exist (creating
what is missing), registers the agents, and then builds its FastAPI app around live
endpoints (`__serve_build_asgi_app__`, Serve's late-bound ingress).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import ray
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from actorchestra.actors.endpoint import LocalAgentEndpoint
from actorchestra.actors.planner.actor import ensure_planner
from actorchestra.actors.planner.service import ORCHESTRATOR, PlannerOptions
from actorchestra.actors.runtime import (
    RegistryHandle,
    ensure_agent,
    ensure_registry,
    freeze_startup_objects,
    local_endpoint,
    register_agent,
    retire_agents,
)
from actorchestra.actors.spec import AgentSpec
from actorchestra.protocol.codec import unpack
from actorchestra.protocol.errors import ActorchestraError
from actorchestra.serve_apps.a2a_routes import mount_agent
from actorchestra.serve_apps.agent_routes import add_agent_routes
from actorchestra.serve_apps.config import AppConfig
from actorchestra.serve_apps.identity import ChatIdentity, install_auth
from actorchestra.serve_apps.llm_routes import LLMEndpoint, mount_llm_routes
from actorchestra.serve_apps.middleware import (
    RequestGuard,
    error_payload,
    runtime_error_response,
)
from actorchestra.serve_apps.served_by import ServedBy, current_replica
from actorchestra.serve_apps.task_routes import add_task_routes

logger = logging.getLogger(__name__)

# How often each ingress replica hands the registry and planner its deploy's settings.
REASSERT_S = 5.0


@serve.ingress()
class Ingress:
    """The HTTP front door of the runtime."""

    async def __init__(self, config: AppConfig | dict[str, Any]) -> None:
        self.config = config if isinstance(config, AppConfig) else AppConfig.model_validate(config)
        rt = self.config.runtime
        self.deployed_at = time.time()  # orders this deploy's settings after earlier ones
        self.registry: RegistryHandle = ensure_registry(
            rt.namespace,
            rt.health_interval_s,
            rt.probe_timeout_s,
            # third-party card URLs follow the same allow-list as the tools' fetches
            allowed_hosts=rt.agent.tools.allowed_hosts,
            deployed_at=self.deployed_at,
        )
        self.endpoints: dict[str, LocalAgentEndpoint] = {}
        self.cards: dict[str, Any] = {}
        for spec in self.config.agents:
            handles = ensure_agent(
                spec, rt.namespace, self.config.agent_base_url(spec.name), rt.agent
            )
            await register_agent(self.registry, spec, handles)
            self.endpoints[spec.name] = local_endpoint(spec, handles, rt.namespace)
            self.cards[spec.name] = unpack(await handles[0].get_card.remote())
        self.llm = LLMEndpoint(
            rt.agent.llm, offline=rt.llm_offline, allowed_hosts=rt.agent.tools.allowed_hosts
        )
        self.identity = ChatIdentity.from_options(rt.auth_tokens, rt.session_secret, rt.data_dir)
        planner_options = PlannerOptions(
            data_dir=rt.data_dir,
            llm=rt.agent.llm,
            subtask_timeout_s=rt.subtask_timeout_s,
            max_attempts=rt.max_attempts,
            # third-party agents are called where their cards were fetched from
            allowed_hosts=rt.agent.tools.allowed_hosts,
        )
        # its process runs a2a-sdk's client (third-party agents): the agents' environment
        self.planner = ensure_planner(rt.namespace, planner_options, rt.agent.process_env())
        # The runtime itself, as an A2A agent: hands tasks to the planner.
        orchestrator = AgentSpec(
            name=ORCHESTRATOR,
            cls="actorchestra.actors.orchestrator:OrchestratorAgent",
            options={"namespace": rt.namespace},
        )
        handles = ensure_agent(
            orchestrator, rt.namespace, self.config.agent_base_url(ORCHESTRATOR), rt.agent
        )
        await register_agent(self.registry, orchestrator, handles)
        self.endpoints[ORCHESTRATOR] = local_endpoint(orchestrator, handles, rt.namespace)
        self.cards[ORCHESTRATOR] = unpack(await handles[0].get_card.remote())
        # Agents and replicas an earlier deploy had and this one has not.
        keep = {spec.name: spec.replicas for spec in self.config.agents} | {ORCHESTRATOR: 1}
        for name in await asyncio.to_thread(retire_agents, rt.namespace, keep):
            await self.registry.remove_if_local(name)
        # The planner outlives deploys: one that was running takes this deploy's options.
        await self.planner.reconfigure(planner_options, self.deployed_at)
        self.replica = current_replica()  # named on every response (X-Actorchestra-Replica)
        self.started_at = time.time()
        freeze_startup_objects()
        self._settings = asyncio.create_task(
            self._reassert(planner_options), name="ingress-reassert-settings"
        )

    async def _reassert(self, planner_options: PlannerOptions) -> None:
        """Hand the registry and the planner this deploy's settings every few seconds.

        Ray restarts a detached actor whose process died with the arguments it was first
        made with, which are the first deploy's: without this, a registry or planner
        that crashed after a redeploy would go back to older settings for good.
        """
        rt = self.config.runtime
        while True:
            await asyncio.sleep(REASSERT_S)
            try:
                await self.registry.start(
                    rt.agent.tools.allowed_hosts,
                    rt.health_interval_s,
                    rt.probe_timeout_s,
                    self.deployed_at,
                )
                await self.planner.reconfigure(planner_options, self.deployed_at)
            except Exception as e:  # restarting right now: the next round tells it
                logger.info("could not hand the runtime actors their settings: %r", e)

    def __serve_build_asgi_app__(self) -> Any:
        return build_fastapi(self)


def build_fastapi(ingress: Ingress) -> Any:
    app = FastAPI(
        title="actorchestra",
        description="Agents as A2A-speaking Ray actors. Each agent's A2A endpoints live "
        "under /a2a/{name}; its card at /a2a/{name}/.well-known/agent-card.json.",
        version="0.1.0",
    )
    install_auth(app, ingress.identity.tokens)
    _runtime_routes(app, ingress)
    add_agent_routes(app, ingress.registry, ingress.endpoints, ingress.identity.tokens)
    mount_llm_routes(app, ingress.endpoints, ingress.llm, ingress.identity)
    add_task_routes(app, ingress.planner, ingress.identity.tokens)
    for name, endpoint in ingress.endpoints.items():
        mount_agent(
            app, name, ingress.cards[name], endpoint, ingress.config.runtime.card_cache_control
        )
    _fallbacks(app, ingress)
    return ServedBy(RequestGuard(app, ingress.config.runtime.max_body_bytes), ingress.replica)


def _runtime_routes(app: FastAPI, ingress: Ingress) -> None:
    registry = ingress.registry

    @app.exception_handler(ActorchestraError)
    async def _runtime_error(_: Request, exc: ActorchestraError) -> JSONResponse:
        return runtime_error_response(exc)

    @app.get("/health", tags=["runtime"])
    async def health() -> JSONResponse:
        """Ray, agents and active tasks at a glance; 503 when an agent is fully down."""
        try:
            agents = await asyncio.wait_for(registry.list(), 5)
            ray_ok = ray.is_initialized()
        except Exception as e:  # the registry is down: that is the health answer
            return JSONResponse(
                {"status": "unhealthy", "ray": False, "error": f"registry unreachable: {e!r}"},
                status_code=503,
            )
        status = "healthy"
        if any(a["health"] == "unhealthy" for a in agents):
            status = "unhealthy"
        elif any(a["health"] != "healthy" for a in agents):
            status = "degraded"
        body = {
            "status": status,
            "ray": ray_ok,
            "replica": ingress.replica,
            "uptime_s": round(time.time() - ingress.started_at, 1),
            "active_tasks": sum(a["in_flight"] for a in agents),
            "agents": {a["name"]: a["health"] for a in agents},
            # reported, not judged: agents without a model work while the model is down
            "llm": await ingress.llm.health(),
        }
        return JSONResponse(body, status_code=503 if status == "unhealthy" else 200)


def _fallbacks(app: FastAPI, ingress: Ingress) -> None:
    known = ", ".join(sorted(ingress.endpoints)) or "none"

    async def unknown_agent(request: Request) -> JSONResponse:
        name = request.path_params.get("name", "")
        if name in ingress.endpoints:
            status, message = 404, f"no such A2A path for agent {name!r}: {request.url.path}"
        else:
            status, message = 404, f"no agent named {name!r}; agents here: {known}"
        return JSONResponse(
            error_payload(request.scope, status, -32601, message), status_code=status
        )

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    app.add_api_route("/a2a/{name}", unknown_agent, methods=methods, include_in_schema=False)
    app.add_api_route(
        "/a2a/{name}/{rest:path}", unknown_agent, methods=methods, include_in_schema=False
    )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_payload(request.scope, exc.status_code, -32600, str(exc.detail)),
            status_code=exc.status_code,
        )
