"""OpenAI's wire format: request bodies the server accepts and the JSON it answers with.

Kept apart from the routes so the exact shapes (completion, stream chunk, error, usage)
are in one place and match what the `openai` client parses.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actorchestra.serve_apps.model_server import text as t
from actorchestra.serve_apps.model_server.brain import BrainReply

SYSTEM_FINGERPRINT = "fp_offline"


class ChatMessage(BaseModel):
    """One message of a chat request; unknown fields (audio, refusal, ...) are tolerated."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str = "function"
    function: FunctionSpec | None = None


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = "response"
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None

    @model_validator(mode="after")
    def _schema_present(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format of type json_schema needs a `json_schema` object")
        return self


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """`POST /v1/chat/completions`; `offline_reply_tokens` asks for an exact reply length."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1, le=1)
    tools: list[ToolSpec] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: ResponseFormat | None = None
    offline_reply_tokens: int | None = Field(default=None, ge=0, le=100_000)

    def token_limit(self) -> int | None:
        """`max_completion_tokens` (the newer name) or `max_tokens`."""
        return self.max_completion_tokens or self.max_tokens


class EmbeddingRequest(BaseModel):
    """`POST /v1/embeddings`; `input` is a string, strings, or token arrays."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, le=8192)

    def texts(self) -> list[str]:
        """The inputs as texts (token arrays become their numbers, space separated)."""
        items: list[Any] = [self.input] if isinstance(self.input, str) else list(self.input)
        if items and all(isinstance(i, int) for i in items):
            items = [items]
        return [i if isinstance(i, str) else " ".join(str(n) for n in i) for i in items]


def error_body(
    message: str, status: int, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error JSON: `{"error": {"message", "type", "param", "code"}}`."""
    if status == 429:
        kind = "requests"
        code = code or "rate_limit_exceeded"
    elif status >= 500:
        kind = "server_error"
    elif status == 401:
        kind = "invalid_request_error"
        code = code or "invalid_api_key"
    else:
        kind = "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def prompt_tokens(request: ChatCompletionRequest) -> int:
    """Tokens in the prompt: 3 per message for the role framing, plus contents and tools."""
    total = 3
    for message in request.messages:
        total += 3 + t.count_tokens(t.message_text(message.content))
        for call in message.tool_calls or []:
            fn = call.get("function") or {}
            total += t.count_tokens(f"{fn.get('name', '')} {fn.get('arguments', '')}")
    for tool in request.tools or []:
        if tool.function is not None:
            total += t.count_tokens(tool.function.model_dump_json(exclude_none=True))
    return total


def completion_tokens(reply: BrainReply) -> int:
    """Tokens in the reply: the text, or each tool call's name and arguments."""
    if reply.tool_calls:
        return sum(t.count_tokens(c.name) + t.count_tokens(c.arguments) for c in reply.tool_calls)
    return t.count_tokens(reply.content or "")


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _tool_calls_json(reply: BrainReply) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in reply.tool_calls
    ]


def completion(
    cid: str, model: str, created: int, reply: BrainReply, counts: dict[str, int]
) -> dict[str, Any]:
    """A non-streamed `chat.completion` object."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = _tool_calls_json(reply)
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
        ],
        "usage": counts,
    }


def chunk(
    cid: str,
    model: str,
    created: int,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    *,
    with_usage: bool = False,
    counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One `chat.completion.chunk`; `delta=None` makes the usage-only final chunk."""
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if with_usage:
        body["usage"] = counts
    return body


def stream_deltas(reply: BrainReply) -> Iterator[dict[str, Any]]:
    """The deltas of a streamed reply, one per token, after the opening role delta.

    Lazy: a 2,000-token reply cut up front cost ~1 ms of the server's CPU before its
    first chunk."""
    if reply.tool_calls:
        for index, call in enumerate(reply.tool_calls):
            opening = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            first: dict[str, Any] = {"tool_calls": [opening]}
            if index == 0:
                first = {"role": "assistant", "content": None, **first}
            yield first
            for piece in t.token_pieces(call.arguments):
                yield {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
        return
    yield {"role": "assistant", "content": "", "refusal": None}
    for piece in t.token_pieces(reply.content or ""):
        yield {"content": piece}


def embedding_item(index: int, vector: list[float], encoding: str) -> dict[str, Any]:
    """One `embedding` object; base64 is little-endian float32, as OpenAI sends it."""
    value: Any = vector
    if encoding == "base64":
        value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return {"object": "embedding", "index": index, "embedding": value}
