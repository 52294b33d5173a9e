"""A third party's A2A agent: a real a2a-sdk server on loopback, not part of the runtime.

Loopback is refused to card fetches and calls to third parties unless allowed: a runtime
that is to reach it lists its `127.0.0.1:<port>` in `runtime.agent.tools.allowed_hosts`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import uvicorn
from a2a.helpers import new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events.event_queue_v2 import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import a2a_pb2
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH, PROTOCOL_VERSION_1_0
from starlette.applications import Starlette

from tests.integration.conftest import wait_for


class ForecastExecutor(AgentExecutor):
    """A third party's agent: always sunny."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        await event_queue.enqueue_event(
            new_text_message("sunny", context_id=context.context_id, role=a2a_pb2.Role.ROLE_AGENT)
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise NotImplementedError


@contextlib.contextmanager
def forecast_agent(port: int) -> Iterator[str]:
    """The `forecast` agent served on `127.0.0.1:port` until the block ends; yields its card URL."""
    base = f"http://127.0.0.1:{port}"
    card = a2a_pb2.AgentCard(
        name="forecast",
        description="Weather forecasts from somebody else's server",
        version="2.1.0",
        supported_interfaces=[
            a2a_pb2.AgentInterface(
                url=base, protocol_binding="JSONRPC", protocol_version=PROTOCOL_VERSION_1_0
            )
        ],
        capabilities=a2a_pb2.AgentCapabilities(streaming=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            a2a_pb2.AgentSkill(
                id="weather",
                name="weather forecast",
                description="Tell tomorrow's weather for a city",
                tags=["forecast", "rain"],
            )
        ],
    )
    handler = DefaultRequestHandler(ForecastExecutor(), InMemoryTaskStore(), card)
    app = Starlette(
        routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(handler, rpc_url="/")]
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="third-party-agent", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=10, what="third-party agent server started")
        yield f"{base}{AGENT_CARD_WELL_KNOWN_PATH}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
