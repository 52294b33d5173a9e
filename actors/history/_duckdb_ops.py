"""The history store's SQL, as plain blocking functions of one DuckDB connection.

Everything here runs on the store's single DuckDB thread (`duckdb_store` hands these to
its executor) and nowhere else: one connection, one thread, no locking. Functions return
records, never DuckDB objects. `duckdb` errors pass through; the store translates them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
from pydantic import BaseModel

from actorchestra.actors.history._duckdb_schema import (
    CHAT_TURNS,
    EVENTS,
    LLM_CALLS,
    MIGRATIONS,
    SCHEMA_VERSION,
    SPECS,
    SUBTASKS,
    TASKS,
    TOOL_CALLS,
    TableSpec,
    ts_param,
)
from actorchestra.actors.history.config import HistoryConfig
from actorchestra.actors.history.errors import HistoryError, HistoryOpenError
from actorchestra.actors.history.records import (
    FINISHED_STATES,
    ChatTurn,
    EventRecord,
    LLMCallRecord,
    SubtaskRecord,
    TaskRecord,
    TaskUsage,
    ToolCallRecord,
    utc_now,
)

logger = logging.getLogger(__name__)

_STAGE = "_history_stage"
# Tables whose rows hang off a task and go when it goes.
_TASK_CHILDREN = ("events", "subtasks", "llm_calls", "tool_calls")


def open_database(config: HistoryConfig) -> duckdb.DuckDBPyConnection:
    """Connect, create or migrate the schema, and refuse files from a newer version."""
    path = str(config.path)
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {}
    if config.threads is not None:
        options["threads"] = config.threads
    if config.memory_limit is not None:
        options["memory_limit"] = config.memory_limit
    con = duckdb.connect(path, config=options)
    try:
        _migrate(con, path)
    except BaseException:
        con.close()
        raise
    return con


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
    """The one row of a query that has one (an aggregate), its result read to the end.

    DuckDB 2 keeps a result that `fetchone` has not exhausted open on the connection,
    and the next Arrow registration there fails ("connection has an unfinished
    result"): the events flush after a task's usage was read lost its rows that way.
    """
    rows = con.execute(sql, list(params)).fetchall()
    if not rows:
        raise HistoryError(f"no row from: {sql}")
    return tuple(rows[0])


def _migrate(con: duckdb.DuckDBPyConnection, path: str) -> None:
    con.execute("BEGIN")
    try:
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        current = _one(con, "SELECT max(version) FROM schema_version")[0] or 0
        if current > SCHEMA_VERSION:
            raise HistoryOpenError(
                f"history file {path} has schema version {current}; this code knows up "
                f"to {SCHEMA_VERSION}. Upgrade actorchestra or point at another file."
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                con.execute(statement)
            con.execute("INSERT INTO schema_version VALUES (?, ?)", [version, ts_param(utc_now())])
            logger.info("history file %s: schema now at version %s", path, version)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


# -- writes ------------------------------------------------------------------------------


def _insert(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, records: Sequence[BaseModel], tail: str = ""
) -> None:
    """One `INSERT ... SELECT` over the records as a registered Arrow table."""
    con.register(_STAGE, spec.to_arrow(records))
    try:
        con.execute(f"INSERT INTO {spec.table} ({spec.select_list}) SELECT * FROM {_STAGE} {tail}")
    finally:
        con.unregister(_STAGE)


class _Transaction:
    """BEGIN/COMMIT around statements that must land together, ROLLBACK if one raises."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def __enter__(self) -> None:
        self._con.execute("BEGIN")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._con.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def write_appends(con: duckdb.DuckDBPyConnection, batch: dict[str, list[BaseModel]]) -> int:
    """Insert buffered append-only rows (events, calls, chat turns), one statement a table.

    Each statement commits on its own, with no BEGIN around them: an explicit
    transaction measured 2-3x slower for the same Arrow insert here (250-390k rows/s
    against 750-850k), and these tables are independent logs, so a failure in one
    need not hold back the others.
    """
    written = 0
    for table, records in batch.items():
        if records:
            _insert(con, SPECS[table], records)
            written += len(records)
    return written


def _last_per_key(records: Sequence[Any], key: Any) -> list[Any]:
    # ON CONFLICT DO UPDATE may not touch one row twice in a statement: keep the last.
    return list({key(r): r for r in records}.values())


# At most this many rows go as one `INSERT ... VALUES` with parameters; more go as an
# Arrow table (registering one costs ~1.5 ms here, a parameter row a few us).
_VALUES_ROWS = 8


def _insert_new(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, rows: Sequence[Any], conflict: str
) -> None:
    """Insert rows that are new in the common case; update the existing ones otherwise.

    Each task's row and its subtasks are written once by the planner that runs it, so a
    plain insert nearly always succeeds, and costs less than half of `ON CONFLICT ... DO
    UPDATE` (1.7 against 5 ms for one task row, 8 against 14 ms for 1,001 subtasks).
    A statement that hits an existing key fails as a whole and changes nothing; it is
    then done again as an upsert.
    """
    try:
        _insert_rows(con, spec, rows)
    except duckdb.ConstraintException:
        sets = ", ".join(f"{n} = excluded.{n}" for n in spec.names if n not in spec.keep)
        _insert_rows(con, spec, rows, f"ON CONFLICT ({conflict}) DO UPDATE SET {sets}")


def _insert_rows(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, rows: Sequence[Any], tail: str = ""
) -> None:
    if len(rows) > _VALUES_ROWS:
        _insert(con, spec, rows, tail)
        return
    one = "(" + ", ".join("?" * len(spec.columns)) + ")"
    params = [c.out(getattr(r, c.name)) for r in rows for c in spec.columns]
    con.execute(
        f"INSERT INTO {spec.table} ({spec.select_list}) VALUES "
        f"{', '.join([one] * len(rows))} {tail}",
        params,
    )


def upsert_tasks(con: duckdb.DuckDBPyConnection, tasks: Sequence[TaskRecord]) -> None:
    _insert_new(con, TASKS, _last_per_key(tasks, lambda t: t.task_id), "task_id")


def upsert_subtasks(con: duckdb.DuckDBPyConnection, subs: Sequence[SubtaskRecord]) -> None:
    rows = _last_per_key(subs, lambda s: (s.task_id, s.subtask_id))
    _insert_new(con, SUBTASKS, rows, "task_id, subtask_id")


def update_task(
    con: duckdb.DuckDBPyConnection, task_id: str, changes: dict[str, Any], returning: bool = True
) -> TaskRecord | None:
    columns = {c.name: c for c in TASKS.columns}
    assignments = ", ".join(f"{name} = ?" for name in changes)
    params = [columns[name].out(value) for name, value in changes.items()]
    back = TASKS.select_list if returning else "task_id"
    rows = con.execute(
        f"UPDATE tasks SET {assignments} WHERE task_id = ? RETURNING {back}", [*params, task_id]
    ).fetchall()
    return TASKS.from_rows(rows)[0] if rows and returning else None


def delete_tasks(con: duckdb.DuckDBPyConnection, task_ids: Sequence[str]) -> int:
    """Delete tasks and what hangs off them; how many task rows (or event logs) went."""
    if not task_ids:
        return 0
    ids = list(task_ids)
    with _Transaction(con):
        found = _one(
            con,
            "SELECT count(*) FROM (SELECT task_id FROM tasks WHERE task_id IN (SELECT unnest(?))"
            " UNION SELECT DISTINCT task_id FROM events WHERE task_id IN (SELECT unnest(?)))",
            [ids, ids],
        )
        for table in (*_TASK_CHILDREN, "tasks"):
            con.execute(f"DELETE FROM {table} WHERE task_id IN (SELECT unnest(?))", [ids])
    return int(found[0])


def finished_before(con: duckdb.DuckDBPyConnection, cutoff: datetime) -> list[str]:
    rows = con.execute(
        "SELECT task_id FROM tasks WHERE state IN (SELECT unnest(?)) "
        "AND finished_at IS NOT NULL AND finished_at < ?",
        [sorted(FINISHED_STATES), ts_param(cutoff)],
    ).fetchall()
    return [r[0] for r in rows]


def delete_chat(con: duckdb.DuckDBPyConnection, user_id: str, session_id: str | None) -> int:
    where, params = "user_id = ?", [user_id]
    if session_id is not None:
        where, params = where + " AND session_id = ?", [*params, session_id]
    with _Transaction(con):
        row = _one(con, f"SELECT count(*) FROM chat_turns WHERE {where}", params)
        con.execute(f"DELETE FROM chat_turns WHERE {where}", params)
    return int(row[0])


# -- reads -------------------------------------------------------------------------------


def get_task(con: duckdb.DuckDBPyConnection, task_id: str) -> TaskRecord | None:
    rows = con.execute(
        f"SELECT {TASKS.select_list} FROM tasks WHERE task_id = ?", [task_id]
    ).fetchall()
    return TASKS.from_rows(rows)[0] if rows else None


def list_tasks(
    con: duckdb.DuckDBPyConnection,
    *,
    states: list[str] | None,
    user_id: str | None,
    since: datetime | None,
    until: datetime | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[TaskRecord]:
    """Up to `limit` tasks newest first, strictly after the cursor position `after`."""
    where: list[str] = []
    params: list[Any] = []
    if states is not None:
        where.append("state IN (SELECT unnest(?))")
        params.append(states)
    if user_id is not None:
        where.append("user_id = ?")
        params.append(user_id)
    if since is not None:
        where.append("created_at >= ?")
        params.append(ts_param(since))
    if until is not None:
        where.append("created_at < ?")
        params.append(ts_param(until))
    if after is not None:
        where.append("(created_at, task_id) < (?, ?)")
        params.extend([ts_param(after[0]), after[1]])
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = con.execute(
        f"SELECT {TASKS.select_list} FROM tasks {clause} "
        "ORDER BY created_at DESC, task_id DESC LIMIT ?",
        [*params, limit],
    ).fetchall()
    return TASKS.from_rows(rows)


def subtasks(con: duckdb.DuckDBPyConnection, task_id: str) -> list[SubtaskRecord]:
    rows = con.execute(
        f"SELECT {SUBTASKS.select_list} FROM subtasks WHERE task_id = ? "
        "ORDER BY position, subtask_id",
        [task_id],
    ).fetchall()
    return SUBTASKS.from_rows(rows)


def events_after(
    con: duckdb.DuckDBPyConnection, task_id: str, after_seq: int, limit: int
) -> list[EventRecord]:
    rows = con.execute(
        f"SELECT {EVENTS.select_list} FROM events WHERE task_id = ? AND seq > ? "
        "ORDER BY seq LIMIT ?",
        [task_id, after_seq, limit],
    ).fetchall()
    return EVENTS.from_rows(rows)


def max_seqs(con: duckdb.DuckDBPyConnection, task_ids: Sequence[str]) -> dict[str, int]:
    """The highest stored seq of each task that has events."""
    rows = con.execute(
        "SELECT task_id, max(seq) FROM events WHERE task_id IN (SELECT unnest(?)) GROUP BY task_id",
        [list(task_ids)],
    ).fetchall()
    return {task_id: int(seq) for task_id, seq in rows}


def calls(con: duckdb.DuckDBPyConnection, spec: TableSpec, task_id: str, limit: int) -> list[Any]:
    rows = con.execute(
        f"SELECT {spec.select_list} FROM {spec.table} WHERE task_id = ? "
        "ORDER BY started_at LIMIT ?",
        [task_id, limit],
    ).fetchall()
    return spec.from_rows(rows)


def llm_calls(con: duckdb.DuckDBPyConnection, task_id: str, limit: int) -> list[LLMCallRecord]:
    return calls(con, LLM_CALLS, task_id, limit)


def tool_calls(con: duckdb.DuckDBPyConnection, task_id: str, limit: int) -> list[ToolCallRecord]:
    return calls(con, TOOL_CALLS, task_id, limit)


def task_usage(con: duckdb.DuckDBPyConnection, task_id: str) -> TaskUsage:
    llm = _one(
        con,
        "SELECT coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0), "
        "coalesce(sum(cost_usd), 0), count(*), count(error), coalesce(sum(latency_s), 0) "
        "FROM llm_calls WHERE task_id = ?",
        [task_id],
    )
    tools = _one(con, "SELECT count(*), count(error) FROM tool_calls WHERE task_id = ?", [task_id])
    return TaskUsage(
        task_id=task_id,
        prompt_tokens=int(llm[0]),
        completion_tokens=int(llm[1]),
        cost_usd=float(llm[2]),
        llm_calls=int(llm[3]),
        llm_errors=int(llm[4]),
        llm_latency_s=float(llm[5]),
        tool_calls=int(tools[0]),
        tool_errors=int(tools[1]),
    )


def chat_turns_newest_first(
    con: duckdb.DuckDBPyConnection,
    user_id: str,
    session_id: str | None,
    context_id: str | None,
    limit: int,
) -> list[ChatTurn]:
    where, params = ["user_id = ?"], [user_id]
    if session_id is not None:
        where.append("session_id = ?")
        params.append(session_id)
    if context_id is not None:
        where.append("context_id = ?")
        params.append(context_id)
    rows = con.execute(
        f"SELECT {CHAT_TURNS.select_list} FROM chat_turns WHERE {' AND '.join(where)} "
        "ORDER BY ts DESC, turn_id DESC LIMIT ?",
        [*params, limit],
    ).fetchall()
    return CHAT_TURNS.from_rows(rows)
