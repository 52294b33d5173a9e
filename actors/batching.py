"""Adaptive batching of actor calls: no added latency when idle, big batches under load.

Every actor call costs about 2 to 3 ms of CPU on each side here, more than the work of
an echo request itself. A `Batcher` sends an item at once when fewer than
`max_outstanding` batch calls are in flight; otherwise the item waits for the next
call, which takes everything queued so far. At concurrency 1 that is one call per
item; at concurrency 64 it is a few calls carrying dozens of items each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741
R = TypeVar("R")


class Batcher(Generic[I, R]):
    """Coalesces concurrent `call`s into `submit(list_of_items)` calls.

    `submit` returns one result per item, in order; a result that is an exception is
    raised to that item's caller alone. If `submit` itself raises, every item of the
    batch gets that exception. Cancelling a caller abandons its result, not the batch.
    """

    def __init__(
        self,
        submit: Callable[[list[I]], Awaitable[list[R | BaseException]]],
        max_outstanding: int = 2,
        max_batch: int = 256,
        name: str = "batcher",
    ) -> None:
        self._submit = submit
        self._max_outstanding = max_outstanding
        self._max_batch = max_batch
        self._name = name
        self._queue: list[tuple[I, asyncio.Future[R]]] = []
        self._outstanding = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def call(self, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._kick()
        return await future

    def _kick(self) -> None:
        while self._queue and self._outstanding < self._max_outstanding:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            self._outstanding += 1
            task = asyncio.create_task(self._run(batch), name=f"{self._name}-flush")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        try:
            results = await self._submit([item for item, _ in batch])
        except BaseException as e:  # delivered to every waiter; the batch task itself ends
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
            if isinstance(e, asyncio.CancelledError):
                raise
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        finally:
            self._outstanding -= 1
            self._kick()
