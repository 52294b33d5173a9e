"""Package exports resolved on first use (PEP 562).

Every agent actor imports `actors.llm` and `actors.tools` for their config types; it
should not pay for the client libraries (openai, jsonschema) it never calls.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module `__getattr__` that imports `exports[name]` and caches the value."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        # Cache it: importing a submodule binds its name in the package, and a name
        # can be both a submodule and the function it exports (`tools.agent_tool`).
        namespace[name] = value
        return value

    return __getattr__
