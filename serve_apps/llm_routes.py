"""The runtime's LLM endpoints: the model server it uses, and a one-agent chat turn.

- `GET /v1/llm/models`: the models the configured endpoint serves (502 with the reason
  when it cannot say);
- `POST /v1/llm/test-connection`: probe the configured endpoint, or another one named in
  the body; the answer is a report (`ok`, latency, error), never a 500. Another endpoint
  is reached only if it is public, on the configured endpoint's origin, or allowed by
  `ACTORCHESTRA_ALLOWED_HOSTS` (`protocol.netguard`; 403 otherwise), and never with the
  runtime's own API key unless it is that origin;
- `POST /v1/chat`: one turn with one agent, sent to it as an A2A message. The session id
  is the A2A contextId, so the agent sees the session's earlier turns (chat memory), and
  the user is whoever `identity` says the caller is (see `serve_apps.identity`), so
  sessions are per user and one caller cannot read another's. JSON, or Server-Sent
  Events with `"stream": true`.

Model failures enter as `LLMError`s (the client translated them) and A2A failures as
`A2AError`s; both are turned into HTTP answers here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx
from a2a.types import a2a_pb2
from a2a.utils.errors import A2AError, InvalidParamsError, InvalidRequestError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from google.protobuf.json_format import MessageToDict
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from actorchestra.actors.llm import ConnectionReport, LLMClient, LLMConfig, LLMError
from actorchestra.protocol.context import CallInfo
from actorchestra.protocol.endpoint import AgentEndpoint, Event
from actorchestra.protocol.errors import (
    ActorchestraError,
    AgentNotFoundError,
    InvalidInputError,
    error_body,
)
from actorchestra.protocol.netguard import GuardedTransport, NetGuard, origin_entry
from actorchestra.serve_apps.identity import ChatCaller, ChatIdentity

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

_PROBE_TTL_S = 5.0  # /health asks the model server at most this often
_PROBE_TIMEOUT_S = 2.0
_FAILED_STATES = {"failed", "rejected", "canceled"}
_PROBE_HINT = (
    "to probe it, add the host to ACTORCHESTRA_ALLOWED_HOSTS (runtime.agent.tools."
    "allowed_hosts in the config file), or make it the runtime's endpoint with "
    "ACTORCHESTRA_LLM_BASE_URL"
)


class LLMEndpoint:
    """The model endpoint the agents use, as the ingress reports and probes it.

    The client here serves only the runtime's own LLM endpoints (the agents have their
    own), so it retries at most once: an operator asking "is it up?" wants the answer
    now, not after the agents' full backoff.
    """

    def __init__(self, config: LLMConfig, offline: bool, allowed_hosts: Sequence[str] = ()) -> None:
        self.config = config
        self.offline = offline
        self.allowed_hosts = list(allowed_hosts)
        self._client: LLMClient | None = None
        self._probe: tuple[float, ConnectionReport] | None = None
        self._probe_lock = asyncio.Lock()

    @property
    def client(self) -> LLMClient:
        if self._client is None:
            retries = min(self.config.max_retries, 1)
            self._client = LLMClient(self.config.model_copy(update={"max_retries": retries}))
        return self._client

    async def health(self) -> dict[str, Any]:
        """`{"base_url", "offline", "model", "reachable", "latency_ms"}` (+ `error`), cached."""
        async with self._probe_lock:
            now = time.monotonic()
            if self._probe is None or now - self._probe[0] > _PROBE_TTL_S:
                report = await self.client.test_connection(timeout_s=_PROBE_TIMEOUT_S)
                self._probe = (now, report)
            report = self._probe[1]
        body: dict[str, Any] = {
            "base_url": self.config.base_url,
            "offline": self.offline,
            "model": self.config.model,
            # it answered: a wrong model name is a configuration error, not an outage
            "reachable": report.ok or bool(report.models),
            "latency_ms": round(report.latency_s * 1000, 1),
        }
        if report.error:
            body["error"] = report.error
        return body

    async def probe(self, body: TestConnectionRequest) -> ConnectionReport:
        """Test the endpoint `body` names (the configured one by default), once.

        Raises `AddressRefusedError` (403) for a private or local address that is neither
        the configured endpoint's origin nor allowed; every other failure is a report.
        """
        overrides = body.model_dump(exclude={"timeout_s", "base_url", "api_key"}, exclude_none=True)
        if body.base_url is None:
            if body.api_key is not None:
                overrides["api_key"] = body.api_key
            config = self.config.model_copy(update={**overrides, "max_retries": 0})
            if not overrides:
                return await self.client.test_connection(timeout_s=body.timeout_s)
            async with LLMClient(config) as client:
                return await client.test_connection(timeout_s=body.timeout_s)
        ours = origin_entry(self.config.base_url)
        same_origin = ours is not None and origin_entry(body.base_url) == ours
        # The runtime's key and organization go only to the runtime's own endpoint: a
        # caller naming another host must not receive them.
        overrides["base_url"] = body.base_url
        overrides["api_key"] = body.api_key or (self.config.api_key if same_origin else None)
        if not same_origin:
            overrides["organization"] = None
        config = self.config.model_copy(update={**overrides, "max_retries": 0})
        guard = NetGuard(
            [*self.allowed_hosts, *([ours] if same_origin and ours else [])], hint=_PROBE_HINT
        )
        started = time.perf_counter()
        try:
            async with asyncio.timeout(body.timeout_s):
                await guard.check(httpx.URL(body.base_url))
        except (OSError, TimeoutError) as e:
            return _failed_report(
                config,
                started,
                f"Cannot resolve the model server at {body.base_url}: {str(e) or 'timed out'}",
            )
        # The check above answers the caller clearly; the transport checks again at
        # connect time (pinning the address) and on every redirect.
        http = httpx.AsyncClient(
            transport=GuardedTransport(guard), trust_env=False, follow_redirects=True
        )
        async with LLMClient(config, http_client=http) as client:
            return await client.test_connection(timeout_s=body.timeout_s)


def _failed_report(config: LLMConfig, started: float, error: str) -> ConnectionReport:
    return ConnectionReport(
        ok=False,
        base_url=config.base_url,
        model=config.model,
        latency_s=time.perf_counter() - started,
        error=error,
    )


# -- request bodies ------------------------------------------------------------------------


class TestConnectionRequest(BaseModel):
    """Probe another endpoint than the configured one; every field is optional."""

    __test__ = False  # not a pytest test class, whatever its name says

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(default=None, description="OpenAI-compatible, ending in /v1")
    api_key: SecretStr | None = None
    model: str | None = Field(default=None, min_length=1)
    timeout_s: float = Field(default=10.0, gt=0, le=60)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http:// or https:// URL")
        try:
            host = httpx.URL(v).host
        except httpx.InvalidURL as e:
            raise ValueError(f"base_url is not a valid URL: {e}") from None
        if not host:
            raise ValueError("base_url has no host")
        return v


class ChatRequest(BaseModel):
    """One chat turn with one agent."""

    model_config = ConfigDict(extra="forbid")

    agent: str = Field(min_length=1, description="a local agent's name")
    message: str = Field(description="the user's text")
    session_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="the conversation (A2A contextId); a new one when left out",
    )
    user_id: str | None = Field(
        default=None,
        max_length=200,
        description="whose session it is (sessions are per user); with auth configured, "
        "the bearer token's user (leave it out), without, a label bound into the session id",
    )
    skill: str | None = Field(default=None, description="the agent skill to use, by id")
    stream: bool = Field(default=False, description="answer with Server-Sent Events")

    @field_validator("message")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("message is empty")
        return v


async def _parse(request: Request, model: type[M], optional: bool = False) -> M:
    """The body as `model`; a 422 that says what is wrong otherwise (not FastAPI's list)."""
    raw = await request.body()
    if optional and not raw.strip():
        return model()
    try:
        return model.model_validate_json(raw)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in e.errors()
        )
        raise InvalidInputError(f"invalid request body: {problems}") from None


def _body_doc(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    """OpenAPI for a body the handler parses itself."""
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


# -- routes ------------------------------------------------------------------------------


def mount_llm_routes(
    app: FastAPI,
    endpoints: Mapping[str, AgentEndpoint],
    llm: LLMEndpoint,
    identity: ChatIdentity,
) -> None:
    """Add the LLM and chat routes; `endpoints` are the local agents by name.

    `identity` decides whose chat a request is; the app must carry its auth middleware
    (`identity.install_auth`) when it has tokens.
    """

    @app.get("/v1/llm/models", tags=["llm"])
    async def list_models() -> JSONResponse:
        """The models the configured LLM endpoint serves."""
        try:
            models = await llm.client.list_models(timeout_s=10.0)
        except LLMError as e:
            # The endpoint is upstream of us: whatever it did, this is a bad gateway.
            return JSONResponse(error_body(e), status_code=502)
        return JSONResponse(
            {
                "base_url": llm.config.base_url,
                "offline": llm.offline,
                "default_model": llm.config.model,
                "models": models,
            }
        )

    @app.post(
        "/v1/llm/test-connection",
        tags=["llm"],
        openapi_extra=_body_doc(TestConnectionRequest, required=False),
    )
    async def test_connection(request: Request) -> JSONResponse:
        """Ask an endpoint for its models once and report: ok, latency, models, error."""
        body = await _parse(request, TestConnectionRequest, optional=True)
        try:
            report = await llm.probe(body)
        except ActorchestraError:
            raise  # a refused address: the caller's answer is the 403 saying so
        except Exception as e:  # a URL the client cannot even use: still a report
            base_url = body.base_url or llm.config.base_url
            logger.info("test-connection to %s failed before a request: %r", base_url, e)
            report = ConnectionReport(
                ok=False,
                base_url=base_url,
                model=body.model or llm.config.model,
                latency_s=0.0,
                error=f"{type(e).__name__}: {e}",
            )
        return JSONResponse(
            {
                "ok": report.ok,
                "base_url": report.base_url,
                "model": report.model,
                "latency_ms": round(report.latency_s * 1000, 1),
                "models": report.models,
                "error": report.error,
            }
        )

    known = ", ".join(sorted(endpoints)) or "none"

    @app.post("/v1/chat", tags=["chat"], openapi_extra=_body_doc(ChatRequest))
    async def chat(request: Request) -> Any:
        """One chat turn with an agent: JSON, or Server-Sent Events with `stream: true`.

        JSON: `{"agent", "session_id", "task_id", "state", "reply", "usage"}` (a failed
        turn answers 502 with `error`). Events: `token` (`{"text"}`), `status`
        (`{"state", "message"}`), then `done` (the JSON answer) or `error`.
        """
        body = await _parse(request, ChatRequest)
        caller = identity.caller(request, body.user_id, body.session_id)
        endpoint = endpoints.get(body.agent)
        if endpoint is None:
            raise AgentNotFoundError(f"no agent named {body.agent!r}; agents here: {known}")
        turn = ChatTurn(body, endpoint, caller)
        if body.stream:
            return StreamingResponse(
                turn.events(),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await turn.answer()


# -- one chat turn ---------------------------------------------------------------------------


def _state_name(state: int) -> str:
    """`TASK_STATE_INPUT_REQUIRED` -> `input-required`."""
    return a2a_pb2.TaskState.Name(state).removeprefix("TASK_STATE_").lower().replace("_", "-")


def _plain(value: Any) -> Any:
    """A protobuf Struct's numbers are all floats; whole ones go back to ints (tokens: 37)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _parts_text(parts: Any) -> str:
    out = []
    for part in parts:
        if part.HasField("text"):
            out.append(part.text)
        elif part.HasField("data"):
            out.append(json.dumps(_plain(MessageToDict(part.data)), ensure_ascii=False))
    return "".join(out)


def _sse(event: str, data: Mapping[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class ChatTurn:
    """One message to one agent, read as a reply: whole (JSON) or as it streams (SSE)."""

    def __init__(self, body: ChatRequest, endpoint: AgentEndpoint, caller: ChatCaller) -> None:
        self.body = body
        self.endpoint = endpoint
        self.session_id = caller.session_id
        self.call = CallInfo(user=caller.user, authenticated=caller.authenticated)
        self.task_id = ""
        self.state = "submitted"
        self.metadata: dict[str, Any] = {}

    def request(self) -> a2a_pb2.SendMessageRequest:
        message = a2a_pb2.Message(
            message_id=uuid.uuid4().hex,
            context_id=self.session_id,
            role=a2a_pb2.Role.ROLE_USER,
            parts=[a2a_pb2.Part(text=self.body.message)],
        )
        if self.body.skill:
            message.metadata.update({"skill": self.body.skill})
        return a2a_pb2.SendMessageRequest(message=message)

    def result(self, reply: str, error: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "agent": self.body.agent,
            "session_id": self.session_id,
            "task_id": self.task_id,
            "state": self.state,
            "reply": reply,
            "usage": self.metadata.get("llm"),
        }
        if "memory" in self.metadata:
            out["memory"] = self.metadata["memory"]
        if error is not None:
            out["error"] = error
        return out

    def _take_metadata(self, metadata: Any) -> None:
        if metadata.fields:
            self.metadata.update(_plain(MessageToDict(metadata)))

    async def answer(self) -> JSONResponse:
        try:
            outcome = await self.endpoint.send_message(self.request(), self.call)
        except A2AError as e:
            return _a2a_failure(e)
        if isinstance(outcome, a2a_pb2.Message):
            self.task_id, self.state = outcome.task_id, "completed"
            self._take_metadata(outcome.metadata)
            return JSONResponse(self.result(_parts_text(outcome.parts)))
        self.task_id, self.state = outcome.id, _state_name(outcome.status.state)
        self._take_metadata(outcome.metadata)
        note = _parts_text(outcome.status.message.parts)
        if self.state in _FAILED_STATES:
            body = self.result("", error=note or f"the task was {self.state}")
            return JSONResponse(body, status_code=502)
        if self.state == "completed":
            reply = "".join(_parts_text(a.parts) for a in outcome.artifacts)
        else:  # input-required, auth-required: the agent's question is the reply
            reply = note
        return JSONResponse(self.result(reply))

    async def events(self) -> AsyncIterator[str]:
        """`token`, `status`, then `done` or `error`; the stream ends with the turn."""
        pieces: list[str] = []
        note = ""
        try:
            async for event in self.endpoint.send_message_stream(self.request(), self.call):
                for name, data in self._read(event, pieces):
                    if name == "status":
                        note = data["message"] or note
                    yield _sse(name, data)
        except (ActorchestraError, A2AError) as e:
            yield _sse("error", {**self.result("".join(pieces), error=e.message)})
            return
        if self.state in _FAILED_STATES:
            failed = self.result("".join(pieces), error=note or f"the task was {self.state}")
            yield _sse("error", failed)
            return
        reply = "".join(pieces) if pieces or self.state == "completed" else note
        yield _sse("done", self.result(reply))

    def _read(self, event: Event, pieces: list[str]) -> list[tuple[str, dict[str, Any]]]:
        """The SSE events one A2A event becomes (text deltas collected in `pieces`)."""
        if isinstance(event, a2a_pb2.TaskArtifactUpdateEvent):
            self._take_metadata(event.metadata)
            text = _parts_text(event.artifact.parts)
            if not text:
                return []
            pieces.append(text)
            return [("token", {"text": text})]
        if isinstance(event, a2a_pb2.TaskStatusUpdateEvent):
            self.task_id = event.task_id or self.task_id
            self.state = _state_name(event.status.state)
            self._take_metadata(event.metadata)
            message = _parts_text(event.status.message.parts)
            return [("status", {"task_id": self.task_id, "state": self.state, "message": message})]
        if isinstance(event, a2a_pb2.Task):
            self.task_id = event.id
            self.state = _state_name(event.status.state)
            self._take_metadata(event.metadata)
            message = _parts_text(event.status.message.parts)
            return [("status", {"task_id": self.task_id, "state": self.state, "message": message})]
        # A bare message is the whole answer.
        self.task_id, self.state = event.task_id or self.task_id, "completed"
        self._take_metadata(event.metadata)
        text = _parts_text(event.parts)
        pieces.append(text)
        return [("token", {"text": text})] if text else []


def _a2a_failure(e: A2AError) -> JSONResponse:
    """An A2A error from the agent as an HTTP answer: the caller's fault 422, else 502."""
    status = 422 if isinstance(e, InvalidParamsError | InvalidRequestError) else 502
    reason = "INVALID_INPUT" if status == 422 else "AGENT_ERROR"
    return JSONResponse(
        {"error": {"code": status, "reason": reason, "message": e.message}}, status_code=status
    )
