"""The history store contract, run against every implementation.

The same tests pass for the in-memory store, the DuckDB store with write-behind, and the
DuckDB store writing through (no buffer), so a caller tested against the in-memory one
sees the same behaviour in production. DuckDB files live under `tmp_path`.
"""

from __future__ import annotations

import asyncio
import pickle
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from actorchestra.actors.history import (
    ChatTurn,
    HistoryClosedError,
    HistoryConfig,
    HistoryStore,
    InMemoryHistoryStore,
    InvalidCursorError,
    LLMCallRecord,
    NewEvent,
    SubtaskRecord,
    TaskRecord,
    TaskUpdate,
    ToolCallRecord,
)
from actorchestra.actors.history.duckdb_store import DuckDBHistoryStore
from actorchestra.actors.history.forwarding import ForwardingHistoryStore, HistoryHost, pack_call
from actorchestra.protocol.errors import InvalidInputError

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "duckdb-buffered", "duckdb-direct", "forwarded"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HistoryStore]:
    if request.param == "forwarded":
        # The planner's view of the `history` actor: every call packed as the planner
        # packs it, every answer and error pickled, as Ray carries them.
        host = HistoryHost(str(tmp_path / "history.duckdb"))

        async def call(method: str, args: tuple, kwargs: dict) -> object:
            try:
                answer = await host.call_packed(pack_call(method, args, kwargs))
            except Exception as e:
                raise pickle.loads(pickle.dumps(e)) from None
            return pickle.loads(pickle.dumps(answer))

        async with ForwardingHistoryStore(call) as forwarded:
            yield forwarded
        await host.close()
        return
    if request.param == "memory":
        s: HistoryStore = InMemoryHistoryStore()
    else:
        # A long interval, so buffered rows really are still buffered when read.
        interval = 30.0 if request.param == "duckdb-buffered" else 0.0
        s = await DuckDBHistoryStore.open(
            HistoryConfig(path=tmp_path / "history.duckdb", flush_interval_s=interval)
        )
    async with s:
        yield s


def task(n: int, **kw: object) -> TaskRecord:
    fields: dict[str, object] = {
        "task_id": f"task-{n:04d}",
        "user_id": f"user-{n % 3}",
        "state": "completed" if n % 2 else "working",
        "created_at": T0 + timedelta(seconds=n // 2),  # pairs share a timestamp
        "input": {"text": f"question {n}"},
    }
    fields.update(kw)
    return TaskRecord(**fields)  # type: ignore[arg-type]


async def test_task_round_trip_and_partial_update(store: HistoryStore) -> None:
    original = task(1, plan={"steps": ["a", "b"]}, metadata={"label": "x"})
    await store.upsert_tasks([original])
    assert await store.get_task("task-0001") == original
    assert await store.get_task("nope") is None

    updated = await store.update_task(
        TaskUpdate(task_id="task-0001", state="failed", error="boom", result=None)
    )
    assert updated is not None
    assert (updated.state, updated.error, updated.result) == ("failed", "boom", None)
    assert updated.plan == {"steps": ["a", "b"]}  # not given, so kept
    assert updated.created_at == original.created_at
    assert updated.updated_at >= original.updated_at
    assert await store.get_task("task-0001") == updated
    assert await store.update_task(TaskUpdate(task_id="nope", state="x")) is None

    # returning=False: the change lands, nothing is read back.
    back = await store.update_task(TaskUpdate(task_id="task-0001", state="done"), returning=False)
    assert back is None
    stored = await store.get_task("task-0001")
    assert stored is not None and stored.state == "done" and stored.error == "boom"


async def test_upsert_replaces_the_row_but_keeps_created_at(store: HistoryStore) -> None:
    await store.upsert_tasks([task(1)])
    later = task(1, state="completed", result={"answer": 42}, created_at=T0 + timedelta(days=9))
    await store.upsert_tasks([later, later])  # a duplicate in one batch is fine
    got = await store.get_task("task-0001")
    assert got is not None
    assert got.result == {"answer": 42}
    assert got.created_at == task(1).created_at


async def test_an_upsert_of_new_and_existing_rows_writes_all_of_them(
    store: HistoryStore,
) -> None:
    """Batches large and small, some rows new and some already there: every row lands."""
    await store.upsert_tasks([task(n) for n in range(12)])
    await store.upsert_tasks([task(n, state="completed") for n in range(6, 30)])
    await store.upsert_tasks([task(3, state="failed"), task(40)])
    page = await store.list_tasks(limit=100)
    states = {t.task_id: t.state for t in page.items}
    assert len(states) == 31
    assert states["task-0003"] == "failed" and states["task-0040"] == task(40).state
    assert states["task-0005"] == task(5).state
    assert all(states[f"task-{n:04d}"] == "completed" for n in range(6, 30))

    def sub(n: int, state: str) -> SubtaskRecord:
        return SubtaskRecord(task_id="task-0001", subtask_id=f"s{n}", state=state, position=n)

    await store.upsert_subtasks([sub(n, "running") for n in range(20)])
    await store.upsert_subtasks([sub(n, "completed") for n in range(10, 40)])
    got = {s.subtask_id: s.state for s in await store.subtasks("task-0001")}
    assert len(got) == 40
    assert [got[f"s{n}"] for n in (0, 9, 10, 39)] == [
        "running",
        "running",
        "completed",
        "completed",
    ]


async def test_list_pages_through_250_tasks_without_duplicates_or_losses(
    store: HistoryStore,
) -> None:
    tasks = [task(n) for n in range(250)]
    random.Random(7).shuffle(tasks)
    await store.upsert_tasks(tasks[:100])
    await store.upsert_tasks(tasks[100:])

    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_tasks(limit=7, cursor=cursor)
        seen.extend(t.task_id for t in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        if len(seen) == 70:  # tasks created mid-way are newer: they must not shift pages
            await store.upsert_tasks(
                [task(1000 + i, created_at=T0 + timedelta(days=1)) for i in range(5)]
            )
    expected = sorted(tasks, key=lambda t: (t.created_at, t.task_id), reverse=True)
    assert seen == [t.task_id for t in expected]


async def test_list_filters_by_state_user_and_time(store: HistoryStore) -> None:
    await store.upsert_tasks([task(n) for n in range(60)])

    done = await store.list_tasks(state="completed", limit=1000)
    assert {t.task_id for t in done.items} == {f"task-{n:04d}" for n in range(1, 60, 2)}
    both = await store.list_tasks(state=["completed", "working"], limit=1000)
    assert len(both.items) == 60

    mine = await store.list_tasks(user_id="user-1", state="working", limit=1000)
    assert {t.task_id for t in mine.items} == {
        f"task-{n:04d}" for n in range(60) if n % 3 == 1 and n % 2 == 0
    }

    window = await store.list_tasks(
        since=T0 + timedelta(seconds=10), until=T0 + timedelta(seconds=20), limit=1000
    )
    assert {t.task_id for t in window.items} == {f"task-{n:04d}" for n in range(20, 40)}

    # Filters and the cursor together: page 2 holds the rest of the same filter.
    first = await store.list_tasks(user_id="user-0", limit=15)
    second = await store.list_tasks(user_id="user-0", limit=15, cursor=first.next_cursor)
    ids = [t.task_id for t in first.items + second.items]
    assert len(ids) == len(set(ids)) == 20 and second.next_cursor is None


async def test_bad_cursor_and_bad_limit_are_input_errors(store: HistoryStore) -> None:
    for bad in ("garbage!", "eyJ4IjoxfQ", ""):
        if bad:
            with pytest.raises(InvalidCursorError):
                await store.list_tasks(cursor=bad)
    with pytest.raises(InvalidInputError):
        await store.list_tasks(limit=0)
    with pytest.raises(InvalidInputError):
        await store.events_after("t", limit=100_000)


async def test_subtasks_in_plan_order_and_task_detail(store: HistoryStore) -> None:
    await store.upsert_tasks([task(1)])
    subs = [
        SubtaskRecord(
            task_id="task-0001",
            subtask_id="s2",
            state="pending",
            position=2,
            depends_on=["s1"],
            skill="summarize",
        ),
        SubtaskRecord(
            task_id="task-0001",
            subtask_id="s1",
            state="running",
            position=1,
            agent="searcher",
            input={"q": "x"},
            started_at=T0,
        ),
    ]
    await store.upsert_subtasks(subs)
    done = subs[1].model_copy(
        update={"state": "completed", "output": {"hits": 3}, "attempts": 2, "finished_at": T0}
    )
    await store.upsert_subtasks([done])
    await store.record_llm_calls(
        [
            LLMCallRecord(
                model="m",
                task_id="task-0001",
                prompt_tokens=10,
                completion_tokens=5,
                cost_usd=0.25,
                latency_s=0.5,
            ),
            LLMCallRecord(model="m", task_id="task-0001", error="timeout", latency_s=1.0),
            LLMCallRecord(model="m", task_id="other", prompt_tokens=99),
        ]
    )
    await store.record_tool_calls(
        [
            ToolCallRecord(name="calc", task_id="task-0001", arguments={"x": 1}, result=2),
            ToolCallRecord(name="http", task_id="task-0001", arguments="{bad", error="bad json"),
        ]
    )
    await store.append_events([NewEvent(task_id="task-0001", kind="status") for _ in range(3)])

    detail = await store.get_task_detail("task-0001")
    assert detail is not None
    assert [s.subtask_id for s in detail.subtasks] == ["s1", "s2"]
    assert detail.subtasks[0] == done
    assert detail.subtasks[1].depends_on == ["s1"]
    u = detail.usage
    assert (u.prompt_tokens, u.completion_tokens, u.cost_usd) == (10, 5, 0.25)
    assert (u.llm_calls, u.llm_errors, u.tool_calls, u.tool_errors) == (2, 1, 2, 1)
    assert u.llm_latency_s == pytest.approx(1.5)
    assert detail.last_event_seq == 3
    assert await store.get_task_detail("nope") is None

    tools = await store.tool_calls("task-0001")
    assert [(c.name, c.arguments, c.result) for c in tools] == [
        ("calc", {"x": 1}, 2),
        ("http", "{bad", None),
    ]
    assert len(await store.llm_calls("task-0001")) == 2


async def test_event_rows_are_stored_as_events_are(store: HistoryStore) -> None:
    """The planner's path: events as plain dicts, numbered in the same sequence."""
    assert await store.append_events([NewEvent(task_id="a", kind="planned")]) == [1]
    seqs = await store.append_event_rows(
        [{"task_id": "a", "kind": "k", "data": {"i": i}, "ts": T0} for i in range(3)]
    )
    assert seqs == [2, 3, 4]
    # the planner's own form: epoch seconds and its own `seq` (not read); data orjson
    # cannot take goes the slow way
    later = T0 + timedelta(seconds=1.5)
    seqs = await store.append_event_rows(
        [
            {
                "task_id": "a",
                "kind": "k",
                "data": {"out": ["x", {"y": None}]},
                "ts": later.timestamp(),
                "seq": 99,
            },
            {"task_id": "a", "kind": "k", "data": {"big": 2**70}, "ts": later.timestamp()},
        ]
    )
    assert seqs == [5, 6]
    after = await store.events_after("a", 1)
    assert [(e.seq, e.kind, e.data, e.ts) for e in after] == [
        (2, "k", {"i": 0}, T0),
        (3, "k", {"i": 1}, T0),
        (4, "k", {"i": 2}, T0),
        (5, "k", {"out": ["x", {"y": None}]}, later),
        (6, "k", {"big": 2**70}, later),
    ]


async def test_events_get_gapless_seqs_per_task(store: HistoryStore) -> None:
    seqs = await store.append_events(
        [NewEvent(task_id="a", kind="k", data={"i": i}) for i in range(5)]
        + [NewEvent(task_id="b", kind="k", data={"i": i}) for i in range(2)]
    )
    assert seqs == [1, 2, 3, 4, 5, 1, 2]
    assert await store.append_events([NewEvent(task_id="a", kind="done")]) == [6]
    assert await store.append_events([]) == []

    after = await store.events_after("a", 3)
    assert [(e.seq, e.kind, e.data) for e in after] == [
        (4, "k", {"i": 3}),
        (5, "k", {"i": 4}),
        (6, "done", None),
    ]
    assert [e.seq for e in await store.events_after("a", 0, limit=2)] == [1, 2]
    assert await store.events_after("a", 6) == []
    assert await store.last_event_seq("a") == 6
    assert await store.last_event_seq("never") == 0
    assert all(e.ts.tzinfo is not None for e in after)


async def test_concurrent_appends_keep_order_without_duplicates(store: HistoryStore) -> None:
    async def writer(w: int) -> list[tuple[str, int, int]]:
        out = []
        for i in range(6):
            task_id = f"t{(w + i) % 5}"
            batch = [
                NewEvent(task_id=task_id, kind="k", data={"w": w, "i": i, "j": j}) for j in range(3)
            ]
            seqs = await store.append_events(batch)
            out.extend((task_id, s, w) for s in seqs)
            await asyncio.sleep(0)
        return out

    results = await asyncio.gather(*(writer(w) for w in range(20)))
    for task_id in (f"t{k}" for k in range(5)):
        events = await store.events_after(task_id, 0, limit=1000)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        # Each writer's events for this task appear in the order it sent them.
        for w in range(20):
            mine = [(e.data["i"], e.data["j"]) for e in events if e.data["w"] == w]  # type: ignore[index,call-overload]
            assert mine == sorted(mine)
    assert sum(len(r) for r in results) == 20 * 6 * 3


async def test_delete_task_cascades(store: HistoryStore) -> None:
    await store.upsert_tasks([task(1), task(2)])
    for t in ("task-0001", "task-0002"):
        await store.upsert_subtasks([SubtaskRecord(task_id=t, subtask_id="s", state="done")])
        await store.append_events([NewEvent(task_id=t, kind="k")] * 2)
        await store.record_llm_calls([LLMCallRecord(model="m", task_id=t, prompt_tokens=1)])
        await store.record_tool_calls([ToolCallRecord(name="x", task_id=t)])

    assert await store.delete_task("task-0001") is True
    assert await store.delete_task("task-0001") is False
    assert await store.get_task("task-0001") is None
    assert await store.subtasks("task-0001") == []
    assert await store.events_after("task-0001") == []
    assert await store.llm_calls("task-0001") == []
    assert await store.tool_calls("task-0001") == []
    assert (await store.task_usage("task-0001")).llm_calls == 0
    # The other task is untouched, and a reused id starts its events from 1 again.
    assert len(await store.events_after("task-0002")) == 2
    assert (await store.task_usage("task-0002")).prompt_tokens == 1
    assert await store.append_events([NewEvent(task_id="task-0001", kind="k")]) == [1]


async def test_prune_removes_only_old_finished_tasks(store: HistoryStore) -> None:
    old = T0 - timedelta(days=30)
    await store.upsert_tasks(
        [
            task(1, state="completed", finished_at=old),
            task(2, state="failed", finished_at=old),
            task(3, state="working"),
            task(4, state="completed", finished_at=T0),
        ]
    )
    await store.append_events([NewEvent(task_id="task-0001", kind="k")])
    assert await store.prune_tasks(T0 - timedelta(days=1)) == 2
    left = await store.list_tasks(limit=10)
    assert {t.task_id for t in left.items} == {"task-0003", "task-0004"}
    assert await store.events_after("task-0001") == []


async def test_chat_turns_window_by_count_budget_and_context(store: HistoryStore) -> None:
    turns = [
        ChatTurn(
            user_id="u",
            session_id="s",
            role="user" if i % 2 == 0 else "assistant",
            content=f"m{i}",
            tokens=10,
            ts=T0 + timedelta(seconds=i),
            context_id="c2" if i >= 6 else "c1",
        )
        for i in range(8)
    ]
    await store.append_chat_turns(turns[:5])
    await store.append_chat_turns(turns[5:])
    await store.append_chat_turns(
        [ChatTurn(user_id="u", session_id="other", role="user", content="x")]
    )
    await store.append_chat_turns([ChatTurn(user_id="v", session_id="s", role="user", content="y")])

    got = await store.chat_turns("u", "s")
    assert [t.content for t in got] == [f"m{i}" for i in range(8)]
    assert [t.content for t in await store.chat_turns("u", "s", limit=3)] == ["m5", "m6", "m7"]
    budget = await store.chat_turns("u", "s", max_tokens=35)
    assert [t.content for t in budget] == ["m5", "m6", "m7"]
    c1 = await store.chat_turns("u", "s", context_id="c1", limit=2)
    assert [t.content for t in c1] == ["m4", "m5"]
    assert len(await store.chat_turns("u")) == 9

    assert await store.delete_chat("u", "s") == 8
    assert await store.chat_turns("u", "s") == []
    assert len(await store.chat_turns("u")) == 1
    assert len(await store.chat_turns("v")) == 1


async def test_starting_a_started_store_again_changes_nothing(store: HistoryStore) -> None:
    """A planner whose first start failed after opening its store starts again."""
    await store.upsert_tasks([task(1)])
    await store.start()
    assert (await store.get_task("task-0001")) is not None


async def test_a_closed_store_refuses_calls(store: HistoryStore) -> None:
    await store.close()
    with pytest.raises(HistoryClosedError):
        await store.get_task("x")
    with pytest.raises(HistoryClosedError):
        await store.append_events([NewEvent(task_id="x", kind="k")])
    await store.close()  # closing twice is harmless


def test_records_cross_a_pickle_with_their_set_fields_intact() -> None:
    """What Ray does to every argument and result of the history actor."""
    update = pickle.loads(pickle.dumps(TaskUpdate(task_id="t", result=None, cost_usd=1.5)))
    assert set(update.changes()) == {"result", "cost_usd", "updated_at"}
    record = task(1, plan={"steps": [1, 2]})
    assert pickle.loads(pickle.dumps(record)) == record
