"""The runtime's HTTP routes without Ray: the app as the ingress sets it up.

Route modules (`llm_routes`, `task_routes`, ...) are mounted by their tests on a bare
FastAPI app that authenticates and answers runtime errors the way the ingress does,
and are called in process through `httpx.ASGITransport`, or, where a test needs what
only a server does (a WebSocket handshake, the CLI's own requests), over a loopback
socket with `served`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from actorchestra.protocol.errors import ActorchestraError
from actorchestra.serve_apps.identity import AuthTokens, install_auth
from actorchestra.serve_apps.middleware import runtime_error_response


def runtime_app(tokens: AuthTokens) -> FastAPI:
    """An app with the ingress's auth in front and its answer to runtime errors."""
    app = FastAPI()
    install_auth(app, tokens)

    @app.exception_handler(ActorchestraError)
    async def _runtime_error(_: Request, exc: ActorchestraError) -> JSONResponse:
        return runtime_error_response(exc)

    return app


@contextlib.asynccontextmanager
async def runtime_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that calls `app` in this process, as if it were the runtime's ingress."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://runtime") as http:
        yield http


@contextlib.asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free loopback port in this loop; yields its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        ws="websockets-sansio",  # uvicorn's other websockets protocol is deprecated
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(), name="uvicorn")
    async with asyncio.timeout(10):
        while not server.started:
            if serving.done():
                serving.result()  # failed to start: raise its error
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
