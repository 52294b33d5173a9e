"""The model client layer: one `LLMClient` over `openai.AsyncOpenAI` for every agent.

    config = LLMConfig(base_url=handle.base_url, model="actorchestra-offline")
    async with LLMClient(config) as llm:
        result = await llm.complete([{"role": "user", "content": "Hello"}])
        async for delta in llm.stream(messages):
            ...  # delta.text pieces, then delta.result (usage, cost, tool calls)

Failures arrive as `LLMError` subclasses (see `errors`), never as `openai` exceptions.
"""

from actorchestra.actors.llm.client import LLMClient
from actorchestra.actors.llm.config import LLMConfig, ModelPrice
from actorchestra.actors.llm.errors import (
    LLMAuthError,
    LLMBadRequestError,
    LLMError,
    LLMModelNotFoundError,
    LLMResponseError,
    LLMTimeoutError,
    LLMUnavailableError,
)
from actorchestra.actors.llm.results import (
    ConnectionReport,
    LLMDelta,
    LLMEmbeddings,
    LLMResult,
    LLMUsage,
    ToolCall,
)

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
