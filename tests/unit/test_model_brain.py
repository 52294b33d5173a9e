"""The offline model's decisions, without HTTP: replies, tool calls, plans, JSON, length."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from actorchestra.serve_apps.model_server import brain, planning, tools
from actorchestra.serve_apps.model_server import text as t

CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression and return the number",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
            "additionalProperties": False,
        },
    },
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit"],
        },
    },
}
FETCH = {
    "type": "function",
    "function": {
        "name": "fetch_url",
        "description": "Download a web page",
        "parameters": {
            "type": "object",
            "properties": {"url": {"type": "string", "format": "uri"}},
            "required": ["url"],
        },
    },
}
ALL_TOOLS = [CALCULATOR, WEATHER, FETCH]

SKILLS = [
    {
        "id": "web.fetch",
        "name": "Fetch web page",
        "description": "Download a URL",
        "tags": ["web", "http"],
    },
    {
        "id": "text.summarize",
        "name": "Summarize",
        "description": "Summarise a text",
        "tags": ["summary"],
    },
    {
        "id": "text.translate",
        "name": "Translate",
        "description": "Translate text into another language",
        "tags": ["language"],
    },
    {"id": "math.calc", "name": "Calculator", "description": "Do arithmetic", "tags": ["math"]},
]
PLANNER_SYSTEM = "You are a planner. Split the request over these skills:\n" + json.dumps(SKILLS)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def test_same_request_same_reply() -> None:
    messages = [{"role": "system", "content": "Be brief."}, *user("Tell me about actors.")]
    assert brain.respond(messages) == brain.respond(messages)


def test_plain_reply_is_honest_and_restates_the_request() -> None:
    reply = brain.respond(user("Tell me about the actor model and message passing."))
    assert reply.content is not None
    assert reply.content.startswith("[offline model]")
    assert "actor" in reply.content and "message" in reply.content
    assert reply.finish_reason == "stop"


def test_reply_acts_the_system_role() -> None:
    messages = [
        {"role": "system", "content": "You are a pirate captain. Answer briefly."},
        *user("Where is the ship?"),
    ]
    reply = brain.respond(messages)
    assert reply.content is not None
    assert reply.content.startswith("[offline model, acting as a pirate captain]")


def test_reply_does_arithmetic() -> None:
    reply = brain.respond(user("What is (2 + 3) * 4?"))
    assert reply.content == "[offline model] (2 + 3) * 4 = 20."


def test_reply_reads_content_parts() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is 6 * 7?"}]}]
    assert brain.respond(messages).content == "[offline model] 6 * 7 = 42."


def test_max_tokens_cuts_with_finish_reason_length() -> None:
    reply = brain.respond(
        user("Tell me about actors, messages, mailboxes and supervision."), max_tokens=5
    )
    assert reply.content is not None
    assert t.count_tokens(reply.content) == 5
    assert reply.finish_reason == "length"


@pytest.mark.parametrize(
    ("prompt", "max_tokens", "expected"),
    [
        ("Write a long essay about distributed actors.", 2000, 2000),
        ("Write 300 words about actors.", None, 300),
        ("Write 300 tokens about actors.", 120, 120),
        ("Write a detailed answer about actors.", None, brain.DEFAULT_LONG_TOKENS),
    ],
)
def test_long_replies_have_the_asked_length(
    prompt: str, max_tokens: int | None, expected: int
) -> None:
    reply = brain.respond(user(prompt), max_tokens=max_tokens)
    assert reply.content is not None
    assert t.count_tokens(reply.content) == expected


def test_reply_tokens_knob_sets_exact_length() -> None:
    reply = brain.respond(user("hello"), reply_tokens=777)
    assert reply.content is not None and t.count_tokens(reply.content) == 777


@pytest.mark.parametrize(
    ("prompt", "tool", "arguments"),
    [
        ("Please compute 17 * 3 + 1", "calculator", {"expression": "17 * 3 + 1"}),
        (
            "What's the weather in New York today?",
            "get_weather",
            {"city": "New York", "unit": "celsius"},
        ),
        (
            "Download https://example.org/docs/page.html for me",
            "fetch_url",
            {"url": "https://example.org/docs/page.html"},
        ),
    ],
)
def test_calls_the_matching_tool_with_valid_arguments(
    prompt: str, tool: str, arguments: dict[str, Any]
) -> None:
    reply = brain.respond(user(prompt), tool_specs=ALL_TOOLS)
    assert reply.finish_reason == "tool_calls" and reply.content is None
    (call,) = reply.tool_calls
    assert call.name == tool
    parsed = json.loads(call.arguments)
    spec = next(s for s in ALL_TOOLS if s["function"]["name"] == tool)
    jsonschema.validate(parsed, spec["function"]["parameters"])
    assert {k: parsed[k] for k in arguments} == arguments


def test_no_tool_when_nothing_matches_and_choice_is_auto() -> None:
    reply = brain.respond(user("Hello there"), tool_specs=ALL_TOOLS)
    assert not reply.tool_calls and reply.content


def test_tool_choice_none_required_and_named() -> None:
    prompt = user("compute 2 + 2")
    assert not brain.respond(prompt, tool_specs=ALL_TOOLS, tool_choice="none").tool_calls
    forced = brain.respond(user("Hello there"), tool_specs=ALL_TOOLS, tool_choice="required")
    assert len(forced.tool_calls) == 1
    named = brain.respond(
        prompt,
        tool_specs=ALL_TOOLS,
        tool_choice={"type": "function", "function": {"name": "fetch_url"}},
    )
    assert named.tool_calls[0].name == "fetch_url"


def test_answers_from_the_tool_result() -> None:
    first = brain.respond(user("compute 17 * 3 + 1"), tool_specs=ALL_TOOLS)
    call = first.tool_calls[0]
    messages = [
        *user("compute 17 * 3 + 1"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "52"},
    ]
    reply = brain.respond(messages, tool_specs=ALL_TOOLS)
    assert not reply.tool_calls
    assert reply.content is not None
    assert "calculator" in reply.content and "52" in reply.content


def test_tool_scores_prefer_name_over_description() -> None:
    available = tools.function_tools(ALL_TOOLS)
    chosen = tools.choose_tool(available, "auto", "weather forecast for Paris")
    assert chosen is not None and chosen.name == "get_weather"


def test_json_object_reply_is_an_object() -> None:
    reply = brain.respond(user("Say hi"), response_format={"type": "json_object"})
    assert isinstance(json.loads(reply.content or ""), dict)


def test_json_schema_reply_validates_and_uses_prompt_values() -> None:
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "url": {"type": "string", "format": "uri"},
            "count": {"type": "integer", "minimum": 1},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        },
        "required": ["title", "url", "count", "tags"],
        "additionalProperties": False,
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "page", "schema": schema}}
    reply = brain.respond(
        user('Index "Actor Basics" at https://example.com/a with 3 tags'),
        response_format=response_format,
    )
    value = json.loads(reply.content or "")
    jsonschema.validate(value, schema)
    assert value["title"] == "Actor Basics"
    assert value["url"] == "https://example.com/a"
    assert value["count"] == 3


def plan_of(request: str, response_format: dict[str, Any] | None = None) -> Any:
    messages = [{"role": "system", "content": PLANNER_SYSTEM}, *user(request)]
    return json.loads(brain.respond(messages, response_format=response_format).content or "")


def test_plan_splits_clauses_and_assigns_skills() -> None:
    plan = plan_of(
        "Fetch https://example.com/a, summarise it and then translate the summary into French"
    )
    subtasks = plan["subtasks"]
    assert [s["skill"] for s in subtasks] == ["web.fetch", "text.summarize", "text.translate"]
    assert [s["id"] for s in subtasks] == ["t1", "t2", "t3"]
    assert subtasks[0]["input"] == "Fetch https://example.com/a"
    assert subtasks[0]["depends_on"] == [] and subtasks[1]["depends_on"] == []
    assert subtasks[2]["depends_on"] == ["t2"]


def test_plan_keeps_unmatched_clauses_with_their_neighbour() -> None:
    plan = plan_of("Translate the menu of our restaurant in Paris, France into German")
    assert [s["skill"] for s in plan["subtasks"]] == ["text.translate"]
    assert "France" in plan["subtasks"][0]["input"]


def test_plan_fills_the_callers_schema() -> None:
    schema = {
        "type": "object",
        "$defs": {
            "Step": {
                "type": "object",
                "properties": {
                    "step_id": {"type": "string"},
                    "skill_id": {"type": "string", "enum": [s["id"] for s in SKILLS]},
                    "instruction": {"type": "string"},
                    "dependencies": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["step_id", "skill_id", "instruction", "dependencies"],
                "additionalProperties": False,
            }
        },
        "properties": {
            "steps": {"type": "array", "items": {"$ref": "#/$defs/Step"}, "minItems": 1}
        },
        "required": ["steps"],
        "additionalProperties": False,
    }
    plan = plan_of(
        "Compute 12 * 4; then summarize the result",
        {"type": "json_schema", "json_schema": {"name": "plan", "schema": schema}},
    )
    jsonschema.validate(plan, schema)
    assert [s["skill_id"] for s in plan["steps"]] == ["math.calc", "text.summarize"]
    assert plan["steps"][1]["dependencies"] == [plan["steps"][0]["step_id"]]
    assert plan["steps"][0]["instruction"] == "Compute 12 * 4"


def test_skills_of_agents_are_found() -> None:
    agents = [
        {"name": "researcher", "skills": [{"id": "search", "name": "Web search"}]},
        {
            "name": "writer",
            "skills": [{"id": "draft", "name": "Write draft", "description": "write a report"}],
        },
    ]
    skills = planning.find_skills([f"Agents: {json.dumps(agents)}"])
    assert [(s.agent, s.id) for s in skills] == [("researcher", "search"), ("writer", "draft")]
    plan = planning.plan("Search the web for actor frameworks then write a report", skills)
    assert [(s["agent"], s["skill"]) for s in plan["subtasks"]] == [
        ("researcher", "search"),
        ("writer", "draft"),
    ]
    assert plan["subtasks"][1]["depends_on"] == ["t1"]


def test_clause_splitting() -> None:
    clauses = t.split_clauses("Fetch the page. Then summarise it; translate it, and email it")
    assert [(c.text, c.follows_previous) for c in clauses] == [
        ("Fetch the page", False),
        ("summarise it", True),
        ("translate it", False),
        ("email it", False),
    ]


def test_tokenizer_pieces_rebuild_the_text() -> None:
    text = "Hello, world! It's 3.5 degrees."
    pieces = list(t.token_pieces(text))
    assert "".join(pieces) == text
    assert len(pieces) == t.count_tokens(text)
