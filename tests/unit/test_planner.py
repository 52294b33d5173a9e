"""The planner end to end in one process: real agent actor classes, real DuckDB history."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from actorchestra.actors.agent import Agent, SkillContext, skill
from actorchestra.actors.history.records import NewEvent, TaskRecord
from actorchestra.actors.llm.config import LLMConfig
from actorchestra.actors.planner.run import HOLD_FAN_IN, MAX_BATCH, MIN_SPLIT, AgentInfo
from actorchestra.actors.planner.service import Planner, TaskNotFound
from actorchestra.actors.spec import AgentSpec
from actorchestra.protocol.errors import InvalidInputError
from actorchestra.serve_apps.model_server.runner import ModelServerHandle
from tests.llm_fixtures import model_server  # noqa: F401
from tests.unit.planner_helpers import make_planner


class Lab(Agent):
    """Test skills: flaky work, slow work, failing work, and a joiner."""

    calls: dict[str, int] = {}

    @skill(tags=["flaky"])
    async def flaky(self, ctx: SkillContext) -> str:
        """Fails the first time it sees an input, then works."""
        n = Lab.calls[ctx.text] = Lab.calls.get(ctx.text, 0) + 1
        if n == 1:
            raise RuntimeError("first attempt fails")
        return f"ok after {n}"

    @skill(tags=["slow"])
    async def slow(self, ctx: SkillContext) -> str:
        """Sleeps for the seconds given first in the input."""
        await asyncio.sleep(float(ctx.text.split()[0]))
        return "slept"

    @skill(tags=["broken"])
    async def broken(self, ctx: SkillContext) -> str:
        """Always fails."""
        raise RuntimeError("broken on purpose")

    @skill(tags=["join"])
    async def join(self, ctx: SkillContext) -> str:
        """Answers with its whole input (so a test sees what reached it)."""
        return ctx.text


SPECS = {
    "text": AgentSpec(name="text", cls="actorchestra.actors.examples:TextAgent", replicas=2),
    "lab": AgentSpec(name="lab", cls=f"{__name__}:Lab"),
}


async def run(
    planner: Planner, body: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    task_id = await planner.submit(body)
    events = [e async for e in planner.stream_events(task_id)]
    return await planner.get(task_id), events


async def test_sequential_steps_get_the_previous_output(tmp_path: Path) -> None:
    planner = make_planner(tmp_path, SPECS)
    task, events = await run(
        planner,
        {
            "input": "go",
            "workflow": {
                "kind": "sequential",
                "steps": [
                    {"skill": "uppercase", "input": "uppercase: relay baton"},
                    {"skill": "join", "input": "received:"},
                ],
            },
        },
    )
    assert task["state"] == "completed"
    second = {s["id"]: s for s in task["subtasks"]}["s2"]
    assert second["depends_on"] == ["s1"]
    assert "RELAY BATON" in second["output"]  # the dependency's output reached it
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "planned" and kinds[-1] == "final"
    assert kinds.count("subtask_started") == 2 and kinds.count("subtask_completed") == 2
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


async def test_parallel_fan_out_completes_every_subtask(tmp_path: Path) -> None:
    planner = make_planner(tmp_path, SPECS)
    steps = [{"id": f"p{i}", "skill": "uppercase", "input": f"uppercase: n{i}"} for i in range(120)]
    task, _ = await run(
        planner,
        {"input": "many", "synthesize": False, "workflow": {"kind": "parallel", "steps": steps}},
    )
    assert task["state"] == "completed"
    assert task["result"] == {f"p{i}": f"N{i}" for i in range(120)}
    assert {s["agent"] for s in task["subtasks"]} == {"text"}


async def test_graph_dependencies_and_an_optional_failure(tmp_path: Path) -> None:
    planner = make_planner(tmp_path, SPECS)
    task, _ = await run(
        planner,
        {
            "input": "g",
            "max_attempts": 1,
            "workflow": {
                "kind": "graph",
                "steps": [
                    {"id": "a", "skill": "uppercase", "input": "uppercase: alpha"},
                    {"id": "b", "skill": "broken", "optional": True},
                    {"id": "c", "skill": "join", "input": "c got:", "depends_on": ["a", "b"]},
                ],
            },
        },
    )
    assert task["state"] == "completed"
    subs = {s["id"]: s for s in task["subtasks"]}
    assert subs["b"]["state"] == "failed" and "broken on purpose" in subs["b"]["error"]
    assert "ALPHA" in subs["c"]["output"]


async def test_a_failed_subtask_is_retried_then_succeeds(tmp_path: Path) -> None:
    Lab.calls.clear()
    planner = make_planner(tmp_path, SPECS)
    task, events = await run(
        planner,
        {
            "input": "r",
            "workflow": {"kind": "parallel", "steps": [{"skill": "flaky", "input": "once"}]},
        },
    )
    assert task["state"] == "completed"
    assert task["subtasks"][0]["attempts"] == 2 and task["result"] == "ok after 2"
    assert [e["data"]["attempt"] for e in events if e["kind"] == "subtask_started"] == [1, 2]


async def test_a_required_failure_fails_the_task_with_the_reason(tmp_path: Path) -> None:
    planner = make_planner(tmp_path, SPECS)
    task, _ = await run(
        planner,
        {
            "input": "f",
            "max_attempts": 2,
            "workflow": {"kind": "sequential", "steps": [{"skill": "broken"}, {"skill": "join"}]},
        },
    )
    assert task["state"] == "failed"
    assert "subtask 's1' failed" in task["error"] and "broken on purpose" in task["error"]
    subs = {s["id"]: s for s in task["subtasks"]}
    assert subs["s1"]["attempts"] == 2 and subs["s2"]["state"] == "skipped"


@pytest.mark.parametrize(
    ("workflow", "problem"),
    [
        (
            {
                "kind": "graph",
                "steps": [
                    {"id": "a", "skill": "join", "depends_on": ["b"]},
                    {"id": "b", "skill": "join", "depends_on": ["a"]},
                ],
            },
            "cycle: a -> b -> a",
        ),
        ({"kind": "parallel", "steps": [{"skill": "teleport"}]}, "unknown skill 'teleport'"),
        ({"kind": "parallel", "steps": [{"agent": "ghost"}]}, "unknown agent 'ghost'"),
        (
            {"kind": "graph", "steps": [{"id": "a", "skill": "join", "depends_on": ["zz"]}]},
            "unknown subtask 'zz'",
        ),
    ],
)
async def test_invalid_workflows_are_refused_naming_the_problem(
    tmp_path: Path, workflow: dict[str, Any], problem: str
) -> None:
    planner = make_planner(tmp_path, SPECS)
    with pytest.raises(InvalidInputError, match=problem):
        await planner.submit({"input": "x", "workflow": workflow})


async def test_cancel_in_the_middle_stops_running_subtasks(tmp_path: Path) -> None:
    planner = make_planner(tmp_path, SPECS)
    task_id = await planner.submit(
        {
            "input": "c",
            "workflow": {
                "kind": "parallel",
                "steps": [{"skill": "slow", "input": "30"}, {"skill": "slow", "input": "30"}],
            },
        }
    )
    for _ in range(100):
        if (await planner.get(task_id))["state"] == "running":
            break
        await asyncio.sleep(0.02)
    canceled = await planner.cancel(task_id)
    assert canceled["state"] == "canceled"
    assert {s["state"] for s in canceled["subtasks"]} == {"canceled"}
    events = [e async for e in planner.stream_events(task_id)]
    assert events[-1]["kind"] == "final" and events[-1]["data"]["state"] == "canceled"
    with pytest.raises(InvalidInputError, match="already canceled"):
        await planner.cancel(task_id)


async def test_a_task_canceled_before_its_first_step_is_recorded(tmp_path: Path) -> None:
    planner = make_planner(tmp_path, SPECS)
    body = {
        "input": "c",
        "workflow": {"kind": "parallel", "steps": [{"skill": "slow", "input": "30"}]},
    }
    task_id = await planner.submit(body)
    canceled = await planner.cancel(task_id)  # before the task's driver has run at all
    assert canceled["state"] == "canceled"
    listed = await planner.list(state="canceled")  # read from the history store
    assert [t["task_id"] for t in listed["tasks"]] == [task_id]
    detail = await planner.store.get_task_detail(task_id)
    assert detail is not None and detail.task.plan["subtasks"][0]["skill"] == "slow"


async def test_cancel_and_delete_just_after_the_end(tmp_path: Path) -> None:
    """The final event is out, the records are still being written: a cancel is refused
    (the task stays completed) and a delete waits for the records, then removes them."""
    planner = make_planner(tmp_path, SPECS)
    body = {
        "input": "d",
        "workflow": {"kind": "parallel", "steps": [{"skill": "uppercase", "input": "x"}] * 3},
    }
    task, events = await run(planner, body)
    task_id = task["task_id"]
    assert events[-1]["kind"] == "final" and task["state"] == "completed"
    with pytest.raises(InvalidInputError, match="already completed"):
        await planner.cancel(task_id)
    assert (await planner.get(task_id))["state"] == "completed"
    task_id = await planner.submit(body)
    [e async for e in planner.stream_events(task_id)]
    await planner.delete(task_id)  # at once after the final event
    with pytest.raises(TaskNotFound):
        await planner.get(task_id)
    assert await planner.store.subtasks(task_id) == []
    assert task_id not in [t["task_id"] for t in (await planner.list())["tasks"]]


async def test_events_resume_after_a_seq_and_tasks_page(tmp_path: Path) -> None:
    planner = make_planner(tmp_path, SPECS)
    ids = []
    for i in range(3):
        task, _ = await run(
            planner,
            {
                "input": f"t{i}",
                "user_id": "ann",
                "workflow": {
                    "kind": "parallel",
                    "steps": [{"skill": "uppercase", "input": "uppercase: x"}],
                },
            },
        )
        ids.append(task["task_id"])
    tail = [e async for e in planner.stream_events(ids[0], after_seq=2)]
    assert [e["seq"] for e in tail] == [3, 4]
    first = await planner.list(user_id="ann", limit=2)
    second = await planner.list(user_id="ann", limit=2, cursor=first["next_cursor"])
    listed = [t["task_id"] for t in first["tasks"] + second["tasks"]]
    assert sorted(listed) == sorted(ids) and second["next_cursor"] is None
    await planner.delete(ids[0])
    with pytest.raises(TaskNotFound):
        await planner.get(ids[0])


async def test_tasks_a_stopped_planner_left_unfinished_end_when_the_next_one_starts(
    tmp_path: Path,
) -> None:
    """What a planner killed in the middle of its tasks leaves in the history: rows still
    running, events up to where it stopped (at most its final event, its row not yet
    updated). The next planner on that history ends each as a client would want it:
    failed with the reason and a final event, or as its recorded final event says."""
    old = make_planner(tmp_path, SPECS)
    body = {"input": "x", "workflow": {"kind": "parallel", "steps": [{"skill": "uppercase"}]}}
    done, _ = await run(old, body)
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
    await old.store.upsert_tasks(
        [
            TaskRecord(task_id="cut-off", user_id="ann", state="running", input="a"),
            TaskRecord(task_id="all-but-row", user_id="ann", state="running", input="b"),
            TaskRecord(task_id="never-planned", user_id="ann", state="pending", input="c"),
        ]
    )
    final = {"state": "completed", "result": "B", "error": None, "usage": usage}
    await old.store.append_events(
        [
            NewEvent(task_id="cut-off", kind="planned", data={"subtasks": []}),
            NewEvent(task_id="cut-off", kind="subtask_started", data={"subtask": "s1"}),
            NewEvent(task_id="all-but-row", kind="final", data=final),
        ]
    )
    await old.store.close()

    new = make_planner(tmp_path, SPECS)
    cut_off = await new.get("cut-off")
    assert cut_off["state"] == "failed"
    assert cut_off["error"].startswith("interrupted: the planner running this task stopped")
    assert cut_off["finished_at"] is not None
    events = [e async for e in new.stream_events("cut-off")]
    assert [(e["seq"], e["kind"]) for e in events] == [
        (1, "planned"),
        (2, "subtask_started"),
        (3, "final"),
    ]
    assert events[-1]["data"]["state"] == "failed"
    assert events[-1]["data"]["error"] == cut_off["error"]
    # A reader that had events the old planner never recorded (seq 4 and 5) resumes
    # past the recorded end: it gets the final event, not an empty stream.
    assert [e async for e in new.stream_events("cut-off", after_seq=5)] == [events[-1]]
    assert [e async for e in new.stream_events("cut-off", after_seq=3)] == []
    ended = await new.get("all-but-row")
    assert (ended["state"], ended["result"]) == ("completed", "B")
    assert [e["kind"] async for e in new.stream_events("all-but-row")] == ["final"]
    assert (await new.get("never-planned"))["state"] == "failed"
    assert (await new.get(done["task_id"]))["state"] == "completed"  # an ended task: as it was
    assert (await new.list(state="running"))["tasks"] == []
    # And the new planner runs tasks as ever.
    again, _ = await run(new, body)
    assert again["state"] == "completed"


async def test_llm_plans_a_request_against_the_registry_skills(
    tmp_path: Path,
    model_server: ModelServerHandle,  # noqa: F811
) -> None:
    planner = make_planner(tmp_path, SPECS, LLMConfig(base_url=model_server.base_url))
    task, events = await run(
        planner, {"input": "uppercase: hello planner, then count the words of it"}
    )
    planned = next(e for e in events if e["kind"] == "planned")["data"]
    assert planned["source"] == "llm" and len(planned["subtasks"]) == 2
    assert [s["skill"] for s in planned["subtasks"]] == ["uppercase", "word_count"]
    assert task["state"] == "completed"
    assert task["usage"]["prompt_tokens"] > 0


async def test_a_one_clause_request_is_routed_without_planning(tmp_path: Path) -> None:
    planner = make_planner(tmp_path, SPECS)  # no LLM configured: routing must not need one
    task, events = await run(planner, {"input": "uppercase: just this"})
    planned = next(e for e in events if e["kind"] == "planned")["data"]
    assert planned["source"] == "route" and planned["routed"]
    assert task["result"] == "JUST THIS"


async def test_a_fan_out_reaches_every_replica_of_the_agent(tmp_path: Path) -> None:
    planner = make_planner(tmp_path, SPECS)
    await planner.start()
    await planner.refresh_pool(force=True)
    assert planner.pool.agents["text"].replicas == 2  # learned from the registry rows
    # No concurrency limit: one message per CPU, at most one per replica.
    planner.pool.cpus = 2
    n = 128
    steps = [{"id": f"u{i}", "skill": "uppercase", "input": f"uppercase: {i}"} for i in range(n)]
    task, _ = await run(
        planner,
        {"input": "spread", "synthesize": False, "workflow": {"kind": "parallel", "steps": steps}},
    )
    assert task["state"] == "completed"
    # The agent-side task ids carry their replica: both replicas took a share.
    endpoint = planner.pool.agents["text"].endpoint
    owners = {r.replica: (await r.ping()).tasks for r in endpoint._replicas}
    assert owners[0] > 0 and owners[1] > 0, owners


async def test_a_layer_goes_ahead_with_its_inputs_and_starts_when_they_finish(
    tmp_path: Path,
) -> None:
    """Pipelined dispatch: dependants whose inputs all travel in one message to an agent
    without a concurrency limit go in that message; the agent builds their inputs from
    the outputs, and the planner reports each start once its last input is in."""
    planner = make_planner(tmp_path, SPECS)
    steps = [{"id": f"a{i}", "skill": "join", "input": f"alpha {i}"} for i in range(3)]
    steps += [
        {"id": "b0", "skill": "join", "input": "b0 got:", "depends_on": ["a0", "a1"]},
        {"id": "b1", "skill": "join", "input": "b1 got:", "depends_on": ["a2"]},
        {"id": "c0", "skill": "join", "input": "c0 got:", "depends_on": ["b0", "b1"]},
        {"id": "c1", "skill": "join", "input": "c1 got:", "depends_on": ["b1", "a0"]},
    ]
    body = {"input": "g", "synthesize": False, "workflow": {"kind": "graph", "steps": steps}}
    task, events = await run(planner, body)
    assert task["state"] == "completed", task
    out = {s["id"]: s["output"] for s in task["subtasks"]}
    # Each input's output reached its dependants, in `depends_on` order, as a dependant
    # dispatched once ready would get it (the same text the planner builds).
    assert out["b0"] == "b0 got:\n\nResults of earlier steps:\n[a0] alpha 0\n[a1] alpha 1"
    assert out["c1"] == f"c1 got:\n\nResults of earlier steps:\n[b1] {out['b1']}\n[a0] alpha 0"
    assert out["c0"].startswith("c0 got:\n\nResults of earlier steps:\n[b0] b0 got:")
    # One A2A message carried the whole graph.
    endpoint = planner.pool.agents["lab"].endpoint
    assert [(await r.ping()).tasks for r in endpoint._replicas] == [1]
    # Started after every input completed, each once, timed between them and its end.
    seen: dict[str, int] = {}
    for i, e in enumerate(events):
        if e["kind"] in ("subtask_started", "subtask_completed"):
            seen.setdefault(f"{e['kind']}:{e['data']['subtask']}", i)
    subs = {s["id"]: s for s in task["subtasks"]}
    for sid, sub in subs.items():
        assert sub["attempts"] == 1
        for dep in sub["depends_on"]:
            assert seen[f"subtask_completed:{dep}"] < seen[f"subtask_started:{sid}"]
            assert subs[dep]["finished_at"] <= sub["started_at"] <= sub["finished_at"]
    assert [e["kind"] for e in events].count("subtask_started") == len(steps)


async def test_dependants_sent_ahead_wait_again_when_an_input_fails_there(tmp_path: Path) -> None:
    """An input that fails on the agent sends its dependants back without running them
    and without spending an attempt: they go once the retried input is done."""
    Lab.calls.clear()
    planner = make_planner(tmp_path, SPECS)
    steps = [{"id": f"f{i}", "skill": "flaky", "input": f"first {i}"} for i in range(2)]
    steps += [
        {"id": f"g{i}", "skill": "flaky", "input": f"then {i}", "depends_on": ["f0", "f1"]}
        for i in range(2)
    ]
    body = {"input": "r", "synthesize": False, "workflow": {"kind": "graph", "steps": steps}}
    task, events = await run(planner, body)
    assert task["state"] == "completed", task
    subs = {s["id"]: s for s in task["subtasks"]}
    # f0, f1 fail once each, g0, g1 once each with their inputs in: two attempts each.
    assert {sid: s["attempts"] for sid, s in subs.items()} == dict.fromkeys(subs, 2)
    assert all(s["output"] == "ok after 2" for s in subs.values())
    starts = [
        (e["data"]["subtask"], e["data"]["attempt"])
        for e in events
        if e["kind"] == "subtask_started"
    ]
    assert sorted(starts) == sorted((sid, n) for sid in subs for n in (1, 2))
    assert not [e for e in events if e["kind"] == "subtask_failed"]  # retried, none final
    # Three messages: {f0 f1 + g0 g1 ahead} (the f's fail, the g's come back unrun),
    # {f0 f1 + g0 g1 ahead} again (the g's fail on their own), then {g0 g1}.
    endpoint = planner.pool.agents["lab"].endpoint
    assert [(await r.ping()).tasks for r in endpoint._replicas] == [3]
    # g0's input as the agent built it names both inputs' outputs.
    assert Lab.calls["then 0\n\nResults of earlier steps:\n[f0] ok after 2\n[f1] ok after 2"] == 2


class Napper(Agent):
    """One skill, for an agent that runs one subtask at a time."""

    @skill(tags=["nap"])
    async def nap(self, ctx: SkillContext) -> str:
        """Sleeps for the seconds given first in the input."""
        await asyncio.sleep(float(ctx.text.split()[0]))
        return "napped"


async def test_held_results_keep_the_agents_timings_and_never_delay_dependants(
    tmp_path: Path,
) -> None:
    """Results nothing needs soon travel together, late (RESULT_HOLD_S), yet a subtask's
    finish time is the agent's; a result a narrow dependant waits for goes at once, and
    a wide fan-in starts when its last input is in."""
    specs = {
        "one": AgentSpec(name="one", cls=f"{__name__}:Napper", concurrency=1),
        "lab": SPECS["lab"],
    }
    planner = make_planner(tmp_path, specs)
    maps = [f"m{i}" for i in range(HOLD_FAN_IN)]
    steps = [{"id": "x", "skill": "nap", "input": "0.05"}]
    steps += [{"id": m, "skill": "nap", "input": "0.05"} for m in maps]
    steps += [{"id": "y", "skill": "slow", "input": "0.01", "depends_on": ["x"]}]
    steps += [{"id": "r", "skill": "slow", "input": "0.01", "depends_on": maps}]
    body = {"input": "hold", "synthesize": False, "workflow": {"kind": "graph", "steps": steps}}
    task, events = await run(planner, body)
    assert task["state"] == "completed"
    subs = {s["id"]: s for s in task["subtasks"]}
    # One replica, one at a time: x, then the maps, each 50 ms, by the agent's clock.
    naps = sorted(subs[i]["finished_at"] for i in ["x", *maps])
    assert all(b - a >= 0.04 for a, b in itertools.pairwise(naps)), naps
    # y waited for x's result only, not for the maps' (the last finishes 400 ms after x).
    assert subs["y"]["started_at"] - subs["x"]["finished_at"] < 0.1
    # r started once its last input was in, which went at once (the batch's last).
    assert subs["r"]["started_at"] - max(subs[m]["finished_at"] for m in maps) < 0.1
    # The first maps' results were held: the planner heard of them well after they ended.
    heard = {e["data"]["subtask"]: e["ts"] for e in events if e["kind"] == "subtask_completed"}
    assert heard["m0"] - subs["m0"]["finished_at"] > 0.1
    assert heard["x"] - subs["x"]["finished_at"] < 0.05
    assert sorted(heard) == sorted(["x", "y", "r", *maps])


def test_batches_spread_over_replicas_by_the_agents_concurrency() -> None:
    def agent(concurrency: int | None, replicas: int) -> AgentInfo:
        return AgentInfo("a", {"s"}, 1, None, replicas, concurrency=concurrency)  # type: ignore[arg-type]

    # One at a time: every replica gets a share (never more messages than items).
    assert agent(1, 50).messages_for(1000, cpus=2) == 50
    assert agent(1, 50).messages_for(7, cpus=2) == 7
    # No limit: one message per CPU to run them, at most one per replica, and no
    # message under MIN_SPLIT items just to use another CPU.
    assert agent(None, 50).messages_for(25, cpus=2) == 1
    assert agent(None, 50).messages_for(25, cpus=64) == 1
    assert agent(None, 50).messages_for(MIN_SPLIT * 2, cpus=2) == 2
    assert agent(None, 50).messages_for(MIN_SPLIT * 2 - 1, cpus=64) == 2
    assert agent(None, 50).messages_for(1000, cpus=64) == -(-1000 // MIN_SPLIT)
    assert agent(None, 50).messages_for(10_000, cpus=64) == 50
    assert agent(None, 4).messages_for(1000, cpus=64) == 4
    # Never over MAX_BATCH items a message, even with one replica or few CPUs.
    assert agent(None, 50).messages_for(1000, cpus=2) == -(-1000 // MAX_BATCH)
    assert agent(None, 1).messages_for(1000, cpus=2) == -(-1000 // MAX_BATCH)
    assert agent(2, 1).messages_for(1000, cpus=2) == -(-1000 // MAX_BATCH)
