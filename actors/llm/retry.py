"""Where `openai` errors enter the project: retries with backoff, then translation.

The client built here has the `openai` library's own retries switched off, so this loop
is the only one: its backoff is configurable (tests run it in milliseconds), it honours
`Retry-After`/`retry-after-ms` up to a limit, it counts attempts for the error message,
and it can retry opening a stream. Whatever still fails is translated, once, into the
`LLMError` family with a message that says which setting to fix.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import openai

from actorchestra.actors.llm.config import LLMConfig
from actorchestra.actors.llm.errors import (
    LLMAuthError,
    LLMBadRequestError,
    LLMError,
    LLMModelNotFoundError,
    LLMTimeoutError,
    LLMUnavailableError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

_RETRY_STATUSES = frozenset({408, 409, 429})


def is_retryable(exc: BaseException) -> bool:
    """Rate limits, server errors, timeouts and lost connections are worth another try."""
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _RETRY_STATUSES or exc.status_code >= 500
    return False


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms`, `Retry-After` seconds or date."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(float(value) * scale, 0.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        return max(when.timestamp() - time.time(), 0.0)
    return None


async def call_with_retries(
    op: Callable[[], Awaitable[T]], config: LLMConfig, *, model: str, timeout_s: float
) -> tuple[T, int]:
    """Run `op` until it succeeds or retries run out; returns (result, attempts).

    Raises an `LLMError` subclass for any `openai` error. `CancelledError` propagates.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await op(), attempt
        except openai.OpenAIError as exc:
            if not is_retryable(exc) or attempt > config.max_retries:
                raise translate(
                    exc, config, model=model, attempts=attempt, timeout_s=timeout_s
                ) from exc
            headers = exc.response.headers if isinstance(exc, openai.APIStatusError) else None
            asked = retry_after_s(headers)
            if asked is not None and asked > config.retry_after_max_s:
                raise LLMUnavailableError(
                    f"The model server at {config.base_url} asked to retry after {asked:.0f}s, "
                    f"longer than the configured limit of {config.retry_after_max_s:.0f}s "
                    f"(HTTP {_status(exc)}: {_detail(exc)})."
                ) from exc
            delay = asked if asked is not None else config.backoff_s(attempt, random.random())
            logger.warning(
                "model call to %s failed (%s), retry %s of %s in %.2fs",
                model,
                _short(exc),
                attempt,
                config.max_retries,
                delay,
            )
            await asyncio.sleep(delay)


def translate(
    exc: BaseException, config: LLMConfig, *, model: str, attempts: int, timeout_s: float
) -> LLMError:
    """The project's error for an `openai` error, saying what to fix."""
    where = f"The model server at {config.base_url}"
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    if isinstance(exc, openai.APITimeoutError):
        return LLMTimeoutError(
            f"{where} did not answer within {timeout_s:g}s ({tries}). Check that it is running "
            "and reachable at ACTORCHESTRA_LLM_BASE_URL, or raise the LLM timeout."
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        return LLMUnavailableError(
            f"Cannot reach the model server at {config.base_url} ({tries}): "
            f"{cause or exc}. Check ACTORCHESTRA_LLM_BASE_URL and that the server is running."
        )
    if isinstance(exc, openai.APIStatusError):
        status, detail = exc.status_code, _detail(exc)
        if status in (401, 403):
            return LLMAuthError(
                f"{where} rejected the API key (HTTP {status}: {detail}). "
                "Set ACTORCHESTRA_LLM_API_KEY to a key that server accepts."
            )
        if status == 404:
            if _code(exc) == "model_not_found" or "model" in detail.lower():
                return LLMModelNotFoundError(
                    f"{where} does not serve the model '{model}' ({detail}). Set "
                    "ACTORCHESTRA_LLM_MODEL (or the agent's model override) to a model it serves."
                )
            return LLMError(
                f"{where} has no such endpoint (HTTP 404: {detail}). Check "
                "ACTORCHESTRA_LLM_BASE_URL; OpenAI-compatible servers usually end in /v1."
            )
        if is_retryable(exc):
            return LLMUnavailableError(
                f"{where} still answered HTTP {status} after {tries}: {detail}"
            )
        return LLMBadRequestError(
            f"{where} refused the request for model '{model}' (HTTP {status}): {detail}"
        )
    return LLMError(f"The call to model '{model}' failed: {exc}")


def _error_object(exc: openai.APIStatusError) -> Mapping[str, Any]:
    body = exc.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            return inner
    return {}


def _detail(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        message = _error_object(exc).get("message")
        if isinstance(message, str) and message:
            return message
        text = exc.body if isinstance(exc.body, str) else ""
        return text[:200] or exc.message
    return str(exc)


def _code(exc: openai.APIStatusError) -> str | None:
    code = _error_object(exc).get("code")
    return str(code) if code is not None else exc.code


def _status(exc: BaseException) -> int | str:
    return exc.status_code if isinstance(exc, openai.APIStatusError) else type(exc).__name__


def _short(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    return type(exc).__name__
