"""Coalescing a model's token stream into artifact chunks.

A model streams one token at a time; publishing each as an A2A artifact update would
cost one event (and one SSE frame, one push, one task-store write) per token: thousands
for a long answer. `coalesce` batches pieces into chunks of about `max_chars`, but
never holds text back longer than `max_wait_s` after the previous flush, and sends
the very first piece at once, so time to first token stays what the model gives.

The wait is a real timer, not a check made when the next token happens to arrive: a
model that pauses mid-answer (or runs a tool) still has its buffered text flushed
on time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from actorchestra.actors.agent import Chunk


@dataclass(frozen=True)
class CoalesceOptions:
    """When buffered text goes out: at `max_chars`, or `max_wait_s` after the last flush."""

    max_chars: int = 64
    max_wait_s: float = 0.03


async def _next(source: AsyncIterator[str]) -> str | None:
    """The next piece, or None at the end (a task should not raise StopAsyncIteration)."""
    try:
        return await anext(source)
    except StopAsyncIteration:
        return None


async def coalesce(
    source: AsyncIterator[str], options: CoalesceOptions | None = None
) -> AsyncIterator[Chunk]:
    """Chunks of `source`'s text; the last one (possibly empty) has `last=True`.

    `source` runs in a helper task, so the timer can fire while it waits; that task is
    cancelled and `source` closed when this generator ends, however it ends.
    Exceptions from `source` propagate after the text before them has been flushed
    (as a non-last chunk).
    """
    opts = options or CoalesceOptions()
    loop = asyncio.get_running_loop()
    buffer: list[str] = []
    size = 0
    last_flush: float | None = None  # None until the first flush: that one goes at once
    pending: asyncio.Task[str | None] | None = None

    def take() -> str:
        nonlocal size, last_flush
        text = "".join(buffer)
        buffer.clear()
        size = 0
        last_flush = loop.time()
        return text

    try:
        while True:
            if pending is None:
                pending = asyncio.create_task(_next(source), name="coalesce-next-piece")
            timeout = None
            if buffer and last_flush is not None:
                timeout = max(0.0, last_flush + opts.max_wait_s - loop.time())
            done, _ = await asyncio.wait({pending}, timeout=timeout)
            if not done:  # the source is slow: send what has waited long enough
                yield Chunk(take())
                continue
            finished, pending = pending, None
            try:
                piece = finished.result()
            except BaseException:
                if buffer:
                    yield Chunk(take())
                raise
            if piece is None:
                break
            if not piece:
                continue
            buffer.append(piece)
            size += len(piece)
            if (
                last_flush is None
                or size >= opts.max_chars
                or loop.time() - last_flush >= opts.max_wait_s
            ):
                yield Chunk(take())
        yield Chunk(take(), last=True)
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
