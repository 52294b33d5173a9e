"""The baseline: the same echo executor served by a2a-sdk's own routes in one uvicorn process.

Run: python bench/direct_server.py PORT
"""

from __future__ import annotations

import os
import sys

# Same a2a-sdk configuration as the runtime's agent actors (tracing off unless asked),
# so the comparison measures the runtime, not a setting. Read by a2a-sdk at import.
os.environ.setdefault("OTEL_INSTRUMENTATION_A2A_SDK_ENABLED", "false")

import uvicorn
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from starlette.applications import Starlette

from actorchestra.actors.examples import EchoAgent
from actorchestra.actors.executor import SkillExecutor
from actorchestra.protocol.cards import build_agent_card


def build(port: int) -> Starlette:
    card = build_agent_card(EchoAgent.agent_info(), f"http://127.0.0.1:{port}")
    handler = DefaultRequestHandler(
        agent_executor=SkillExecutor(EchoAgent()),
        task_store=InMemoryTaskStore(),
        agent_card=card,
    )
    return Starlette(routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/")])


if __name__ == "__main__":
    port = int(sys.argv[1])
    uvicorn.run(build(port), host="127.0.0.1", port=port, log_level="warning", access_log=False)
