"""The agent actor as a plain class, called the way Ray calls it: packed protos in and out.

No Ray here: `AgentActor` is constructed directly and its A2A methods are awaited with
`pack(...)`ed requests and a `CallInfo`, exactly what crosses the actor boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from a2a.helpers import new_text_message
from a2a.server.context import ServerCallContext
from a2a.types import a2a_pb2
from a2a.utils.errors import (
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict, ParseDict

from actorchestra.actors.agent import Agent, Rejected, SkillContext, skill
from actorchestra.actors.agent_actor import AgentActor
from actorchestra.actors.batch import BATCH_KEY, SUBTASK_KEY
from actorchestra.actors.spec import AgentRuntimeOptions, AgentSpec
from actorchestra.actors.task_store import BoundedTaskStore
from actorchestra.protocol.channel import (
    STATUS_TYPE,
    ChannelClient,
    ChannelClosedError,
    Op,
    unpack_status,
)
from actorchestra.protocol.codec import pack, unpack
from actorchestra.protocol.context import CallInfo, replica_of_task

State = a2a_pb2.TaskState
TEXT_SPEC = AgentSpec(name="text", cls="actorchestra.actors.examples:TextAgent")
ALICE = CallInfo(user="alice", authenticated=True)
BOB = CallInfo(user="bob", authenticated=True)


class Workshop(Agent):
    """Skills that fail, decline, wait, or answer with odd values, on demand."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.release = asyncio.Event()
        self.setups = 0

    async def setup(self) -> None:
        self.setups += 1

    @skill(tags=["boom"])
    async def explode(self, ctx: SkillContext) -> str:
        """Raise."""
        raise RuntimeError("the disk is on fire")

    @skill(tags=["decline"])
    async def decline(self, ctx: SkillContext) -> Rejected:
        """Decline politely."""
        return Rejected("not on a Sunday")

    @skill(tags=["hold"])
    async def hold(self, ctx: SkillContext) -> str:
        """Wait until released."""
        await self.release.wait()
        return "released"

    @skill(tags=["data"])
    async def echo_data(self, ctx: SkillContext) -> list[Any]:
        """Answer with the data parts it was sent."""
        return ctx.data

    @skill(tags=["nothing"])
    async def nothing(self, ctx: SkillContext) -> None:
        """Finish without an artifact."""

    @skill(tags=["half"])
    async def half_stream(self, ctx: SkillContext) -> AsyncIterator[str]:
        """Stream one chunk, then fail."""
        yield "first"
        yield "second"
        raise RuntimeError("stream broke")

    @skill(tags=["odd"])
    async def odd_value(self, ctx: SkillContext) -> dict[str, Any]:
        """Answer with a value that has no JSON form."""
        return {"when": datetime.datetime(2020, 1, 1)}


WORKSHOP_SPEC = AgentSpec(name="workshop", cls=f"{__name__}:Workshop")


# Actors live as long as the test session, as they live as long as their process in Ray:
# a2a-sdk's handler keeps background tasks (an input-required task waits for its next
# turn), and dropping an actor mid-session would leave those to the garbage collector
# instead of the loop's orderly cancellation at the end.
_LIVE_ACTORS: list[AgentActor] = []


def _actor(spec: AgentSpec = TEXT_SPEC, replica: int = 3, **options: Any) -> AgentActor:
    actor = AgentActor(
        spec, replica, f"http://127.0.0.1:8000/a2a/{spec.name}", AgentRuntimeOptions(**options)
    )
    _LIVE_ACTORS.append(actor)
    return actor


def _request(
    text: str,
    *,
    metadata: dict[str, Any] | None = None,
    task: a2a_pb2.Task | None = None,
    data: dict[str, Any] | None = None,
    return_immediately: bool = False,
) -> a2a_pb2.SendMessageRequest:
    message = new_text_message(text, role=a2a_pb2.Role.ROLE_USER)
    if task is not None:
        message.task_id, message.context_id = task.id, task.context_id
    if data is not None:
        message.parts.append(
            a2a_pb2.Part(data=ParseDict({"v": data}, struct_pb2.Struct()).fields["v"])
        )
    request = a2a_pb2.SendMessageRequest(
        message=message,
        configuration=a2a_pb2.SendMessageConfiguration(return_immediately=return_immediately),
    )
    if metadata:
        request.metadata.update(metadata)
    return request


async def _send(
    actor: AgentActor, request: a2a_pb2.SendMessageRequest, call: CallInfo = ALICE
) -> a2a_pb2.Task:
    result = unpack(await actor.send_message(pack(request), call))
    assert isinstance(result, a2a_pb2.Task), f"expected a Task, got {type(result).__name__}"
    return result


async def _get(actor: AgentActor, task_id: str, call: CallInfo = ALICE) -> a2a_pb2.Task:
    return unpack(await actor.get_task(pack(a2a_pb2.GetTaskRequest(id=task_id)), call))


def _status_text(task: a2a_pb2.Task) -> str:
    return "".join(p.text for p in task.status.message.parts)


# -- send ---------------------------------------------------------------------------------


async def test_send_returns_a_completed_task_with_a_text_artifact() -> None:
    actor = _actor()
    task = await _send(actor, _request("uppercase: hello a2a"))
    assert task.status.state == State.TASK_STATE_COMPLETED
    (artifact,) = task.artifacts
    assert artifact.name == "uppercase"
    assert [p.text for p in artifact.parts] == ["HELLO A2A"]
    assert [m.role for m in task.history] == [a2a_pb2.Role.ROLE_USER]
    assert await _get(actor, task.id) == task


async def test_word_count_answers_with_a_data_artifact() -> None:
    task = await _send(_actor(), _request("count the words in: a b c"))
    assert task.status.state == State.TASK_STATE_COMPLETED
    part = task.artifacts[0].parts[0]
    assert part.HasField("data") and not part.HasField("text")
    assert MessageToDict(part.data) == {"words": 3, "characters": 5}


async def test_data_parts_reach_the_skill_and_come_back() -> None:
    payload = {"city": "Oslo", "days": [1, 2], "nested": {"ok": True}}
    task = await _send(_actor(WORKSHOP_SPEC), _request("data", data=payload))
    assert MessageToDict(task.artifacts[0].parts[0].data) == [payload]


async def test_a_skill_without_an_answer_completes_without_artifacts() -> None:
    task = await _send(_actor(WORKSHOP_SPEC), _request("nothing to say"))
    assert task.status.state == State.TASK_STATE_COMPLETED
    assert list(task.artifacts) == []


async def test_task_ids_carry_the_replica() -> None:
    tasks = [await _send(_actor(replica=3), _request("uppercase: x")) for _ in range(3)]
    assert all(t.id.startswith("r3-") for t in tasks)
    assert {replica_of_task(t.id) for t in tasks} == {3}
    assert len({t.id for t in tasks}) == 3
    assert replica_of_task((await _send(_actor(replica=0), _request("uppercase: x"))).id) == 0


async def test_setup_runs_once_before_the_first_request() -> None:
    actor = _actor(WORKSHOP_SPEC)
    assert actor.agent.setups == 0
    await asyncio.gather(*(_send(actor, _request("nothing")) for _ in range(5)))
    assert actor.agent.setups == 1


async def test_card_and_describe() -> None:
    actor = _actor()
    card = unpack(await actor.get_card())
    assert card.name == "text"
    assert {i.url for i in card.supported_interfaces} == {"http://127.0.0.1:8000/a2a/text"}
    described = await actor.describe()
    assert described["spec"]["name"] == "text"
    assert described["revision"] == actor.revision
    assert {s["id"] for s in described["info"]["skills"]} == {
        "word_count",
        "uppercase",
        "stream",
        "greet",
    }


def test_the_revision_follows_what_a_replica_runs_and_not_how_many_there_are() -> None:
    """A deploy replaces a replica whose revision is not the config's: a changed class,
    option, limit, card or runtime option (an API key too) is a new revision; another
    replica count is not."""
    from actorchestra.actors.llm.config import LLMConfig
    from actorchestra.actors.spec import config_revision

    url = "http://127.0.0.1:8000/a2a/text"
    base = config_revision(TEXT_SPEC, url, AgentRuntimeOptions())
    assert _actor().revision == base
    assert (
        config_revision(TEXT_SPEC.model_copy(update={"replicas": 5}), url, AgentRuntimeOptions())
        == base
    )
    changed = [
        config_revision(
            TEXT_SPEC.model_copy(update={"concurrency": 2}), url, AgentRuntimeOptions()
        ),
        config_revision(
            TEXT_SPEC.model_copy(update={"options": {"x": 1}}), url, AgentRuntimeOptions()
        ),
        config_revision(TEXT_SPEC, url + "/v2", AgentRuntimeOptions()),
        config_revision(TEXT_SPEC, url, AgentRuntimeOptions(llm=LLMConfig(api_key="sk-one"))),
        config_revision(TEXT_SPEC, url, AgentRuntimeOptions(llm=LLMConfig(api_key="sk-two"))),
    ]
    assert base not in changed and len(set(changed)) == len(changed)


# -- outcomes -----------------------------------------------------------------------------


async def test_a_failing_skill_fails_its_task_with_the_reason() -> None:
    actor = _actor(WORKSHOP_SPEC)
    task = await _send(actor, _request("boom"))
    assert task.status.state == State.TASK_STATE_FAILED
    assert _status_text(task) == "skill 'explode' failed: the disk is on fire"
    assert task.status.message.role == a2a_pb2.Role.ROLE_AGENT
    assert (await _get(actor, task.id)).status.state == State.TASK_STATE_FAILED


async def test_a_skill_can_reject() -> None:
    task = await _send(_actor(WORKSHOP_SPEC), _request("decline"))
    assert task.status.state == State.TASK_STATE_REJECTED
    assert _status_text(task) == "not on a Sunday"


async def test_unknown_requested_skill_is_rejected_with_the_skill_list() -> None:
    task = await _send(_actor(), _request("uppercase: hi", metadata={"skill": "nope"}))
    assert task.status.state == State.TASK_STATE_REJECTED
    assert _status_text(task) == (
        "unknown skill 'nope'; this agent has: greet, stream, uppercase, word_count"
    )
    assert list(task.artifacts) == []


async def test_requested_skill_overrides_the_text() -> None:
    task = await _send(_actor(), _request("count the words: a b", metadata={"skill": "uppercase"}))
    assert task.artifacts[0].parts[0].text == "A B"


async def test_skill_named_in_message_metadata_is_honoured() -> None:
    request = _request("uppercase: hi")
    request.message.metadata.update({"skill": "nope"})
    task = await _send(_actor(), request)
    assert task.status.state == State.TASK_STATE_REJECTED


async def test_a_result_without_json_form_fails_the_task_with_a_reason() -> None:
    task = await _send(_actor(WORKSHOP_SPEC), _request("odd"))
    assert task.status.state == State.TASK_STATE_FAILED
    assert "odd_value" in _status_text(task)


# -- multi-turn ---------------------------------------------------------------------------


async def test_greet_asks_for_input_then_completes_with_history() -> None:
    actor = _actor()
    first = await _send(actor, _request("greet me"))
    assert first.status.state == State.TASK_STATE_INPUT_REQUIRED
    assert _status_text(first) == "What is your name?"
    assert list(first.artifacts) == []

    second = await _send(actor, _request("Alice", task=first))
    assert second.id == first.id and second.context_id == first.context_id
    assert second.status.state == State.TASK_STATE_COMPLETED
    assert second.artifacts[0].parts[0].text == "Hello, Alice!"
    assert [(m.role, m.parts[0].text) for m in second.history] == [
        (a2a_pb2.Role.ROLE_USER, "greet me"),
        (a2a_pb2.Role.ROLE_AGENT, "What is your name?"),
        (a2a_pb2.Role.ROLE_USER, "Alice"),
    ]


async def test_the_answer_goes_to_the_skill_that_asked() -> None:
    actor = _actor()
    first = await _send(actor, _request("greet me"))
    second = await _send(actor, _request("Count Dracula", task=first, metadata={"delay": 0}))
    assert second.artifacts[0].name == "greet"
    assert second.artifacts[0].parts[0].text == "Hello, Count Dracula!"


async def test_a_finished_task_takes_no_more_messages() -> None:
    actor = _actor()
    done = await _send(actor, _request("uppercase: x"))
    with pytest.raises(UnsupportedOperationError, match="terminal state"):
        await _send(actor, _request("more", task=done))


# -- streaming ----------------------------------------------------------------------------


async def test_stream_events_in_order_with_append_and_last_chunk() -> None:
    actor = _actor()
    request = _request("stream 3", metadata={"delay": 0})
    events = [unpack(p) async for p in actor.send_message_stream(pack(request), ALICE)]

    assert isinstance(events[0], a2a_pb2.Task)
    assert events[0].status.state == State.TASK_STATE_SUBMITTED
    task_id = events[0].id
    assert all(getattr(e, "task_id", task_id) == task_id for e in events)

    statuses = [e for e in events if isinstance(e, a2a_pb2.TaskStatusUpdateEvent)]
    assert statuses[0].status.state == State.TASK_STATE_WORKING
    assert statuses[-1] is events[-1]
    assert events[-1].status.state == State.TASK_STATE_COMPLETED
    progress = [_status_text(s) for s in statuses if s.status.message.parts]  # type: ignore[arg-type]
    assert progress == ["counted 1 of 3", "counted 2 of 3", "counted 3 of 3"]

    chunks = [e for e in events if isinstance(e, a2a_pb2.TaskArtifactUpdateEvent)]
    assert "".join(c.artifact.parts[0].text for c in chunks) == "1\n2\n3\n"
    assert [c.append for c in chunks] == [False, True, True]
    assert [c.last_chunk for c in chunks] == [False, False, True]
    assert len({c.artifact.artifact_id for c in chunks}) == 1
    assert events.index(chunks[-1]) < events.index(statuses[-1])

    stored = await _get(actor, task_id)
    assert stored.status.state == State.TASK_STATE_COMPLETED
    assert "".join(p.text for p in stored.artifacts[0].parts) == "1\n2\n3\n"


async def test_a_stream_that_breaks_fails_its_task() -> None:
    actor = _actor(WORKSHOP_SPEC)
    events = [unpack(p) async for p in actor.send_message_stream(pack(_request("half")), ALICE)]
    chunks = [e for e in events if isinstance(e, a2a_pb2.TaskArtifactUpdateEvent)]
    assert [c.artifact.parts[0].text for c in chunks] == ["first"]
    assert not chunks[0].last_chunk
    assert events[-1].status.state == State.TASK_STATE_FAILED
    assert "stream broke" in _status_text(events[-1])  # type: ignore[arg-type]


async def _state_becomes(actor: AgentActor, task_id: str, state: int) -> None:
    async with asyncio.timeout(5):
        while True:  # the cancel runs as a task of its own: nothing to await but time
            if (await _get(actor, task_id)).status.state == state:
                return
            await asyncio.sleep(0.01)


async def test_the_planners_subtasks_end_with_their_stream_a_message_does_not() -> None:
    """The planner's subtasks, a batch or one, live as long as the planner reads them
    (one that stopped, or whose channel dropped, runs them again elsewhere); an A2A
    client's streamed message goes on without its stream, as A2A has it."""
    actor = _actor(WORKSHOP_SPEC)
    items = json.dumps([{"id": "a", "input": "x"}, {"id": "b", "input": "y"}])
    batch = _request("batch of 2", metadata={BATCH_KEY: items, "skill": "hold"})
    one = _request("x", metadata={SUBTASK_KEY: "s1", "skill": "hold"})
    plain = _request("hold")
    ids = {}
    for name, request in (("batch", batch), ("one", one), ("plain", plain)):
        stream = actor.send_message_stream(pack(request), ALICE)
        first = unpack(await anext(stream))
        assert isinstance(first, a2a_pb2.Task)
        ids[name] = first.id
        await _state_becomes(actor, first.id, State.TASK_STATE_WORKING)
        if name == "one":  # as the channel does when the planner's connection drops
            reading = asyncio.create_task(anext(stream))
            await asyncio.sleep(0)  # it waits for the next event
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await reading
        await stream.aclose()  # the caller is gone
    await _state_becomes(actor, ids["batch"], State.TASK_STATE_CANCELED)
    await _state_becomes(actor, ids["one"], State.TASK_STATE_CANCELED)
    assert (await _get(actor, ids["plain"])).status.state == State.TASK_STATE_WORKING
    actor.agent.release.set()  # type: ignore[attr-defined]
    await _state_becomes(actor, ids["plain"], State.TASK_STATE_COMPLETED)
    for name in ("batch", "one"):
        assert (await _get(actor, ids[name])).status.state == State.TASK_STATE_CANCELED


async def test_ping_counts_calls_in_flight_and_tasks() -> None:
    actor = _actor()
    status = await actor.ping()
    assert (status.agent, status.replica, status.in_flight, status.tasks) == ("text", 3, 0, 0)
    assert status.pid == os.getpid()

    stream = actor.send_message_stream(pack(_request("stream 2", metadata={"delay": 0})), ALICE)
    first = unpack(await anext(stream))
    assert isinstance(first, a2a_pb2.Task)
    assert (await actor.ping()).in_flight == 1
    rest = [p async for p in stream]
    assert rest
    after = await actor.ping()
    assert after.in_flight == 0
    assert after.tasks == 1

    await _send(actor, _request("uppercase: a"))
    await _send(actor, _request("uppercase: b"), BOB)
    assert (await actor.ping()).tasks == 3  # every owner counts


# -- tasks: get, list, cancel, owners ------------------------------------------------------


async def test_unknown_task_is_task_not_found() -> None:
    actor = _actor()
    with pytest.raises(TaskNotFoundError):
        await _get(actor, "r3-00000000-0000-0000-0000-000000000000")
    with pytest.raises(TaskNotFoundError):
        await actor.cancel_task(pack(a2a_pb2.CancelTaskRequest(id="r3-nope")), ALICE)


async def test_tasks_belong_to_their_user() -> None:
    actor = _actor()
    mine = await _send(actor, _request("uppercase: secret"), ALICE)
    with pytest.raises(TaskNotFoundError):
        await _get(actor, mine.id, BOB)
    with pytest.raises(TaskNotFoundError):
        await _send(actor, _request("hijack", task=mine), BOB)
    listed = unpack(await actor.list_tasks(pack(a2a_pb2.ListTasksRequest()), BOB))
    assert list(listed.tasks) == []
    assert (await _get(actor, mine.id, ALICE)).id == mine.id


async def test_list_tasks_pages_through_every_task_once() -> None:
    actor = _actor()
    sent = {(await _send(actor, _request(f"uppercase: {i}"))).id for i in range(5)}
    await _send(actor, _request("uppercase: other user"), BOB)

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        request = a2a_pb2.ListTasksRequest(page_size=2, page_token=token)
        page = unpack(await actor.list_tasks(pack(request), ALICE))
        assert isinstance(page, a2a_pb2.ListTasksResponse)
        assert len(page.tasks) <= 2
        assert page.total_size == 5
        seen += [t.id for t in page.tasks]
        pages += 1
        token = page.next_page_token
        if not token:
            break
        assert pages < 5, "pagination does not end"
    assert pages == 3
    assert len(seen) == len(set(seen)) == 5
    assert set(seen) == sent


async def test_cancel_a_running_task() -> None:
    actor = _actor(WORKSHOP_SPEC)
    task = await _send(actor, _request("hold", return_immediately=True))
    assert task.status.state in (State.TASK_STATE_SUBMITTED, State.TASK_STATE_WORKING)
    canceled = unpack(await actor.cancel_task(pack(a2a_pb2.CancelTaskRequest(id=task.id)), ALICE))
    assert canceled.status.state == State.TASK_STATE_CANCELED
    assert (await _get(actor, task.id)).status.state == State.TASK_STATE_CANCELED
    with pytest.raises(TaskNotCancelableError):
        await actor.cancel_task(pack(a2a_pb2.CancelTaskRequest(id=task.id)), ALICE)


async def test_the_channel_carries_results_errors_and_streams() -> None:
    actor = _actor()
    host, port, token = await actor.open_channel()
    assert await actor.open_channel() == (host, port, token)  # opened once
    client = await ChannelClient.connect(host, port, token)
    try:
        ok = unpack(await client.call(Op.SEND, pack(_request("uppercase: ok")), ALICE))
        assert ok.artifacts[0].parts[0].text == "OK"
        stray = a2a_pb2.GetTaskRequest(id="r3-00000000-0000-0000-0000-000000000000")
        with pytest.raises(TaskNotFoundError):
            await client.call(Op.GET, pack(stray), ALICE)
        events = [
            unpack(p) async for p in client.stream(Op.STREAM, pack(_request("stream 3")), ALICE)
        ]
        chunks = [e for e in events if isinstance(e, a2a_pb2.TaskArtifactUpdateEvent)]
        assert "".join(c.artifact.parts[0].text for c in chunks) == "1\n2\n3\n"
        # The owner sees the task over the channel too.
        got = unpack(await client.call(Op.GET, pack(a2a_pb2.GetTaskRequest(id=ok.id)), ALICE))
        assert got.status.state == a2a_pb2.TaskState.TASK_STATE_COMPLETED
    finally:
        await client.close()


async def test_the_channel_answers_a_ping_with_the_replica_status() -> None:
    """The registry's health probe: a PING, no request body, the status as JSON."""
    actor = _actor(WORKSHOP_SPEC)
    host, port, token = await actor.open_channel()
    client = await ChannelClient.connect(host, port, token)
    try:
        packed = await client.call(Op.PING, None, CallInfo())
        assert packed is not None and packed[0] == STATUS_TYPE
        assert json.loads(packed[1])["agent"] == "workshop"
        with pytest.raises(ValueError, match="not an A2A message type"):
            unpack(packed)  # a status is not mistaken for a proto, nor the other way
        with pytest.raises(ValueError, match="not a replica status"):
            unpack_status(pack(a2a_pb2.GetTaskRequest(id="t")))
        status = unpack_status(packed)
        assert status == await actor.ping()
        assert (status.replica, status.in_flight, status.tasks) == (3, 0, 0)
        assert status.pid == os.getpid()

        held = await client.call(Op.SEND, pack(_request("hold", return_immediately=True)), ALICE)
        during = unpack_status(await client.call(Op.PING, None, CallInfo()))
        assert (during.in_flight, during.tasks) == (0, 1)  # answered; the skill runs on
        actor.agent.release.set()
        assert unpack(held).status.state in (State.TASK_STATE_SUBMITTED, State.TASK_STATE_WORKING)
    finally:
        await client.close()


async def test_the_channel_refuses_a_wrong_token() -> None:
    actor = _actor()
    host, port, _ = await actor.open_channel()
    with pytest.raises((ChannelClosedError, asyncio.IncompleteReadError, ConnectionError)):
        await ChannelClient.connect(host, port, "not-the-token")


async def test_the_actor_keeps_a_bounded_number_of_finished_tasks() -> None:
    actor = _actor(max_tasks=10)
    ids = [(await _send(actor, _request(f"uppercase: {i}"))).id for i in range(13)]
    assert (await actor.ping()).tasks == 10
    with pytest.raises(TaskNotFoundError):
        await _get(actor, ids[0])
    assert (await _get(actor, ids[-1])).id == ids[-1]


# -- BoundedTaskStore ---------------------------------------------------------------------


def _ctx(user: str) -> ServerCallContext:
    return CallInfo(user=user).to_server_context()


def _stored(task_id: str, state: int) -> a2a_pb2.Task:
    return a2a_pb2.Task(id=task_id, context_id="c", status=a2a_pb2.TaskStatus(state=state))


async def test_store_evicts_the_oldest_finished_beyond_the_bound() -> None:
    store = BoundedTaskStore(max_finished=2)
    u = _ctx("u")
    for name in ("run1", "run2"):
        await store.save(_stored(name, State.TASK_STATE_WORKING), u)
    for name, state in [
        ("done1", State.TASK_STATE_COMPLETED),
        ("done2", State.TASK_STATE_FAILED),
        ("done3", State.TASK_STATE_CANCELED),
    ]:
        await store.save(_stored(name, state), u)
    assert store.count() == 4
    assert await store.get("done1", u) is None
    for name in ("run1", "run2", "done2", "done3"):
        assert await store.get(name, u) is not None, name


async def test_store_never_evicts_running_or_waiting_tasks() -> None:
    store = BoundedTaskStore(max_finished=1)
    u = _ctx("u")
    live = [
        State.TASK_STATE_SUBMITTED,
        State.TASK_STATE_WORKING,
        State.TASK_STATE_INPUT_REQUIRED,
        State.TASK_STATE_AUTH_REQUIRED,
    ]
    for i, state in enumerate(live * 3):
        await store.save(_stored(f"live{i}", state), u)
    await store.save(_stored("done", State.TASK_STATE_REJECTED), u)
    await store.save(_stored("done-later", State.TASK_STATE_COMPLETED), u)
    assert store.count() == 12 + 1
    assert await store.get("done", u) is None
    assert all([await store.get(f"live{i}", u) is not None for i in range(12)])


async def test_store_counts_a_task_that_finishes_once() -> None:
    store = BoundedTaskStore(max_finished=2)
    u = _ctx("u")
    for state in (State.TASK_STATE_SUBMITTED, State.TASK_STATE_WORKING, State.TASK_STATE_COMPLETED):
        await store.save(_stored("t", state), u)
    await store.save(_stored("t", State.TASK_STATE_COMPLETED), u)
    await store.save(_stored("other", State.TASK_STATE_COMPLETED), u)
    assert store.count() == 2
    assert await store.get("t", u) is not None


async def test_store_evicts_across_owners_from_the_right_owner() -> None:
    store = BoundedTaskStore(max_finished=2)
    a, b = _ctx("a"), _ctx("b")
    await store.save(_stored("same-id", State.TASK_STATE_COMPLETED), a)
    await store.save(_stored("same-id", State.TASK_STATE_COMPLETED), b)
    await store.save(_stored("b2", State.TASK_STATE_COMPLETED), b)
    assert await store.get("same-id", a) is None
    assert await store.get("same-id", b) is not None
    assert store.count() == 2


class Recorder(Agent):
    """Answers with the conversation it was shown."""

    @skill
    async def recall(self, ctx: SkillContext) -> str:
        """Say which turns came before."""
        return " | ".join(f"{t.role}:{t.text}" for t in ctx.conversation) or "(none)"


async def test_a_skill_sees_the_earlier_turns_of_its_conversation() -> None:
    actor = AgentActor(
        AgentSpec(name="recorder", cls="tests.unit.test_agent_actor:Recorder"), 0, "http://x"
    )

    async def say(text: str, call: CallInfo = ALICE) -> str:
        request = _request(text)
        request.message.context_id = "ctx-conversation"
        return (await _send(actor, request, call)).artifacts[0].parts[0].text

    assert await say("hello") == "(none)"
    assert await say("again") == "user:hello | agent:(none)"
    # Another user's turns in the same context id are not theirs to see.
    assert await say("me too", CallInfo(user="mallory")) == "(none)"


async def test_store_finds_a_conversation_and_forgets_evicted_turns() -> None:
    store = BoundedTaskStore(max_finished=2)
    alice, bob = _ctx("alice"), _ctx("bob")
    for name in ("t1", "t2", "t3"):
        await store.save(_stored(name, State.TASK_STATE_COMPLETED), alice)
    await store.save(_stored("b1", State.TASK_STATE_WORKING), bob)
    # t1 was evicted (bound 2); the conversation index forgot it too; bob's is his own.
    assert [t.id for t in await store.in_context("c", alice, limit=10)] == ["t2", "t3"]
    assert [t.id for t in await store.in_context("c", alice, limit=1)] == ["t3"]
    assert [t.id for t in await store.in_context("c", bob, limit=10)] == ["b1"]
    assert await store.in_context("other", alice, limit=10) == []


class Sleeper(Agent):
    """Sleeps for the seconds in its input; records how many run at once."""

    running = 0
    peak = 0

    @skill
    async def nap(self, ctx: SkillContext) -> str:
        """Sleep a while."""
        seconds = float(ctx.text)
        if seconds < 0:
            raise ValueError("negative nap")
        type(self).running += 1
        type(self).peak = max(type(self).peak, type(self).running)
        try:
            await asyncio.sleep(seconds)
        finally:
            type(self).running -= 1
        return f"napped {seconds}"


async def test_a_batch_message_runs_items_within_the_concurrency_limit() -> None:
    Sleeper.running = Sleeper.peak = 0
    actor = AgentActor(
        AgentSpec(name="sleeper", cls=f"{__name__}:Sleeper", concurrency=2), 0, "http://x"
    )
    items = [{"id": f"s{i}", "input": "0.05"} for i in range(5)]
    items += [{"id": "bad", "input": "-1"}, {"id": "slow", "input": "1", "timeout_s": 0.1}]
    task = await _send(actor, _request("batch", metadata={"actorchestra.batch": items}))
    assert task.status.state == a2a_pb2.TaskState.TASK_STATE_COMPLETED
    by_item = _by_item(task)
    assert set(by_item) == {"s0", "s1", "s2", "s3", "s4", "bad", "slow"}
    assert by_item["s3"][1].text == "napped 0.05"
    assert by_item["s3"][0]["ok"] is True
    assert "negative nap" in by_item["bad"][0]["error"]
    assert by_item["slow"][0]["ok"] is False and "timed out" in by_item["slow"][0]["error"]
    assert Sleeper.peak == 2  # the replica's concurrency limit held across the batch
    # Items finishing together share an artifact: fewer artifacts than items.
    assert len(task.artifacts) < len(by_item)


def _by_item(task: a2a_pb2.Task) -> dict[str, tuple[dict[str, Any], a2a_pb2.Part]]:
    """A batch's answers by item: one artifact per flush, and entry k of its `items`
    metadata answers part k."""
    return {
        entry["item"]: (entry, part)
        for a in task.artifacts
        for entry, part in zip(json.loads(a.metadata["items"]), a.parts, strict=True)
    }


def _flushes(task: a2a_pb2.Task) -> list[list[dict[str, Any]]]:
    """The `items` entries of each artifact of a batch's task, in order."""
    return [json.loads(a.metadata["items"]) for a in task.artifacts]


async def test_results_nothing_waits_on_are_held_to_travel_together() -> None:
    """One at a time, each result would go alone; `hold_s` lets them wait for company.
    A failure goes at once, and so does the batch's last result."""
    one_at_a_time = AgentSpec(name="sleeper", cls=f"{__name__}:Sleeper", concurrency=1)
    actor = AgentActor(one_at_a_time, 0, "http://x")
    plain = [{"id": f"p{i}", "input": "0.02"} for i in range(4)]
    task = await _send(actor, _request("batch", metadata={"actorchestra.batch": plain}))
    assert [len(f) for f in _flushes(task)] == [1, 1, 1, 1]

    held = [{"id": f"h{i}", "input": "0.02", "hold_s": 5} for i in range(4)]
    started = time.time()
    task = await _send(actor, _request("batch", metadata={"actorchestra.batch": held}))
    [entries] = _flushes(task)  # all four in one artifact, sent with the last
    ats = [e["at"] for e in entries]
    assert [e["item"] for e in entries] == ["h0", "h1", "h2", "h3"]
    assert started < ats[0] and ats == sorted(ats) and ats[-1] - ats[0] >= 0.05

    mixed = [
        {"id": "a", "input": "0.02", "hold_s": 5},
        {"id": "bad", "input": "-1", "hold_s": 5},
        {"id": "b", "input": "0.02", "hold_s": 5},
        {"id": "c", "input": "0.02", "hold_s": 5},
    ]
    task = await _send(actor, _request("batch", metadata={"actorchestra.batch": mixed}))
    assert [[e["item"] for e in f] for f in _flushes(task)] == [["a", "bad"], ["b", "c"]]

    timed = [{"id": f"t{i}", "input": "0.03", "hold_s": 0.05} for i in range(6)]
    task = await _send(actor, _request("batch", metadata={"actorchestra.batch": timed}))
    sizes = [len(f) for f in _flushes(task)]
    assert sum(sizes) == 6 and 2 <= len(sizes) < 6  # none waited much past 50 ms


async def test_a_batch_without_a_limit_times_out_only_its_slow_items() -> None:
    # No concurrency limit: every item starts at once, items with the same timeout
    # share one deadline; what finished in time keeps its answer.
    Sleeper.running = Sleeper.peak = 0
    actor = AgentActor(AgentSpec(name="sleeper", cls=f"{__name__}:Sleeper"), 0, "http://x")
    items = [{"id": f"s{i}", "input": "0.01", "timeout_s": 0.2} for i in range(3)]
    items += [
        {"id": "slow", "input": "5", "timeout_s": 0.2},
        {"id": "slower", "input": "5", "timeout_s": 0.3},
        {"id": "untimed", "input": "0.05"},
    ]
    started, started_at = time.monotonic(), time.time()
    task = await _send(actor, _request("batch", metadata={"actorchestra.batch": items}))
    assert time.monotonic() - started < 2
    assert task.status.state == a2a_pb2.TaskState.TASK_STATE_COMPLETED
    by_item = _by_item(task)
    assert [by_item[f"s{i}"][1].text for i in range(3)] == ["napped 0.01"] * 3
    assert by_item["untimed"][1].text == "napped 0.05"
    slow = dict(by_item["slow"][0])
    assert started_at < slow.pop("at") < time.time()  # when the agent finished it
    assert slow == {"item": "slow", "ok": False, "error": "timed out after 0.2s"}
    assert by_item["slower"][0]["error"] == "timed out after 0.3s"
    assert Sleeper.peak == 6 and Sleeper.running == 0  # all at once; the slow ones stopped


class Echo(Agent):
    """Answers with its input; fails on inputs that start with "fail"."""

    @skill
    async def echo(self, ctx: SkillContext) -> str:
        """Echo the input."""
        if ctx.text.startswith("fail"):
            raise ValueError("asked to fail")
        await asyncio.sleep(0.01)
        return None if ctx.text == "nothing" else ctx.text


async def test_batch_items_sent_ahead_start_with_their_inputs_outputs() -> None:
    """`deps` (pipelined dispatch): an item waits for the batch items it names and gets
    their outputs in its input; a failed input answers its dependants "not run"."""
    actor = AgentActor(AgentSpec(name="echo", cls=f"{__name__}:Echo"), 0, "http://x")
    items = [
        {"id": "a", "input": "alpha"},
        {"id": "f", "input": "fail now"},
        {"id": "d1", "input": "d1", "deps": [["a", None], ["z", "given"]]},
        {"id": "d2", "input": "d2", "deps": [["f", None]]},
        {"id": "d3", "input": "d3", "deps": [["d2", None], ["a", None]]},
        {"id": "e", "input": "e", "deps": [["d1", None]], "timeout_s": 5},
        {"id": "bad", "input": "b", "deps": [["nope", None]]},
        {"id": "self", "input": "s", "deps": [["self", None]]},
        {"id": "none", "input": "nothing"},
        {"id": "after-none", "input": "n", "deps": [["none", None]]},
    ]
    task = await _send(actor, _request("batch", metadata={"actorchestra.batch": items}))
    assert task.status.state == a2a_pb2.TaskState.TASK_STATE_COMPLETED
    by_item = _by_item(task)
    assert set(by_item) == {"a", "f", "d1", "d2", "d3", "e", "bad", "self", "none", "after-none"}
    # A skill that returns None answers an empty text, as a lone message's task does.
    assert by_item["none"][0]["ok"] is True and by_item["none"][1].text == ""
    assert by_item["after-none"][1].text == "n\n\nResults of earlier steps:\n[none] "
    d1 = "d1\n\nResults of earlier steps:\n[a] alpha\n[z] given"
    assert by_item["d1"][1].text == d1
    assert by_item["e"][1].text == f"e\n\nResults of earlier steps:\n[d1] {d1}"
    assert by_item["a"][0]["at"] <= by_item["d1"][0]["at"] <= by_item["e"][0]["at"]
    for unrun in ("d2", "d3"):
        entry = by_item[unrun][0]
        assert entry["ok"] is False and entry["unrun"] is True
        assert "'f' failed: ValueError: asked to fail" in entry["error"]
    assert by_item["bad"][0]["ok"] is False and "'nope' is not one" in by_item["bad"][0]["error"]
    # An item waiting on itself would never start: refused like an unknown input.
    assert by_item["self"][0]["ok"] is False and "'self' is not one" in by_item["self"][0]["error"]


def test_actor_names_parse_back_and_nothing_else_does() -> None:
    from actorchestra.actors.spec import actor_name, parse_actor_name

    assert parse_actor_name(actor_name("text-2", 11)) == ("text-2", 11)
    for other in ("registry", "planner", "agent:text", "agent:text:x", "model:text:0"):
        assert parse_actor_name(other) is None
