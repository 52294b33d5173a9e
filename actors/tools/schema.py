"""JSON Schema for tool parameters: derived from a typed signature, and checked on call.

The model sees the schema (OpenAI `tools=` format) and the registry validates what the
model sends against the same schema before the tool runs, so the derivation is kept
deliberately small and predictable: str, int, float, bool, list[...], dict[str, ...],
Literal[...], Optional / `X | None`, Annotated[X, "description"], Any. Anything else
raises `ToolConfigError` naming the parameter; pass an explicit schema for those.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from actorchestra.actors.tools.errors import ToolConfigError

_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters)\s*:\s*$")
_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_SECTION = re.compile(r"^\s*(Returns|Raises|Yields|Examples?|Notes?)\s*:\s*$")

_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
}


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The summary paragraph and Google-style `Args:` descriptions of a docstring."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _ARGS_HEADER.match(line) or _SECTION.match(line):
            break
        summary.append(line.strip())
    args: dict[str, str] = {}
    current: str | None = None
    arg_indent = 0
    in_args = False
    for line in lines:
        if _ARGS_HEADER.match(line):
            in_args = True
            continue
        if not in_args:
            continue
        if _SECTION.match(line):
            break
        indent = len(line) - len(line.lstrip())
        match = _ARG_LINE.match(line)
        if match and (current is None or indent <= arg_indent):
            current = match.group(1).lstrip("*")
            arg_indent = indent
            args[current] = match.group(3).strip()
        elif current is not None and line.strip():
            args[current] = f"{args[current]} {line.strip()}".strip()
    return " ".join(summary), args


def type_schema(annotation: Any, where: str) -> dict[str, Any]:
    """The JSON Schema for one annotation; `where` names it in the error."""
    if annotation is Any:
        return {}
    if annotation in _SCALARS:
        return dict(_SCALARS[annotation])
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        inner = type_schema(args[0], where)
        text = next((a for a in args[1:] if isinstance(a, str)), None)
        if text:
            inner["description"] = text
        return inner
    if annotation is list or origin is list:
        schema: dict[str, Any] = {"type": "array"}
        if args:
            schema["items"] = type_schema(args[0], where)
        return schema
    if annotation is dict or origin is dict:
        schema = {"type": "object"}
        if args:
            if args[0] is not str:
                raise ToolConfigError(f"{where}: dict keys must be str (JSON object keys)")
            value = type_schema(args[1], where)
            if value:
                schema["additionalProperties"] = value
        return schema
    if origin is typing.Literal:
        values = list(args)
        kinds = {type(v) for v in values}
        schema = {"enum": values}
        if len(kinds) == 1 and next(iter(kinds)) in _SCALARS:
            schema["type"] = _SCALARS[next(iter(kinds))]["type"]
        return schema
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in args if a is not type(None)]
        nullable = len(members) < len(args)
        parts = [type_schema(a, where) for a in members]
        if nullable and len(parts) == 1 and isinstance(parts[0].get("type"), str):
            out = dict(parts[0])
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
            return out
        if nullable:
            parts.append({"type": "null"})
        return {"anyOf": parts}
    raise ToolConfigError(
        f"{where}: cannot derive a JSON schema from {annotation!r}; use str, int, float, "
        "bool, list, dict, Literal or Optional of those, or pass `parameters=` explicitly"
    )


def schema_from_signature(fn: Callable[..., Any]) -> tuple[dict[str, Any], str]:
    """An `object` schema for `fn`'s parameters, and the description from its docstring.

    Parameters without a default are required; defaults that JSON can carry are shown
    to the model. `additionalProperties` is false so a misspelt argument is reported
    instead of silently dropped.
    """
    name = getattr(fn, "__qualname__", repr(fn))
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError) as exc:
        raise ToolConfigError(f"cannot resolve the type hints of {name}: {exc}") from exc
    summary, arg_docs = parse_docstring(inspect.getdoc(fn))
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        where = f"parameter {param.name!r} of {name}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolConfigError(f"{where}: *args/**kwargs cannot be described to a model")
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolConfigError(f"{where}: positional-only parameters cannot be passed by name")
        if param.name not in hints:
            raise ToolConfigError(f"{where} has no type annotation")
        prop = type_schema(hints[param.name], where)
        if param.name in arg_docs and "description" not in prop:
            prop["description"] = arg_docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
        elif _json_safe(param.default):
            prop["default"] = param.default
        properties[param.name] = prop
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    return schema, summary


def check_schema(schema: dict[str, Any], tool_name: str) -> jsonschema.protocols.Validator:
    """A validator for `schema`, or `ToolConfigError` if the schema itself is wrong."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise ToolConfigError(
            f"tool {tool_name!r}: parameters must be a JSON schema with type 'object'"
        )
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ToolConfigError(
            f"tool {tool_name!r}: invalid parameters schema: {exc.message}"
        ) from exc
    return cls(schema)


def describe_errors(errors: Iterable[ValidationError], limit: int = 5) -> str:
    """One line a model can act on: which argument is wrong and why."""
    ordered = sorted(errors, key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    parts = [_describe(e) for e in ordered[:limit]]
    if len(ordered) > limit:
        parts.append(f"and {len(ordered) - limit} more")
    return "; ".join(parts)


def _describe(error: ValidationError) -> str:
    path = "/".join(str(p) for p in error.absolute_path)
    inside = f" in {path!r}" if path else ""
    instance = error.instance if isinstance(error.instance, dict) else {}
    if error.validator == "required":
        missing = [p for p in error.validator_value if p not in instance]
        return f"missing required argument {_names(missing)}{inside}"
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = set(error.schema.get("properties", {}))
        extra = sorted(k for k in instance if k not in known)
        expected = ", ".join(sorted(known)) or "none"
        return f"unexpected argument {_names(extra)}{inside} (expected: {expected})"
    if path:
        return f"argument {path!r}: {error.message}"
    return error.message


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
