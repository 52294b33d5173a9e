"""What only the DuckDB history store does: persistence, write-behind, opening errors."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from actorchestra.actors.history import (
    ChatTurn,
    HistoryConfig,
    HistoryError,
    HistoryOpenError,
    LLMCallRecord,
    NewEvent,
    SubtaskRecord,
    TaskRecord,
)
from actorchestra.actors.history.duckdb_store import DuckDBHistoryStore


def config(tmp_path: Path, **kw: object) -> HistoryConfig:
    return HistoryConfig(path=tmp_path / "h" / "history.duckdb", **kw)  # type: ignore[arg-type]


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Poll a condition (not a fixed sleep), failing after five seconds."""
    try:
        async with asyncio.timeout(5.0):
            while True:  # the flush happens on another thread: nothing to await but time
                if predicate():
                    return
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def events(task_id: str, n: int) -> list[NewEvent]:
    return [NewEvent(task_id=task_id, kind="k", data={"n": i}) for i in range(n)]


async def test_reopening_the_file_keeps_everything_and_seqs_continue(tmp_path: Path) -> None:
    cfg = config(tmp_path, flush_interval_s=30.0)  # nothing flushes before close
    async with await DuckDBHistoryStore.open(cfg) as store:
        await store.upsert_tasks([TaskRecord(task_id="t", user_id="u", state="working")])
        await store.upsert_subtasks([SubtaskRecord(task_id="t", subtask_id="s", state="done")])
        assert await store.append_events(events("t", 4)) == [1, 2, 3, 4]
        await store.append_chat_turns(
            [ChatTurn(user_id="u", session_id="s", role="user", content="hi")]
        )
        assert store.buffered_rows == 5
    async with await DuckDBHistoryStore.open(cfg) as store:
        task = await store.get_task("t")
        assert task is not None and task.state == "working"
        assert [s.subtask_id for s in await store.subtasks("t")] == ["s"]
        assert [e.seq for e in await store.events_after("t")] == [1, 2, 3, 4]
        assert await store.append_events(events("t", 2)) == [5, 6]
        assert [t.content for t in await store.chat_turns("u", "s")] == ["hi"]


async def test_events_after_reads_through_the_buffer_across_flushes(tmp_path: Path) -> None:
    async with await DuckDBHistoryStore.open(config(tmp_path, flush_interval_s=30.0)) as store:
        await store.append_events(events("t", 3))
        await store.flush()
        assert store.buffered_rows == 0
        await store.append_events(events("t", 3))
        assert store.buffered_rows == 3
        assert [e.seq for e in await store.events_after("t", 0)] == [1, 2, 3, 4, 5, 6]
        assert [e.seq for e in await store.events_after("t", 2, limit=3)] == [3, 4, 5]
        assert [e.data for e in await store.events_after("t", 5)] == [{"n": 2}]
        assert store.buffered_rows == 3  # reading did not force a flush


async def test_the_background_flush_runs_on_its_interval(tmp_path: Path) -> None:
    async with await DuckDBHistoryStore.open(config(tmp_path, flush_interval_s=0.02)) as store:
        await store.append_events(events("t", 5))
        await wait_until(lambda: store.buffered_rows == 0, "the interval flush")


async def test_flush_rows_triggers_an_early_flush_and_the_limit_pushes_back(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path, flush_interval_s=30.0, flush_rows=10, max_buffered_rows=50)
    async with await DuckDBHistoryStore.open(cfg) as store:
        await store.append_events(events("t", 10))
        await wait_until(lambda: store.buffered_rows == 0, "the flush at flush_rows")
        await store.append_events(events("t", 60))  # over the hard limit: flushed inline
        assert store.buffered_rows == 0


async def test_seq_cache_eviction_never_reuses_a_seq(tmp_path: Path) -> None:
    cfg = config(tmp_path, flush_interval_s=30.0, seq_cache_tasks=2)
    async with await DuckDBHistoryStore.open(cfg) as store:
        for round_ in range(4):
            for k in range(5):  # five tasks through a cache of two
                seqs = await store.append_events(events(f"t{k}", 2))
                assert seqs == [2 * round_ + 1, 2 * round_ + 2]
            if round_ == 1:
                await store.flush()  # half stored, half buffered
        for k in range(5):
            assert [e.seq for e in await store.events_after(f"t{k}")] == list(range(1, 9))
            assert await store.last_event_seq(f"t{k}") == 8


async def test_opening_a_file_another_process_holds_fails_clearly(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    (tmp_path / "h").mkdir()
    hold = "import duckdb,sys; c=duckdb.connect(sys.argv[1]); print('ready', flush=True); input()"
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        hold,
        str(cfg.path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert (await holder.stdout.readline()).strip() == b"ready"
        with pytest.raises(HistoryOpenError, match="one writing process"):
            await DuckDBHistoryStore.open(cfg)
    finally:
        await holder.communicate(b"\n")


async def test_a_directory_is_not_a_history_file(tmp_path: Path) -> None:
    with pytest.raises(HistoryOpenError, match="cannot open history file"):
        await DuckDBHistoryStore.open(HistoryConfig(path=tmp_path))


async def test_a_file_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    await (await DuckDBHistoryStore.open(cfg)).close()
    con = duckdb.connect(str(cfg.path))
    assert con.execute("SELECT max(version) FROM schema_version").fetchone() == (1,)
    con.execute("INSERT INTO schema_version VALUES (99, now()::TIMESTAMP)")
    con.close()
    with pytest.raises(HistoryOpenError, match="schema version 99"):
        await DuckDBHistoryStore.open(cfg)


async def test_in_memory_database_works_for_throwaway_use() -> None:
    async with await DuckDBHistoryStore.open(HistoryConfig(path=":memory:")) as store:
        assert await store.append_events(events("t", 2)) == [1, 2]
        assert len(await store.events_after("t")) == 2


async def test_a_write_duckdb_refuses_is_a_history_error_buffered_or_not(tmp_path: Path) -> None:
    bad = LLMCallRecord(model="m", task_id="t", prompt_tokens=2**70)  # past BIGINT
    async with await DuckDBHistoryStore.open(config(tmp_path, flush_interval_s=0)) as store:
        with pytest.raises(HistoryError, match="failed"):
            await store.record_llm_calls([bad])
    cfg = HistoryConfig(path=tmp_path / "b.duckdb", flush_interval_s=0.01)
    async with await DuckDBHistoryStore.open(cfg) as store:
        await store.record_llm_calls([bad])  # buffered: the failure comes later...
        await wait_until(lambda: store.buffered_rows == 0, "the failed background flush")
        with pytest.raises(HistoryError, match="earlier buffered history write failed"):
            await store.flush()  # ...to the next caller, once
        await store.append_events(events("t", 1))
        await store.flush()
        assert len(await store.events_after("t")) == 1


async def test_a_cancelled_flush_still_writes_the_rows_it_took(tmp_path: Path) -> None:
    cfg = config(tmp_path, flush_interval_s=30.0)
    async with await DuckDBHistoryStore.open(cfg) as store:
        await store.append_events(events("t", 500))
        flushing = [asyncio.create_task(store.flush()) for _ in range(3)]
        await asyncio.sleep(0)  # each has taken what was pending and queued its write
        for task in flushing:
            task.cancel()
        await asyncio.gather(*flushing, return_exceptions=True)
        assert store.buffered_rows == 0
    async with await DuckDBHistoryStore.open(cfg) as store:
        assert len(await store.events_after("t", 0, limit=1000)) == 500


READS_THEN_WRITE: dict[str, Callable[[DuckDBHistoryStore], Any]] = {
    "task detail": lambda store: store.get_task_detail("t"),  # its usage: aggregates
    "task usage": lambda store: store.task_usage("t"),
}


@pytest.mark.parametrize("read", READS_THEN_WRITE.values(), ids=READS_THEN_WRITE.keys())
async def test_events_written_after_any_read_land(
    tmp_path: Path, read: Callable[[DuckDBHistoryStore], Any]
) -> None:
    """Events go in as a registered Arrow table; a read before them that left its result
    open on the connection (DuckDB 2 keeps one `fetchone` did not finish) made that
    write fail, and the events were lost."""
    cfg = config(tmp_path, flush_interval_s=0)  # written at once: a failure is raised here
    await (await DuckDBHistoryStore.open(cfg)).close()  # a file to open again
    async with await DuckDBHistoryStore.open(cfg) as store:
        await store.upsert_tasks([TaskRecord(task_id="t", user_id="ann", state="running")])
        await store.append_chat_turns(
            [ChatTurn(user_id="ann", session_id="s", role="user", content="hi")]
        )
        await store.append_events(events("t", 1))  # its seq is known: no query before the next
        await read(store)
        assert await store.append_events(events("t", 12)) == list(range(2, 14))
        assert [e.seq for e in await store.events_after("t")] == list(range(1, 14))
