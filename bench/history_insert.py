"""Event insert throughput of the DuckDB history store, beside a row-by-row baseline.

Rows/s for `append_events` through `DuckDBHistoryStore`:
- written through (no buffer), one `append_events` call per batch of 1,000 and 10,000;
- write-behind on, in calls of 10 events (a hot path's shape), timed until all is flushed;
and, in the same run, the raw insert paths on the same table: Arrow (what the store
uses), duckdb's row appender, and `executemany` (the baseline, on fewer rows).

Target: well over 100,000 rows/s batched. Records are built before the clock starts
(callers build them anyway); their construction rate is printed on its own line. Each
figure is the best of `--repeat` runs, each on a fresh file, because a 2-core machine
shared with other work is noisy.

Run: .venv/bin/python bench/history_insert.py [--rows 100000] [--baseline-rows 2000]
     [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import duckdb

from actorchestra.actors.history import HistoryConfig, NewEvent
from actorchestra.actors.history._duckdb_schema import EVENTS
from actorchestra.actors.history.duckdb_store import DuckDBHistoryStore
from actorchestra.actors.history.records import EventRecord, utc_now

TASKS = 100


def new_events(n: int, offset: int = 0) -> list[NewEvent]:
    return [
        NewEvent(
            task_id=f"task-{i % TASKS:03d}",
            kind="subtask.status",
            data={"i": offset + i, "state": "working", "message": "fetching page 3 of 7"},
        )
        for i in range(n)
    ]


def stored_events(n: int, start_seq: int) -> list[EventRecord]:
    now = utc_now()
    return [
        EventRecord(
            task_id=f"raw-{i % TASKS:03d}",
            seq=start_seq + i,
            kind="subtask.status",
            data={"i": i, "state": "working", "message": "fetching page 3 of 7"},
            ts=now,
        )
        for i in range(n)
    ]


async def through_store(path: Path, rows: int, batch: int) -> float:
    """rows/s for append_events in calls of `batch`, written through (no buffer)."""
    evs = new_events(rows)
    async with await DuckDBHistoryStore.open(HistoryConfig(path=path, flush_interval_s=0)) as s:
        await s.append_events(new_events(10))  # warm: schema, seq cache
        t0 = time.perf_counter()
        for i in range(0, rows, batch):
            await s.append_events(evs[i : i + batch])
        return rows / (time.perf_counter() - t0)


async def write_behind(path: Path, rows: int, call: int) -> tuple[float, float]:
    """(rows/s until flushed, mean µs per append_events call) with the buffer on."""
    evs = new_events(rows)
    cfg = HistoryConfig(path=path, flush_interval_s=0.05, flush_rows=10_000)
    async with await DuckDBHistoryStore.open(cfg) as s:
        await s.append_events(new_events(10))
        await s.flush()
        t0 = time.perf_counter()
        for i in range(0, rows, call):
            await s.append_events(evs[i : i + call])
        t_calls = time.perf_counter() - t0
        await s.flush()
        return rows / (time.perf_counter() - t0), t_calls / (rows / call) * 1e6


def raw_paths(path: Path, rows: int, baseline_rows: int) -> dict[str, float]:
    """rows/s for the raw insert paths on the store's own events table."""
    con = duckdb.connect(str(path))
    out: dict[str, float] = {}
    records = stored_events(rows, 1)
    t0 = time.perf_counter()
    for i in range(0, rows, 10_000):
        con.register("stage", EVENTS.to_arrow(records[i : i + 10_000]))
        con.execute(f"INSERT INTO events ({EVENTS.select_list}) SELECT * FROM stage")
        con.unregister("stage")
    out["arrow, batches of 10,000"] = rows / (time.perf_counter() - t0)

    def as_rows(recs: list[EventRecord]) -> list[tuple[object, ...]]:
        cols = EVENTS.columns
        return [tuple(c.out(getattr(r, c.name)) for c in cols) for r in recs]

    records = stored_events(rows, rows + 1)
    t0 = time.perf_counter()
    for i in range(0, rows, 10_000):
        appender = con.appender("events", columns=list(EVENTS.names))
        appender.append_rows(as_rows(records[i : i + 10_000]))
        appender.flush()
    out["appender, batches of 10,000"] = rows / (time.perf_counter() - t0)

    records = stored_events(baseline_rows, 2 * rows + 1)
    t0 = time.perf_counter()
    con.executemany(
        f"INSERT INTO events ({EVENTS.select_list}) VALUES (?, ?, ?, ?, ?)", as_rows(records)
    )
    out[f"executemany, {baseline_rows:,} rows"] = baseline_rows / (time.perf_counter() - t0)
    con.close()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--baseline-rows", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = range(args.repeat)

    with tempfile.TemporaryDirectory(prefix="history-bench-") as tmp:
        d = Path(tmp)
        t0 = time.perf_counter()
        new_events(args.rows)
        build = args.rows / (time.perf_counter() - t0)

        store = {
            b: max([await through_store(d / f"b{b}-{r}.duckdb", args.rows, b) for r in runs])
            for b in (1_000, 10_000)
        }
        wb = [await write_behind(d / f"wb-{r}.duckdb", args.rows, 10) for r in runs]
        wb_rate, wb_call_us = max(x[0] for x in wb), min(x[1] for x in wb)
        raws = []
        for r in runs:
            async with await DuckDBHistoryStore.open(HistoryConfig(path=d / f"raw-{r}.duckdb")):
                pass  # create the schema
            raws.append(raw_paths(d / f"raw-{r}.duckdb", args.rows, args.baseline_rows))
        raw = {k: max(x[k] for x in raws) for k in raws[0]}

    base = raw[f"executemany, {args.baseline_rows:,} rows"]
    print(
        f"\nhistory event inserts, {args.rows:,} rows over {TASKS} tasks (DuckDB file), "
        f"best of {args.repeat}"
    )
    print(f"{'path':<52}{'rows/s':>12}{'x executemany':>16}")
    lines = [
        *((f"store append_events, batches of {b:,}", r) for b, r in store.items()),
        ("store append_events, calls of 10, write-behind", wb_rate),
        *((f"raw {k}", v) for k, v in raw.items()),
    ]
    for name, rate in lines:
        print(f"{name:<52}{rate:>12,.0f}{rate / base:>15,.0f}x")
    print(f"write-behind: {wb_call_us:.1f} µs per append_events call of 10 events")
    print(f"NewEvent construction (not in the numbers above): {build:,.0f} records/s")
    best = max(store.values())
    verdict = "meets" if best >= 100_000 else "MISSES"
    print(f"target >= 100,000 rows/s batched: {verdict} ({best:,.0f})")


if __name__ == "__main__":
    asyncio.run(main())
