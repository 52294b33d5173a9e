"""What a model call returns: text or tool calls, parsed output, usage, cost, timing."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from actorchestra.actors.llm.errors import LLMResponseError


class LLMUsage(BaseModel):
    """Token counts as the model server reported them (zeros when it did not)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ToolCall(BaseModel):
    """A function call the model asked for; `arguments` is the raw JSON text it sent."""

    id: str
    name: str
    arguments: str = ""

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; a model that sent broken JSON gets LLMResponseError."""
        try:
            value = json.loads(self.arguments or "{}")
        except json.JSONDecodeError as exc:
            raise LLMResponseError(
                f"tool call {self.name!r} has arguments that are not JSON: {exc}"
            ) from None
        if not isinstance(value, dict):
            raise LLMResponseError(f"tool call {self.name!r} arguments are not a JSON object")
        return value

    def as_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


class LLMResult(BaseModel):
    """One completed model call.

    `parsed` holds the decoded JSON (validated against the schema) when a
    `response_format` asked for JSON, or the pydantic model instance when a model class
    was given. `attempts` counts HTTP attempts, retries included; `first_token_s` is the
    time to the first streamed text piece (streams only).
    """

    model: str
    text: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    parsed: Any = None
    finish_reason: str | None = None
    usage: LLMUsage = Field(default_factory=LLMUsage)
    cost_usd: float = 0.0
    latency_s: float = 0.0
    first_token_s: float | None = None
    attempts: int = 1

    def assistant_message(self) -> dict[str, Any]:
        """This reply as the assistant message to append before sending tool results back."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            message["tool_calls"] = [call.as_openai() for call in self.tool_calls]
        return message


class LLMDelta(BaseModel):
    """One step of a stream: a piece of text, or (last of all) the whole `result`."""

    text: str = ""
    result: LLMResult | None = None

    @property
    def is_final(self) -> bool:
        return self.result is not None


class LLMEmbeddings(BaseModel):
    """Vectors for a batch of texts, in input order."""

    model: str
    vectors: list[list[float]]
    usage: LLMUsage = Field(default_factory=LLMUsage)
    cost_usd: float = 0.0
    latency_s: float = 0.0


class ConnectionReport(BaseModel):
    """Whether the configured model server answers, how fast, and what it serves."""

    ok: bool
    base_url: str
    model: str
    latency_s: float
    models: list[str] = Field(default_factory=list)
    error: str | None = None
