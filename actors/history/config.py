"""Typed settings for the DuckDB history store.

A plain pydantic model: the settings module reads the environment and hands a filled
`HistoryConfig` to whoever opens the store. Nothing here looks at `os.environ`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class HistoryConfig(BaseModel):
    """Where the history lives and how writes are batched.

    Write-behind: appends of events, call records and chat turns are buffered and
    written together every `flush_interval_s`, or as soon as `flush_rows` are waiting,
    so a hot path pays for a list append, not a disk commit. `flush_interval_s=0` turns
    buffering off (every append is written before it returns). Buffered rows are lost if
    the process dies before the flush; task and subtask upserts are never buffered.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path | str = Field(description="DuckDB file; ':memory:' for a throwaway store")
    flush_interval_s: float = Field(default=0.05, ge=0)
    flush_rows: int = Field(default=5_000, ge=1, description="flush early at this many rows")
    max_buffered_rows: int = Field(
        default=100_000,
        ge=1,
        description="appends wait for a flush beyond this many rows (backpressure)",
    )
    seq_cache_tasks: int = Field(
        default=10_000,
        ge=1,
        description="tasks whose last event seq is kept in memory; a miss costs one query",
    )
    threads: int | None = Field(default=None, ge=1, description="DuckDB worker threads")
    memory_limit: str | None = Field(default=None, description="DuckDB memory_limit, e.g. '1GB'")
