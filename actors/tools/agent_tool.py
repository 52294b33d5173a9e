"""Another agent as a tool: the model writes a message, the agent's reply comes back.

Only the adapter lives here. The caller supplies `send`, an async "text in, text out"
function; the runtime plugs in an A2A call to a registered agent (through the registry
and an endpoint), so this module needs neither Ray nor Serve. Failures `send` raises as
`ActorchestraError` (agent not found, unavailable) become recorded tool errors with
their message; anything else is recorded with its type and logged by the registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from actorchestra.actors.tools.errors import ToolConfigError
from actorchestra.actors.tools.registry import Tool

SendText = Callable[[str], Awaitable[str]]


def agent_tool(
    name: str,
    description: str,
    send: SendText,
    *,
    timeout_s: float | None = None,
) -> Tool:
    """A tool named `name` whose one argument, `input`, is sent to an agent via `send`."""
    if not callable(send):
        raise ToolConfigError(f"agent tool {name!r}: send must be an async callable")
    if not description.strip():
        raise ToolConfigError(
            f"agent tool {name!r}: a description is what the model chooses tools by"
        )

    async def ask_agent(input: str) -> str:
        return await send(input)

    return Tool(
        name=name,
        description=description,
        parameters={
            "type": "object",
            "properties": {
                "input": {
                    "type": "string",
                    "description": "the message to send to the agent, in plain language",
                }
            },
            "required": ["input"],
            "additionalProperties": False,
        },
        fn=ask_agent,
        timeout_s=timeout_s,
    )
