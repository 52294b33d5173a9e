"""Task events: numbered, published to live readers at once, recorded behind.

Emitting is synchronous and cheap: the event gets its task's next `seq` here (the
planner creates every task it emits for, so numbering starts at 1 with the task, as
the history store numbers them too), goes to every live reader's queue, joins the
task's in-memory log, and waits for the next flush, which hands everything emitted
since the last one to the store in a single `append_events` call. Readers never wait
for the store: a busy DuckDB costs the stream nothing.

A task's in-memory log lives until its final event is recorded; a reader of such a
task replays from memory, one of an older task from the store. Either way the reader
subscribes first, then replays, then drains its queue skipping what the replay
covered: nothing is lost and nothing comes twice.

Events are plain JSON-ready dicts, made once and sent as they are: `task_id`, `seq`
(the SSE id; Last-Event-ID resumes after it), `kind` (an `EventKind` value), `data` and
`ts` (seconds since the epoch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from actorchestra.actors.history.records import EventRecord
from actorchestra.actors.history.store import HistoryStore
from actorchestra.actors.planner.models import EventKind

logger = logging.getLogger(__name__)

_QUEUE_BOUND = 10_000  # a reader this far behind reads on from the log instead
PAGE = 1000  # events per replayed batch
# How long a live reader's batch stays open for the events that follow its first. Each
# batch is one item of a Ray stream to the ingress (about 0.4 ms of CPU across the two
# processes): subtasks finishing one at a time, every millisecond or so, made a batch
# each. The final event is never held.
GATHER_S = 0.01
_FINAL = EventKind.FINAL.value

Event = dict[str, Any]  # {"task_id", "seq", "kind", "data", "ts"}
_BEHIND: list[Event] = []  # a reader's inbox filled up: it reads on from the log


class _Reader:
    """One live reader's inbox: events gather here until it takes them, all at once."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed = False  # the final event is in (or the reader was cut off)
        self.cut_off = False
        self.wake = asyncio.Event()
        self.urgent = asyncio.Event()  # closed: what is in goes out now
        self.gone = asyncio.Event()  # the reader is done: its last batch was taken on

    def put(self, event: Event) -> None:
        if len(self.events) >= _QUEUE_BOUND:
            self.closed = self.cut_off = True
        else:
            self.events.append(event)
            self.closed = event["kind"] == _FINAL
        self.wake.set()
        if self.closed:
            self.urgent.set()

    def put_many(self, events: list[Event]) -> None:
        """`put` for each of `events` (none of them final)."""
        room = _QUEUE_BOUND - len(self.events)
        if len(events) > room:
            for event in events:
                self.put(event)
            return
        self.events.extend(events)
        self.wake.set()

    async def take(self) -> list[Event]:
        """What came in, once something has: events that follow within `GATHER_S` of
        the first join it, except after the final event, which goes out at once."""
        await self.wake.wait()
        if not self.closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(GATHER_S):
                    await self.urgent.wait()
        self.wake.clear()
        out, self.events = self.events, []
        return out


class EventLog:
    def __init__(self, store: HistoryStore, record_every_s: float = 0.0) -> None:
        self._store = store
        self._record_every_s = record_every_s
        self._pending: list[Event] = []
        self._flush_task: asyncio.Task[None] | None = None
        self._live: dict[str, list[Event]] = {}  # task id -> its events, until recorded
        self._readers: dict[str, set[_Reader]] = {}

    def open(self, task_id: str) -> None:
        """A new task: its readers replay from memory even before its first event."""
        self._live.setdefault(task_id, [])

    def emit(self, task_id: str, kind: EventKind, data: dict[str, Any] | None = None) -> None:
        log = self._live.setdefault(task_id, [])
        event: Event = {
            "task_id": task_id,
            "seq": log[-1]["seq"] + 1 if log else 1,
            "kind": kind._value_,  # `.value` goes through enum's descriptor: 5x slower
            "data": data or {},
            "ts": time.time(),
        }
        log.append(event)
        self._pending.append(event)
        for reader in self._readers.get(task_id, ()):
            reader.put(event)
        self._flush_soon()

    def emit_many(self, task_id: str, kind: EventKind, datas: list[dict[str, Any]]) -> None:
        """`emit` for each of `datas`, in order, with one timestamp: a sweep's thousand
        subtask-started events at once."""
        if not datas:
            return
        log = self._live.setdefault(task_id, [])
        seq = log[-1]["seq"] if log else 0
        value, now = kind._value_, time.time()
        events: list[Event] = [
            {"task_id": task_id, "seq": seq + i, "kind": value, "data": data, "ts": now}
            for i, data in enumerate(datas, start=1)
        ]
        log.extend(events)
        self._pending.extend(events)
        for reader in self._readers.get(task_id, ()):
            reader.put_many(events)
        self._flush_soon()

    def _flush_soon(self) -> None:
        if self._flush_task is None:
            self._flush_task = asyncio.get_running_loop().create_task(
                self._flush(), name="planner-event-flush"
            )
            self._flush_task.add_done_callback(_log_failure)

    async def _flush(self) -> None:
        try:
            while self._pending:
                if self._record_every_s:
                    await asyncio.sleep(self._record_every_s)  # gather a larger batch
                batch, self._pending = self._pending, []
                # the planner's own events as they are: no copy, no revalidation
                seqs = await self._store.append_event_rows(batch)
                for event, seq in zip(batch, seqs, strict=True):
                    if seq != event["seq"]:
                        logger.error(
                            "task %s: event %s was recorded as %s",
                            event["task_id"],
                            event["seq"],
                            seq,
                        )
                    if event["kind"] == EventKind.FINAL.value:
                        # Recorded to the end: readers from now on replay from the store.
                        self._live.pop(event["task_id"], None)
        finally:
            self._flush_task = None

    async def drain(self) -> None:
        """Wait until every emitted event is recorded."""
        while self._flush_task is not None:
            await asyncio.shield(self._flush_task)

    async def read(
        self, task_id: str, after_seq: int, finished: bool
    ) -> AsyncIterator[list[Event]]:
        """Every event after `after_seq`, then live ones until the final event, in batches.

        A batch is a replay page, or whatever live events are queued at once: a reader
        far behind a fast task catches up in a few hops instead of one per event. A
        reader whose inbox fills up (it took nothing while `_QUEUE_BOUND` events came)
        lets it go and reads on from the log: memory stays bounded, the stream goes on.
        """
        last = after_seq
        while True:
            behind = False
            # closed with this generator: the reader leaves at once, not at collection
            async with contextlib.aclosing(self._read_from(task_id, last, finished)) as batches:
                async for batch in batches:
                    if batch is _BEHIND:
                        behind = True
                        break
                    last = batch[-1]["seq"]
                    yield batch
            if not behind:
                return
            logger.info("an event reader of task %s fell behind; it reads on from the log", task_id)

    async def _read_from(
        self, task_id: str, after_seq: int, finished: bool
    ) -> AsyncIterator[list[Event]]:
        """`read`, up to the final event or until the reader's inbox fills (`_BEHIND`)."""
        reader = _Reader()
        self._readers.setdefault(task_id, set()).add(reader)
        try:
            last = after_seq
            log = self._live.get(task_id)
            if log is not None:
                # No await between subscribing and this copy: the reader's inbox holds
                # everything after it.
                replay = [e for e in log if e["seq"] > after_seq]
                for start in range(0, len(replay), PAGE):
                    page = replay[start : start + PAGE]
                    last = page[-1]["seq"]
                    yield page
                    if page[-1]["kind"] == EventKind.FINAL.value:
                        return
                if log and log[-1]["kind"] == EventKind.FINAL.value:
                    # Ended, its events not yet recorded, the reader at or past the end:
                    # nothing more will come (it would wait for ever), and past the end
                    # it gets the final event, as from the store (`_final_before`).
                    if after_seq > log[-1]["seq"]:
                        yield [log[-1]]
                    return
            else:
                async for page in self._replay(task_id, after_seq):
                    last = page[-1]["seq"]
                    yield page
                    if page[-1]["kind"] == EventKind.FINAL.value:
                        return
                if finished:
                    if last == after_seq:  # nothing after the resume point
                        beyond = await self._final_before(task_id, after_seq)
                        if beyond is not None:
                            yield [beyond]
                    return
            while True:
                taken = await reader.take()
                closed, cut_off = reader.closed, reader.cut_off  # as of what was taken
                fresh = [e for e in taken if e["seq"] > last]
                if fresh:
                    last = fresh[-1]["seq"]
                    yield fresh
                if cut_off:
                    yield _BEHIND
                    return
                if closed or (fresh and fresh[-1]["kind"] == EventKind.FINAL.value):
                    return
        finally:
            # Reached when the consumer asks past the last batch: for a Ray streaming
            # call, once that batch has been shipped.
            reader.gone.set()
            readers = self._readers.get(task_id)
            if readers is not None:
                readers.discard(reader)
                if not readers:
                    self._readers.pop(task_id, None)

    async def shipped(self, task_id: str, at_most_s: float) -> None:
        """Wait (at most `at_most_s`) until the task's live readers are done with it.

        After the final event, the planner builds the task's records: tens of
        milliseconds of Python for a large task, during which a streaming reply
        (serialised on Ray's thread, which needs the GIL) would wait. Readers first.
        """
        readers = self._readers.get(task_id)
        if not readers:
            return
        waits = [asyncio.ensure_future(r.gone.wait()) for r in readers]
        try:
            await asyncio.wait(waits, timeout=at_most_s)
        finally:
            for w in waits:
                w.cancel()

    async def _final_before(self, task_id: str, after_seq: int) -> Event | None:
        """The final event of an ended task whose recorded events stop short of
        `after_seq`, else None.

        A reader resumes past the recorded end when its task's planner stopped with
        events sent to it but not yet recorded (they are recorded every
        `record_every_s`): the next planner ended the task with a final event
        numbered after the last recorded one. That event is the reader's ending,
        though its seq is below the resume point: without it the stream would close
        empty, and a client that resumes again would get the same, for ever.
        """
        last = await last_recorded(self._store, task_id)
        if last is None or last.seq >= after_seq or last.kind != EventKind.FINAL.value:
            return None
        return _event(task_id, last)

    async def _replay(self, task_id: str, after_seq: int) -> AsyncIterator[list[Event]]:
        """Recorded events after `after_seq`, a page at a time, up to the final one."""
        last = after_seq
        while True:
            page = await self._store.events_after(task_id, last, PAGE)
            out: list[Event] = []
            for record in page:
                last = record.seq
                out.append(_event(task_id, record))
                if record.kind == EventKind.FINAL.value:
                    break
            if out:
                yield out
                if out[-1]["kind"] == EventKind.FINAL.value:
                    return
            if len(page) < PAGE:
                return


async def last_recorded(store: HistoryStore, task_id: str) -> EventRecord | None:
    """A task's last recorded event; None while it has none."""
    last_seq = await store.last_event_seq(task_id)
    if not last_seq:
        return None
    page = await store.events_after(task_id, last_seq - 1, 1)
    return page[0] if page else None


def _event(task_id: str, record: EventRecord) -> Event:
    """A recorded event as readers get it."""
    return {
        "task_id": task_id,
        "seq": record.seq,
        "kind": record.kind,
        "data": record.data if isinstance(record.data, dict) else {},
        "ts": record.ts.timestamp(),
    }


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("recording task events failed: %r", task.exception())
