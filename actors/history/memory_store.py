"""A small in-memory history store for unit tests of the store's callers.

Same contract as the DuckDB store, with bounds instead of a disk: at most `max_tasks`
tasks (the oldest inserted go first, with everything that hangs off them), a bounded
number of events per task, call records and chat turns. Nothing here awaits, so every
method runs to completion without interleaving and needs no lock.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from datetime import datetime

from actorchestra.actors.history.errors import HistoryClosedError
from actorchestra.actors.history.records import (
    FINISHED_STATES,
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
from actorchestra.actors.history.store import (
    MAX_PAGE,
    HistoryStore,
    check_limit,
    decode_cursor,
    encode_cursor,
    fit_chat_window,
    states_filter,
)


class InMemoryHistoryStore(HistoryStore):
    """Bounded, process-local history. Not durable; not for production."""

    def __init__(
        self,
        *,
        max_tasks: int = 10_000,
        max_events_per_task: int = 10_000,
        max_calls: int = 100_000,
        max_turns_per_session: int = 1_000,
    ) -> None:
        self._max_tasks = max_tasks
        self._max_events = max_events_per_task
        self._max_turns = max_turns_per_session
        self._tasks: OrderedDict[str, TaskRecord] = OrderedDict()
        self._subtasks: dict[str, dict[str, SubtaskRecord]] = {}
        self._events: OrderedDict[str, deque[EventRecord]] = OrderedDict()
        self._last_seq: dict[str, int] = {}
        self._llm: deque[LLMCallRecord] = deque(maxlen=max_calls)
        self._tools: deque[ToolCallRecord] = deque(maxlen=max_calls)
        self._chat: OrderedDict[tuple[str, str], deque[ChatTurn]] = OrderedDict()
        self._closed = False

    async def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise HistoryClosedError("history store is closed")

    # -- tasks ---------------------------------------------------------------------------

    async def upsert_tasks(self, tasks: Sequence[TaskRecord]) -> None:
        self._check_open()
        for task in tasks:
            old = self._tasks.get(task.task_id)
            if old is not None:
                task = task.model_copy(update={"created_at": old.created_at})
            self._tasks[task.task_id] = task
        while len(self._tasks) > self._max_tasks:
            self._cascade(next(iter(self._tasks)))

    async def update_task(self, update: TaskUpdate, returning: bool = True) -> TaskRecord | None:
        self._check_open()
        old = self._tasks.get(update.task_id)
        if old is None:
            return None
        new = old.model_copy(update=update.changes())
        self._tasks[update.task_id] = new
        return new if returning else None

    async def get_task(self, task_id: str) -> TaskRecord | None:
        self._check_open()
        return self._tasks.get(task_id)

    async def get_task_detail(self, task_id: str) -> TaskDetail | None:
        task = await self.get_task(task_id)
        if task is None:
            return None
        return TaskDetail(
            task=task,
            subtasks=await self.subtasks(task_id),
            usage=await self.task_usage(task_id),
            last_event_seq=self._last_seq.get(task_id, 0),
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
        self._check_open()
        check_limit(limit)
        states = states_filter(state)
        after = decode_cursor(cursor) if cursor else None
        lo = as_utc(since) if since else None
        hi = as_utc(until) if until else None
        rows = [
            t
            for t in self._tasks.values()
            if (states is None or t.state in states)
            and (user_id is None or t.user_id == user_id)
            and (lo is None or t.created_at >= lo)
            and (hi is None or t.created_at < hi)
            and (after is None or (t.created_at, t.task_id) < after)
        ]
        rows.sort(key=lambda t: (t.created_at, t.task_id), reverse=True)
        page = rows[:limit]
        more = len(rows) > limit
        nxt = encode_cursor(page[-1].created_at, page[-1].task_id) if more else None
        return TaskPage(items=page, next_cursor=nxt)

    async def delete_task(self, task_id: str) -> bool:
        self._check_open()
        known = task_id in self._tasks or task_id in self._events
        self._cascade(task_id)
        return known

    async def prune_tasks(self, finished_before: datetime) -> int:
        self._check_open()
        cutoff = as_utc(finished_before)
        doomed = [
            t.task_id
            for t in self._tasks.values()
            if t.state in FINISHED_STATES and t.finished_at is not None and t.finished_at < cutoff
        ]
        for task_id in doomed:
            self._cascade(task_id)
        return len(doomed)

    def _cascade(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)
        self._subtasks.pop(task_id, None)
        self._events.pop(task_id, None)
        self._last_seq.pop(task_id, None)
        for calls in (self._llm, self._tools):
            kept = [c for c in calls if c.task_id != task_id]
            if len(kept) != len(calls):
                calls.clear()
                calls.extend(kept)  # type: ignore[arg-type]

    # -- subtasks ------------------------------------------------------------------------

    async def upsert_subtasks(self, subtasks: Sequence[SubtaskRecord]) -> None:
        self._check_open()
        for sub in subtasks:
            self._subtasks.setdefault(sub.task_id, {})[sub.subtask_id] = sub

    async def subtasks(self, task_id: str) -> list[SubtaskRecord]:
        self._check_open()
        subs = self._subtasks.get(task_id, {}).values()
        return sorted(subs, key=lambda s: (s.position, s.subtask_id))

    # -- events --------------------------------------------------------------------------

    async def append_events(self, events: Sequence[NewEvent]) -> list[int]:
        self._check_open()
        seqs: list[int] = []
        for ev in events:
            seq = self._last_seq.get(ev.task_id, 0) + 1
            self._last_seq[ev.task_id] = seq
            log = self._events.get(ev.task_id)
            if log is None:
                log = self._events[ev.task_id] = deque(maxlen=self._max_events)
                while len(self._events) > self._max_tasks:
                    old, _ = self._events.popitem(last=False)
                    self._last_seq.pop(old, None)
            log.append(
                EventRecord(task_id=ev.task_id, seq=seq, kind=ev.kind, data=ev.data, ts=ev.ts)
            )
            seqs.append(seq)
        return seqs

    async def events_after(
        self, task_id: str, after_seq: int = 0, limit: int = MAX_PAGE
    ) -> list[EventRecord]:
        self._check_open()
        check_limit(limit)
        out = [e for e in self._events.get(task_id, ()) if e.seq > after_seq]
        return out[:limit]

    async def last_event_seq(self, task_id: str) -> int:
        self._check_open()
        return self._last_seq.get(task_id, 0)

    # -- model and tool calls ------------------------------------------------------------

    async def record_llm_calls(self, calls: Sequence[LLMCallRecord]) -> None:
        self._check_open()
        self._llm.extend(calls)

    async def record_tool_calls(self, calls: Sequence[ToolCallRecord]) -> None:
        self._check_open()
        self._tools.extend(calls)

    async def llm_calls(self, task_id: str, limit: int = MAX_PAGE) -> list[LLMCallRecord]:
        self._check_open()
        check_limit(limit)
        return [c for c in self._llm if c.task_id == task_id][:limit]

    async def tool_calls(self, task_id: str, limit: int = MAX_PAGE) -> list[ToolCallRecord]:
        self._check_open()
        check_limit(limit)
        return [c for c in self._tools if c.task_id == task_id][:limit]

    async def task_usage(self, task_id: str) -> TaskUsage:
        self._check_open()
        llm = [c for c in self._llm if c.task_id == task_id]
        tools = [c for c in self._tools if c.task_id == task_id]
        return TaskUsage(
            task_id=task_id,
            prompt_tokens=sum(c.prompt_tokens for c in llm),
            completion_tokens=sum(c.completion_tokens for c in llm),
            cost_usd=sum(c.cost_usd for c in llm),
            llm_calls=len(llm),
            llm_errors=sum(1 for c in llm if c.error is not None),
            llm_latency_s=sum(c.latency_s for c in llm),
            tool_calls=len(tools),
            tool_errors=sum(1 for c in tools if c.error is not None),
        )

    # -- chat memory ---------------------------------------------------------------------

    async def append_chat_turns(self, turns: Sequence[ChatTurn]) -> None:
        self._check_open()
        for turn in turns:
            key = (turn.user_id, turn.session_id)
            log = self._chat.get(key)
            if log is None:
                log = self._chat[key] = deque(maxlen=self._max_turns)
                while len(self._chat) > self._max_tasks:
                    self._chat.popitem(last=False)
            log.append(turn)

    async def chat_turns(
        self,
        user_id: str,
        session_id: str | None = None,
        *,
        context_id: str | None = None,
        limit: int = 50,
        max_tokens: int | None = None,
    ) -> list[ChatTurn]:
        self._check_open()
        check_limit(limit)
        turns = [
            t
            for (user, session), log in self._chat.items()
            if user == user_id and (session_id is None or session == session_id)
            for t in log
            if context_id is None or t.context_id == context_id
        ]
        # Stable sort: equal timestamps keep insertion order, as the DuckDB store does.
        turns.sort(key=lambda t: t.ts)
        return fit_chat_window(reversed(turns), limit, max_tokens)

    async def delete_chat(self, user_id: str, session_id: str | None = None) -> int:
        self._check_open()
        keys = [
            k for k in self._chat if k[0] == user_id and (session_id is None or k[1] == session_id)
        ]
        return sum(len(self._chat.pop(k)) for k in keys)
