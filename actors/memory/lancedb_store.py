"""The memory store over a LanceDB directory.

One table holds every namespace, with a `namespace` column that each query filters on
before the vector search (LanceDB prefilters by default), so a namespace is a hard wall
without a table per user. Search is exact (flat) cosine: right for per-user memories and
modest document sets; a vector index is the next step past a few hundred thousand rows.

LanceDB's async API (`connect_async`) runs its I/O and search on its own Rust runtime
and hands back awaitables, so nothing here blocks the event loop and no executor is
needed. Rows go in as one Arrow table per call. Every LanceDB or Arrow error becomes a
`MemoryStoreError` where it is awaited (`_lance`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Self, TypeVar

import lancedb
import numpy as np
import pyarrow as pa
from pydantic_core import to_json

from actorchestra.actors.memory.config import MemoryConfig
from actorchestra.actors.memory.errors import (
    MemoryClosedError,
    MemoryOpenError,
    MemoryStoreError,
)
from actorchestra.actors.memory.store import (
    Embed,
    MemoryFilter,
    MemoryHit,
    MemoryItem,
    MemoryStore,
    check_k,
    check_namespace,
)
from actorchestra.protocol.errors import ActorchestraError

logger = logging.getLogger(__name__)

T = TypeVar("T")
_HIT_COLUMNS = ["id", "text", "kind", "source", "tags", "metadata", "created_at", "_distance"]
_TS = pa.timestamp("us", tz="UTC")


def _schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("namespace", pa.string(), nullable=False),
            pa.field("id", pa.string(), nullable=False),
            pa.field("text", pa.string()),
            pa.field("kind", pa.string()),
            pa.field("source", pa.string()),
            pa.field("tags", pa.list_(pa.string())),
            pa.field("metadata", pa.string()),
            pa.field("created_at", _TS),
            pa.field("vector", pa.list_(pa.float32(), dim)),
        ]
    )


async def _lance(what: str, awaitable: Awaitable[T]) -> T:
    """Await a LanceDB call; its errors become ours here and nowhere else."""
    try:
        return await awaitable
    except ActorchestraError:
        raise
    except Exception as exc:
        raise MemoryStoreError(f"memory {what} failed: {exc}") from exc


class LanceDBMemoryStore(MemoryStore):
    """Memory vectors in a LanceDB table. `await LanceDBMemoryStore.open(config)` to use."""

    def __init__(self, config: MemoryConfig, embed: Embed | None = None) -> None:
        """No I/O here (so a Ray actor can build one in `__init__`); `start()` opens."""
        super().__init__(config.dim, embed)
        self.config = config
        self._schema = _schema(config.dim)
        self._db: Any = None
        self._table: Any = None
        self._writes = 0
        # Two concurrent merge_inserts of one new id both see "not matched" and both
        # insert (measured: 30 concurrent upserts over 5 ids left 30 rows). Upserts,
        # deletes and compaction therefore take turns; plain appends do not wait.
        self._mutate = asyncio.Lock()
        self._optimizing: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, config: MemoryConfig, embed: Embed | None = None) -> Self:
        store = cls(config, embed)
        await store.start()
        return store

    async def start(self) -> None:
        """Connect and create the table, or check that the existing one fits `dim`."""
        path = str(self.config.path)
        try:
            self._db = await lancedb.connect_async(path)
            table = await self._db.create_table(
                self.config.table, schema=self._schema, exist_ok=True
            )
        except Exception as exc:
            # LanceDB refuses a schema that differs from the stored one; say how.
            found = await self._stored_vector_type()
            if self._db is not None:
                self._db.close()
                self._db = None
            if found is not None and found != self._schema.field("vector").type:
                raise MemoryOpenError(
                    f"memory table {self.config.table!r} at {path} holds vectors of type "
                    f"{found}; this store is configured for {self.config.dim} dimensions"
                ) from exc
            raise MemoryOpenError(f"cannot open memory store at {path}: {exc}") from exc
        self._table = table
        logger.info("memory store open at %s (table %s)", path, self.config.table)

    async def _stored_vector_type(self) -> pa.DataType | None:
        """The vector type of the existing table, None if there is none to read."""
        if self._db is None:
            return None
        try:
            table = await self._db.open_table(self.config.table)
        except Exception:
            return None  # the original error is the one to report
        try:
            return (await table.schema()).field("vector").type
        finally:
            table.close()

    async def close(self) -> None:
        if self._table is None:
            return
        task, self._optimizing = self._optimizing, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)  # its failure is logged
        table, self._table = self._table, None
        table.close()
        self._db.close()
        logger.info("memory store at %s closed", self.config.path)

    def _open_table(self) -> Any:
        if self._table is None:
            raise MemoryClosedError("memory store is not open")
        return self._table

    # -- writes --------------------------------------------------------------------------

    async def add(self, namespace: str, items: Sequence[MemoryItem]) -> list[str]:
        check_namespace(namespace)
        table = self._open_table()
        for item in items:
            self.check_vector(item.vector)
        fresh = [i for i in items if not i.id_given]
        # Keep the last of repeated ids: one source row per key for merge_insert.
        chosen = list({i.id: i for i in items if i.id_given}.values())
        if fresh:
            await _lance("add", table.add(self._arrow(namespace, fresh)))
        if chosen:
            merge = (
                table.merge_insert(["namespace", "id"])
                .when_matched_update_all()
                .when_not_matched_insert_all()
            )
            async with self._mutate:
                await _lance("upsert", merge.execute(self._arrow(namespace, chosen)))
        self._wrote(bool(fresh) + bool(chosen))
        return [i.id for i in items]

    def _arrow(self, namespace: str, items: Sequence[MemoryItem]) -> pa.Table:
        flat = np.asarray([i.vector for i in items], dtype=np.float32).reshape(-1)
        columns = {
            "namespace": pa.array([namespace] * len(items), pa.string()),
            "id": pa.array([i.id for i in items], pa.string()),
            "text": pa.array([i.text for i in items], pa.string()),
            "kind": pa.array([i.kind for i in items], pa.string()),
            "source": pa.array([i.source for i in items], pa.string()),
            "tags": pa.array([i.tags for i in items], pa.list_(pa.string())),
            "metadata": pa.array(
                [to_json(i.metadata, inf_nan_mode="null").decode() for i in items], pa.string()
            ),
            "created_at": pa.array([i.created_at for i in items], _TS),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(flat), self.dim),
        }
        return pa.Table.from_pydict(columns, schema=self._schema)

    async def delete(
        self, namespace: str, ids: Sequence[str] | None = None, filter: MemoryFilter | None = None
    ) -> int:
        table = self._open_table()
        if ids is not None and not ids:
            return 0
        async with self._mutate:
            result = await _lance("delete", table.delete(_where(namespace, ids, filter)))
        self._wrote(1)
        return int(result.num_deleted_rows)

    # -- reads ---------------------------------------------------------------------------

    async def search(
        self,
        namespace: str,
        vector: Sequence[float],
        k: int = 5,
        filter: MemoryFilter | None = None,
        min_score: float | None = None,
    ) -> list[MemoryHit]:
        check_k(k)
        self.check_vector(vector, "query vector")
        table = self._open_table()
        query = np.asarray(vector, dtype=np.float32)
        if not np.any(query):
            return []  # a zero vector has no direction: it matches nothing
        search = (
            table.vector_search(query)
            .distance_type("cosine")
            .where(_where(namespace, None, filter))
            .select(_HIT_COLUMNS)
            .limit(k)
        )
        rows = (await _lance("search", search.to_arrow())).to_pylist()
        hits = []
        for row in rows:
            distance = row.pop("_distance")
            if distance is None or distance != distance:  # NaN: a zero vector stored
                continue
            score = 1.0 - float(distance)
            if min_score is not None and score < min_score:
                continue  # best first: the rest are below too, but k is small
            row["metadata"] = json.loads(row["metadata"] or "{}")
            row["tags"] = row["tags"] or []
            hits.append(MemoryHit(score=score, **row))
        return hits

    async def get(self, namespace: str, ids: Sequence[str]) -> list[MemoryItem]:
        table = self._open_table()
        if not ids:
            return []
        query = table.query().where(_where(namespace, ids, None))
        rows = (await _lance("get", query.to_arrow())).to_pylist()
        by_id = {}
        for row in rows:
            row.pop("namespace")
            row["metadata"] = json.loads(row["metadata"] or "{}")
            row["tags"] = row["tags"] or []
            by_id[row["id"]] = MemoryItem.model_validate(row)
        return [by_id[i] for i in ids if i in by_id]

    async def count(self, namespace: str, filter: MemoryFilter | None = None) -> int:
        table = self._open_table()
        return int(await _lance("count", table.count_rows(_where(namespace, None, filter))))

    # -- upkeep --------------------------------------------------------------------------

    async def optimize(self) -> None:
        """Compact small fragments and drop versions older than `keep_versions_s`.

        Upserts and deletes wait while it runs; appends and searches do not."""
        table = self._open_table()
        keep = timedelta(seconds=self.config.keep_versions_s)
        # Under the mutation lock: two compactions, or a compaction and an upsert or
        # delete, preempt each other's commits ("Retryable commit conflict").
        async with self._mutate:
            stats = await _lance("optimize", table.optimize(cleanup_older_than=keep))
        logger.debug("memory store optimized: %s", stats)

    def _wrote(self, writes: int) -> None:
        every = self.config.optimize_every_writes
        self._writes += writes
        if not every or self._writes < every:
            return
        if self._optimizing is not None and not self._optimizing.done():
            return
        self._writes = 0
        # Two concurrent merge_inserts of one new id both see "not matched" and both
        # insert (measured: 30 concurrent upserts over 5 ids left 30 rows). Upserts,
        # deletes and compaction therefore take turns; plain appends do not wait.
        self._mutate = asyncio.Lock()
        self._optimizing = asyncio.create_task(self.optimize(), name="memory-optimize")
        self._optimizing.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("memory store background optimize failed", exc_info=task.exception())


def _lit(value: str) -> str:
    """A SQL string literal for LanceDB's filter language (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def _ts_lit(value: datetime) -> str:
    return f"TIMESTAMP '{value.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}'"


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(_lit(v) for v in values)})" if values else "false"


def _where(namespace: str, ids: Sequence[str] | None, filter: MemoryFilter | None) -> str:
    """The filter expression: always the namespace, then whatever else is asked."""
    parts = [f"namespace = {_lit(check_namespace(namespace))}"]
    if ids is not None:
        parts.append(_in("id", ids))
    if filter is not None:
        kinds = filter.kinds()
        if kinds is not None:
            parts.append(_in("kind", kinds))
        if filter.source is not None:
            parts.append(f"source = {_lit(filter.source)}")
        if filter.tags_any is not None:
            tags = ", ".join(_lit(t) for t in filter.tags_any)
            parts.append(f"array_has_any(tags, [{tags}])" if tags else "false")
        if filter.ids is not None:
            parts.append(_in("id", filter.ids))
        if filter.since is not None:
            parts.append(f"created_at >= {_ts_lit(filter.since)}")
        if filter.until is not None:
            parts.append(f"created_at < {_ts_lit(filter.until)}")
    return " AND ".join(parts)
