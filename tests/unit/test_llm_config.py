"""LLMConfig arithmetic and Retry-After parsing: the client's pure parts."""

from __future__ import annotations

import email.utils
import time

import pytest
from pydantic import BaseModel

from actorchestra.actors.llm import LLMConfig, ModelPrice, ToolCall
from actorchestra.actors.llm.errors import LLMResponseError, LLMTimeoutError, LLMUnavailableError
from actorchestra.actors.llm.output import OutputSpec
from actorchestra.actors.llm.retry import retry_after_s
from actorchestra.protocol.errors import ActorchestraError


def test_agent_override_beats_the_default_model() -> None:
    config = LLMConfig(model="base", agent_models={"writer": "big"})
    assert config.model_for("writer") == "big"
    assert config.model_for("reader") == "base" == config.model_for(None)


def test_cost_uses_the_price_table_and_unknown_models_are_free() -> None:
    config = LLMConfig(prices={"m": ModelPrice(input_per_1m=2.0, output_per_1m=10.0)})
    assert config.cost("m", 1_000_000, 500_000) == pytest.approx(7.0)
    assert config.cost("other", 1_000_000, 1_000_000) == 0.0


def test_backoff_grows_and_is_capped() -> None:
    config = LLMConfig(backoff_initial_s=0.5, backoff_max_s=3.0)
    assert [config.backoff_s(n, 0.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
    assert config.backoff_s(1, 0.999) == pytest.approx(0.5 * 0.75, rel=1e-2)


def test_api_key_is_secret() -> None:
    config = LLMConfig(api_key="sk-123")
    assert "sk-123" not in repr(config)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "150", "retry-after": "9"}, 0.15),
        ({"retry-after": "soon"}, None),
    ],
)
def test_retry_after_forms(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_s(headers) == expected


def test_retry_after_as_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    seconds = retry_after_s({"retry-after": when})
    assert seconds is not None and 25 <= seconds <= 31


def test_errors_belong_to_the_project_hierarchy() -> None:
    assert issubclass(LLMTimeoutError, LLMUnavailableError)
    assert issubclass(LLMUnavailableError, ActorchestraError)
    assert LLMTimeoutError("x").http_status == 504


def test_output_spec_checks_json_against_the_schema() -> None:
    spec = OutputSpec(
        {
            "type": "json_schema",
            "json_schema": {"name": "n", "schema": {"type": "object", "required": ["a"]}},
        }
    )
    assert spec.parse('{"a": 1}', "stop") == {"a": 1}
    with pytest.raises(LLMResponseError, match="does not match the schema"):
        spec.parse('{"b": 1}', "stop")
    with pytest.raises(LLMResponseError, match="cut short by max_tokens"):
        spec.parse('{"a": ', "length")


def test_output_spec_parses_into_a_pydantic_model() -> None:
    class Answer(BaseModel):
        value: int

    spec = OutputSpec(Answer)
    assert spec.wire is not None and spec.wire["json_schema"]["name"] == "Answer"
    assert spec.parse('{"value": 3}', "stop") == Answer(value=3)
    with pytest.raises(LLMResponseError, match="does not fit Answer"):
        spec.parse('{"value": "x"}', "stop")
    assert OutputSpec({"type": "text"}).parse("plain", "stop") is None


def test_tool_call_arguments_must_be_a_json_object() -> None:
    assert ToolCall(id="1", name="f", arguments='{"x": 1}').parsed_arguments() == {"x": 1}
    with pytest.raises(LLMResponseError, match="not JSON"):
        ToolCall(id="1", name="f", arguments="{oops").parsed_arguments()
