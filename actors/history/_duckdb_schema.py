"""The history file's tables, and the conversions between records and Arrow or rows.

Writes go in as Arrow tables (`INSERT INTO t SELECT * FROM <registered arrow>`): on this
machine that measured 270,000-580,000 rows/s for event batches of 10,000 (values already
converted), against 140,000-200,000 for duckdb's row appender and under 1,000 for
`executemany`; `bench/history_insert.py` prints the current numbers.

Timestamps are stored as naive UTC `TIMESTAMP`: reading `TIMESTAMPTZ` back into Python
needs `pytz`, which this project does not depend on. JSON payloads are `JSON` columns.

`events` has no primary key on purpose: a unique index on (task_id, seq) halved insert
throughput here, and the store is the only writer, assigning seqs under a lock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, NamedTuple

import pyarrow as pa
from pydantic import BaseModel
from pydantic_core import to_json

from actorchestra.actors.history.records import (
    ChatTurn,
    EventRecord,
    LLMCallRecord,
    SubtaskRecord,
    TaskRecord,
    ToolCallRecord,
    as_utc,
)
from actorchestra.actors.trusted import trusted

SCHEMA_VERSION = 1

DDL_V1: tuple[str, ...] = (
    """CREATE TABLE tasks (
        task_id VARCHAR PRIMARY KEY,
        user_id VARCHAR NOT NULL,
        state VARCHAR NOT NULL,
        session_id VARCHAR,
        context_id VARCHAR,
        input JSON,
        plan JSON,
        result JSON,
        error VARCHAR,
        prompt_tokens BIGINT NOT NULL DEFAULT 0,
        completion_tokens BIGINT NOT NULL DEFAULT 0,
        cost_usd DOUBLE NOT NULL DEFAULT 0,
        metadata JSON,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP
    )""",
    """CREATE TABLE subtasks (
        task_id VARCHAR NOT NULL,
        subtask_id VARCHAR NOT NULL,
        state VARCHAR NOT NULL,
        position INTEGER NOT NULL DEFAULT 0,
        skill VARCHAR,
        agent VARCHAR,
        input JSON,
        depends_on VARCHAR[],
        attempts INTEGER NOT NULL DEFAULT 0,
        output JSON,
        error VARCHAR,
        started_at TIMESTAMP,
        finished_at TIMESTAMP,
        PRIMARY KEY (task_id, subtask_id)
    )""",
    """CREATE TABLE events (
        task_id VARCHAR NOT NULL,
        seq BIGINT NOT NULL,
        kind VARCHAR NOT NULL,
        data JSON,
        ts TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE llm_calls (
        model VARCHAR NOT NULL,
        call_id VARCHAR,
        task_id VARCHAR,
        subtask_id VARCHAR,
        agent VARCHAR,
        operation VARCHAR NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cost_usd DOUBLE NOT NULL,
        latency_s DOUBLE NOT NULL,
        error VARCHAR,
        started_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE tool_calls (
        name VARCHAR NOT NULL,
        call_id VARCHAR,
        task_id VARCHAR,
        subtask_id VARCHAR,
        agent VARCHAR,
        arguments JSON,
        result JSON,
        error VARCHAR,
        started_at TIMESTAMP NOT NULL,
        duration_ms DOUBLE NOT NULL
    )""",
    "CREATE SEQUENCE chat_turn_ids",
    """CREATE TABLE chat_turns (
        turn_id BIGINT NOT NULL DEFAULT nextval('chat_turn_ids'),
        user_id VARCHAR NOT NULL,
        session_id VARCHAR NOT NULL,
        role VARCHAR NOT NULL,
        content VARCHAR NOT NULL,
        context_id VARCHAR,
        tokens INTEGER NOT NULL,
        ts TIMESTAMP NOT NULL
    )""",
)

# version -> statements that bring a file from version-1 to version.
MIGRATIONS: dict[int, tuple[str, ...]] = {1: DDL_V1}


def _json_out(value: Any) -> str | None:
    # pydantic-core's encoder: ~0.6 µs a value against ~3 for json.dumps. NaN and the
    # infinities become null, because DuckDB's JSON type (rightly) refuses them and one
    # bad value would fail a whole buffered batch.
    if value is None:
        return None
    return to_json(value, inf_nan_mode="null").decode()


def _json_in(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def ts_param(value: datetime | None) -> datetime | None:
    """A parameter for a TIMESTAMP column: naive UTC; a naive input is taken as UTC."""
    return None if value is None else as_utc(value).replace(tzinfo=None)


def _ts_in(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def _same(value: Any) -> Any:
    return value


def _plain_array(values: list[Any], arrow: pa.DataType) -> pa.Array:
    return pa.array(values, type=arrow)


def _json_array(values: list[Any], arrow: pa.DataType) -> pa.Array:
    return pa.array([_json_out(v) for v in values], type=arrow)


def _ts_array(values: list[Any], arrow: pa.DataType) -> pa.Array:
    # Arrow converts aware datetimes to UTC in C; dropping the zone keeps the UTC value.
    return pa.array(values, type=_TS_UTC).cast(arrow)


_JSON = pa.string()
_TS = pa.timestamp("us")
_TS_UTC = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Column:
    """One column: its Arrow type, how a record's values become an Arrow array (writes)
    or a SQL parameter (`out`), and how a fetched value becomes a record field (`into`)."""

    name: str
    arrow: pa.DataType
    out: Callable[[Any], Any] = _same
    into: Callable[[Any], Any] = _same
    array: Callable[[list[Any], pa.DataType], pa.Array] = _plain_array


def _json(name: str) -> Column:
    return Column(name, _JSON, _json_out, _json_in, _json_array)


def _ts(name: str) -> Column:
    return Column(name, _TS, ts_param, _ts_in, _ts_array)


def _s(name: str) -> Column:
    return Column(name, pa.string())


@dataclass(frozen=True)
class TableSpec:
    """A table's written columns, and the record type a selected row becomes."""

    table: str
    record: type[BaseModel]
    columns: tuple[Column, ...]
    keep: frozenset[str] = frozenset()  # columns an upsert leaves as they were

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def select_list(self) -> str:
        return ", ".join(self.names)

    def to_arrow(self, rows: Sequence[Any]) -> pa.Table:
        """Records (or anything with the same attributes) as one Arrow table, built
        column by column: a few µs a row where row-wise conversion costs tens."""
        arrays = []
        for col in self.columns:
            get = attrgetter(col.name)
            arrays.append(col.array([get(r) for r in rows], col.arrow))
        return pa.Table.from_arrays(arrays, names=list(self.names))

    def from_rows(self, rows: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Rows selected with `select_list` as records, trusted (they came from us)."""
        cols = self.columns
        record = self.record
        return [
            trusted(record, **{c.name: c.into(v) for c, v in zip(cols, row, strict=True)})
            for row in rows
        ]


class EventRow(NamedTuple):
    """An event on its way to the table: a tenth of the cost of building an
    `EventRecord`, which matters at hundreds of thousands of events a second."""

    task_id: str
    seq: int
    kind: str
    data: Any
    ts: datetime

    def record(self) -> EventRecord:
        return trusted(
            EventRecord,
            task_id=self.task_id,
            seq=self.seq,
            kind=self.kind,
            data=self.data,
            ts=self.ts,
        )


TASKS = TableSpec(
    "tasks",
    TaskRecord,
    (
        _s("task_id"),
        _s("user_id"),
        _s("state"),
        _s("session_id"),
        _s("context_id"),
        _json("input"),
        _json("plan"),
        _json("result"),
        _s("error"),
        Column("prompt_tokens", pa.int64()),
        Column("completion_tokens", pa.int64()),
        Column("cost_usd", pa.float64()),
        Column("metadata", _JSON, _json_out, lambda v: _json_in(v) or {}, _json_array),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("finished_at"),
    ),
    frozenset({"task_id", "created_at"}),
)

SUBTASKS = TableSpec(
    "subtasks",
    SubtaskRecord,
    (
        _s("task_id"),
        _s("subtask_id"),
        _s("state"),
        Column("position", pa.int32()),
        _s("skill"),
        _s("agent"),
        _json("input"),
        Column("depends_on", pa.list_(pa.string()), _same, lambda v: list(v or ())),
        Column("attempts", pa.int32()),
        _json("output"),
        _s("error"),
        _ts("started_at"),
        _ts("finished_at"),
    ),
    frozenset({"task_id", "subtask_id"}),
)

EVENTS = TableSpec(
    "events",
    EventRecord,
    (_s("task_id"), Column("seq", pa.int64()), _s("kind"), _json("data"), _ts("ts")),
)

LLM_CALLS = TableSpec(
    "llm_calls",
    LLMCallRecord,
    (
        _s("model"),
        _s("call_id"),
        _s("task_id"),
        _s("subtask_id"),
        _s("agent"),
        _s("operation"),
        Column("prompt_tokens", pa.int64()),
        Column("completion_tokens", pa.int64()),
        Column("cost_usd", pa.float64()),
        Column("latency_s", pa.float64()),
        _s("error"),
        _ts("started_at"),
    ),
)

TOOL_CALLS = TableSpec(
    "tool_calls",
    ToolCallRecord,
    (
        _s("name"),
        _s("call_id"),
        _s("task_id"),
        _s("subtask_id"),
        _s("agent"),
        _json("arguments"),
        _json("result"),
        _s("error"),
        _ts("started_at"),
        Column("duration_ms", pa.float64()),
    ),
)

# turn_id is left to its sequence default, so it is not among the written columns.
CHAT_TURNS = TableSpec(
    "chat_turns",
    ChatTurn,
    (
        _s("user_id"),
        _s("session_id"),
        _s("role"),
        _s("content"),
        _s("context_id"),
        Column("tokens", pa.int32()),
        _ts("ts"),
    ),
)

SPECS: dict[str, TableSpec] = {
    s.table: s for s in (TASKS, SUBTASKS, EVENTS, LLM_CALLS, TOOL_CALLS, CHAT_TURNS)
}
