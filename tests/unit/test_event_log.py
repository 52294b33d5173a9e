"""The planner's event log: numbered in memory, readers never wait for the store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actorchestra.actors.history import HistoryConfig
from actorchestra.actors.history.duckdb_store import DuckDBHistoryStore
from actorchestra.actors.planner import events as events_module
from actorchestra.actors.planner.events import EventLog
from actorchestra.actors.planner.models import EventKind


async def collect(log: EventLog, task_id: str, after: int, finished: bool) -> list[dict]:
    return [e async for batch in log.read(task_id, after, finished) for e in batch]


async def test_events_are_numbered_read_live_and_replayed_after_recording(
    tmp_path: Path,
) -> None:
    store = await DuckDBHistoryStore.open(HistoryConfig(path=tmp_path / "h.duckdb"))
    log = EventLog(store)
    log.open("t1")
    # A reader that connects before anything happened gets every event, live.
    early = asyncio.create_task(collect(log, "t1", 0, finished=False))
    await asyncio.sleep(0)
    log.emit("t1", EventKind.PLANNED, {"n": 1})
    # a sweep's events in one call, numbered and published as one by one
    log.emit_many("t1", EventKind.SUBTASK_STARTED, [{"subtask": f"s{i}"} for i in range(3)])
    log.emit_many("t1", EventKind.SUBTASK_STARTED, [])  # nothing: no event
    # One that connects midway, resuming after seq 2, misses nothing and gets no repeat.
    late = asyncio.create_task(collect(log, "t1", 2, finished=False))
    await asyncio.sleep(0)
    log.emit("t1", EventKind.SUBTASK_COMPLETED, {"subtask": "s0"})
    log.emit("t1", EventKind.FINAL, {"state": "completed"})

    got_early = await asyncio.wait_for(early, 5)
    got_late = await asyncio.wait_for(late, 5)
    assert [e["seq"] for e in got_early] == [1, 2, 3, 4, 5, 6]
    assert [e["data"] for e in got_early[1:4]] == [{"subtask": f"s{i}"} for i in range(3)]
    assert got_early[-1]["kind"] == "final"
    assert [e["seq"] for e in got_late] == [3, 4, 5, 6]
    # Ended but not yet recorded: a reader at the end gets nothing, one past it (it had
    # events a stopped planner never recorded) the final event; neither waits.
    assert await asyncio.wait_for(collect(log, "t1", 6, finished=True), 5) == []
    assert await asyncio.wait_for(collect(log, "t1", 9, finished=True), 5) == [got_early[-1]]

    # Recorded behind: the store gave the same numbers, and once the final event is
    # recorded a reader replays from the store.
    await log.drain()
    stored = await store.events_after("t1", 0)
    assert [(r.seq, r.kind) for r in stored] == [(e["seq"], e["kind"]) for e in got_early]
    replay = await asyncio.wait_for(collect(log, "t1", 4, finished=True), 5)
    assert [e["seq"] for e in replay] == [5, 6]
    assert replay[0]["data"] == {"subtask": "s0"}
    assert await asyncio.wait_for(collect(log, "t1", 6, finished=True), 5) == []
    [beyond] = await asyncio.wait_for(collect(log, "t1", 9, finished=True), 5)
    assert (beyond["seq"], beyond["kind"], beyond["data"]) == (6, "final", got_early[-1]["data"])
    await store.close()


@pytest.mark.parametrize("bulk", [False, True], ids=["emit", "emit_many"])
async def test_a_reader_far_behind_reads_on_from_the_log(tmp_path: Path, bulk: bool) -> None:
    store = await DuckDBHistoryStore.open(HistoryConfig(path=tmp_path / "h.duckdb"))
    log = EventLog(store)
    log.open("t2")
    reader = log.read("t2", 0, finished=False)
    first = asyncio.create_task(anext(reader))
    await asyncio.sleep(0)
    log.emit("t2", EventKind.PLANNED)
    assert [e["seq"] for e in await first] == [1]
    # It stops reading while far more events than a reader may hold arrive.
    many = [{"text": "x"} for _ in range(events_module._QUEUE_BOUND + 5)]
    if bulk:
        log.emit_many("t2", EventKind.PROGRESS, many)
    else:
        for data in many:
            log.emit("t2", EventKind.PROGRESS, data)
    # Its inbox holds no more than the bound; it lets it go and reads on from the log.
    assert sum(len(r.events) for r in log._readers["t2"]) == events_module._QUEUE_BOUND
    log.emit("t2", EventKind.FINAL, {"state": "completed"})
    # every event once, in order, up to the final one
    rest = await asyncio.wait_for(_rest(reader), 5)
    assert [e["seq"] for e in rest] == list(range(2, events_module._QUEUE_BOUND + 8))
    assert rest[-1]["kind"] == "final"
    await store.close()


async def _rest(reader: AsyncIterator[list[dict]]) -> list[dict]:
    return [e async for batch in reader for e in batch]


async def test_shipped_waits_for_readers_to_take_the_final_batch_on(tmp_path: Path) -> None:
    """The planner builds a task's records only once its readers have sent the final
    event on, or after a bound when one never asks for more."""
    store = await DuckDBHistoryStore.open(HistoryConfig(path=tmp_path / "h.duckdb"))
    log = EventLog(store)
    log.open("t3")
    # Nobody reading: nothing to wait for.
    await asyncio.wait_for(log.shipped("t3", 5.0), 0.5)

    reader = log.read("t3", 0, finished=False)
    pending = asyncio.create_task(anext(reader))
    await asyncio.sleep(0)
    log.emit("t3", EventKind.FINAL, {"state": "completed"})
    assert [e["kind"] for e in await pending] == ["final"]
    # The final batch is out, but this consumer has not asked past it: still live.
    waiting = asyncio.create_task(log.shipped("t3", 5.0))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    # Asking for the next item (as Ray does once the last one is sent) ends the reader.
    assert await anext(reader, None) is None
    await asyncio.wait_for(waiting, 0.5)

    # A reader that never asks again holds the records back by the bound only.
    log.open("t4")
    stuck = log.read("t4", 0, finished=False)
    first = asyncio.create_task(anext(stuck))
    await asyncio.sleep(0)
    log.emit("t4", EventKind.FINAL, {"state": "completed"})
    await first
    started = asyncio.get_running_loop().time()
    await log.shipped("t4", 0.1)
    assert 0.09 <= asyncio.get_running_loop().time() - started < 1.0
    await stuck.aclose()
    await log.drain()
    await store.close()
