"""Task events: numbered, recorded in the history store, fanned out to live readers.

Emitting is synchronous and cheap: events gather in a list and one flush (scheduled on
the next loop turn) hands them to the store in a single `append_events` call, which
assigns the per-task `seq`. Live readers get events after they are numbered. A reader
that (re)connects subscribes first, then replays from the store, then drains its
queue skipping what the replay covered: nothing is lost between the two.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from actorchestra.actors.history.records import NewEvent
from actorchestra.actors.history.store import HistoryStore
from actorchestra.actors.planner.models import EventKind, TaskEvent

logger = logging.getLogger(__name__)

_QUEUE_BOUND = 10_000  # a reader this far behind is cut off (it can reconnect and replay)


class _Closed:
    pass


_CLOSED = _Closed()


class EventLog:
    def __init__(self, store: HistoryStore) -> None:
        self._store = store
        self._pending: list[tuple[NewEvent, float]] = []
        self._flush_task: asyncio.Task[None] | None = None
        self._readers: dict[str, set[asyncio.Queue[TaskEvent | _Closed]]] = {}

    def emit(self, task_id: str, kind: EventKind, data: dict[str, Any] | None = None) -> None:
        now = time.time()
        self._pending.append((NewEvent(task_id=task_id, kind=kind.value, data=data or {}), now))
        if self._flush_task is None:
            self._flush_task = asyncio.get_running_loop().create_task(
                self._flush(), name="planner-event-flush"
            )
            self._flush_task.add_done_callback(_log_failure)

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                seqs = await self._store.append_events([e for e, _ in batch])
                for (event, ts), seq in zip(batch, seqs, strict=True):
                    self._publish(
                        TaskEvent(
                            task_id=event.task_id,
                            seq=seq,
                            kind=EventKind(event.kind),
                            data=event.data if isinstance(event.data, dict) else {},
                            ts=ts,
                        )
                    )
        finally:
            self._flush_task = None

    async def drain(self) -> None:
        """Wait until every emitted event is numbered and published."""
        while self._flush_task is not None:
            await asyncio.shield(self._flush_task)

    def _publish(self, event: TaskEvent) -> None:
        readers = self._readers.get(event.task_id, ())
        for queue in list(readers):
            try:
                queue.put_nowait(event)
                if event.kind == EventKind.FINAL:
                    queue.put_nowait(_CLOSED)
            except asyncio.QueueFull:
                readers.discard(queue)
                logger.warning("an event reader of task %s fell behind; cut off", event.task_id)

    async def read(
        self, task_id: str, after_seq: int, finished: bool
    ) -> AsyncIterator[list[TaskEvent]]:
        """Every event after `after_seq`, then live ones until the final event, in batches.

        A batch is a replay page, or whatever live events are queued at once: a reader
        far behind a fast task catches up in a few hops instead of one per event.
        """
        queue: asyncio.Queue[TaskEvent | _Closed] = asyncio.Queue(_QUEUE_BOUND)
        self._readers.setdefault(task_id, set()).add(queue)
        try:
            last = after_seq
            await self.drain()
            while True:
                page = await self._store.events_after(task_id, last, 1000)
                out: list[TaskEvent] = []
                for record in page:
                    last = record.seq
                    out.append(
                        TaskEvent(
                            task_id=task_id,
                            seq=record.seq,
                            kind=EventKind(record.kind),
                            data=record.data if isinstance(record.data, dict) else {},
                            ts=record.ts.timestamp(),
                        )
                    )
                    if record.kind == EventKind.FINAL.value:
                        yield out
                        return
                if out:
                    yield out
                if len(page) < 1000:
                    break
            if finished:
                return
            while True:
                items = [await queue.get()]
                while not queue.empty():
                    items.append(queue.get_nowait())
                out = []
                for item in items:
                    if isinstance(item, _Closed):
                        if out:
                            yield out
                        return
                    if item.seq <= last:
                        continue
                    last = item.seq
                    out.append(item)
                    if item.kind == EventKind.FINAL:
                        yield out
                        return
                if out:
                    yield out
        finally:
            readers = self._readers.get(task_id)
            if readers is not None:
                readers.discard(queue)
                if not readers:
                    self._readers.pop(task_id, None)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("recording task events failed: %r", task.exception())
