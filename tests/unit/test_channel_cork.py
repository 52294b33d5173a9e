"""The channel's corked writer: frames written in one loop turn leave together after it,
in order; past its limit they leave at once. Checked on a real socket pair, from the
receiving end."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest

from actorchestra.protocol.channel import CorkedWriter


@contextlib.asynccontextmanager
async def _pair() -> AsyncIterator[tuple[asyncio.StreamWriter, socket.socket]]:
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    _, writer = await asyncio.open_connection(sock=ours)
    try:
        yield writer, theirs
    finally:
        writer.close()
        theirs.close()


def _received(sock: socket.socket) -> bytes:
    out = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := sock.recv(1 << 20):
            out += chunk
    return out


async def test_frames_written_in_one_turn_leave_together_after_it() -> None:
    async with _pair() as (writer, theirs):
        corked = CorkedWriter(writer)
        for frame in (b"one;", b"two;", b"three;"):
            corked.write(frame)
        assert _received(theirs) == b""  # nothing has left during the turn
        await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        assert _received(theirs) == b"one;two;three;"
        corked.write(b"four;")  # the next turn's frames are corked again
        await asyncio.sleep(0.01)
        assert _received(theirs) == b"four;"


async def test_frames_past_the_limit_leave_at_once_in_order() -> None:
    async with _pair() as (writer, theirs):
        corked = CorkedWriter(writer, limit=10)
        corked.write(b"12345")
        assert _received(theirs) == b""
        corked.write(b"67890")  # 10 bytes pending: out now, within this turn
        assert _received(theirs) == b"1234567890"  # a socketpair delivers a write at once
        corked.write(b"tail")
        await asyncio.sleep(0.01)
        assert _received(theirs) == b"tail"


async def test_a_closed_writer_drops_what_is_pending_without_raising() -> None:
    async with _pair() as (writer, theirs):
        corked = CorkedWriter(writer)
        corked.write(b"late")
        writer.close()
        await asyncio.sleep(0.01)  # the flush finds the writer closing: nothing sent
        assert _received(theirs) == b""


@pytest.mark.parametrize("limit", [1, 1 << 20])
async def test_a_flush_with_nothing_pending_sends_nothing(limit: int) -> None:
    async with _pair() as (writer, theirs):
        corked = CorkedWriter(writer, limit=limit)
        corked.flush()
        await asyncio.sleep(0.01)
        assert _received(theirs) == b""


def test_a_write_with_no_loop_running_goes_at_once() -> None:
    """An async generator closed after its loop stopped still sends its CLOSE_STREAM."""
    loop = asyncio.new_event_loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    try:
        _, writer = loop.run_until_complete(asyncio.open_connection(sock=ours))
        corked = CorkedWriter(writer)
        corked.write(b"bye")  # no running loop: nothing to wait for
        assert _received(theirs) == b"bye"
        writer.close()
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
        theirs.close()
