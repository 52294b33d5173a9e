"""The client's Server-Sent Events framing (`actorchestra.client.sse_data`), checked
against a line-by-line reading of the format over every way a stream can be chunked."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

from actorchestra.client import sse_data


def _reference(stream: bytes) -> list[bytes]:
    """The format's own reading: lines end in CRLF, LF or CR; a blank line dispatches."""
    text = stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    out: list[bytes] = []
    data: list[bytes] | None = None
    lines = text.split(b"\n")
    for line in lines[:-1]:  # the last piece has no line end yet: not a line
        if not line:
            if data is not None:
                out.append(b"\n".join(data))
            data = None
        elif line.startswith(b"data:"):
            value = line[5:]
            (data := data if data is not None else []).append(
                value[1:] if value.startswith(b" ") else value
            )
    return out


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _read(parts: list[bytes]) -> list[bytes]:
    async def collect() -> list[bytes]:
        return [d async for d in sse_data(_chunks(parts))]

    return asyncio.run(collect())


STREAM = (
    b'id: 1\nevent: planned\ndata: {"seq": 1}\n\n'
    b": a comment\n\n"
    b'id: 2\ndata:{"no": "space"}\n\n'
    b"data: first line\ndata:  second, one space kept\n\n"
    b"event: no-data\n\n"
    b"id: 3\r\ndata: crlf\r\n\r\n"
    b"data: cr\r\r"
    b"data: mixed\r\n\n"
    b"data: \n\n"
    b"data: unfinished at the end\n"
)


def test_whole_stream() -> None:
    assert (
        _read([STREAM])
        == _reference(STREAM)
        == [
            b'{"seq": 1}',
            b'{"no": "space"}',
            b"first line\n second, one space kept",
            b"crlf",
            b"cr",
            b"mixed",
            b"",
        ]
    )


def test_every_split_in_two_and_in_single_bytes() -> None:
    expected = _reference(STREAM)
    for cut in range(len(STREAM) + 1):
        assert _read([STREAM[:cut], STREAM[cut:]]) == expected, cut
    assert _read([STREAM[i : i + 1] for i in range(len(STREAM))]) == expected


def test_random_chunkings() -> None:
    rng = random.Random(7)
    expected = _reference(STREAM)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(STREAM)), rng.randint(1, 12)))
        parts = [STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)], strict=True)]
        assert _read(parts) == expected, cuts


def test_a_cr_that_ends_the_stream_ends_its_line() -> None:
    assert _read([b"data: last\r", b"\r"]) == [b"last"]
    assert _read([b"data: last\r\r"]) == [b"last"]
    assert _read([b"data: last\r"]) == []  # a line end, but no blank line after it


def test_empty_chunks_and_empty_stream() -> None:
    assert _read([]) == []
    assert _read([b"", b"data: x\n", b"", b"\n", b""]) == [b"x"]
