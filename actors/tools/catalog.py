"""The built-in tools, built from one `ToolsConfig`."""

from __future__ import annotations

import httpx

from actorchestra.actors.tools.builtin_calc import calculator_tool
from actorchestra.actors.tools.builtin_http import http_get_tool
from actorchestra.actors.tools.builtin_python import python_tool
from actorchestra.actors.tools.config import ToolsConfig
from actorchestra.actors.tools.errors import ToolConfigError
from actorchestra.actors.tools.registry import Tool


def builtin_tools(
    config: ToolsConfig,
    *,
    http_client: httpx.AsyncClient | None = None,
    include: tuple[str, ...] = ("calculator", "http_get", "python"),
) -> list[Tool]:
    """`calculator`, `http_get` and `python` (or those named in `include`)."""
    makers = {
        "calculator": calculator_tool,
        "http_get": lambda: http_get_tool(config, client=http_client),
        "python": lambda: python_tool(config),
    }
    unknown = [n for n in include if n not in makers]
    if unknown:
        raise ToolConfigError(f"no built-in tool named {', '.join(unknown)}; have {list(makers)}")
    return [makers[n]() for n in include]
