"""What the planner reads back from its history store, and what it leaves there.

Running tasks live in the planner's memory (`service`); a finished one is read back
from the store as a `TaskView`, an ended one's subtasks go in as records, and a planner
that starts ends the tasks its predecessor left unfinished (`end_interrupted`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from actorchestra.actors.history.records import (
    NewEvent,
    SubtaskRecord,
    TaskDetail,
    TaskRecord,
    TaskUpdate,
)
from actorchestra.actors.history.store import MAX_PAGE, HistoryStore
from actorchestra.actors.planner.events import last_recorded
from actorchestra.actors.planner.models import (
    FINISHED,
    EventKind,
    Plan,
    SubtaskState,
    SubtaskView,
    TaskState,
    TaskView,
    Usage,
)
from actorchestra.actors.trusted import trusted

logger = logging.getLogger(__name__)

INTERRUPTED = (
    "interrupted: the planner running this task stopped (restarted or shut down) before it "
    "ended; submit it again"
)
_END_AT_ONCE = 16  # unfinished tasks ended at a time: their store calls overlap


async def end_interrupted(store: HistoryStore) -> None:
    """End the tasks the history holds as unfinished when this planner starts.

    A task runs in the planner's memory: one that was pending, planning or running
    when its planner stopped (killed, crashed, its node lost, the runtime shut down
    under it) has nothing running it any more. Each is recorded as failed, with a
    final event saying why, so that a client following it (or resuming its stream
    after the restart) gets an ending instead of a task that stays "running".
    """
    unfinished = [s.value for s in TaskState if s not in FINISHED]
    records: list[TaskRecord] = []
    cursor: str | None = None
    while True:
        page = await store.list_tasks(state=unfinished, limit=MAX_PAGE, cursor=cursor)
        records += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    if not records:
        return
    now = time.time()
    finals: list[NewEvent] = []
    calls = asyncio.Semaphore(_END_AT_ONCE)

    async def end(r: TaskRecord) -> None:
        async with calls:
            final = await _end_one(store, r, now)
        if final is not None:
            finals.append(final)

    async with asyncio.TaskGroup() as group:
        for r in records:
            group.create_task(end(r))
    if finals:
        await store.append_events(finals)
    logger.warning(
        "%d task(s) were unfinished when the last planner stopped; now ended: %s",
        len(records),
        ", ".join(r.task_id for r in records[:10]) + (" ..." if len(records) > 10 else ""),
    )


async def _end_one(store: HistoryStore, r: TaskRecord, now: float) -> NewEvent | None:
    """End one unfinished task's row; its final event to append, if it has none yet."""
    # It may have ended with its final event recorded but not yet its row: the row
    # then takes the ending the event gives, and no second final is written.
    last = await last_recorded(store, r.task_id)
    final = None
    if last is not None and last.kind == EventKind.FINAL.value and isinstance(last.data, dict):
        data = last.data
        state, error, result = data.get("state"), data.get("error"), data.get("result")
        if state not in FINISHED:
            state, error = TaskState.FAILED.value, INTERRUPTED
    else:
        state, error, result = TaskState.FAILED.value, INTERRUPTED, None
        usage = Usage(
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
            cost_usd=r.cost_usd,
        )
        data = {"state": state, "result": None, "error": error, "usage": usage.model_dump()}
        final = NewEvent(task_id=r.task_id, kind=EventKind.FINAL.value, data=data, ts=dt(now))
    await store.update_task(
        TaskUpdate(
            task_id=r.task_id,
            state=str(state),
            error=error,
            result=jsonable(result),
            finished_at=dt(now),
        ),
        returning=False,
    )
    return final


def dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return str(value)


def view_from_task_record(record: TaskRecord) -> TaskView:
    return TaskView(
        task_id=record.task_id,
        state=TaskState(record.state),
        input=str(record.input or ""),
        user_id=record.user_id or None,
        session_id=record.session_id,
        plan=Plan.model_validate(record.plan) if isinstance(record.plan, dict) else None,
        result=record.result,
        error=record.error,
        usage=Usage(
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            cost_usd=record.cost_usd,
        ),
        created_at=record.created_at.timestamp(),
        updated_at=record.updated_at.timestamp(),
        finished_at=record.finished_at.timestamp() if record.finished_at else None,
    )


def view_from_detail(detail: TaskDetail) -> TaskView:
    view = view_from_task_record(detail.task)
    view.subtasks = [
        SubtaskView(
            id=s.subtask_id,
            skill=s.skill,
            agent=s.agent,
            state=SubtaskState(s.state),
            input=str(s.input or ""),
            depends_on=list(s.depends_on),
            attempts=s.attempts,
            output=s.output,
            error=s.error,
            started_at=s.started_at.timestamp() if s.started_at else None,
            finished_at=s.finished_at.timestamp() if s.finished_at else None,
        )
        for s in detail.subtasks
    ]
    return view


def subtask_records(task_id: str, subtasks: Sequence[SubtaskView]) -> list[SubtaskRecord]:
    """An ended task's subtasks as the store keeps them, in plan order."""
    return [
        trusted(  # built from checked views: no revalidation
            SubtaskRecord,
            task_id=task_id,
            subtask_id=s.id,
            state=s.state.value,
            position=i,
            skill=s.skill,
            agent=s.agent,
            input=s.input,
            depends_on=s.depends_on,
            attempts=s.attempts,
            output=jsonable(s.output),
            error=s.error,
            started_at=dt(s.started_at),
            finished_at=dt(s.finished_at),
        )
        for i, s in enumerate(subtasks)
    ]
