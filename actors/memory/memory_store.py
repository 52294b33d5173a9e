"""A small in-memory memory store (exact cosine over numpy) for unit tests of callers.

Bounded: each namespace keeps at most `max_items_per_namespace` items, and the oldest
added go first, with a warning, rather than memory growing without limit. Nothing here
awaits except the injected embedder, so methods need no lock.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from actorchestra.actors.memory.errors import MemoryClosedError
from actorchestra.actors.memory.store import (
    Embed,
    MemoryFilter,
    MemoryHit,
    MemoryItem,
    MemoryStore,
    check_k,
    check_namespace,
)

logger = logging.getLogger(__name__)


class InMemoryMemoryStore(MemoryStore):
    """Process-local vectors; not durable, not for production."""

    def __init__(
        self, dim: int = 384, embed: Embed | None = None, *, max_items_per_namespace: int = 100_000
    ) -> None:
        super().__init__(dim, embed)
        self._max_items = max_items_per_namespace
        self._spaces: dict[str, OrderedDict[str, MemoryItem]] = {}
        self._closed = False

    async def close(self) -> None:
        self._closed = True

    def _space(self, namespace: str) -> OrderedDict[str, MemoryItem]:
        if self._closed:
            raise MemoryClosedError("memory store is closed")
        return self._spaces.get(check_namespace(namespace), OrderedDict())

    async def add(self, namespace: str, items: Sequence[MemoryItem]) -> list[str]:
        space = self._space(namespace)
        for item in items:
            self.check_vector(item.vector)
        for item in items:
            space.pop(item.id, None)
            space[item.id] = item
        dropped = 0
        while len(space) > self._max_items:
            space.popitem(last=False)
            dropped += 1
        if dropped:
            logger.warning("in-memory store: %s oldest items of %r dropped", dropped, namespace)
        if space:
            self._spaces[namespace] = space
        return [item.id for item in items]

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
        space = self._space(namespace)
        candidates = [i for i in space.values() if filter is None or filter.matches(i)]
        query = np.asarray(vector, dtype=np.float32)
        q_norm = float(np.linalg.norm(query))
        if not candidates or q_norm == 0.0:
            return []
        matrix = np.asarray([i.vector for i in candidates], dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = (matrix @ query) / (norms * q_norm)
        order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")
        hits: list[MemoryHit] = []
        for idx in order:
            score = float(scores[idx])
            if norms[idx] == 0.0 or (min_score is not None and score < min_score):
                continue
            hits.append(_hit(candidates[idx], score))
            if len(hits) == k:
                break
        return hits

    async def get(self, namespace: str, ids: Sequence[str]) -> list[MemoryItem]:
        space = self._space(namespace)
        return [space[i] for i in ids if i in space]

    async def delete(
        self, namespace: str, ids: Sequence[str] | None = None, filter: MemoryFilter | None = None
    ) -> int:
        space = self._space(namespace)
        doomed = [
            key
            for key, item in space.items()
            if (ids is None or key in ids) and (filter is None or filter.matches(item))
        ]
        for key in doomed:
            del space[key]
        return len(doomed)

    async def count(self, namespace: str, filter: MemoryFilter | None = None) -> int:
        space = self._space(namespace)
        if filter is None:
            return len(space)
        return sum(1 for item in space.values() if filter.matches(item))


def _hit(item: MemoryItem, score: float) -> MemoryHit:
    return MemoryHit(
        id=item.id,
        text=item.text,
        score=score,
        kind=item.kind,
        source=item.source,
        tags=item.tags,
        metadata=item.metadata,
        created_at=item.created_at,
    )
