"""The project's own offline, deterministic, OpenAI-compatible model server.

Tests, examples and benchmarks talk to it with the real `openai` client over HTTP, so
nothing monkeypatches a client and retries, timeouts and streaming are exercised for real.

Start it::

    python -m actorchestra.serve_apps.model_server --host 127.0.0.1 --port 8099

or in-process, on a free port::

    handle = start_model_server(ModelServerConfig(latency_s=0.05))
    client = AsyncOpenAI(base_url=handle.base_url, api_key="anything")
    ...
    handle.stop()

Models: `actorchestra-offline` (chat) and `actorchestra-offline-embed` (embeddings) by
default; both ids work on both endpoints. Behaviour (see `brain` for details):

- plain chat: a reply tagged `[offline model]` that acts the system prompt's role
  ("You are a ..."), evaluates arithmetic, summarises or restates the request;
- long replies: ask for "N tokens"/"N words" or a long/detailed answer, or send the extra
  body field `offline_reply_tokens: N`; `max_tokens` caps every reply;
- `response_format` `json_schema`: a valid instance filled from the prompt;
  `json_object`: `{"answer": "..."}`;
- tools: calls the best-matching tool with schema-valid arguments; after a `tool`
  message it answers from the result;
- planning: a system prompt holding a JSON array of skills
  `[{"id", "name", "description", "tags"}]` makes the reply a plan (see `planning`);
- embeddings: feature-hashed, L2-normalised, 384 dimensions unless asked otherwise.

Faults (admin API, or `ModelServerConfig.faults`): `POST /admin/faults` with a
`FaultSpec` body (`{"kind": "error", "status": 429, "count": 1, "retry_after_s": 1}` or
`{"kind": "hang", "count": 1}`), `GET`/`DELETE /admin/faults`, `PUT /admin/latency`,
`GET /admin/stats`.
"""

from actorchestra.serve_apps.model_server.config import (
    DEFAULT_CHAT_MODEL,
    DEFAULT_EMBEDDING_MODEL,
    FaultSpec,
    LatencySpec,
    ModelServerConfig,
)
from actorchestra.serve_apps.model_server.runner import (
    ModelServerHandle,
    start_model_server,
    start_model_server_process,
)

__all__ = [
    "DEFAULT_CHAT_MODEL",
    "DEFAULT_EMBEDDING_MODEL",
    "FaultSpec",
    "LatencySpec",
    "ModelServerConfig",
    "ModelServerHandle",
    "start_model_server",
    "start_model_server_process",
]
