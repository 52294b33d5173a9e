"""A third party's A2A agent card on a loopback socket, for tests of `POST /v1/agents`.

The server records every request (`tests.unit.raw_http`), so a test sees which fetches
the registry's guard let through. Loopback is refused by default: a test that means to
reach it allows exactly `CardServer.allowed`. Tests take it as the `card_server`
fixture (`tests/unit/conftest.py`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from a2a.types import a2a_pb2
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH, PROTOCOL_VERSION_1_0
from google.protobuf.json_format import MessageToDict

from tests.unit.raw_http import RawHttpServer, Reply, RequestHead, raw_http_server


def card_json(base: str) -> bytes:
    card = a2a_pb2.AgentCard(
        name="forecast",
        description="Weather forecasts from somebody else's server",
        version="2.1.0",
        supported_interfaces=[
            a2a_pb2.AgentInterface(
                url=base, protocol_binding="JSONRPC", protocol_version=PROTOCOL_VERSION_1_0
            )
        ],
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[a2a_pb2.AgentSkill(id="weather", name="weather", description="Forecasts")],
    )
    return json.dumps(MessageToDict(card)).encode()


@dataclass
class CardServer:
    """Serves a card at the well-known path; `/hop/...` redirects to `redirect_to`."""

    http: RawHttpServer
    redirect_to: str = ""

    @property
    def port(self) -> int:
        return self.http.port

    @property
    def paths(self) -> list[str]:
        return self.http.paths

    @property
    def base(self) -> str:
        return self.http.base

    @property
    def card_url(self) -> str:
        return f"{self.base}{AGENT_CARD_WELL_KNOWN_PATH}"

    @property
    def allowed(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def serve_card() -> AsyncIterator[CardServer]:
    """A card server on every address, until the block ends."""

    def route(request: RequestHead) -> Reply:
        if request.path.startswith("/hop/"):
            return Reply("307 Temporary Redirect", {"Location": state.redirect_to})
        return Reply("200 OK", {"Content-Type": "application/json"}, card_json(state.base))

    # every address: a followed redirect to 127.0.0.2 would be answered (and recorded)
    async with raw_http_server(route, "0.0.0.0") as http:
        state = CardServer(http)
        yield state
