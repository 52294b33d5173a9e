"""The task history store: the interface every implementation keeps, and its contract.

Implementations: `memory_store.InMemoryHistoryStore` (bounded, for unit tests of callers)
and `duckdb_store.DuckDBHistoryStore` (the real one, one DuckDB file per runtime).

Contract, for every implementation:

- Writes take lists. A caller with one row hands a list of one; a hot path batches.
- Event sequence numbers start at 1 per task, have no gaps or duplicates, and follow the
  order of `append_events` calls (and the order inside one call). `events_after` sees
  every event whose `append_events` has returned, buffered or not: this is what lets an
  SSE client that reconnects with `Last-Event-ID` miss nothing.
- Task lists are ordered newest first by `(created_at, task_id)`. A cursor names a
  position in that order, not an offset, so tasks created while a client pages do not
  shift or repeat the pages it has not read yet.
- Results are plain records (see `records`), safe to pickle across Ray.
- Cancellation: a cancelled call may or may not have reached storage; a write that was
  handed over before the cancel is not rolled back. Nothing else is left half-done.
"""

from __future__ import annotations

import base64
import binascii
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from actorchestra.actors.history.errors import InvalidCursorError
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
    as_utc,
)
from actorchestra.actors.trusted import trusted
from actorchestra.protocol.errors import InvalidInputError

MAX_PAGE = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class HistoryStore(ABC):
    """Durable record of what the runtime did: tasks, subtasks, events, calls, chats."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:  # noqa: B027 - a store that opens nothing does nothing
        """Open the storage; idempotent."""

    @abstractmethod
    async def close(self) -> None:
        """Write what is buffered and release the storage; later calls fail."""

    async def flush(self) -> None:  # noqa: B027 - a store without a buffer has nothing to do
        """Write what is buffered now rather than at the next interval."""

    # -- tasks ---------------------------------------------------------------------------

    @abstractmethod
    async def upsert_tasks(self, tasks: Sequence[TaskRecord]) -> None:
        """Insert tasks or replace them whole; a stored task keeps its `created_at`."""

    @abstractmethod
    async def update_task(self, update: TaskUpdate, returning: bool = True) -> TaskRecord | None:
        """Change the fields `update` sets; the task as stored after, None if unknown.

        `returning=False`: the change only, None back (a writer that does not read the
        row back saves parsing it, which for a task with a large plan is most of the cost).
        """

    @abstractmethod
    async def get_task(self, task_id: str) -> TaskRecord | None:
        """One task, or None."""

    @abstractmethod
    async def get_task_detail(self, task_id: str) -> TaskDetail | None:
        """The task with its subtasks (plan order), usage and last event seq, or None."""

    @abstractmethod
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
        """Tasks newest first, filtered; `since` <= created_at < `until`.

        Pass the page's `next_cursor` (with the same filters) for the next page. A cursor
        this store did not make raises `InvalidCursorError`.
        """

    @abstractmethod
    async def delete_task(self, task_id: str) -> bool:
        """Remove a task with its subtasks, events and call records; False if unknown."""

    @abstractmethod
    async def prune_tasks(self, finished_before: datetime) -> int:
        """Delete (with cascade) finished tasks that finished before the cutoff; how many."""

    # -- subtasks ------------------------------------------------------------------------

    @abstractmethod
    async def upsert_subtasks(self, subtasks: Sequence[SubtaskRecord]) -> None:
        """Insert subtasks or replace them whole, keyed by (task_id, subtask_id)."""

    @abstractmethod
    async def subtasks(self, task_id: str) -> list[SubtaskRecord]:
        """A task's subtasks in plan order (`position`, then id)."""

    # -- events --------------------------------------------------------------------------

    @abstractmethod
    async def append_events(self, events: Sequence[NewEvent]) -> list[int]:
        """Store events; the sequence number given to each, in input order."""

    async def append_event_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """`append_events` for events as plain mappings with NewEvent's fields, trusted;
        `ts` may be a datetime or epoch seconds, other keys (the planner's `seq`) are
        not read.

        The planner emits thousands of events a second as dicts; a store that can take
        them as they are (the forwarding one) skips building a model for each.
        """
        return await self.append_events(
            [
                trusted(
                    NewEvent,
                    task_id=r["task_id"],
                    kind=r["kind"],
                    data=r["data"],
                    ts=r["ts"]
                    if isinstance(r["ts"], datetime)
                    else datetime.fromtimestamp(r["ts"], UTC),
                )
                for r in rows
            ]
        )

    @abstractmethod
    async def events_after(
        self, task_id: str, after_seq: int = 0, limit: int = MAX_PAGE
    ) -> list[EventRecord]:
        """The task's events with seq > `after_seq`, oldest first, at most `limit`."""

    @abstractmethod
    async def last_event_seq(self, task_id: str) -> int:
        """The highest seq given to the task's events, 0 when it has none."""

    # -- model and tool calls ------------------------------------------------------------

    @abstractmethod
    async def record_llm_calls(self, calls: Sequence[LLMCallRecord]) -> None:
        """Store model calls."""

    @abstractmethod
    async def record_tool_calls(self, calls: Sequence[ToolCallRecord]) -> None:
        """Store tool calls."""

    @abstractmethod
    async def llm_calls(self, task_id: str, limit: int = MAX_PAGE) -> list[LLMCallRecord]:
        """A task's model calls, oldest first."""

    @abstractmethod
    async def tool_calls(self, task_id: str, limit: int = MAX_PAGE) -> list[ToolCallRecord]:
        """A task's tool calls, oldest first."""

    @abstractmethod
    async def task_usage(self, task_id: str) -> TaskUsage:
        """Token, cost and call totals over the task's call records (zeros if none)."""

    # -- chat memory ---------------------------------------------------------------------

    @abstractmethod
    async def append_chat_turns(self, turns: Sequence[ChatTurn]) -> None:
        """Store conversation turns."""

    @abstractmethod
    async def chat_turns(
        self,
        user_id: str,
        session_id: str | None = None,
        *,
        context_id: str | None = None,
        limit: int = 50,
        max_tokens: int | None = None,
    ) -> list[ChatTurn]:
        """The latest turns, oldest first: at most `limit`, and, with `max_tokens`, only
        as many of the newest as fit the budget (what goes into the next prompt)."""

    @abstractmethod
    async def delete_chat(self, user_id: str, session_id: str | None = None) -> int:
        """Forget a session's turns (or all of the user's); how many were removed."""


# -- helpers both implementations share --------------------------------------------------


def check_limit(limit: int, maximum: int = MAX_PAGE) -> int:
    """`limit` if it is 1..maximum; an out-of-range page size is the caller's mistake."""
    if not 1 <= limit <= maximum:
        raise InvalidInputError(f"limit must be between 1 and {maximum}, got {limit}")
    return limit


def states_filter(state: str | Sequence[str] | None) -> list[str] | None:
    """The `state` argument of `list_tasks` as a list, or None for "any"."""
    if state is None:
        return None
    return [state] if isinstance(state, str) else list(state)


def encode_cursor(created_at: datetime, task_id: str) -> str:
    """An opaque, URL-safe position after the task `(created_at, task_id)`."""
    micros = (as_utc(created_at) - _EPOCH) // timedelta(microseconds=1)
    raw = json.dumps(["t1", micros, task_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; anything this store did not encode is refused."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        tag, micros, task_id = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if tag != "t1" or not isinstance(micros, int) or not isinstance(task_id, str):
            raise ValueError("unknown cursor layout")
        return _EPOCH + timedelta(microseconds=micros), task_id
    except (ValueError, TypeError, UnicodeError, binascii.Error, OverflowError):
        raise InvalidCursorError(f"not a task-list cursor: {cursor[:80]!r}") from None


def fit_chat_window(
    newest_first: Iterable[ChatTurn], limit: int, max_tokens: int | None
) -> list[ChatTurn]:
    """The newest turns that fit `limit` and `max_tokens`, returned oldest first.

    Stops at the first turn that would go over the budget rather than skipping it, so
    the window is always a contiguous tail of the conversation.
    """
    picked: list[ChatTurn] = []
    used = 0
    for turn in newest_first:
        if len(picked) >= limit:
            break
        if max_tokens is not None and used + turn.tokens > max_tokens:
            break
        used += turn.tokens
        picked.append(turn)
    picked.reverse()
    return picked


__all__ = [
    "MAX_PAGE",
    "ChatTurn",
    "EventRecord",
    "HistoryStore",
    "LLMCallRecord",
    "NewEvent",
    "SubtaskRecord",
    "TaskDetail",
    "TaskPage",
    "TaskRecord",
    "TaskUpdate",
    "TaskUsage",
    "ToolCallRecord",
    "check_limit",
    "decode_cursor",
    "encode_cursor",
    "fit_chat_window",
    "states_filter",
]
