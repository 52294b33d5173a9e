"""Each agent's A2A surface under `/a2a/{name}`, built with a2a-sdk's route builders."""

from __future__ import annotations

from a2a.server.routes import (
    add_a2a_routes_to_fastapi,
    create_agent_card_routes,
    create_jsonrpc_routes,
    create_rest_routes,
)
from a2a.types import a2a_pb2
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH
from fastapi import FastAPI
from starlette.routing import Mount

from actorchestra.protocol.endpoint import AgentEndpoint
from actorchestra.protocol.handler import EndpointRequestHandler


def mount_agent(
    app: FastAPI, name: str, card: a2a_pb2.AgentCard, endpoint: AgentEndpoint, cache_control: str
) -> None:
    """Card, JSON-RPC (`POST /a2a/{name}` and `/a2a/{name}/`) and HTTP+JSON routes.

    a2a-sdk's REST builder also mounts `/{tenant}/...` copies of its routes at the
    root of whatever it is given; at the root of the ingress that would swallow every
    other path, so the tenant copies are mounted under the agent's prefix instead.
    """
    prefix = f"/a2a/{name}"
    handler = EndpointRequestHandler(endpoint)
    rest = create_rest_routes(handler, path_prefix=prefix)
    add_a2a_routes_to_fastapi(
        app,
        agent_card_routes=create_agent_card_routes(
            card, card_url=f"{prefix}{AGENT_CARD_WELL_KNOWN_PATH}", cache_control=cache_control
        ),
        jsonrpc_routes=[
            *create_jsonrpc_routes(handler, rpc_url=prefix),
            *create_jsonrpc_routes(handler, rpc_url=f"{prefix}/"),
        ],
        rest_routes=[r for r in rest if not isinstance(r, Mount)],
    )
    tenant_routes = [r for r in create_rest_routes(handler) if not isinstance(r, Mount)]
    app.router.routes.append(Mount(f"{prefix}/{{tenant}}", routes=tenant_routes))
