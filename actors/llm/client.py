"""The model client: chat completions, streams, embeddings over an `openai.AsyncOpenAI`.

Agents and the planner talk to models only through `LLMClient`, so model choice per
agent, retries, cost accounting, structured-output parsing and error translation live
in one place. The `AsyncOpenAI` is injected (tests and the app builder share one) or
built from `LLMConfig`; either way its own retries are switched off, because
`retry.call_with_retries` is the one retry loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx
import openai
from openai import AsyncOpenAI, AsyncStream

from actorchestra.actors.llm.config import PLACEHOLDER_API_KEY, LLMConfig
from actorchestra.actors.llm.errors import LLMError, LLMResponseError
from actorchestra.actors.llm.output import OutputSpec, ResponseFormat
from actorchestra.actors.llm.results import (
    ConnectionReport,
    LLMDelta,
    LLMEmbeddings,
    LLMResult,
    LLMUsage,
    ToolCall,
)
from actorchestra.actors.llm.retry import call_with_retries, translate

logger = logging.getLogger(__name__)

Messages = Sequence[Mapping[str, Any]]


class LLMClient:
    """One model endpoint, used by many agents; safe to share across concurrent tasks."""

    def __init__(
        self,
        config: LLMConfig,
        client: AsyncOpenAI | None = None,
        *,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        """`client`: a shared `AsyncOpenAI` (the caller's to close); else one is built here,
        over `http_client` if given (a guarded transport, say; closed with this client)."""
        self.config = config
        self._owns_client = client is None
        if client is None:
            key = config.api_key.get_secret_value() if config.api_key else PLACEHOLDER_API_KEY
            client = AsyncOpenAI(
                base_url=config.base_url,
                api_key=key,
                organization=config.organization,
                timeout=config.timeout_s,
                max_retries=0,
                http_client=http_client,
            )
        else:
            client = client.with_options(max_retries=0)
        self._client = client

    async def aclose(self) -> None:
        """Close the HTTP connections, if this client built them."""
        if self._owns_client:
            await self._client.close()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def model_for(self, agent: str | None = None) -> str:
        """The model `agent` uses (its override, else the configured default)."""
        return self.config.model_for(agent)

    def _request(
        self,
        messages: Messages,
        model: str,
        tools: Sequence[Mapping[str, Any]] | None,
        tool_choice: Any,
        output: OutputSpec,
        max_tokens: int | None,
        temperature: float | None,
        timeout_s: float,
        extra_body: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        request: dict[str, Any] = {"model": model, "messages": list(messages), "timeout": timeout_s}
        optional = {
            "tools": list(tools) if tools else None,
            "tool_choice": tool_choice,
            "response_format": output.wire,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "extra_body": dict(extra_body or {}) or None,
        }
        request.update({k: v for k, v in optional.items() if v is not None})
        return request

    async def complete(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        agent: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        response_format: ResponseFormat | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout_s: float | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> LLMResult:
        """One chat completion. `model` beats `agent`'s override beats the default model.

        Raises an `LLMError` subclass; `LLMResponseError` when JSON was asked for and the
        answer is not valid JSON of that schema.
        """
        model = model or self.model_for(agent)
        timeout = timeout_s or self.config.timeout_s
        output = OutputSpec(response_format)
        request = self._request(
            messages,
            model,
            tools,
            tool_choice,
            output,
            max_tokens,
            temperature,
            timeout,
            extra_body,
        )
        started = time.perf_counter()
        completion, attempts = await call_with_retries(
            lambda: self._client.chat.completions.create(**request),
            self.config,
            model=model,
            timeout_s=timeout,
        )
        latency = time.perf_counter() - started
        if not completion.choices:
            raise LLMResponseError(f"model '{model}' returned no choices")
        choice = completion.choices[0]
        calls = [
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "")
            for c in choice.message.tool_calls or []
            if c.type == "function"
        ]
        text = choice.message.content
        usage = _usage_from(completion.usage)
        result = LLMResult(
            model=completion.model or model,
            text=text,
            tool_calls=calls,
            parsed=None if calls else output.parse(text, choice.finish_reason),
            finish_reason=choice.finish_reason,
            usage=usage,
            latency_s=latency,
            cost_usd=self.config.cost(model, usage.prompt_tokens, usage.completion_tokens),
            attempts=attempts,
        )
        _log_result(result)
        return result

    async def stream(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        agent: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        response_format: ResponseFormat | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout_s: float | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[LLMDelta]:
        """Text pieces as they arrive, then one final delta whose `result` has it all.

        Tool-call fragments are assembled, not yielded: they are in the final result.
        Opening the stream is retried like `complete`; a failure after the first piece is
        not (the caller has already seen output) and raises an `LLMError`.
        """
        model = model or self.model_for(agent)
        timeout = timeout_s or self.config.timeout_s
        output = OutputSpec(response_format)
        request = self._request(
            messages,
            model,
            tools,
            tool_choice,
            output,
            max_tokens,
            temperature,
            timeout,
            extra_body,
        )
        # The stream goes through the client's generic `post` with the request as JSON
        # and the chunks as plain dicts: the same HTTP client, auth, timeout and error
        # types as `chat.completions.create`, without its typed layer (its request
        # transform and a pydantic model per chunk cost 1.6 ms before the first token
        # here, and ~90 us per token after it).
        body = {k: v for k, v in request.items() if k not in ("timeout", "extra_body")}
        body.update(request.get("extra_body") or {})
        body.update(stream=True, stream_options={"include_usage": True})
        started = time.perf_counter()
        chunks, attempts = await call_with_retries(
            lambda: self._client.post(
                "/chat/completions",
                body=body,
                cast_to=object,
                options={"timeout": timeout},
                stream=True,
                stream_cls=AsyncStream[object],
            ),
            self.config,
            model=model,
            timeout_s=timeout,
        )
        pieces: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish: str | None = None
        usage = LLMUsage()
        first_piece: float | None = None
        served_model = model
        try:
            async for chunk in chunks:
                if not isinstance(chunk, dict):
                    raise LLMResponseError(
                        f"model '{model}' streamed a chunk that is not a JSON object: "
                        f"{str(chunk)[:200]!r}"
                    )
                served_model = chunk.get("model") or served_model
                if chunk.get("usage"):
                    usage = _usage_from(chunk["usage"])
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    for part in delta.get("tool_calls") or ():
                        slot = calls.setdefault(
                            part.get("index", 0), {"id": "", "name": "", "arguments": ""}
                        )
                        slot["id"] = part.get("id") or slot["id"]
                        function = part.get("function")
                        if function:
                            slot["name"] = function.get("name") or slot["name"]
                            slot["arguments"] += function.get("arguments") or ""
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
                    content = delta.get("content")
                    if content:
                        if first_piece is None:
                            first_piece = time.perf_counter() - started
                        pieces.append(content)
                        yield LLMDelta(text=content)
        except openai.OpenAIError as exc:
            raise translate(
                exc, self.config, model=model, attempts=attempts, timeout_s=timeout
            ) from exc
        except (AttributeError, TypeError, ValueError) as exc:  # not JSON, or the wrong shape
            raise LLMResponseError(
                f"model '{model}' streamed a chunk this client cannot read: {exc}"
            ) from exc
        finally:
            await chunks.close()
        text = "".join(pieces) if pieces or not calls else None
        tool_calls = [ToolCall(**calls[i]) for i in sorted(calls)]
        result = LLMResult(
            model=served_model,
            text=text,
            tool_calls=tool_calls,
            parsed=None if tool_calls else output.parse(text, finish),
            finish_reason=finish,
            usage=usage,
            latency_s=time.perf_counter() - started,
            cost_usd=self.config.cost(model, usage.prompt_tokens, usage.completion_tokens),
            first_token_s=first_piece,
            attempts=attempts,
        )
        _log_result(result)
        yield LLMDelta(result=result)

    async def embed(
        self,
        texts: Sequence[str],
        *,
        model: str | None = None,
        dimensions: int | None = None,
        timeout_s: float | None = None,
    ) -> LLMEmbeddings:
        """Embedding vectors for `texts`, in the same order."""
        model = model or self.config.embedding_model
        timeout = timeout_s or self.config.timeout_s
        request: dict[str, Any] = {
            "model": model,
            "input": list(texts),
            "encoding_format": "float",
            "timeout": timeout,
        }
        if dimensions is not None:
            request["dimensions"] = dimensions
        started = time.perf_counter()
        response, _ = await call_with_retries(
            lambda: self._client.embeddings.create(**request),
            self.config,
            model=model,
            timeout_s=timeout,
        )
        vectors = [list(item.embedding) for item in sorted(response.data, key=lambda d: d.index)]
        prompt = response.usage.prompt_tokens if response.usage else 0
        return LLMEmbeddings(
            model=response.model or model,
            vectors=vectors,
            usage=LLMUsage(prompt_tokens=prompt, total_tokens=prompt),
            cost_usd=self.config.cost(model, prompt, 0),
            latency_s=time.perf_counter() - started,
        )

    async def list_models(self, *, timeout_s: float | None = None) -> list[str]:
        """The ids of the models the server offers."""
        timeout = timeout_s or self.config.timeout_s

        async def fetch() -> list[str]:
            try:
                page = await self._client.models.list(timeout=timeout)
                return [m.id for m in page.data]
            except (AttributeError, TypeError) as e:  # a body that is no model list
                raise LLMResponseError(
                    f"{self.config.base_url} answered GET /models with something other than "
                    "a model list: is it an OpenAI-compatible endpoint (its base URL usually "
                    "ends in /v1)?"
                ) from e

        models, _ = await call_with_retries(
            fetch, self.config, model=self.config.model, timeout_s=timeout
        )
        return models

    async def test_connection(self, *, timeout_s: float = 10.0) -> ConnectionReport:
        """Ask the server for its models, once, and report; never raises an LLMError.

        `ok` means the server answered and serves the configured model; `error` says what
        to fix otherwise.
        """
        once = LLMClient(self.config.model_copy(update={"max_retries": 0}), self._client)
        started = time.perf_counter()
        base = self.config.base_url
        try:
            models = await once.list_models(timeout_s=min(timeout_s, self.config.timeout_s))
        except LLMError as exc:
            return ConnectionReport(
                ok=False,
                base_url=base,
                model=self.config.model,
                latency_s=time.perf_counter() - started,
                error=exc.message,
            )
        latency = time.perf_counter() - started
        error = None
        if self.config.model not in models:
            error = (
                f"The model server at {base} does not list the model "
                f"'{self.config.model}' (it lists: {', '.join(models[:20]) or 'none'}). "
                "Set ACTORCHESTRA_LLM_MODEL to one of them."
            )
        return ConnectionReport(
            ok=error is None,
            base_url=base,
            model=self.config.model,
            latency_s=latency,
            models=models,
            error=error,
        )


_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _usage_from(raw: Any) -> LLMUsage:
    """Token usage from a completion's `usage`: openai's typed object (a plain call), or
    a streamed chunk's plain dict. None, or a field missing, counts as zero."""
    if raw is None:
        return LLMUsage()
    if not isinstance(raw, dict):
        raw = {field: getattr(raw, field, None) for field in _USAGE_FIELDS}
    return LLMUsage(**{field: int(raw.get(field) or 0) for field in _USAGE_FIELDS})


def _log_result(result: LLMResult) -> None:
    logger.debug(
        "model %s: %s tokens in %.3fs, %s attempt(s), $%.6f",
        result.model,
        result.usage.total_tokens,
        result.latency_s,
        result.attempts,
        result.cost_usd,
    )
