"""Typed configuration of the offline model server and of the faults it can be told to fake."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_CHAT_MODEL = "actorchestra-offline"
DEFAULT_EMBEDDING_MODEL = "actorchestra-offline-embed"


class FaultSpec(BaseModel):
    """Make the next `count` matching requests fail, so retries and timeouts meet real HTTP.

    `kind="error"` answers with HTTP `status` in OpenAI's error format, with a
    `Retry-After` header (and `retry-after-ms`) when `retry_after_s` is set.
    `kind="hang"` holds the request open for up to `hang_s` seconds without answering;
    the hang ends early when faults are cleared, the client disconnects, or the server
    stops, after which the request is answered normally.
    `path` limits the fault to requests whose path starts with it (e.g. `/v1/chat`).
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["error", "hang"] = "error"
    status: int = Field(default=500, ge=400, le=599)
    count: int = Field(default=1, ge=1)
    retry_after_s: float | None = Field(default=None, ge=0)
    message: str | None = None
    hang_s: float = Field(default=300.0, gt=0)
    path: str | None = None


class ModelServerConfig(BaseModel):
    """How the offline model server behaves.

    `latency_s` is added to every model request and `token_latency_s` per completion token
    (between stream chunks, or in total before a non-streamed answer), so benchmarks can
    mimic a real model's time to first token and tokens per second.
    With `api_key` set, requests must carry `Authorization: Bearer <api_key>` (401 otherwise);
    without it any or no Authorization header is accepted.
    """

    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(
        default_factory=lambda: [DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDING_MODEL], min_length=1
    )
    api_key: str | None = None
    latency_s: float = Field(default=0.0, ge=0)
    token_latency_s: float = Field(default=0.0, ge=0)
    embedding_dimensions: int = Field(default=384, ge=1, le=8192)
    faults: list[FaultSpec] = Field(default_factory=list)


class LatencySpec(BaseModel):
    """Body of `PUT /admin/latency`: change the added latency while the server runs."""

    model_config = ConfigDict(extra="forbid")

    latency_s: float = Field(default=0.0, ge=0)
    token_latency_s: float = Field(default=0.0, ge=0)
