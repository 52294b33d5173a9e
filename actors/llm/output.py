"""Structured output: what JSON a `response_format` asks for, and checking the answer.

A `response_format` is an OpenAI dict (`json_object`, `json_schema`) or a pydantic model
class, which is sent as its JSON schema and parsed back into an instance. A model that
answers with something else gets `LLMResponseError`, so callers (the planner) can
decide to re-ask instead of acting on malformed output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonschema
from pydantic import BaseModel, ValidationError

from actorchestra.actors.llm.errors import LLMResponseError

ResponseFormat = Mapping[str, Any] | type[BaseModel]


class OutputSpec:
    """What JSON, if any, a `response_format` asks for, and how to check it."""

    def __init__(self, response_format: ResponseFormat | None) -> None:
        self.wire: dict[str, Any] | None = None
        self.schema: Mapping[str, Any] | None = None
        self.model_cls: type[BaseModel] | None = None
        self.wants_json = False
        if response_format is None:
            return
        if isinstance(response_format, type) and issubclass(response_format, BaseModel):
            self.model_cls = response_format
            self.schema = response_format.model_json_schema()
            self.wire = {
                "type": "json_schema",
                "json_schema": {"name": response_format.__name__, "schema": self.schema},
            }
            self.wants_json = True
            return
        if not isinstance(response_format, Mapping):
            raise TypeError("response_format must be a dict or a pydantic model class")
        self.wire = dict(response_format)
        kind = response_format.get("type")
        if kind == "json_schema":
            spec = response_format.get("json_schema") or {}
            schema = spec.get("schema") if isinstance(spec, Mapping) else None
            self.schema = schema if isinstance(schema, Mapping) else None
        self.wants_json = kind in ("json_schema", "json_object")

    def parse(self, text: str | None, finish_reason: str | None) -> Any:
        """The decoded, validated output; LLMResponseError when it is not what was asked."""
        if not self.wants_json or text is None:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            why = " (cut short by max_tokens)" if finish_reason == "length" else ""
            raise LLMResponseError(
                f"the model was asked for JSON but answered text that is not JSON{why}: "
                f"{exc}; it began {text[:120]!r}"
            ) from None
        if self.model_cls is not None:
            try:
                return self.model_cls.model_validate(value)
            except ValidationError as exc:
                raise LLMResponseError(
                    f"the model's JSON does not fit {self.model_cls.__name__}: {exc}"
                ) from None
        if self.schema is not None:
            try:
                jsonschema.validate(value, self.schema)
            except jsonschema.ValidationError as exc:
                raise LLMResponseError(
                    f"the model's JSON does not match the schema: {exc.message} "
                    f"at {'/'.join(str(p) for p in exc.absolute_path) or 'the top level'}"
                ) from None
            except jsonschema.SchemaError as exc:
                raise LLMResponseError(
                    f"the response schema itself is invalid: {exc.message}"
                ) from None
        return value
