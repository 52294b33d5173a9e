"""The tool layer's own errors, under the project's one root.

Two kinds, kept apart on purpose:

- `ToolError` is raised *inside* a tool to say "this call failed, and here is a message
  the model may read" (address refused, timed out, bad expression). `ToolRegistry.call`
  turns it into a recorded outcome; it never escapes to the caller of `call`.
- `ToolConfigError` and `ToolNotFoundError` are programming or configuration mistakes
  (a schema that is not valid JSON Schema, a duplicate name, an unannotated parameter,
  `get()` of a name that was never registered). They raise, loudly, at definition time.
"""

from __future__ import annotations

from actorchestra.protocol.errors import ActorchestraError, ConfigError, InvalidInputError


class ToolError(ActorchestraError):
    """A tool call failed in a way the model should be told about."""

    http_status = 422
    jsonrpc_code = -32603
    reason = "TOOL_FAILED"


class ToolConfigError(ConfigError):
    """A tool is defined or configured in a way that cannot work."""

    reason = "INVALID_TOOL_CONFIG"


class ToolNotFoundError(InvalidInputError):
    """`ToolRegistry.get` was asked for a name nobody registered."""

    http_status = 404
    reason = "TOOL_NOT_FOUND"
