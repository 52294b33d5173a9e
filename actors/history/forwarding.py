"""A history store in another process: every call forwarded, the store itself elsewhere.

The DuckDB store runs its writes on a thread that holds the GIL for stretches of 2 to 9
ms (Arrow and JSON work, DuckDB itself); in the planner's process that stalled the event
loop that dispatches subtasks. `HistoryHost` (a plain class; `actors.planner.actor`
makes it the `history` actor) owns the store in a process of its own, and
`ForwardingHistoryStore` is the `HistoryStore` the planner holds: each method is one call
through `call(method, args, kwargs)`, whatever transport that is.

Lists of records travel as `RecordRows` (each record's field values, read on the host
as attributes, without revalidation: the planner made them), and the Ray transport pickles the
call itself with the standard C pickler (`pack_call` / `HistoryHost.call_packed`):
Ray's cloudpickle took 11 ms for the 2,000 events of one fan-out, in the planner's
loop, against 2 ms for the rows. Events, thousands a task, travel by column
(`EventColumns`: their data as one JSON document, their times as epoch seconds): the
rows with a datetime each cost the planner 15-20 ms of its loop per 2,000 events.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from actorchestra.actors.history.config import HistoryConfig
from actorchestra.actors.history.errors import HistoryClosedError
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
from actorchestra.actors.history.store import MAX_PAGE, HistoryStore
from actorchestra.actors.json_codec import json_bytes, json_loads

Call = Callable[[str, tuple[Any, ...], dict[str, Any]], Awaitable[Any]]

# What a forwarded call may name: the store's own API, nothing else of the object.
METHODS = frozenset(
    {
        "flush",
        "upsert_tasks",
        "update_task",
        "get_task",
        "get_task_detail",
        "list_tasks",
        "delete_task",
        "prune_tasks",
        "upsert_subtasks",
        "subtasks",
        "append_events",
        "events_after",
        "last_event_seq",
        "record_llm_calls",
        "record_tool_calls",
        "llm_calls",
        "tool_calls",
        "task_usage",
        "append_chat_turns",
        "chat_turns",
        "delete_chat",
    }
)


# The record types whose lists travel as rows.
_RECORD_TYPES = frozenset(
    cls.__name__
    for cls in (TaskRecord, SubtaskRecord, NewEvent, LLMCallRecord, ToolCallRecord, ChatTurn)
)


@dataclass
class RecordRows:
    """A list of records of one type, as their field values (see the module doc)."""

    kind: str
    rows: list[dict[str, Any]]


def _rows(records: Sequence[Any]) -> RecordRows | list[Any]:
    kinds = {type(r).__name__ for r in records}
    if len(kinds) != 1 or next(iter(kinds)) not in _RECORD_TYPES:
        return list(records)  # empty, mixed or foreign: as they are
    return RecordRows(kinds.pop(), [dict(r.__dict__) for r in records])


@dataclass
class EventColumns:
    """New events by column: a task's events share one task id string (pickled once),
    their data is one JSON array, their times epoch seconds (no datetime objects to
    build and pickle in the planner's loop)."""

    task_ids: list[str]
    kinds: list[str]
    data: bytes
    ts: list[float]

    @classmethod
    def of(cls, rows: Sequence[Mapping[str, Any]]) -> EventColumns:
        return cls(
            [r["task_id"] for r in rows],
            [r["kind"] for r in rows],
            json_bytes([r["data"] for r in rows]),
            [_epoch(r["ts"]) for r in rows],
        )

    def rows(self) -> list[SimpleNamespace]:
        data = json_loads(self.data)
        return [  # columns of different lengths: ValueError from the strict zip
            SimpleNamespace(task_id=t, kind=k, data=d, ts=datetime.fromtimestamp(s, UTC))
            for t, k, d, s in zip(self.task_ids, self.kinds, data, self.ts, strict=True)
        ]


def _epoch(ts: datetime | float) -> float:
    return ts.timestamp() if isinstance(ts, datetime) else float(ts)


def _records(value: Any) -> Any:
    """Rows back as records for the host's DuckDB store, which reads a record's fields as
    attributes and nothing else: a SimpleNamespace costs 0.4 µs where `model_construct`
    costs 7 (3,000 records a fan-out task)."""
    if isinstance(value, EventColumns):
        return value.rows()
    if not isinstance(value, RecordRows):
        return value
    if value.kind not in _RECORD_TYPES:
        raise ValueError(f"not a history record type: {value.kind!r}")
    return [SimpleNamespace(**row) for row in value.rows]


def pack_call(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """One forwarded call as bytes for `HistoryHost.call_packed` (same-cluster, trusted)."""
    return pickle.dumps((method, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)


class HistoryHost:
    """Owns the DuckDB store in its own process; answers forwarded calls."""

    def __init__(self, path: str) -> None:
        # One DuckDB thread: the runtime's writes are small and frequent, and a second
        # thread took CPU from the planner and the agents on a small machine (measured:
        # less CPU per 1,000-subtask task with one, the same wall time).
        self._config = HistoryConfig(path=path, threads=1)
        self._store: HistoryStore | None = None
        self._lock = asyncio.Lock()

    async def _opened(self) -> HistoryStore:
        if self._store is None:
            async with self._lock:
                if self._store is None:
                    from actorchestra.actors.history.duckdb_store import DuckDBHistoryStore

                    self._store = await DuckDBHistoryStore.open(self._config)
        return self._store

    async def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if method not in METHODS:
            raise ValueError(f"not a history store method: {method!r}")
        store = await self._opened()
        return await getattr(store, method)(*map(_records, args), **kwargs)

    async def call_packed(self, payload: bytes) -> Any:
        """A call packed by `pack_call` (from the planner's process)."""
        method, args, kwargs = pickle.loads(payload)  # our own planner's bytes, as Ray sends
        return await self.call(method, args, kwargs)

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()


class ForwardingHistoryStore(HistoryStore):
    """`HistoryStore` whose every call runs in a `HistoryHost` elsewhere."""

    def __init__(self, call: Call) -> None:
        self._call = call
        self._closed = False

    async def _do(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise HistoryClosedError("history store is closed")
        return await self._call(method, args, kwargs)

    async def close(self) -> None:
        """Later calls through this handle fail; the host's store outlives it."""
        self._closed = True

    async def flush(self) -> None:
        await self._do("flush")

    async def upsert_tasks(self, tasks: Sequence[TaskRecord]) -> None:
        await self._do("upsert_tasks", _rows(tasks))

    async def update_task(self, update: TaskUpdate, returning: bool = True) -> TaskRecord | None:
        return await self._do("update_task", update, returning)

    async def get_task(self, task_id: str) -> TaskRecord | None:
        return await self._do("get_task", task_id)

    async def get_task_detail(self, task_id: str) -> TaskDetail | None:
        return await self._do("get_task_detail", task_id)

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
        return await self._do(
            "list_tasks",
            state=state,
            user_id=user_id,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )

    async def delete_task(self, task_id: str) -> bool:
        return await self._do("delete_task", task_id)

    async def prune_tasks(self, finished_before: datetime) -> int:
        return await self._do("prune_tasks", finished_before)

    async def upsert_subtasks(self, subtasks: Sequence[SubtaskRecord]) -> None:
        await self._do("upsert_subtasks", _rows(subtasks))

    async def subtasks(self, task_id: str) -> list[SubtaskRecord]:
        return await self._do("subtasks", task_id)

    async def append_events(self, events: Sequence[NewEvent]) -> list[int]:
        return await self._do("append_events", _rows(events))

    async def append_event_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        return await self._do("append_events", EventColumns.of(rows))

    async def events_after(
        self, task_id: str, after_seq: int = 0, limit: int = MAX_PAGE
    ) -> list[EventRecord]:
        return await self._do("events_after", task_id, after_seq, limit)

    async def last_event_seq(self, task_id: str) -> int:
        return await self._do("last_event_seq", task_id)

    async def record_llm_calls(self, calls: Sequence[LLMCallRecord]) -> None:
        await self._do("record_llm_calls", _rows(calls))

    async def record_tool_calls(self, calls: Sequence[ToolCallRecord]) -> None:
        await self._do("record_tool_calls", _rows(calls))

    async def llm_calls(self, task_id: str, limit: int = MAX_PAGE) -> list[LLMCallRecord]:
        return await self._do("llm_calls", task_id, limit)

    async def tool_calls(self, task_id: str, limit: int = MAX_PAGE) -> list[ToolCallRecord]:
        return await self._do("tool_calls", task_id, limit)

    async def task_usage(self, task_id: str) -> TaskUsage:
        return await self._do("task_usage", task_id)

    async def append_chat_turns(self, turns: Sequence[ChatTurn]) -> None:
        await self._do("append_chat_turns", _rows(turns))

    async def chat_turns(
        self,
        user_id: str,
        session_id: str | None = None,
        *,
        context_id: str | None = None,
        limit: int = 50,
        max_tokens: int | None = None,
    ) -> list[ChatTurn]:
        return await self._do(
            "chat_turns",
            user_id,
            session_id,
            context_id=context_id,
            limit=limit,
            max_tokens=max_tokens,
        )

    async def delete_chat(self, user_id: str, session_id: str | None = None) -> int:
        return await self._do("delete_chat", user_id, session_id)
