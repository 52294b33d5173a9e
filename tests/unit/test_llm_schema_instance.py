"""Schema instances the offline model returns must validate, whatever the schema's shape."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel, Field

from actorchestra.serve_apps.model_server.embeddings import cosine, embed
from actorchestra.serve_apps.model_server.schema_instance import FillContext, instance_for

PROMPT = (
    "Create a profile. name: Ada Lovelace, age: 36, email ada@example.com, "
    "she lives in London; see https://example.com/ada"
)

SCHEMAS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "integer_bounds": {"type": "integer", "minimum": 40, "maximum": 50},
    "exclusive": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "multiple": {"type": "integer", "multipleOf": 5, "minimum": 1},
    "boolean": {"type": "boolean"},
    "null": {"type": "null"},
    "enum": {"enum": ["red", "green", 3]},
    "const": {"const": "fixed"},
    "nullable": {"type": ["string", "null"]},
    "lengths": {"type": "string", "minLength": 50, "maxLength": 60},
    "formats": {
        "type": "object",
        "properties": {
            f: {"type": "string", "format": f}
            for f in ("date-time", "date", "email", "uri", "uuid", "ipv4")
        },
        "required": ["date-time", "date", "email", "uri", "uuid", "ipv4"],
    },
    "array_bounds": {
        "type": "array",
        "items": {"type": "integer"},
        "minItems": 3,
        "maxItems": 4,
        "uniqueItems": True,
    },
    "unique_strings": {
        "type": "array",
        "items": {"type": "string"},
        "minItems": 5,
        "uniqueItems": True,
    },
    "prefix_items": {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "integer"}],
        "minItems": 2,
    },
    "nested_refs": {
        "type": "object",
        "$defs": {
            "Address": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "zip": {"type": "string", "maxLength": 5},
                },
                "required": ["city", "zip"],
                "additionalProperties": False,
            },
            "Person": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "age": {"type": "integer", "minimum": 0},
                    "address": {"$ref": "#/$defs/Address"},
                },
                "required": ["name", "age", "address"],
            },
        },
        "properties": {
            "people": {"type": "array", "items": {"$ref": "#/$defs/Person"}, "minItems": 2}
        },
        "required": ["people"],
    },
    "definitions_ref": {
        "definitions": {"N": {"type": "number", "maximum": 2}},
        "$ref": "#/definitions/N",
    },
    "all_of": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": "integer"}}, "required": ["b"]},
        ]
    },
    "any_of": {
        "anyOf": [
            {"type": "null"},
            {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]},
        ]
    },
    "one_of": {"oneOf": [{"type": "string", "maxLength": 2}, {"type": "integer"}]},
    "min_properties": {
        "type": "object",
        "minProperties": 2,
        "additionalProperties": {"type": "integer"},
    },
    "recursive": {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
                "required": ["label", "children"],
            }
        },
        "$ref": "#/$defs/Node",
    },
    "no_type": {"properties": {"q": {}}, "required": ["q"]},
}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_instance_validates(name: str) -> None:
    schema = SCHEMAS[name]
    value = instance_for(schema, FillContext.from_text(PROMPT))
    jsonschema.validate(value, schema)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_instance_is_deterministic(name: str) -> None:
    schema = SCHEMAS[name]
    first = instance_for(schema, FillContext.from_text(PROMPT))
    assert instance_for(schema, FillContext.from_text(PROMPT)) == first


def test_values_come_from_the_prompt() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "email": {"type": "string"},
            "city": {"type": "string"},
            "website": {"type": "string"},
        },
    }
    value = instance_for(schema, FillContext.from_text(PROMPT))
    assert value == {
        "name": "Ada Lovelace",
        "age": 36,
        "email": "ada@example.com",
        "city": "London",
        "website": "https://example.com/ada",
    }


def test_numbers_are_taken_in_order_and_results_computed() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "number"},
            "b": {"type": "number"},
            "result": {"type": "number"},
        },
    }
    value = instance_for(schema, FillContext.from_text("add 4.5 and 10: 4.5 + 10"))
    assert value == {"a": 4.5, "b": 10, "result": 14.5}


def test_enum_prefers_the_value_the_prompt_names() -> None:
    schema = {"type": "string", "enum": ["positive", "negative", "neutral"]}
    assert instance_for(schema, FillContext.from_text("this is negative")) == "negative"


def test_pydantic_schema_round_trips() -> None:
    class Item(BaseModel):
        title: str
        quantity: int = Field(ge=1, le=10)

    class Order(BaseModel):
        customer: str
        items: list[Item] = Field(min_length=1)
        rush: bool = False

    schema = Order.model_json_schema()
    value = instance_for(schema, FillContext.from_text("Order 3 widgets for Bob"))
    Order.model_validate(value)
    jsonschema.validate(value, schema)


def test_embeddings_are_unit_length_and_similar_texts_are_close() -> None:
    a = embed("The actor sends a message to another actor")
    b = embed("An actor sends messages to other actors")
    c = embed("Bananas are rich in potassium")
    assert len(a) == 384
    assert abs(cosine(a, a) - 1.0) < 1e-9
    assert cosine(a, b) > 0.5 > cosine(a, c)
    assert embed("x y z", 16) == embed("x y z", 16)
