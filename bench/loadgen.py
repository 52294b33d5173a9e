"""A lean HTTP/1.1 load generator: keep-alive connections, pre-encoded requests.

httpx costs 1 to 9 ms of client CPU per request here, which would make the client
the bottleneck; raw asyncio streams cost a few tens of microseconds. Runs in its own
process (see `run_load`) so its CPU is not the server's.

Run: python bench/loadgen.py URL CONCURRENCY DURATION_S  -> prints JSON stats
"""

from __future__ import annotations

import asyncio
import itertools
import json
import resource
import statistics
import sys
import time
import urllib.parse

BODY = (
    '{"jsonrpc":"2.0","id":%d,"method":"SendMessage","params":{"message":'
    '{"messageId":"m-%d","role":"ROLE_USER","parts":[{"text":"hello"}]}}}'
)


async def _worker(
    host: str,
    port: int,
    path: str,
    counter: itertools.count,
    stop_at: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        "A2A-Version: 1.0\r\nConnection: keep-alive\r\n"
    )
    try:
        while time.perf_counter() < stop_at:
            n = next(counter)
            body = (BODY % (n, n)).encode()
            request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
            t0 = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            payload = await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if b" 200 " not in status_line or b'"error"' in payload:
                errors.append(status_line.decode().strip() + " " + payload[:200].decode())
    finally:
        writer.close()


async def run(url: str, concurrency: int, duration_s: float) -> dict[str, float | int]:
    parsed = urllib.parse.urlparse(url)
    host, port, path = parsed.hostname or "127.0.0.1", parsed.port or 80, parsed.path or "/"
    latencies: list[float] = []
    errors: list[str] = []
    counter = itertools.count()
    # Warm up: one request per connection before the clock starts.
    await asyncio.gather(
        *(
            _worker(host, port, path, counter, time.perf_counter() + 0.3, [], [])
            for _ in range(concurrency)
        )
    )
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await asyncio.gather(
        *(
            _worker(host, port, path, counter, t0 + duration_s, latencies, errors)
            for _ in range(concurrency)
        )
    )
    elapsed = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    lat = sorted(latencies)
    return {
        "requests": len(lat),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "rps": len(lat) / elapsed,
        "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
        "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))] if lat else float("nan"),
        "client_cpu_ms_per_req": 1000 * cpu / max(len(lat), 1),
    }


if __name__ == "__main__":
    url, conc, dur = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(asyncio.run(run(url, conc, dur))))
