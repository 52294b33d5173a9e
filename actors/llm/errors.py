"""The LLM client's own errors: what went wrong with the model, and what to change.

`actorchestra.actors.llm.client` translates every `openai` exception into one of these at
its boundary, so no caller above it imports `openai` to handle a failure. Messages name
the setting to fix (`ACTORCHESTRA_LLM_API_KEY`, `ACTORCHESTRA_LLM_MODEL`,
`ACTORCHESTRA_LLM_BASE_URL`) because the person reading them is the operator.
"""

from __future__ import annotations

from actorchestra.protocol.errors import ActorchestraError


class LLMError(ActorchestraError):
    """The model call failed for a reason not covered by a subclass."""

    http_status = 502
    reason = "LLM_ERROR"


class LLMAuthError(LLMError):
    """The model server rejected the API key (401/403): a configuration problem."""

    http_status = 502
    reason = "LLM_AUTH"


class LLMModelNotFoundError(LLMError):
    """The model server does not serve the configured model."""

    http_status = 502
    reason = "LLM_MODEL_NOT_FOUND"


class LLMBadRequestError(LLMError):
    """The model server refused the request itself (400/422): retrying will not help."""

    http_status = 502
    reason = "LLM_BAD_REQUEST"


class LLMUnavailableError(LLMError):
    """The model server kept failing (429, 5xx, connection errors) after every retry."""

    http_status = 503
    reason = "LLM_UNAVAILABLE"


class LLMTimeoutError(LLMUnavailableError):
    """The model server did not answer within the timeout, on every attempt."""

    http_status = 504
    reason = "LLM_TIMEOUT"


class LLMResponseError(LLMError):
    """The model answered, but not in the shape asked for (bad JSON, schema mismatch)."""

    http_status = 502
    reason = "LLM_BAD_RESPONSE"
