"""The history store over one DuckDB file.

One connection, owned by one thread: a single-worker executor runs every DuckDB call
(`_duckdb_ops`), so the event loop never blocks on disk and the connection is never
shared between threads. DuckDB allows one writing process per file, so a runtime has
one of these, wrapped in one actor by whoever owns the runtime; the class itself is
plain and async, and takes and returns picklable records.

Appends of events, call records and chat turns go through write-behind (`HistoryConfig`
says how long rows may wait). Event seqs are assigned here, under a lock, from a bounded
cache of each task's last seq; a task missing from the cache costs one `max(seq)` query,
combined with whatever of that task is still buffered. Reads that must see buffered rows
either read through the buffer (`events_after`) or flush first (call records, chats).

Every `duckdb.Error` becomes a `HistoryError` on the DuckDB thread, where it is raised.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Self, TypeVar

import duckdb
import pyarrow as pa

from actorchestra.actors.history import _duckdb_ops as ops
from actorchestra.actors.history._duckdb_schema import EventRow
from actorchestra.actors.history._write_behind import WriteBehind
from actorchestra.actors.history.config import HistoryConfig
from actorchestra.actors.history.errors import HistoryClosedError, HistoryError, HistoryOpenError
from actorchestra.actors.history.records import (
    ChatTurn,
    EventRecord,
    LLMCallRecord,
    NewEvent,
    SubtaskRecord,
    TaskDetail,
    TaskPage,
    TaskRecord,
    TaskUpdate,
    TaskUsage,
    ToolCallRecord,
)
from actorchestra.actors.history.store import (
    MAX_PAGE,
    HistoryStore,
    check_limit,
    decode_cursor,
    encode_cursor,
    fit_chat_window,
    states_filter,
)
from actorchestra.protocol.errors import ActorchestraError

logger = logging.getLogger(__name__)

T = TypeVar("T")
_CALL_TABLES = ("llm_calls", "tool_calls")


class DuckDBHistoryStore(HistoryStore):
    """Task history in a DuckDB file. `await DuckDBHistoryStore.open(config)` to use."""

    def __init__(self, config: HistoryConfig) -> None:
        """No I/O here (so a Ray actor can build one in `__init__`); `start()` opens."""
        self.config = config
        self._executor: ThreadPoolExecutor | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._buffer: WriteBehind | None = None
        self._seqs: OrderedDict[str, int] = OrderedDict()
        self._seq_lock = asyncio.Lock()
        self._state = "new"

    @classmethod
    async def open(cls, config: HistoryConfig) -> Self:
        store = cls(config)
        await store.start()
        return store

    async def start(self) -> None:
        """Open (and if needed create or migrate) the file on the store's own thread; an
        open store stays as it is (idempotent, as every store's `start`)."""
        if self._state == "open":
            return
        if self._state != "new":
            raise HistoryError(f"history store already {self._state}")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-duckdb")
        loop = asyncio.get_running_loop()
        try:
            self._con = await loop.run_in_executor(self._executor, self._open_sync)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._state = "closed"
            raise
        if self.config.flush_interval_s > 0:
            self._buffer = WriteBehind(
                functools.partial(self._submit, ops.write_appends),
                interval_s=self.config.flush_interval_s,
                flush_rows=self.config.flush_rows,
                max_rows=self.config.max_buffered_rows,
            )
            self._buffer.start()
        self._state = "open"
        logger.info("history store open at %s", self.config.path)

    def _open_sync(self) -> duckdb.DuckDBPyConnection:
        try:
            return ops.open_database(self.config)
        except duckdb.Error as exc:
            raise HistoryOpenError(
                f"cannot open history file {self.config.path}: {exc} (another process may "
                "hold it: DuckDB allows one writing process per file)"
            ) from exc

    async def close(self) -> None:
        if self._state != "open":
            self._state = "closed"
            return
        self._state = "closing"
        try:
            if self._buffer is not None:
                await self._buffer.close()
        finally:
            self._state = "closed"
            try:
                await self._submit(lambda con: con.close())
            finally:
                assert self._executor is not None
                self._executor.shutdown(wait=False)
                self._con = None
                logger.info("history store at %s closed", self.config.path)

    @property
    def buffered_rows(self) -> int:
        """Rows appended but not yet handed to DuckDB (a gauge for metrics and tests)."""
        return self._buffer.count if self._buffer is not None else 0

    async def flush(self) -> None:
        self._check_open()
        if self._buffer is not None:
            await self._buffer.flush()

    # -- the DuckDB thread ---------------------------------------------------------------

    def _submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue `fn(con, *args)` on the DuckDB thread (FIFO) and return its future."""
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, functools.partial(self._guard, fn, *args))

    def _guard(self, fn: Callable[..., T], *args: Any) -> T:
        """On the DuckDB thread: run, and translate DuckDB's errors to ours."""
        if self._con is None:
            raise HistoryClosedError("history store is closed")
        try:
            return fn(self._con, *args)
        except ActorchestraError:
            raise
        except (duckdb.Error, pa.ArrowException, ValueError, OverflowError) as exc:
            # ValueError/OverflowError: a value Arrow or JSON could not take (a token
            # count past int64, say); it is a failed write all the same.
            name = getattr(fn, "__name__", None) or getattr(fn, "func", fn).__name__
            raise HistoryError(f"history {name} failed: {exc}") from exc

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        self._check_open()
        return await self._submit(fn, *args)

    def _check_open(self) -> None:
        if self._state != "open":
            raise HistoryClosedError(f"history store is {self._state}, not open")

    async def _append(self, table: str, rows: list[Any]) -> None:
        if not rows:
            return
        self._check_open()
        if self._buffer is None:
            await self._submit(ops.write_appends, {table: rows})
        else:
            await self._buffer.add(table, rows)

    async def _flush_if_pending(self, *tables: str) -> None:
        self._check_open()
        if self._buffer is not None and self._buffer.has_pending(*tables):
            await self._buffer.flush()

    # -- tasks ---------------------------------------------------------------------------

    async def upsert_tasks(self, tasks: Sequence[TaskRecord]) -> None:
        if tasks:
            await self._call(ops.upsert_tasks, list(tasks))

    async def update_task(self, update: TaskUpdate, returning: bool = True) -> TaskRecord | None:
        return await self._call(ops.update_task, update.task_id, update.changes(), returning)

    async def get_task(self, task_id: str) -> TaskRecord | None:
        return await self._call(ops.get_task, task_id)

    async def get_task_detail(self, task_id: str) -> TaskDetail | None:
        await self._flush_if_pending(*_CALL_TABLES)
        found = await self._call(_task_detail_sync, task_id)
        if found is None:
            return None
        task, subtasks, usage = found
        return TaskDetail(
            task=task,
            subtasks=subtasks,
            usage=usage,
            last_event_seq=await self.last_event_seq(task_id),
        )

    async def list_tasks(
        self,
        *,
        state: str | Sequence[str] | None = None,
        user_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> TaskPage:
        check_limit(limit)
        rows = await self._call(
            functools.partial(
                ops.list_tasks,
                states=states_filter(state),
                user_id=user_id,
                since=since,
                until=until,
                after=decode_cursor(cursor) if cursor else None,
                limit=limit + 1,
            )
        )
        page = rows[:limit]
        nxt = encode_cursor(page[-1].created_at, page[-1].task_id) if len(rows) > limit else None
        return TaskPage(items=page, next_cursor=nxt)

    async def delete_task(self, task_id: str) -> bool:
        return await self._delete([task_id]) > 0

    async def prune_tasks(self, finished_before: datetime) -> int:
        doomed = await self._call(ops.finished_before, finished_before)
        return await self._delete(doomed)

    async def _delete(self, task_ids: list[str]) -> int:
        if not task_ids:
            return 0
        async with self._seq_lock:  # no seq is handed out for a task while it goes
            if self._buffer is not None:
                await self._buffer.flush()  # buffered children must go too
            removed = await self._call(ops.delete_tasks, task_ids)
            for task_id in task_ids:
                self._seqs.pop(task_id, None)
        return removed

    # -- subtasks ------------------------------------------------------------------------

    async def upsert_subtasks(self, subtasks: Sequence[SubtaskRecord]) -> None:
        if subtasks:
            await self._call(ops.upsert_subtasks, list(subtasks))

    async def subtasks(self, task_id: str) -> list[SubtaskRecord]:
        return await self._call(ops.subtasks, task_id)

    # -- events --------------------------------------------------------------------------

    async def append_events(self, events: Sequence[NewEvent]) -> list[int]:
        if not events:
            return []
        self._check_open()
        task_ids = {e.task_id for e in events}
        async with self._seq_lock:
            await self._load_seqs(task_ids)
            seqs = self._seqs
            rows: list[EventRow] = []
            for ev in events:
                seq = seqs[ev.task_id] + 1
                seqs[ev.task_id] = seq
                rows.append(EventRow(ev.task_id, seq, ev.kind, ev.data, ev.ts))
            # Inside the lock: a seq is never handed out before its row is buffered or
            # written, which is what `_load_seqs` counts on after an eviction.
            try:
                await self._append("events", rows)
            except BaseException:
                for task_id in task_ids:  # the cache may now be ahead of what was stored
                    seqs.pop(task_id, None)
                raise
            self._trim_seqs(task_ids)
        return [r.seq for r in rows]

    def _trim_seqs(self, recent: set[str]) -> None:
        """Mark `recent` as just used and keep the cache within its bound."""
        for task_id in recent:
            self._seqs.move_to_end(task_id)
        while len(self._seqs) > self.config.seq_cache_tasks:
            self._seqs.popitem(last=False)

    async def _load_seqs(self, task_ids: set[str]) -> None:
        """Put the last seq of each task into the cache (caller holds the seq lock)."""
        missing = [t for t in task_ids if t not in self._seqs]
        if not missing:
            return
        wanted = set(missing)
        buffered: dict[str, int] = {}
        if self._buffer is not None:  # taken before the query is queued: see _write_behind
            for ev in self._buffer.pending("events"):
                if ev.task_id in wanted and ev.seq > buffered.get(ev.task_id, 0):
                    buffered[ev.task_id] = ev.seq
        stored = await self._call(ops.max_seqs, missing)
        for task_id in missing:
            self._seqs[task_id] = max(stored.get(task_id, 0), buffered.get(task_id, 0))

    async def events_after(
        self, task_id: str, after_seq: int = 0, limit: int = MAX_PAGE
    ) -> list[EventRecord]:
        check_limit(limit)
        self._check_open()
        buffered: list[EventRecord] = []
        if self._buffer is not None:  # read through the buffer, taken before the query
            buffered = [
                e.record()
                for e in self._buffer.pending("events")
                if e.task_id == task_id and e.seq > after_seq
            ]
        stored = await self._call(ops.events_after, task_id, after_seq, limit)
        if not buffered:
            return stored
        by_seq = {e.seq: e for e in stored}
        by_seq.update((e.seq, e) for e in buffered)
        return [by_seq[s] for s in sorted(by_seq)[:limit]]

    async def last_event_seq(self, task_id: str) -> int:
        self._check_open()
        async with self._seq_lock:
            await self._load_seqs({task_id})
            last = self._seqs[task_id]
            self._trim_seqs({task_id})
            return last

    # -- model and tool calls ------------------------------------------------------------

    async def record_llm_calls(self, calls: Sequence[LLMCallRecord]) -> None:
        await self._append("llm_calls", list(calls))

    async def record_tool_calls(self, calls: Sequence[ToolCallRecord]) -> None:
        await self._append("tool_calls", list(calls))

    async def llm_calls(self, task_id: str, limit: int = MAX_PAGE) -> list[LLMCallRecord]:
        check_limit(limit)
        await self._flush_if_pending("llm_calls")
        return await self._call(ops.llm_calls, task_id, limit)

    async def tool_calls(self, task_id: str, limit: int = MAX_PAGE) -> list[ToolCallRecord]:
        check_limit(limit)
        await self._flush_if_pending("tool_calls")
        return await self._call(ops.tool_calls, task_id, limit)

    async def task_usage(self, task_id: str) -> TaskUsage:
        await self._flush_if_pending(*_CALL_TABLES)
        return await self._call(ops.task_usage, task_id)

    # -- chat memory ---------------------------------------------------------------------

    async def append_chat_turns(self, turns: Sequence[ChatTurn]) -> None:
        await self._append("chat_turns", list(turns))

    async def chat_turns(
        self,
        user_id: str,
        session_id: str | None = None,
        *,
        context_id: str | None = None,
        limit: int = 50,
        max_tokens: int | None = None,
    ) -> list[ChatTurn]:
        check_limit(limit)
        await self._flush_if_pending("chat_turns")
        newest = await self._call(
            ops.chat_turns_newest_first, user_id, session_id, context_id, limit
        )
        return fit_chat_window(newest, limit, max_tokens)

    async def delete_chat(self, user_id: str, session_id: str | None = None) -> int:
        await self._flush_if_pending("chat_turns")
        return await self._call(ops.delete_chat, user_id, session_id)


def _task_detail_sync(
    con: duckdb.DuckDBPyConnection, task_id: str
) -> tuple[TaskRecord, list[SubtaskRecord], TaskUsage] | None:
    """The task, its subtasks and usage in one trip to the DuckDB thread."""
    task = ops.get_task(con, task_id)
    if task is None:
        return None
    return task, ops.subtasks(con, task_id), ops.task_usage(con, task_id)
