"""Which tool the offline model calls, and with what arguments.

A tool is chosen by word overlap between the request and the tool's name (weighted
most), description and parameter names, after mapping both sides onto a few shared
concepts (so "compute 3 * 7" meets a tool named `calculator`). Its arguments are an
instance of the tool's parameter schema filled from the request, which is why they
always validate: numbers, URLs, expressions and places come from the text where a
parameter's name asks for them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from actorchestra.serve_apps.model_server import text as t
from actorchestra.serve_apps.model_server.schema_instance import FillContext, instance_for

# A request must share at least this much with a tool before `tool_choice="auto"` calls it:
# one word of the tool's name, or two of its description.
AUTO_THRESHOLD = 2


@dataclass(frozen=True)
class FunctionTool:
    """The parts of an OpenAI `{"type": "function", "function": {...}}` tool the model uses."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """One call the model decided to make; `arguments` is a JSON string, as on the wire."""

    id: str
    name: str
    arguments: str


def function_tools(tools: Sequence[Mapping[str, Any]] | None) -> list[FunctionTool]:
    """The function tools of a request (other tool types are ignored)."""
    out = []
    for tool in tools or []:
        fn = tool.get("function") if tool.get("type", "function") == "function" else None
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            params = fn.get("parameters")
            out.append(
                FunctionTool(
                    name=fn["name"],
                    description=str(fn.get("description") or ""),
                    parameters=params if isinstance(params, Mapping) else {"type": "object"},
                )
            )
    return out


def score(tool: FunctionTool, request: str) -> int:
    """How well a tool matches a request: 3 per shared name word, 1 per description word."""
    wanted = _request_concepts(request)
    name = t.concept_stems(t.content_stems(tool.name))
    described = t.concept_stems(t.content_stems(tool.description))
    params = set(t.content_stems(" ".join(_parameter_names(tool.parameters))))
    return (
        3 * len(wanted & name)
        + len(wanted & (described - name))
        + len(wanted & (params - name - described))
    )


def _request_concepts(request: str) -> set[str]:
    stems = t.concept_stems(t.content_stems(request))
    expression = t.extract_expression(request)
    if expression and any(op in expression for op in "+-*/%^"):
        stems.add("#calculate")
    if t.extract_urls(request):
        stems.add("#fetch")
    return stems


def _parameter_names(parameters: Mapping[str, Any]) -> list[str]:
    props = parameters.get("properties")
    return list(props) if isinstance(props, Mapping) else []


def choose_tool(
    tools: Sequence[FunctionTool],
    tool_choice: Any,
    request: str,
) -> FunctionTool | None:
    """The tool to call, honouring `tool_choice` ("none", "auto", "required", or a name)."""
    if not tools or tool_choice == "none":
        return None
    if isinstance(tool_choice, Mapping):
        wanted = (tool_choice.get("function") or {}).get("name")
        return next((tool for tool in tools if tool.name == wanted), None)
    ranked = sorted(enumerate(tools), key=lambda it: (-score(it[1], request), it[0]))
    best = ranked[0][1]
    if tool_choice == "required" or score(best, request) >= AUTO_THRESHOLD:
        return best
    return None


def call_tool(tool: FunctionTool, request: str, salt: str = "") -> ToolCall:
    """A call of `tool` whose arguments validate against its parameter schema."""
    arguments = instance_for(tool.parameters, FillContext.from_text(request))
    if not isinstance(arguments, dict):
        arguments = {}
    encoded = json.dumps(arguments, ensure_ascii=False)
    digest = hashlib.sha256(f"{tool.name}|{encoded}|{salt}".encode()).hexdigest()[:24]
    return ToolCall(id=f"call_{digest}", name=tool.name, arguments=encoded)
