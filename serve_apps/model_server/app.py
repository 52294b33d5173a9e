"""The offline model server's HTTP app: OpenAI's routes over the deterministic brain.

Routes: `GET /v1/models`, `GET /v1/models/{id}`, `POST /v1/chat/completions` (streamed
as SSE or not), `POST /v1/embeddings`; admin routes to inject faults and latency
(`GET/POST/DELETE /admin/faults`, `PUT /admin/latency`, `GET /admin/stats`) and
`GET /health`. Every error is OpenAI's error JSON, so the `openai` client raises the
same exception classes it would against the real service.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from actorchestra.serve_apps.model_server import brain, embeddings, wire
from actorchestra.serve_apps.model_server import text as t
from actorchestra.serve_apps.model_server.config import FaultSpec, LatencySpec, ModelServerConfig
from actorchestra.serve_apps.model_server.faults import FaultInjector

logger = logging.getLogger(__name__)


class OpenAIError(Exception):
    """An error answer in OpenAI's format, raised anywhere in a request, rendered once."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = wire.error_body(self.message, self.status, code=self.code, param=self.param)
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _retry_headers(fault: FaultSpec) -> dict[str, str]:
    if fault.retry_after_s is None:
        return {}
    seconds = fault.retry_after_s
    text = str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"
    return {"Retry-After": text, "retry-after-ms": str(int(seconds * 1000))}


def create_app(config: ModelServerConfig | None = None) -> FastAPI:
    """The ASGI app for one offline model server; state lives on the app, not in globals."""
    config = config or ModelServerConfig()
    app = FastAPI(
        title="actorchestra offline model server", docs_url=None, redoc_url=None, openapi_url=None
    )
    faults = FaultInjector(config.faults)
    latency = LatencySpec(latency_s=config.latency_s, token_latency_s=config.token_latency_s)
    counter = itertools.count(1)
    app.state.config = config
    app.state.faults = faults

    @app.exception_handler(OpenAIError)
    async def _openai_error(_: Request, exc: OpenAIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        param = None
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p != "body"]
            param = param or (".".join(loc) or None)
            problems.append(f"{'.'.join(loc) or 'body'}: {err.get('msg')}")
        message = "Invalid request body: " + "; ".join(problems)
        return OpenAIError(400, message, param=param).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return OpenAIError(exc.status_code, str(exc.detail)).response()

    def check_auth(request: Request) -> None:
        if config.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != config.api_key:
            shown = (token[:3] + "***") if token else "(none)"
            raise OpenAIError(
                401,
                f"Incorrect API key provided: {shown}. The offline model "
                "server was started with an API key; send it as a Bearer token.",
            )

    async def guard(request: Request) -> None:
        """Auth, then injected faults, then the configured per-request latency."""
        path = request.url.path
        faults.record(path)
        check_auth(request)
        fault = faults.take(path)
        if fault is not None and fault.kind == "error":
            message = fault.message or f"Injected fault: HTTP {fault.status} (offline server)"
            raise OpenAIError(fault.status, message, headers=_retry_headers(fault))
        if fault is not None:
            await faults.hang(fault, request.is_disconnected)
        if latency.latency_s:
            await asyncio.sleep(latency.latency_s)

    def check_model(model: str) -> None:
        if model not in config.models:
            raise OpenAIError(
                404,
                f"The model `{model}` does not exist or you do not have access "
                f"to it. The offline server serves: {', '.join(config.models)}.",
                code="model_not_found",
                param="model",
            )

    def model_json(model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 0, "owned_by": "actorchestra"}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models", dependencies=[Depends(guard)])
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_json(m) for m in config.models]}

    @app.get("/v1/models/{model_id:path}", dependencies=[Depends(guard)])
    async def get_model(model_id: str) -> dict[str, Any]:
        check_model(model_id)
        return model_json(model_id)

    @app.post("/v1/chat/completions", dependencies=[Depends(guard)], response_model=None)
    async def chat(body: wire.ChatCompletionRequest) -> JSONResponse | StreamingResponse:
        check_model(body.model)
        reply = brain.respond(
            [m.model_dump(exclude_none=True) for m in body.messages],
            tool_specs=[tool.model_dump(exclude_none=True) for tool in body.tools or []],
            tool_choice=body.tool_choice,
            response_format=(
                body.response_format.model_dump(by_alias=True, exclude_none=True)
                if body.response_format
                else None
            ),
            max_tokens=body.token_limit(),
            reply_tokens=body.offline_reply_tokens,
        )
        digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()[:20]
        cid = f"chatcmpl-{next(counter):06d}{digest}"
        created = int(time.time())
        prompt = wire.prompt_tokens(body)
        if body.stream:
            include = bool(body.stream_options and body.stream_options.include_usage)
            events = _sse(cid, body.model, created, reply, prompt, include, latency)
            return StreamingResponse(
                events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
            )
        counts = wire.usage(prompt, wire.completion_tokens(reply))
        if latency.token_latency_s:
            await asyncio.sleep(latency.token_latency_s * counts["completion_tokens"])
        return JSONResponse(wire.completion(cid, body.model, created, reply, counts))

    @app.post("/v1/embeddings", dependencies=[Depends(guard)])
    async def embed(body: wire.EmbeddingRequest) -> dict[str, Any]:
        check_model(body.model)
        texts = body.texts()
        if not texts:
            raise OpenAIError(400, "Invalid request body: input must not be empty", param="input")
        dims = body.dimensions or config.embedding_dimensions
        data = [
            wire.embedding_item(i, embeddings.embed(text, dims), body.encoding_format)
            for i, text in enumerate(texts)
        ]
        tokens = sum(t.count_tokens(text) for text in texts)
        return {
            "object": "list",
            "data": data,
            "model": body.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    @app.get("/admin/faults", dependencies=[Depends(check_auth)])
    async def get_faults() -> dict[str, Any]:
        return {"faults": [f.model_dump() for f in faults.pending()]}

    @app.post("/admin/faults", dependencies=[Depends(check_auth)])
    async def add_fault(fault: FaultSpec) -> dict[str, Any]:
        faults.add(fault)
        logger.info("fault queued: %s", fault.model_dump(exclude_none=True))
        return {"faults": [f.model_dump() for f in faults.pending()]}

    @app.delete("/admin/faults", dependencies=[Depends(check_auth)])
    async def clear_faults() -> dict[str, Any]:
        faults.clear()
        return {"faults": []}

    @app.put("/admin/latency", dependencies=[Depends(check_auth)])
    async def set_latency(spec: LatencySpec) -> dict[str, float]:
        latency.latency_s, latency.token_latency_s = spec.latency_s, spec.token_latency_s
        return latency.model_dump()

    @app.get("/admin/stats", dependencies=[Depends(check_auth)])
    async def stats() -> dict[str, Any]:
        return {
            "requests": dict(faults.requests),
            "faults_served": faults.faults_served,
            "faults_pending": len(faults.pending()),
        }

    return app


async def _sse(
    cid: str,
    model: str,
    created: int,
    reply: brain.BrainReply,
    prompt_tokens: int,
    include_usage: bool,
    latency: LatencySpec,
) -> AsyncIterator[str]:
    """Server-sent events in OpenAI's chunk format, one token per chunk, then `[DONE]`.

    The reply is cut into tokens as it goes and counted at the end, so the first chunk
    leaves without waiting for a long reply to be cut up."""
    deltas = wire.stream_deltas(reply)
    for i, delta in enumerate(deltas):
        if i and latency.token_latency_s:
            await asyncio.sleep(latency.token_latency_s)
        body = wire.chunk(cid, model, created, delta, with_usage=include_usage)
        yield f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
    final = wire.chunk(cid, model, created, {}, reply.finish_reason, with_usage=include_usage)
    yield f"data: {json.dumps(final)}\n\n"
    if include_usage:
        counts = wire.usage(prompt_tokens, wire.completion_tokens(reply))
        tail = wire.chunk(cid, model, created, None, with_usage=True, counts=counts)
        yield f"data: {json.dumps(tail)}\n\n"
    yield "data: [DONE]\n\n"
