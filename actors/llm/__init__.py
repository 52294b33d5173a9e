"""The model client layer: one `LLMClient` over `openai.AsyncOpenAI` for every agent.

    config = LLMConfig(base_url=handle.base_url, model="actorchestra-offline")
    async with LLMClient(config) as llm:
        result = await llm.complete([{"role": "user", "content": "Hello"}])
        async for delta in llm.stream(messages):
            ...  # delta.text pieces, then delta.result (usage, cost, tool calls)

Failures arrive as `LLMError` subclasses (see `errors`), never as `openai` exceptions.
"""

from __future__ import annotations

from actorchestra.actors.lazy import lazy_getattr

# Resolved on first use: see actors.lazy.
_EXPORTS = {
    "ConnectionReport": "actorchestra.actors.llm.results",
    "LLMAuthError": "actorchestra.actors.llm.errors",
    "LLMBadRequestError": "actorchestra.actors.llm.errors",
    "LLMClient": "actorchestra.actors.llm.client",
    "LLMConfig": "actorchestra.actors.llm.config",
    "LLMDelta": "actorchestra.actors.llm.results",
    "LLMEmbeddings": "actorchestra.actors.llm.results",
    "LLMError": "actorchestra.actors.llm.errors",
    "LLMModelNotFoundError": "actorchestra.actors.llm.errors",
    "LLMResponseError": "actorchestra.actors.llm.errors",
    "LLMResult": "actorchestra.actors.llm.results",
    "LLMTimeoutError": "actorchestra.actors.llm.errors",
    "LLMUnavailableError": "actorchestra.actors.llm.errors",
    "LLMUsage": "actorchestra.actors.llm.results",
    "ModelPrice": "actorchestra.actors.llm.config",
    "ToolCall": "actorchestra.actors.llm.results",
}

__all__ = [
    "ConnectionReport",
    "LLMAuthError",
    "LLMBadRequestError",
    "LLMClient",
    "LLMConfig",
    "LLMDelta",
    "LLMEmbeddings",
    "LLMError",
    "LLMModelNotFoundError",
    "LLMResponseError",
    "LLMResult",
    "LLMTimeoutError",
    "LLMUnavailableError",
    "LLMUsage",
    "ModelPrice",
    "ToolCall",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
