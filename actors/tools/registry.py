"""Tools an LLM agent may call, and the registry that validates, runs and records calls.

`ToolRegistry.call` is the one door: it parses the model's JSON arguments, validates
them against the tool's schema *before* the tool runs, enforces a per-tool timeout and
returns a `ToolCallRecord`. Every way a call can go wrong that the model should hear
about (bad JSON, wrong argument, unknown tool, timeout, the tool's own `ToolError`) is a
record with `error` set, not an exception, so the agent loop can hand it back to the
model. Cancellation propagates. Records go to a bounded in-memory deque and to an
optional async sink, which is where persistence (the history store) plugs in.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, overload

from pydantic import BaseModel, Field

from actorchestra.actors.tools.config import ToolsConfig
from actorchestra.actors.tools.errors import ToolConfigError, ToolNotFoundError
from actorchestra.actors.tools.schema import check_schema, describe_errors, schema_from_signature
from actorchestra.protocol.errors import ActorchestraError

logger = logging.getLogger(__name__)

# What OpenAI (and most compatible servers) accept as a function name.
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

ToolFn = Callable[..., Awaitable[Any]]
RecordSink = Callable[["ToolCallRecord"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Tool:
    """A named async callable with a JSON schema for its keyword arguments.

    `timeout_s=None` means the registry's default. The schema is checked here, so a
    broken tool fails when it is defined, not when the model first calls it.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: ToolFn
    timeout_s: float | None = None
    _validator: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _TOOL_NAME.match(self.name):
            raise ToolConfigError(
                f"tool name {self.name!r} must be 1-64 letters, digits, '_' or '-'"
            )
        if not _is_async_callable(self.fn):
            raise ToolConfigError(
                f"tool {self.name!r}: the function must be `async def` (a blocking tool "
                "would stall the actor's event loop; wrap it with asyncio.to_thread)"
            )
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ToolConfigError(f"tool {self.name!r}: timeout_s must be positive")
        object.__setattr__(self, "_validator", check_schema(self.parameters, self.name))

    async def __call__(self, **arguments: Any) -> Any:
        """Run the tool directly, without validation or recording (for code, not models)."""
        return await self.fn(**arguments)

    def validation_error(self, arguments: dict[str, Any]) -> str | None:
        """Why `arguments` do not fit the schema, or None if they do."""
        errors = list(self._validator.iter_errors(arguments))
        return describe_errors(errors) if errors else None

    def to_openai(self) -> dict[str, Any]:
        """This tool as one entry of OpenAI's `tools=` list."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@overload
def tool(fn: ToolFn, /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: dict[str, Any] | None = None,
    timeout_s: float | None = None,
) -> Callable[[ToolFn], Tool]: ...


def tool(
    fn: ToolFn | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: dict[str, Any] | None = None,
    timeout_s: float | None = None,
) -> Tool | Callable[[ToolFn], Tool]:
    """Make a `Tool` from an async function: `@tool` or `@tool(name=..., parameters=...)`.

    Without `parameters` the schema comes from the signature's type hints and the
    docstring's `Args:` section; the description defaults to the docstring's summary.
    """

    def make(f: ToolFn) -> Tool:
        derived_desc = ""
        schema = parameters
        if schema is None:
            schema, derived_desc = schema_from_signature(f)
        else:
            derived_desc = (inspect.getdoc(f) or "").split("\n\n")[0].replace("\n", " ")
        return Tool(
            name=name or f.__name__,
            description=description or derived_desc,
            parameters=schema,
            fn=f,
            timeout_s=timeout_s,
        )

    return make(fn) if fn is not None else make


class ToolCallRecord(BaseModel):
    """One call as it happened: what was asked, what came back, how long it took."""

    call_id: str | None = None
    name: str
    arguments: dict[str, Any] | str = Field(
        description="the parsed arguments, or the raw text when it was not a JSON object"
    )
    result: Any = None
    error: str | None = None
    started_at: datetime
    duration_ms: float

    @property
    def ok(self) -> bool:
        """True when the tool ran and returned; False for any recorded failure."""
        return self.error is None

    def content(self) -> str:
        """The text to hand back to the model as the tool message."""
        if self.error is not None:
            return f"error: {self.error}"
        if isinstance(self.result, str):
            return self.result
        return json.dumps(self.result, default=str, ensure_ascii=False)


class ToolRegistry:
    """Named tools plus the bounded log of their recent calls.

    Not shared across processes: each agent actor builds its own. `on_record` is awaited
    after every completed call (not for cancelled ones); its failures are logged and do
    not change the call's outcome.
    """

    def __init__(
        self,
        tools: Iterable[Tool] = (),
        *,
        default_timeout_s: float = 30.0,
        max_records: int = 200,
        on_record: RecordSink | None = None,
    ) -> None:
        if default_timeout_s <= 0:
            raise ToolConfigError("default_timeout_s must be positive")
        if max_records < 1:
            raise ToolConfigError("max_records must be at least 1")
        self._tools: dict[str, Tool] = {}
        self._records: deque[ToolCallRecord] = deque(maxlen=max_records)
        self._default_timeout_s = default_timeout_s
        self._on_record = on_record
        for t in tools:
            self.register(t)

    @classmethod
    def from_config(
        cls,
        config: ToolsConfig,
        tools: Iterable[Tool] = (),
        *,
        on_record: RecordSink | None = None,
    ) -> ToolRegistry:
        """A registry with the timeout and record bound from `config`."""
        return cls(
            tools,
            default_timeout_s=config.call_timeout_s,
            max_records=config.max_recent_calls,
            on_record=on_record,
        )

    def register(self, t: Tool, *, replace: bool = False) -> Tool:
        """Add `t`; a second tool of the same name is a mistake unless `replace`."""
        if not isinstance(t, Tool):
            raise ToolConfigError(f"expected a Tool (use @tool), got {type(t).__name__}")
        if t.name in self._tools and not replace:
            raise ToolConfigError(f"a tool named {t.name!r} is already registered")
        self._tools[t.name] = t
        return t

    def get(self, name: str) -> Tool:
        """The tool called `name`."""
        try:
            return self._tools[name]
        except KeyError:
            raise ToolNotFoundError(self._unknown(name)) from None

    def names(self) -> list[str]:
        """Registered tool names, in registration order."""
        return list(self._tools)

    def list(self) -> list[Tool]:
        """Registered tools, in registration order."""
        return list(self._tools.values())

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def to_openai_tools(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """OpenAI's `tools=` list for all tools, or for `names` in that order."""
        chosen = self.list() if names is None else [self.get(n) for n in names]
        return [t.to_openai() for t in chosen]

    def recent(self, limit: int | None = None) -> list[ToolCallRecord]:
        """The most recent call records, oldest first (at most `max_records`)."""
        records = list(self._records)
        if limit is None:
            return records
        return records[-limit:] if limit > 0 else []

    async def call(
        self,
        name: str,
        arguments: str | dict[str, Any] | None,
        *,
        call_id: str | None = None,
    ) -> ToolCallRecord:
        """Validate and run one call; every failure the model should see is in `.error`."""
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        parsed, problem = _parse_arguments(arguments)
        result: Any = None
        error: str | None = None
        t = self._tools.get(name)
        if t is None:
            error = self._unknown(name)
        elif isinstance(parsed, str):
            error = f"invalid arguments for tool {name!r}: {problem}"
        elif (invalid := t.validation_error(parsed)) is not None:
            error = f"invalid arguments for tool {name!r}: {invalid}"
        else:
            try:
                result, error = await self._run(t, parsed)
            except asyncio.CancelledError:
                self._records.append(
                    _record(call_id, name, parsed, None, "cancelled", started_at, t0)
                )
                raise
        record = _record(call_id, name, parsed, result, error, started_at, t0)
        self._records.append(record)
        if error is not None:
            logger.info("tool %s failed: %s", name, error)
        await self._emit(record)
        return record

    async def _run(self, t: Tool, arguments: dict[str, Any]) -> tuple[Any, str | None]:
        timeout = t.timeout_s if t.timeout_s is not None else self._default_timeout_s
        try:
            async with asyncio.timeout(timeout) as scope:
                return await t.fn(**arguments), None
        except TimeoutError as exc:
            if scope.expired():
                return None, f"tool {t.name!r} timed out after {timeout:g}s"
            return None, f"TimeoutError: {exc}" if str(exc) else "TimeoutError"
        except ActorchestraError as exc:
            return None, exc.message
        except Exception as exc:
            # The boundary for a tool's unexpected failure: log it once, here, with the
            # traceback; the model gets the type and message.
            logger.exception("tool %s raised", t.name)
            return None, f"{type(exc).__name__}: {exc}"

    async def _emit(self, record: ToolCallRecord) -> None:
        if self._on_record is None:
            return
        try:
            await self._on_record(record)
        except Exception:
            logger.exception("tool call record sink failed for %s", record.name)

    def _unknown(self, name: str) -> str:
        known = ", ".join(self._tools) or "none"
        return f"unknown tool {name!r}; known tools: {known}"


def _parse_arguments(arguments: str | dict[str, Any] | None) -> tuple[dict[str, Any] | str, str]:
    """The arguments as a dict, or (as a str) the raw value and why it is not usable."""
    if arguments is None:
        return {}, ""
    if isinstance(arguments, dict):
        return arguments, ""
    if not isinstance(arguments, str):
        return repr(arguments), f"expected a JSON object, got {type(arguments).__name__}"
    if not arguments.strip():
        # Some servers send "" for a tool without parameters.
        return {}, ""
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError as exc:
        return arguments, f"arguments are not valid JSON ({exc.msg} at position {exc.pos})"
    if not isinstance(value, dict):
        return arguments, f"arguments must be a JSON object, got {type(value).__name__}"
    return value, ""


def _record(
    call_id: str | None,
    name: str,
    arguments: dict[str, Any] | str,
    result: Any,
    error: str | None,
    started_at: datetime,
    t0: float,
) -> ToolCallRecord:
    return ToolCallRecord(
        call_id=call_id,
        name=name,
        arguments=arguments,
        result=result,
        error=error,
        started_at=started_at,
        duration_ms=(time.perf_counter() - t0) * 1000.0,
    )


def _is_async_callable(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )
