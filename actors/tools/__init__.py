"""Tools for LLM agents: a schema-checked, recording registry and the built-in tools.

`ToolRegistry.call` validates a model's arguments against the tool's JSON schema before
the tool runs and returns a `ToolCallRecord` whether the call succeeded or not.
Built in: `calculator` (no eval), `http_get` (no private addresses, size and time
limits), `python` (a limited, network-less child process). `agent_tool` wraps an A2A
"send text, get text" call to another agent as a tool.
"""

from actorchestra.actors.tools.agent_tool import agent_tool
from actorchestra.actors.tools.builtin_calc import calculator_tool
from actorchestra.actors.tools.builtin_http import HttpGet, HttpGetResult, http_get_tool
from actorchestra.actors.tools.builtin_python import PythonRunResult, PythonSandbox, python_tool
from actorchestra.actors.tools.catalog import builtin_tools
from actorchestra.actors.tools.config import ToolsConfig
from actorchestra.actors.tools.errors import ToolConfigError, ToolError, ToolNotFoundError
from actorchestra.actors.tools.registry import Tool, ToolCallRecord, ToolRegistry, tool

__all__ = [
    "HttpGet",
    "HttpGetResult",
    "PythonRunResult",
    "PythonSandbox",
    "Tool",
    "ToolCallRecord",
    "ToolConfigError",
    "ToolError",
    "ToolNotFoundError",
    "ToolRegistry",
    "ToolsConfig",
    "agent_tool",
    "builtin_tools",
    "calculator_tool",
    "http_get_tool",
    "python_tool",
    "tool",
]
