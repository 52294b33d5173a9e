"""The runtime's HTTP routes without Ray or a socket: the app as the ingress sets it up.

Route modules (`llm_routes`, `task_routes`, ...) are mounted by their tests on a bare
FastAPI app that authenticates and answers runtime errors the way the ingress does,
and are called in process through `httpx.ASGITransport`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
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
