"""The LLM agent, run in a plain `AgentActor` against the real offline model server.

No Ray and no mocks: the model server listens on a loopback port and the agent's
`LLMClient` reaches it with the real `openai` client; faults (429, 500) are queued on
the server. What the tests check is what a caller sees: artifacts, events, task
states, status messages, the card, and the usage the answer's metadata reports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jsonschema
import pytest
from a2a.helpers import new_text_message
from a2a.types import a2a_pb2
from google.protobuf.json_format import MessageToDict

from actorchestra.actors.agent import Agent, Chunk, SkillContext, Turn, skill
from actorchestra.actors.agent_actor import AgentActor
from actorchestra.actors.chat_memory import (
    SUMMARY_PREFIX,
    build_memory,
    count_tokens,
    message_tokens,
)
from actorchestra.actors.llm import LLMConfig
from actorchestra.actors.llm_agent import LLMAgent
from actorchestra.actors.llm_stream import CoalesceOptions, coalesce
from actorchestra.actors.spec import AgentRuntimeOptions, AgentSpec
from actorchestra.protocol.codec import pack, unpack
from actorchestra.protocol.context import CallInfo
from actorchestra.protocol.errors import ConfigError
from actorchestra.serve_apps.model_server import ModelServerHandle
from tests.llm_fixtures import faulty_model_server, model_server  # noqa: F401

State = a2a_pb2.TaskState
ALICE = CallInfo(user="alice", authenticated=True)
BOB = CallInfo(user="bob", authenticated=True)
LLM_CLS = "actorchestra.actors.llm_agent:LLMAgent"
_LIVE_ACTORS: list[AgentActor] = []  # kept for the session, as test_agent_actor explains


@pytest.fixture
def server(faulty_model_server: ModelServerHandle) -> Iterator[ModelServerHandle]:  # noqa: F811
    yield faulty_model_server


def _actor(server: ModelServerHandle, name: str = "assistant", **options: Any) -> AgentActor:
    llm = LLMConfig(
        base_url=server.base_url, max_retries=2, backoff_initial_s=0.001, backoff_max_s=0.005
    )
    actor = AgentActor(
        AgentSpec(name=name, cls=LLM_CLS, options=options),
        0,
        f"http://127.0.0.1:8000/a2a/{name}",
        AgentRuntimeOptions(llm=llm),
    )
    _LIVE_ACTORS.append(actor)
    return actor


def _request(text: str, context_id: str = "") -> a2a_pb2.SendMessageRequest:
    message = new_text_message(text, role=a2a_pb2.Role.ROLE_USER)
    if context_id:
        message.context_id = context_id
    return a2a_pb2.SendMessageRequest(message=message)


async def _send(
    actor: AgentActor, text: str, context_id: str = "", call: CallInfo = ALICE
) -> a2a_pb2.Task:
    result = unpack(await actor.send_message(pack(_request(text, context_id)), call))
    assert isinstance(result, a2a_pb2.Task)
    return result


async def _stream(actor: AgentActor, text: str, context_id: str = "") -> list[Any]:
    request = pack(_request(text, context_id))
    return [unpack(p) async for p in actor.send_message_stream(request, ALICE)]


def _text(task: a2a_pb2.Task) -> str:
    return "".join(p.text for a in task.artifacts for p in a.parts)


def _status_text(task: a2a_pb2.Task | a2a_pb2.TaskStatusUpdateEvent) -> str:
    return "".join(p.text for p in task.status.message.parts)


def _usage(task: a2a_pb2.Task) -> dict[str, Any]:
    return MessageToDict(task.metadata)["llm"]


def _prompt_tokens(*contents: str) -> int:
    """What the offline server counts for a prompt of these messages (no tools)."""
    return 3 + sum(message_tokens(c) for c in contents)


# -- streaming ----------------------------------------------------------------------------


async def test_a_long_reply_streams_as_few_coalesced_chunks(server: ModelServerHandle) -> None:
    actor = _actor(server, role="writer")
    ask = "Write a 2000 tokens essay about actors and messages."
    events = await _stream(actor, ask)
    chunks = [e for e in events if isinstance(e, a2a_pb2.TaskArtifactUpdateEvent)]
    assert events[-1].status.state == State.TASK_STATE_COMPLETED

    task = unpack(await actor.get_task(pack(a2a_pb2.GetTaskRequest(id=events[0].id)), ALICE))
    usage = _usage(task)
    assert usage["completion_tokens"] == 2000
    streamed = "".join(c.artifact.parts[0].text for c in chunks)
    assert streamed == _text(task)
    assert count_tokens(streamed) == 2000

    # Coalesced: many chunks, far fewer than tokens (and than the server's 2,000 deltas).
    assert 10 < len(chunks) < 2000 / 8, len(chunks)
    assert len(events) < 2000 / 8
    assert [c.append for c in chunks] == [False] + [True] * (len(chunks) - 1)
    assert [c.last_chunk for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert len({c.artifact.artifact_id for c in chunks}) == 1
    # The first token goes out alone, at once; the rest in ~64-character chunks.
    assert count_tokens(chunks[0].artifact.parts[0].text) == 1
    assert max(len(c.artifact.parts[0].text) for c in chunks) < 64 * 3
    # Usage rides on the last chunk and on the task.
    assert MessageToDict(chunks[-1].artifact.metadata)["llm"] == usage
    assert usage["model"] == "actorchestra-offline"
    assert usage["prompt_tokens"] > 0 and usage["latency_s"] > 0
    assert 0 < usage["first_token_s"] <= usage["latency_s"]

    # A plain send of the same request gets the same text as one artifact part.
    sent = await _send(actor, ask)
    assert sent.status.state == State.TASK_STATE_COMPLETED
    assert [len(a.parts) for a in sent.artifacts] == [1]
    assert _text(sent) == streamed


async def test_cancelling_a_streaming_answer_stops_it(server: ModelServerHandle) -> None:
    actor = _actor(server, role="writer")
    server.set_latency(token_latency_s=0.01)  # 2,000 tokens would take 20 s
    try:
        stream = actor.send_message_stream(
            pack(_request("Write a 2000 tokens essay about actors.")), ALICE
        )
        events = []
        async for packed in stream:
            events.append(unpack(packed))
            if isinstance(events[-1], a2a_pb2.TaskArtifactUpdateEvent):
                break
        cancel = a2a_pb2.CancelTaskRequest(id=events[0].id)
        canceled = unpack(await actor.cancel_task(pack(cancel), ALICE))
        assert canceled.status.state == State.TASK_STATE_CANCELED
        rest = [unpack(p) async for p in stream]
        assert rest[-1].status.state == State.TASK_STATE_CANCELED
        streamed = [e for e in events + rest if isinstance(e, a2a_pb2.TaskArtifactUpdateEvent)]
        assert not any(c.last_chunk for c in streamed)
        assert len(streamed) < 50
    finally:
        server.set_latency()


async def _pieces(items: list[Any]) -> AsyncIterator[str]:
    for item in items:
        if isinstance(item, asyncio.Event):
            await item.wait()
        elif isinstance(item, BaseException):
            raise item
        else:
            yield item


async def test_coalesce_flushes_by_size_and_sends_the_first_piece_alone() -> None:
    options = CoalesceOptions(max_chars=30, max_wait_s=60)
    out = [c async for c in coalesce(_pieces(["0123456789"] * 8), options)]
    assert [len(c.text) for c in out] == [10, 30, 30, 10]
    assert [c.last for c in out] == [False, False, False, True]


async def test_coalesce_flushes_on_time_while_the_source_is_silent() -> None:
    """The source stalls until the buffered text arrives: only the timer can send it."""
    released = asyncio.Event()
    source = _pieces(["first", "a", "b", released, "c"])
    seen: list[Chunk] = []

    async def consume() -> None:
        async for chunk in coalesce(source, CoalesceOptions(max_chars=1000, max_wait_s=0.02)):
            seen.append(chunk)
            if chunk.text == "ab":
                released.set()

    await asyncio.wait_for(consume(), timeout=10)
    assert [(c.text, c.last) for c in seen] == [("first", False), ("ab", False), ("c", True)]


async def test_coalesce_flushes_what_it_has_before_a_failure() -> None:
    source = _pieces(["a", "b", RuntimeError("model went away")])
    seen: list[str] = []
    with pytest.raises(RuntimeError, match="model went away"):
        async for chunk in coalesce(source, CoalesceOptions(max_chars=1000, max_wait_s=60)):
            seen.append(chunk.text)
    assert "".join(seen) == "ab"


# -- tools --------------------------------------------------------------------------------


async def test_calculator_round_trip(server: ModelServerHandle) -> None:
    actor = _actor(server, role="researcher")
    events = await _stream(actor, "what is 12*7")
    assert events[-1].status.state == State.TASK_STATE_COMPLETED
    answer = "".join(
        e.artifact.parts[0].text for e in events if isinstance(e, a2a_pb2.TaskArtifactUpdateEvent)
    )
    assert "84" in answer

    notes = [_status_text(e) for e in events if isinstance(e, a2a_pb2.TaskStatusUpdateEvent)]
    assert "calling tool calculator" in notes
    assert "tool calculator returned: 84" in notes

    task = unpack(await actor.get_task(pack(a2a_pb2.GetTaskRequest(id=events[0].id)), ALICE))
    (call,) = MessageToDict(task.metadata)["tool_calls"]
    assert call["name"] == "calculator" and call["ok"] is True and call["output"] == "84"
    assert _usage(task)["model_calls"] == 2
    (record,) = actor.agent.tools.recent()
    assert record.name == "calculator" and record.result == 84


async def test_tool_rounds_are_bounded(server: ModelServerHandle) -> None:
    # With no rounds allowed, the model is asked once, without tools, and answers itself.
    actor = _actor(server, role="researcher", max_tool_rounds=0)
    task = await _send(actor, "what is 12*7")
    assert task.status.state == State.TASK_STATE_COMPLETED
    assert "tool_calls" not in MessageToDict(task.metadata)
    assert _usage(task)["model_calls"] == 1
    assert "12*7 = 84" in _text(task)


# -- structured output --------------------------------------------------------------------

CITY_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "population": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
    "required": ["city", "population", "tags"],
    "additionalProperties": False,
}


async def test_a_skill_with_an_output_schema_answers_with_matching_data(
    server: ModelServerHandle,
) -> None:
    skills = [
        {"id": "chat", "description": "talk"},
        {"id": "city_facts", "tags": ["city"], "output_schema": CITY_SCHEMA},
    ]
    actor = _actor(server, skills=skills)
    task = await _send(actor, "city: Oslo, population: 700000")
    assert task.status.state == State.TASK_STATE_COMPLETED, _status_text(task)
    (artifact,) = task.artifacts
    assert artifact.name == "city_facts"
    part = artifact.parts[0]
    assert part.HasField("data")
    value = MessageToDict(part.data)
    value["population"] = int(value["population"])  # Struct numbers are doubles
    jsonschema.validate(value, CITY_SCHEMA)
    assert value["city"] == "Oslo"
    assert _usage(task)["completion_tokens"] > 0


# -- memory -------------------------------------------------------------------------------


async def test_the_second_turn_carries_the_first(server: ModelServerHandle) -> None:
    """The offline model answers only the last message, so the check is what it was sent:
    the second prompt is the first one plus exactly the first question and answer."""
    actor = _actor(server, role="writer")
    question = "My name is Zorblax and I grow blue turnips."
    first = await _send(actor, question)
    follow_up = "What do I grow?"
    second = await _send(actor, follow_up, context_id=first.context_id)
    fresh = await _send(actor, follow_up)

    grown = _usage(second)["prompt_tokens"] - _usage(fresh)["prompt_tokens"]
    assert grown == message_tokens(question) + message_tokens(_text(first))
    assert MessageToDict(second.metadata)["memory"] == {
        "turns_kept": 2,
        "turns_summarised": 0,
        "tokens": message_tokens(question) + message_tokens(_text(first)),
    }
    # Memory is per user: Bob in the same context starts from nothing.
    bobs = await _send(actor, follow_up, context_id=first.context_id, call=BOB)
    assert _usage(bobs)["prompt_tokens"] == _usage(fresh)["prompt_tokens"]
    # And it can be switched off.
    forgetful = _actor(server, role="writer", memory=False)
    one = await _send(forgetful, question)
    two = await _send(forgetful, follow_up, context_id=one.context_id)
    assert _usage(two)["prompt_tokens"] == _usage(fresh)["prompt_tokens"]


class Parrot(Agent):
    """Streams a reply cut mid-word, and recalls the conversation as it sees it."""

    @skill(tags=["speak"])
    async def speak(self, ctx: SkillContext) -> AsyncIterator[str]:
        """Stream "Hello world" in pieces that split words."""
        for piece in ("Hel", "lo wor", "ld"):
            yield piece

    @skill(tags=["recall"])
    async def recall(self, ctx: SkillContext) -> list[list[str]]:
        """The conversation's earlier turns."""
        return [[t.role, t.text] for t in ctx.conversation]


async def test_a_streamed_answer_is_remembered_as_one_text() -> None:
    actor = AgentActor(AgentSpec(name="parrot", cls=f"{__name__}:Parrot"), 0, "http://x/a2a/p")
    _LIVE_ACTORS.append(actor)
    events = await _stream(actor, "speak")
    recalled = await _send(actor, "recall", context_id=events[0].context_id)
    value = MessageToDict(recalled.artifacts[0].parts[0].data)
    assert value == [["user", "speak"], ["agent", "Hello world"]]


async def test_an_old_conversation_is_summarised_within_the_budget(
    server: ModelServerHandle,
) -> None:
    budget = 120
    actor = _actor(server, role="writer", max_context_tokens=budget)
    context = ""
    for i in range(6):
        task = await _send(actor, f"Fact {i}: the code word is w{i}. Say it back.", context)
        context = task.context_id
        memory = MessageToDict(task.metadata)["memory"]
        assert memory["tokens"] <= budget
    assert memory["turns_summarised"] > 0 and memory["turns_kept"] > 0
    # What the model got: system prompt + memory (within budget) + the new message.
    system = actor.agent.system_prompt
    user = "Fact 5: the code word is w5. Say it back."
    assert _usage(task)["prompt_tokens"] == 3 + message_tokens(system) + memory["tokens"] + (
        message_tokens(user)
    )


def _turns(n: int) -> list[Turn]:
    return [
        Turn(
            "user" if i % 2 == 0 else "agent",
            f"Turn {i} says w{i} first. Then it goes on for a while with more words {i}.",
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("budget", [0, 5, 12, 20, 40, 77, 150, 400, 10_000])
def test_memory_never_exceeds_its_budget(budget: int) -> None:
    memory = build_memory(_turns(30), budget)
    assert memory.tokens == sum(message_tokens(m["content"]) for m in memory.messages)
    assert memory.tokens <= budget
    assert memory.kept + memory.summarised == 30


def test_memory_keeps_the_newest_turns_and_summarises_the_oldest() -> None:
    turns = _turns(10)
    memory = build_memory(turns, 200)
    assert (memory.kept, memory.summarised) == (7, 3)
    summary, *kept = memory.messages
    assert summary == {
        "role": "system",
        "content": f"{SUMMARY_PREFIX} the user said Turn 0 says w0 first.; "
        "you said Turn 1 says w1 first.; the user said Turn 2 says w2 first.",
    }
    assert [m["content"] for m in kept] == [t.text for t in turns[3:]]
    assert [m["role"] for m in kept] == [
        "assistant" if t.role == "agent" else "user" for t in turns[3:]
    ]
    # Deterministic: the same conversation gives the same prompt.
    assert build_memory(turns, 200) == memory


def test_a_summary_too_long_for_the_budget_keeps_the_latest_dropped_turns() -> None:
    memory = build_memory(_turns(10), 100)
    assert (memory.kept, memory.summarised) == (3, 7)
    line = memory.messages[0]["content"]
    assert line.startswith(f"{SUMMARY_PREFIX} ...")
    assert "w6 first." in line and "w0" not in line
    assert memory.tokens <= 100


def test_memory_under_budget_is_the_whole_conversation() -> None:
    turns = _turns(4)
    memory = build_memory(turns, 10_000)
    assert (memory.kept, memory.summarised) == (4, 0)
    assert [m["content"] for m in memory.messages] == [t.text for t in turns]


# -- failures -----------------------------------------------------------------------------


async def test_a_rate_limit_is_retried_and_the_task_completes(server: ModelServerHandle) -> None:
    actor = _actor(server, role="writer")
    server.add_fault(status=429, count=1, path="/v1/chat")
    task = await _send(actor, "Hello there")
    assert task.status.state == State.TASK_STATE_COMPLETED
    assert _usage(task)["attempts"] == 2
    assert "offline model" in _text(task)


async def test_a_server_that_keeps_failing_fails_the_task_with_the_reason(
    server: ModelServerHandle,
) -> None:
    actor = _actor(server, role="writer")
    server.add_fault(status=500, count=3, path="/v1/chat")
    events = await _stream(actor, "Hello there")
    final = events[-1]
    assert final.status.state == State.TASK_STATE_FAILED
    message = _status_text(final)
    assert "HTTP 500 after 3 attempts" in message
    assert server.base_url in message
    assert "Traceback" not in message
    assert not [e for e in events if isinstance(e, a2a_pb2.TaskArtifactUpdateEvent)]


async def test_an_unknown_model_fails_the_task_naming_the_setting(
    server: ModelServerHandle,
) -> None:
    actor = _actor(server, role="writer", model="no-such-model")
    task = await _send(actor, "Hello there")
    assert task.status.state == State.TASK_STATE_FAILED
    message = _status_text(task)
    assert "ACTORCHESTRA_LLM_MODEL" in message and "no-such-model" in message
    assert list(task.artifacts) == []


# -- card and configuration ---------------------------------------------------------------


async def test_the_card_lists_the_configured_skills(server: ModelServerHandle) -> None:
    skills = [
        {
            "id": "haiku",
            "name": "write haiku",
            "description": "Write a haiku about the topic.",
            "tags": ["poetry", "haiku"],
            "examples": ["a haiku about rain"],
        },
        {"id": "rate", "description": "Rate a poem.", "output_schema": {"type": "object"}},
    ]
    actor = _actor(server, name="poet", system_prompt="You are a poet.", skills=skills)
    card = unpack(await actor.get_card())
    assert card.name == "poet"
    assert [(s.id, s.name, list(s.tags), list(s.examples)) for s in card.skills] == [
        ("haiku", "write haiku", ["poetry", "haiku"], ["a haiku about rain"]),
        ("rate", "rate", ["rate"], []),  # tags default to the id: cards require them
    ]
    assert list(card.skills[1].output_modes) == ["application/json"]
    described = await actor.describe()
    assert [s["id"] for s in described["info"]["skills"]] == ["haiku", "rate"]
    # A message that names the skill's tag goes to it.
    task = await _send(actor, "a haiku about rain")
    assert task.artifacts[0].name == "haiku"
    assert "acting as a poet" in _text(task)


async def test_role_presets_give_skills_prompt_and_tools(server: ModelServerHandle) -> None:
    expected_tools = {
        "researcher": ["http_get", "calculator"],
        "coder": ["python", "calculator"],
        "writer": [],
        "reviewer": [],
    }
    for role, tools in expected_tools.items():
        actor = _actor(server, name=role, role=role)
        card = unpack(await actor.get_card())
        assert card.skills and all(s.tags and s.examples for s in card.skills)
        assert card.description
        await _send(actor, "hello")  # runs setup
        assert actor.agent.tools.names() == tools
        assert actor.agent.system_prompt.startswith("You are")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"role": "astronaut"}, "unknown LLM agent role 'astronaut'; known roles: coder"),
        ({"tools": ["calculator", "teleport"]}, "unknown tool 'teleport'"),
        ({"tools": ["agent:Not A Name"]}, "unknown tool"),
        ({"temprature": 0.2}, "temprature: Extra inputs are not permitted"),
        ({"skills": []}, "at least one skill"),
        ({"skills": [{"id": "a"}, {"id": "a"}]}, "skill id 'a' appears twice"),
        ({"skills": [{"id": "a", "output_schema": {"type": "nope"}}]}, "not a valid JSON schema"),
    ],
)
def test_bad_options_fail_when_the_agent_is_built(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        LLMAgent(**options)


def test_an_unconfigured_class_still_has_a_card() -> None:
    info = LLMAgent.agent_info(name="plain")
    assert [s.id for s in info.skills] == ["chat"]
