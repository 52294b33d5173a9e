"""Typed settings for the LanceDB memory store.

A plain pydantic model: the settings module reads the environment and hands a filled
`MemoryConfig` to whoever opens the store. Nothing here looks at `os.environ`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class MemoryConfig(BaseModel):
    """Where memory vectors live and how the table is kept in shape.

    Every write adds a Lance fragment and a table version; `optimize_every_writes`
    writes, the store compacts fragments and drops versions older than
    `keep_versions_s` in a background task, so search does not slow down as small
    writes pile up and the directory does not grow without bound.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path | str = Field(description="LanceDB directory (created if missing)")
    table: str = Field(default="memories", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    dim: int = Field(default=384, ge=1, description="vector length (the embedder's output)")
    optimize_every_writes: int = Field(default=200, ge=0, description="0 turns it off")
    keep_versions_s: float = Field(default=3600.0, gt=0)
