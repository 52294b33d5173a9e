"""Tools for LLM agents: a schema-checked, recording registry and the built-in tools.

`ToolRegistry.call` validates a model's arguments against the tool's JSON schema before
the tool runs and returns a `ToolCallRecord` whether the call succeeded or not.
Built in: `calculator` (no eval), `http_get` (no private addresses, size and time
limits), `python` (a limited, network-less child process). `agent_tool` wraps an A2A
"send text, get text" call to another agent as a tool.
"""

from __future__ import annotations

from actorchestra.actors.lazy import lazy_getattr

# Resolved on first use: see actors.lazy.
_EXPORTS = {
    "HttpGet": "actorchestra.actors.tools.builtin_http",
    "HttpGetResult": "actorchestra.actors.tools.builtin_http",
    "PythonRunResult": "actorchestra.actors.tools.builtin_python",
    "PythonSandbox": "actorchestra.actors.tools.builtin_python",
    "Tool": "actorchestra.actors.tools.registry",
    "ToolCallRecord": "actorchestra.actors.tools.registry",
    "ToolConfigError": "actorchestra.actors.tools.errors",
    "ToolError": "actorchestra.actors.tools.errors",
    "ToolNotFoundError": "actorchestra.actors.tools.errors",
    "ToolRegistry": "actorchestra.actors.tools.registry",
    "ToolsConfig": "actorchestra.actors.tools.config",
    "agent_tool": "actorchestra.actors.tools.agent_tool",
    "builtin_tools": "actorchestra.actors.tools.catalog",
    "calculator_tool": "actorchestra.actors.tools.builtin_calc",
    "http_get_tool": "actorchestra.actors.tools.builtin_http",
    "python_tool": "actorchestra.actors.tools.builtin_python",
    "tool": "actorchestra.actors.tools.registry",
}

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


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
