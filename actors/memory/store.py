"""The memory store: vectors with their text, per namespace, searched by similarity.

Implementations: `memory_store.InMemoryMemoryStore` (numpy cosine, for unit tests) and
`lancedb_store.LanceDBMemoryStore` (the real one, a LanceDB directory).

Contract, for every implementation:

- A namespace (a user, an agent, a document collection) is a hard wall: search, count
  and delete never see another namespace's items.
- The store takes vectors; embeddings come from elsewhere (the LLM client's `embed`).
  Given an async `embed(texts) -> vectors` at construction, `add_texts` and
  `search_text` embed for the caller.
- `score` is cosine similarity, 1.0 for the same direction; hits come best first. A
  zero vector points nowhere and matches nothing.
- `add` with ids the caller chose replaces items with those ids (an upsert); items left
  to their generated ids are appended, which is cheaper.
- Results are plain records, safe to pickle across Ray.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Annotated, Self
from uuid import uuid4

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

from actorchestra.actors.memory.errors import InvalidMemoryInputError

Embed = Callable[[Sequence[str]], Awaitable[list[list[float]]]]
MAX_K = 1000


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


def _new_id() -> str:
    return uuid4().hex


class MemoryItem(BaseModel):
    """One remembered thing: its text, its vector, and what it is about.

    `kind` ("fact", "document", "turn", ...), `source` (a document URI, an agent) and
    `tags` are the fields searches can filter on; `metadata` is carried, not filtered.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    vector: list[float]
    id: str = Field(default_factory=_new_id, min_length=1)
    kind: str = "memory"
    source: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    created_at: UtcDatetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def id_given(self) -> bool:
        """True when the caller chose the id (so `add` must replace, not append)."""
        return "id" in self.model_fields_set


class MemoryHit(BaseModel):
    """A search result: the item without its vector, and how close it was."""

    model_config = ConfigDict(frozen=True)

    id: str
    text: str
    score: float
    kind: str
    source: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    created_at: datetime


class MemoryFilter(BaseModel):
    """Conditions on the filterable fields; all given ones must hold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str | list[str] | None = None
    source: str | None = None
    tags_any: list[str] | None = Field(default=None, description="at least one of these")
    ids: list[str] | None = None
    since: UtcDatetime | None = Field(default=None, description="created_at >= since")
    until: UtcDatetime | None = Field(default=None, description="created_at < until")

    def kinds(self) -> list[str] | None:
        if self.kind is None:
            return None
        return [self.kind] if isinstance(self.kind, str) else list(self.kind)

    def matches(self, item: MemoryItem) -> bool:
        """The filter applied in Python (the in-memory store; the reference semantics)."""
        kinds = self.kinds()
        return (
            (kinds is None or item.kind in kinds)
            and (self.source is None or item.source == self.source)
            and (self.tags_any is None or bool(set(self.tags_any) & set(item.tags)))
            and (self.ids is None or item.id in self.ids)
            and (self.since is None or item.created_at >= self.since)
            and (self.until is None or item.created_at < self.until)
        )


class MemoryStore(ABC):
    """Long-term memory and retrieval documents, as vectors per namespace."""

    def __init__(self, dim: int, embed: Embed | None = None) -> None:
        self.dim = dim
        self._embed = embed

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    async def close(self) -> None:
        """Finish background work and release the storage; later calls fail."""

    @abstractmethod
    async def add(self, namespace: str, items: Sequence[MemoryItem]) -> list[str]:
        """Store items (replacing those whose ids the caller chose); their ids, in order."""

    @abstractmethod
    async def search(
        self,
        namespace: str,
        vector: Sequence[float],
        k: int = 5,
        filter: MemoryFilter | None = None,
        min_score: float | None = None,
    ) -> list[MemoryHit]:
        """The `k` items most similar to `vector`, best first, above `min_score` if given."""

    @abstractmethod
    async def get(self, namespace: str, ids: Sequence[str]) -> list[MemoryItem]:
        """The items with these ids (vectors included); unknown ids are skipped."""

    @abstractmethod
    async def delete(
        self, namespace: str, ids: Sequence[str] | None = None, filter: MemoryFilter | None = None
    ) -> int:
        """Remove the items with `ids` and/or matching `filter`; how many went.

        With neither, the whole namespace goes."""

    @abstractmethod
    async def count(self, namespace: str, filter: MemoryFilter | None = None) -> int:
        """How many items the namespace holds (matching `filter`, if given)."""

    # -- text conveniences over an injected embedder ------------------------------------

    async def add_texts(
        self,
        namespace: str,
        texts: Sequence[str],
        *,
        ids: Sequence[str] | None = None,
        kind: str = "memory",
        source: str | None = None,
        tags: Sequence[str] = (),
        metadatas: Sequence[dict[str, JsonValue]] | None = None,
    ) -> list[str]:
        """Embed `texts` and add them; with `ids`, items of those ids are replaced."""
        if ids is not None and len(ids) != len(texts):
            raise InvalidMemoryInputError("ids and texts must have the same length")
        if metadatas is not None and len(metadatas) != len(texts):
            raise InvalidMemoryInputError("metadatas and texts must have the same length")
        vectors = await self._embed_texts(texts)
        items = []
        for i, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
            fields: dict[str, object] = {
                "text": text,
                "vector": vector,
                "kind": kind,
                "source": source,
                "tags": list(tags),
                "metadata": metadatas[i] if metadatas is not None else {},
            }
            if ids is not None:
                fields["id"] = ids[i]
            items.append(MemoryItem.model_validate(fields))
        return await self.add(namespace, items)

    async def search_text(
        self,
        namespace: str,
        query: str,
        k: int = 5,
        filter: MemoryFilter | None = None,
        min_score: float | None = None,
    ) -> list[MemoryHit]:
        """Embed `query` and search with it."""
        (vector,) = await self._embed_texts([query])
        return await self.search(namespace, vector, k, filter, min_score)

    async def _embed_texts(self, texts: Sequence[str]) -> list[list[float]]:
        if self._embed is None:
            raise InvalidMemoryInputError(
                "this memory store was built without an embed function; pass vectors"
            )
        if not texts:
            return []
        vectors = await self._embed(list(texts))
        if len(vectors) != len(texts):
            raise InvalidMemoryInputError(
                f"embed returned {len(vectors)} vectors for {len(texts)} texts"
            )
        return vectors

    # -- checks both implementations share ----------------------------------------------

    def check_vector(self, vector: Sequence[float], what: str = "vector") -> None:
        if len(vector) != self.dim:
            raise InvalidMemoryInputError(
                f"{what} has {len(vector)} dimensions; this store holds {self.dim}"
            )


def check_namespace(namespace: str) -> str:
    if not namespace or len(namespace) > 256:
        raise InvalidMemoryInputError("namespace must be 1-256 characters")
    return namespace


def check_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise InvalidMemoryInputError(f"k must be between 1 and {MAX_K}, got {k}")
    return k
