"""The tool registry: schemas from signatures, validation before the call, records."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import pytest

from actorchestra.actors.tools import (
    Tool,
    ToolCallRecord,
    ToolConfigError,
    ToolError,
    ToolNotFoundError,
    ToolRegistry,
    ToolsConfig,
    agent_tool,
    builtin_tools,
    tool,
)
from actorchestra.protocol.errors import ActorchestraError


@tool
async def add(a: int, b: int = 2) -> int:
    """Add two integers.

    Args:
        a: the first number
        b: the second number,
            defaulting to two
    """
    return a + b


@tool
async def search(
    query: str,
    tags: list[str] | None = None,
    limit: int = 10,
    mode: Literal["fast", "deep"] = "fast",
    weights: dict[str, float] | None = None,
    exact: bool = False,
    score: Annotated[float, "minimum score"] = 0.5,
) -> dict[str, Any]:
    """Search things."""
    return {"query": query, "tags": tags, "limit": limit, "mode": mode}


def test_schema_is_derived_from_the_signature_and_docstring() -> None:
    assert add.name == "add"
    assert add.description == "Add two integers."
    assert add.parameters == {
        "type": "object",
        "properties": {
            "a": {"type": "integer", "description": "the first number"},
            "b": {
                "type": "integer",
                "description": "the second number, defaulting to two",
                "default": 2,
            },
        },
        "required": ["a"],
        "additionalProperties": False,
    }
    props = search.parameters["properties"]
    assert search.parameters["required"] == ["query"]
    assert props["query"] == {"type": "string"}
    assert props["tags"] == {
        "type": ["array", "null"],
        "items": {"type": "string"},
        "default": None,
    }
    assert props["mode"] == {"enum": ["fast", "deep"], "type": "string", "default": "fast"}
    assert props["weights"]["type"] == ["object", "null"]
    assert props["weights"]["additionalProperties"] == {"type": "number"}
    assert props["exact"] == {"type": "boolean", "default": False}
    assert props["score"] == {"type": "number", "description": "minimum score", "default": 0.5}


def test_explicit_schema_and_name_are_kept() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}

    @tool(name="echo-x", description="Echo.", parameters=schema, timeout_s=1.0)
    async def whatever(**kwargs: Any) -> Any:
        return kwargs

    assert (whatever.name, whatever.description, whatever.parameters) == ("echo-x", "Echo.", schema)
    assert whatever.timeout_s == 1.0


def test_definition_mistakes_raise_tool_config_error() -> None:
    with pytest.raises(ToolConfigError, match="async def"):

        @tool
        def blocking(x: int) -> int:  # type: ignore[arg-type]
            return x

    with pytest.raises(ToolConfigError, match="no type annotation"):

        @tool
        async def untyped(x) -> int:  # type: ignore[no-untyped-def]
            return 1

    with pytest.raises(ToolConfigError, match="cannot derive"):

        @tool
        async def odd(x: complex) -> int:
            return 1

    with pytest.raises(ToolConfigError, match="invalid parameters schema"):
        tool(parameters={"type": "object", "properties": {"x": {"type": "nope"}}})(add.fn)

    with pytest.raises(ToolConfigError, match="tool name"):
        tool(name="has space")(add.fn)

    registry = ToolRegistry([add])
    with pytest.raises(ToolConfigError, match="already registered"):
        registry.register(add)
    assert isinstance(ToolConfigError("x"), ActorchestraError)


def test_registry_lists_and_exports_openai_tools() -> None:
    registry = ToolRegistry([add, search])
    assert registry.names() == ["add", "search"]
    assert registry.get("add") is add
    assert "add" in registry and len(registry) == 2
    exported = registry.to_openai_tools()
    assert exported[0] == {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two integers.",
            "parameters": add.parameters,
        },
    }
    assert [t["function"]["name"] for t in registry.to_openai_tools(["search"])] == ["search"]
    with pytest.raises(ToolNotFoundError, match="known tools: add, search"):
        registry.get("nope")


async def test_call_parses_json_validates_and_records() -> None:
    registry = ToolRegistry([add])
    record = await registry.call("add", '{"a": 40}', call_id="call_1")
    assert record.ok and record.result == 42
    assert record.call_id == "call_1" and record.arguments == {"a": 40}
    assert record.duration_ms >= 0 and record.started_at.tzinfo is not None
    assert record.content() == "42"
    assert registry.recent() == [record]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"a": "forty"}', "argument 'a': 'forty' is not of type 'integer'"),
        ("{}", "missing required argument 'a'"),
        ('{"a": 1, "c": 3}', "unexpected argument 'c' (expected: a, b)"),
        ('{"a": 1', "arguments are not valid JSON"),
        ("[1, 2]", "arguments must be a JSON object, got list"),
    ],
)
async def test_bad_arguments_are_recorded_errors_naming_the_argument(
    arguments: str, expected: str
) -> None:
    called = False

    @tool
    async def guarded(a: int, b: int = 0) -> int:
        nonlocal called
        called = True
        return a

    registry = ToolRegistry([guarded])
    record = await registry.call("guarded", arguments)
    assert not record.ok and not called
    assert record.error is not None and expected in record.error
    assert record.error.startswith("invalid arguments for tool 'guarded'")
    assert record.content().startswith("error: invalid arguments")


async def test_unknown_tool_is_a_recorded_error_naming_the_known_tools() -> None:
    registry = ToolRegistry([add, search])
    record = await registry.call("multiply", {"a": 1})
    assert record.error == "unknown tool 'multiply'; known tools: add, search"


async def test_timeout_tool_error_and_unexpected_exception_are_recorded() -> None:
    @tool(timeout_s=0.05)
    async def slow() -> str:
        await asyncio.sleep(5)
        return "never"

    @tool
    async def refuses() -> str:
        raise ToolError("not today")

    @tool
    async def broken() -> str:
        raise KeyError("boom")

    registry = ToolRegistry([slow, refuses, broken])
    assert (await registry.call("slow", "")).error == "tool 'slow' timed out after 0.05s"
    assert (await registry.call("refuses", None)).error == "not today"
    assert (await registry.call("broken", {})).error == "KeyError: 'boom'"


async def test_default_timeout_applies_when_the_tool_sets_none() -> None:
    @tool
    async def slow() -> None:
        await asyncio.sleep(5)

    registry = ToolRegistry([slow], default_timeout_s=0.05)
    assert (await registry.call("slow", {})).error == "tool 'slow' timed out after 0.05s"


async def test_records_are_bounded_and_sent_to_the_sink() -> None:
    sunk: list[ToolCallRecord] = []

    async def sink(record: ToolCallRecord) -> None:
        sunk.append(record)

    registry = ToolRegistry([add], max_records=3, on_record=sink)
    for i in range(5):
        await registry.call("add", {"a": i})
    assert [r.result for r in registry.recent()] == [4, 5, 6]
    assert [r.result for r in registry.recent(2)] == [5, 6]
    assert [r.result for r in sunk] == [2, 3, 4, 5, 6]


async def test_a_failing_sink_does_not_change_the_outcome(caplog: pytest.LogCaptureFixture) -> None:
    async def sink(record: ToolCallRecord) -> None:
        raise RuntimeError("disk full")

    registry = ToolRegistry([add], on_record=sink)
    record = await registry.call("add", {"a": 1})
    assert record.result == 3
    assert "record sink failed" in caplog.text


async def test_cancellation_propagates_and_is_recorded() -> None:
    started = asyncio.Event()

    @tool
    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    registry = ToolRegistry([hang])
    task = asyncio.create_task(registry.call("hang", {}), name="test-hang")
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert registry.recent()[-1].error == "cancelled"


async def test_agent_tool_wraps_a_send_callable() -> None:
    sent: list[str] = []

    async def send(text: str) -> str:
        sent.append(text)
        return f"echo: {text}"

    echo = agent_tool("ask_echo", "Ask the echo agent.", send)
    assert echo.parameters["required"] == ["input"]
    registry = ToolRegistry([echo])
    record = await registry.call("ask_echo", '{"input": "hi"}')
    assert record.result == "echo: hi" and sent == ["hi"]
    assert record.content() == "echo: hi"


async def test_agent_tool_failure_is_a_recorded_error() -> None:
    from actorchestra.protocol.errors import AgentUnavailableError

    async def send(text: str) -> str:
        raise AgentUnavailableError("agent 'echo' has no healthy replica")

    registry = ToolRegistry([agent_tool("ask_echo", "Ask the echo agent.", send)])
    record = await registry.call("ask_echo", {"input": "hi"})
    assert record.error == "agent 'echo' has no healthy replica"
    with pytest.raises(ToolConfigError):
        agent_tool("ask_echo", "  ", send)


def test_tool_is_a_frozen_value() -> None:
    assert isinstance(add, Tool)
    with pytest.raises(AttributeError):
        add.name = "other"  # type: ignore[misc]


def test_builtin_tools_share_one_config() -> None:
    tools = builtin_tools(ToolsConfig(python_wall_s=3.0))
    assert [t.name for t in tools] == ["calculator", "http_get", "python"]
    registry = ToolRegistry.from_config(ToolsConfig(max_recent_calls=5), tools)
    assert len(registry.to_openai_tools()) == 3
    with pytest.raises(ToolConfigError, match="no built-in tool named shell"):
        builtin_tools(ToolsConfig(), include=("shell",))
