"""Build a JSON value that validates against a JSON schema, filled from the prompt.

This is how the offline model answers structured-output and tool-call requests: the
caller's schema decides the shape, the prompt supplies the values where names match
(a `url` property gets the URL in the prompt, `a` and `b` get its numbers, `city` gets
"Paris" from "weather in Paris"), and known values ("hints", e.g. a plan computed from
skills) are poured into whatever property names the schema chose for them.

Supported: type (and lists of types), object/properties/required/additionalProperties,
array/items/prefixItems/minItems/maxItems/uniqueItems, string formats and
minLength/maxLength, number/integer bounds and multipleOf, boolean, null, enum, const,
$ref into $defs/definitions, allOf, anyOf, oneOf. Deterministic: no clocks, no randomness.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from actorchestra.serve_apps.model_server import text as t
from actorchestra.serve_apps.model_server.schema_values import (
    FillContext,
    clamp_number,
    fit_length,
    guess_number,
    guess_string,
    make_unique,
)

__all__ = ["FillContext", "instance_for", "lookup_hint"]

_MISSING: Any = object()
_MAX_DEPTH = 8

# Names that mean the same slot, so a hint called "depends_on" fills a property "after".
_ALIAS_GROUPS: tuple[frozenset[str], ...] = tuple(
    frozenset(group.split())
    for group in (
        "id taskid subtaskid stepid",
        "skill skillid skillname capability",
        "agent agentname agentid worker assignee",
        "input text instruction instructions query task prompt message content request goal "
        "description details subtask",
        "dependson dependencies deps after requires needs parents prerequisites waitfor",
        "subtasks tasks steps plan items actions",
        "reason rationale why explanation justification",
    )
)


def instance_for(
    schema: Mapping[str, Any] | bool,
    context: FillContext,
    hint: Any = _MISSING,
) -> Any:
    """A value valid against `schema`, built from `context` and, where given, `hint`."""
    root = schema if isinstance(schema, Mapping) else {}
    return _Filler(root, context).fill(schema, None, hint, 0, 0)


def lookup_hint(hints: Mapping[str, Any], name: str) -> Any:
    """The hint for a property name: exact (normalised) match first, then an alias."""
    key = t.normalise_key(name)
    normalised = {t.normalise_key(k): v for k, v in hints.items()}
    if key in normalised:
        return normalised[key]
    for group in _ALIAS_GROUPS:
        if key in group:
            for alias in group:
                if alias in normalised:
                    return normalised[alias]
    return _MISSING


class _Filler:
    def __init__(self, root: Mapping[str, Any], context: FillContext) -> None:
        self.root = root
        self.ctx = context

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """Follow local `$ref`s and merge `allOf`, so the rest sees one plain schema."""
        seen = 0
        while "$ref" in schema and seen < 32:
            target = self._deref(str(schema["$ref"]))
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            seen += 1
        if "allOf" in schema:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self.resolve(part) if isinstance(part, Mapping) else {}
                for key, value in part.items():
                    if key == "properties":
                        merged["properties"] = {**merged.get("properties", {}), **value}
                    elif key == "required":
                        merged["required"] = [*merged.get("required", []), *value]
                    else:
                        merged.setdefault(key, value)
            schema = merged
        return schema

    def _deref(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith("#"):
            return {}
        node: Any = self.root
        for part in ref.lstrip("#").strip("/").split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part, {}) if isinstance(node, Mapping) else {}
        return node if isinstance(node, Mapping) else {}

    def fill(
        self, schema: Mapping[str, Any] | bool, name: str | None, hint: Any, depth: int, index: int
    ) -> Any:
        if schema is True or schema is False or not schema:
            return hint if hint is not _MISSING else self.string({}, name, _MISSING, index)
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.enum(list(schema["enum"]), hint)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                option = self.choose_option(schema[key], hint)
                base = {k: v for k, v in schema.items() if k != key}
                return self.fill({**base, **self.resolve(option)}, name, hint, depth, index)
        kind = self.choose_type(schema, hint)
        if kind == "object":
            return self.object(schema, hint, depth)
        if kind == "array":
            return self.array(schema, name, hint, depth)
        if kind in ("number", "integer"):
            return self.number(schema, name, hint, integer=kind == "integer")
        if kind == "boolean":
            return self.boolean(name, hint)
        if kind == "null":
            return None
        return self.string(schema, name, hint, index)

    def choose_option(self, options: list[Any], hint: Any) -> Mapping[str, Any]:
        resolved = [self.resolve(o) if isinstance(o, Mapping) else {} for o in options]
        if hint is not _MISSING:
            for option in resolved:
                if _type_fits(option.get("type"), hint):
                    return option
        for option in resolved:
            if option.get("type") != "null":
                return option
        return resolved[0] if resolved else {}

    def choose_type(self, schema: Mapping[str, Any], hint: Any) -> str:
        declared = schema.get("type")
        if isinstance(declared, list):
            types = [d for d in declared if d != "null"] or ["null"]
            if hint is not _MISSING:
                for d in types:
                    if _type_fits(d, hint):
                        return str(d)
            return str(types[0])
        if isinstance(declared, str):
            return declared
        if "properties" in schema or "required" in schema or "additionalProperties" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        if hint is not _MISSING:
            return _json_type(hint)
        return "string"

    def enum(self, values: list[Any], hint: Any) -> Any:
        if not values:
            return None
        if hint is not _MISSING:
            for value in values:
                if str(value).lower() == str(hint).lower():
                    return value
        prompt = set(t.content_stems(self.ctx.text))
        best = max(values, key=lambda v: t.overlap(t.content_stems(str(v)), prompt))
        if t.overlap(t.content_stems(str(best)), prompt) > 0:
            return best
        for value in values:  # nothing named: prefer the non-committal choice
            if str(value).lower() in ("neutral", "unknown", "other", "none", "medium", "normal"):
                return value
        return values[0]

    def object(self, schema: Mapping[str, Any], hint: Any, depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        required = list(schema.get("required") or [])
        if isinstance(hint, list):
            array_props = [
                n
                for n, s in properties.items()
                if isinstance(s, Mapping) and self.choose_type(self.resolve(s), hint) == "array"
            ]
            hint = {array_props[0]: hint} if array_props else _MISSING
        hints = hint if isinstance(hint, Mapping) else {}
        if not properties and not required and isinstance(hint, Mapping):
            return dict(hint)
        result: dict[str, Any] = {}
        for prop, sub in properties.items():
            if depth >= _MAX_DEPTH and prop not in required:
                continue
            if hints:
                sub_hint = lookup_hint(hints, prop)
            else:  # no structured hint: take a `key: value` the prompt spelled out
                sub_hint = self.fit_text_hint(sub, lookup_hint(self.ctx.hints, prop))
            result[prop] = self.fill(sub, prop, sub_hint, depth + 1, 0)
        extra = schema.get("additionalProperties", True)
        for prop in required:
            if prop not in result:
                sub = extra if isinstance(extra, Mapping) else {}
                result[prop] = self.fill(sub, prop, lookup_hint(hints, prop), depth + 1, 0)
        minimum = int(schema.get("minProperties", 0))
        while len(result) < minimum:
            sub = extra if isinstance(extra, Mapping) else {}
            key = f"field{len(result) + 1}"
            result[key] = self.fill(sub, key, _MISSING, depth + 1, 0)
        return result

    def fit_text_hint(self, schema: Any, hint: Any) -> Any:
        """Use a `key: value` pair from the prompt only where its text fits the property."""
        if hint is _MISSING or not isinstance(hint, str) or not isinstance(schema, Mapping):
            return hint
        kind = self.choose_type(self.resolve(schema), hint)
        if kind in ("number", "integer"):
            numbers = t.extract_numbers(hint)
            return numbers[0] if numbers else _MISSING
        if kind == "boolean":
            return hint.lower() in ("yes", "true", "on", "1") if hint else _MISSING
        return hint if kind == "string" else _MISSING

    def array(
        self,
        schema: Mapping[str, Any],
        name: str | None,
        hint: Any,
        depth: int,
    ) -> list[Any]:
        items = schema.get("items", {})
        prefix = list(schema.get("prefixItems") or [])
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        if isinstance(hint, Mapping):
            lists = [v for v in hint.values() if isinstance(v, list)]
            hint = lists[0] if lists else _MISSING
        if isinstance(hint, list):
            hints: list[Any] = list(hint)
        elif hint is not _MISSING and hint is not None:
            hints = [hint]
        else:
            want = low if depth >= _MAX_DEPTH else max(low, 1, len(prefix))
            if name and t.normalise_key(name) in {"keywords", "tags", "topics", "terms", "labels"}:
                want = max(want, min(3, len(t.keywords(self.ctx.text)) or 1))
            hints = [_MISSING] * want
        while len(hints) < low:
            hints.append(_MISSING)
        if high is not None:
            hints = hints[: int(high)]
        singular = name[:-1] if name and name.endswith("s") else name
        out = []
        for i, item_hint in enumerate(hints):
            sub = prefix[i] if i < len(prefix) else items
            out.append(self.fill(sub if sub is not None else {}, singular, item_hint, depth + 1, i))
        if schema.get("uniqueItems"):
            out = make_unique(out)
        return out

    def number(
        self,
        schema: Mapping[str, Any],
        name: str | None,
        hint: Any,
        integer: bool,
    ) -> float | int:
        value: float | None = None
        if isinstance(hint, bool):
            value = float(hint)
        elif isinstance(hint, int | float):
            value = float(hint)
        elif isinstance(hint, str):
            numbers = t.extract_numbers(hint)
            value = numbers[0] if numbers else None
        if value is None:
            value = guess_number(name, self.ctx)
        return clamp_number(value, schema, integer)

    def boolean(self, name: str | None, hint: Any) -> bool:
        if isinstance(hint, bool):
            return hint
        if isinstance(hint, str):
            return hint.strip().lower() in ("yes", "true", "on", "1")
        if hint is not _MISSING and hint is not None:
            return bool(hint)
        return (
            bool(name)
            and t.overlap(t.content_stems(name or ""), t.content_stems(self.ctx.text)) > 0
        )

    def string(self, schema: Mapping[str, Any], name: str | None, hint: Any, index: int) -> str:
        if hint is not _MISSING and hint is not None:
            value = hint if isinstance(hint, str) else json.dumps(hint, sort_keys=True)
        else:
            value = guess_string(schema, name, index, self.ctx)
        return fit_length(value, schema)


def _type_fits(declared: Any, value: Any) -> bool:
    kinds = declared if isinstance(declared, list) else [declared]
    actual = _json_type(value)
    return actual in kinds or (actual == "integer" and "number" in kinds)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return "string"
