"""Write-behind for append-only rows: buffer, then write many rows in one commit.

A hot path (the planner emitting events, an agent recording a model call) should pay
for a list append, not for a DuckDB commit. Rows wait here per table and are handed to
the writer together when `flush_rows` are waiting or `interval_s` after the first one
arrived; there is no timer while the buffer is empty.

Ordering guarantee the store relies on: a flush takes the pending rows and submits them
to the DuckDB thread in one synchronous step, and that thread runs jobs in order. So
every row is at any moment either in `pending()` or in a job queued ahead of any read
submitted later: a reader that looks at `pending()` and then queries misses nothing.

A background flush that fails drops its batch (retrying a poisoned batch forever would
stall every writer behind the backpressure limit), logs it once, and the error is raised
to the next caller of `add` or `flush`, so it is never silently lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from actorchestra.actors.history.errors import HistoryError

logger = logging.getLogger(__name__)

Batch = dict[str, list[Any]]
Submit = Callable[[Batch], "asyncio.Future[int]"]


class WriteBehind:
    """Pending rows per table and the named background task that writes them."""

    def __init__(
        self, submit: Submit, *, interval_s: float, flush_rows: int, max_rows: int
    ) -> None:
        self._submit = submit
        self._interval_s = interval_s
        self._flush_rows = flush_rows
        self._max_rows = max_rows
        self._pending: Batch = {}
        self._count = 0
        self._has_rows = asyncio.Event()
        self._full = asyncio.Event()
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="history-write-behind")
        self._task.add_done_callback(self._on_task_done)

    @property
    def count(self) -> int:
        """Rows waiting, all tables together."""
        return self._count

    def pending(self, table: str) -> list[Any]:
        """The rows of `table` not yet handed to the writer (do not keep the list)."""
        return self._pending.get(table, [])

    def has_pending(self, *tables: str) -> bool:
        return any(self._pending.get(t) for t in tables)

    async def add(self, table: str, rows: list[Any]) -> None:
        """Queue rows; waits for a flush only when the buffer is over its hard limit."""
        self._raise_earlier_failure()
        self._pending.setdefault(table, []).extend(rows)
        self._count += len(rows)
        self._has_rows.set()
        if self._count >= self._flush_rows:
            self._full.set()
        if self._count >= self._max_rows:
            await self.flush()

    async def flush(self) -> None:
        """Write what is pending and wait until every earlier write is done."""
        self._raise_earlier_failure()
        await self._flush_once()

    async def close(self) -> None:
        """Let the background task finish its round, then write what is left.

        The task is told to stop rather than cancelled: cancelling it while its batch
        waits in the DuckDB thread's queue would cancel the job and lose the rows."""
        self._closing = True
        self._has_rows.set()
        self._full.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self._flush_once()  # write what is left before reporting an older failure
        self._raise_earlier_failure()

    def _take(self) -> Batch:
        batch, self._pending, self._count = self._pending, {}, 0
        self._has_rows.clear()
        self._full.clear()
        return batch

    async def _flush_once(self) -> None:
        # _take and _submit in one synchronous step: see the module docstring.
        job = self._submit(self._take())
        try:
            # Shielded: the rows are no longer pending, so a cancelled caller must not
            # cancel the job that writes them (other callers' rows are in it too).
            await asyncio.shield(job)
        except asyncio.CancelledError:
            job.add_done_callback(self._after_cancelled_wait)
            raise

    def _after_cancelled_wait(self, job: asyncio.Future[int]) -> None:
        if not job.cancelled() and job.exception() is not None:
            logger.error("history write-behind: a flush failed", exc_info=job.exception())
            self._error = job.exception()

    async def _run(self) -> None:
        while not self._closing:
            await self._has_rows.wait()
            if self._closing:
                return  # close() writes the rest
            if not self._full.is_set():
                try:
                    async with asyncio.timeout(self._interval_s):
                        await self._full.wait()
                except TimeoutError:
                    pass
            rows = self._count
            try:
                await self._flush_once()
            except Exception as exc:
                logger.exception("history write-behind: a flush of %s rows failed", rows)
                self._error = exc

    def _raise_earlier_failure(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise HistoryError(
                f"an earlier buffered history write failed and its rows were dropped: {error}"
            ) from error

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("history write-behind task stopped", exc_info=task.exception())
