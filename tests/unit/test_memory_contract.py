"""The memory store contract, run against the in-memory store and LanceDB under tmp_path."""

from __future__ import annotations

import asyncio
import math
import pickle
import zlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from actorchestra.actors.memory import (
    InMemoryMemoryStore,
    InvalidMemoryInputError,
    MemoryClosedError,
    MemoryConfig,
    MemoryFilter,
    MemoryItem,
    MemoryStore,
)
from actorchestra.actors.memory.lancedb_store import LanceDBMemoryStore

DIM = 8
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def bag_of_words(texts: Sequence[str]) -> list[list[float]]:
    """A deterministic toy embedder: each word bumps one of DIM buckets."""
    out = []
    for text in texts:
        vec = [0.0] * DIM
        for word in text.lower().split():
            vec[zlib.crc32(word.encode()) % DIM] += 1.0
        out.append(vec)
    return out


@pytest.fixture(params=["memory", "lancedb"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MemoryStore]:
    if request.param == "memory":
        s: MemoryStore = InMemoryMemoryStore(DIM, bag_of_words)
    else:
        cfg = MemoryConfig(path=tmp_path / "memory", dim=DIM)
        s = await LanceDBMemoryStore.open(cfg, bag_of_words)
    async with s:
        yield s


def unit(i: int) -> list[float]:
    v = [0.0] * DIM
    v[i] = 1.0
    return v


def item(text: str, vector: list[float], **kw: object) -> MemoryItem:
    return MemoryItem(text=text, vector=vector, **kw)  # type: ignore[arg-type]


async def test_search_returns_the_nearest_first_with_cosine_scores(store: MemoryStore) -> None:
    await store.add(
        "u1",
        [
            item("east", unit(0), id="e"),
            item("north-east", [1.0, 1.0] + [0.0] * (DIM - 2), id="ne"),
            item("north", unit(1), id="n"),
            item("west", [-1.0] + [0.0] * (DIM - 1), id="w"),
        ],
    )
    hits = await store.search("u1", [2.0] + [0.0] * (DIM - 1), k=3)
    assert [h.id for h in hits] == ["e", "ne", "n"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[1].score == pytest.approx(1 / math.sqrt(2), abs=1e-5)
    assert hits[2].score == pytest.approx(0.0, abs=1e-5)
    assert hits[0].text == "east"

    best = await store.search("u1", unit(0), k=10, min_score=0.5)
    assert [h.id for h in best] == ["e", "ne"]
    assert await store.search("u1", [0.0] * DIM) == []


async def test_namespaces_are_walls(store: MemoryStore) -> None:
    await store.add("alice", [item("alice's secret", unit(0), id="x")])
    await store.add("bob", [item("bob's note", unit(0), id="x")])
    sneaky = "alice' OR namespace <> 'alice"
    await store.add(sneaky, [item("sneaky", unit(0))])

    assert [h.text for h in await store.search("bob", unit(0))] == ["bob's note"]
    assert [h.text for h in await store.search(sneaky, unit(0))] == ["sneaky"]
    assert await store.count("alice") == 1
    assert await store.count("carol") == 0
    assert await store.search("carol", unit(0)) == []
    assert await store.delete("bob") == 1
    assert await store.count("bob") == 0
    assert [i.text for i in await store.get("alice", ["x"])] == ["alice's secret"]


async def test_filters_on_kind_source_tags_ids_and_time(store: MemoryStore) -> None:
    await store.add(
        "docs",
        [
            item("a", unit(0), id="a", kind="fact", tags=["x"], created_at=T0),
            item(
                "b",
                unit(0),
                id="b",
                kind="document",
                source="s1",
                tags=["y", "z"],
                created_at=T0 + timedelta(days=1),
            ),
            item(
                "c",
                unit(0),
                id="c",
                kind="document",
                source="s2",
                created_at=T0 + timedelta(days=2),
            ),
        ],
    )

    async def ids(f: MemoryFilter) -> set[str]:
        found = {h.id for h in await store.search("docs", unit(0), k=10, filter=f)}
        assert await store.count("docs", f) == len(found)
        return found

    assert await ids(MemoryFilter(kind="document")) == {"b", "c"}
    assert await ids(MemoryFilter(kind=["fact", "document"])) == {"a", "b", "c"}
    assert await ids(MemoryFilter(source="s1")) == {"b"}
    assert await ids(MemoryFilter(tags_any=["z", "x"])) == {"a", "b"}
    assert await ids(MemoryFilter(tags_any=[])) == set()
    assert await ids(MemoryFilter(ids=["a", "c"])) == {"a", "c"}
    assert await ids(MemoryFilter(since=T0 + timedelta(days=1))) == {"b", "c"}
    assert await ids(MemoryFilter(until=T0 + timedelta(days=1))) == {"a"}
    assert await ids(MemoryFilter(kind="document", since=T0 + timedelta(hours=36))) == {"c"}


async def test_given_ids_replace_and_generated_ids_append(store: MemoryStore) -> None:
    ids = await store.add("u", [item("one", unit(0), id="k"), item("free", unit(1))])
    assert ids[0] == "k" and len(ids[1]) == 32
    await store.add(
        "u", [item("two", unit(2), id="k", metadata={"v": 2}), item("three", unit(2), id="k")]
    )
    await store.add("u", [item("free again", unit(1))])
    assert await store.count("u") == 3
    (got,) = await store.get("u", ["k"])
    assert (got.text, got.vector) == ("three", unit(2))
    hits = await store.search("u", unit(2), k=1)
    assert (hits[0].id, hits[0].text) == ("k", "three")


async def test_concurrent_upserts_of_one_id_leave_one_item(store: MemoryStore) -> None:
    await asyncio.gather(
        *(store.add("u", [item(f"v{i}", unit(i % DIM), id=f"k{i % 3}")]) for i in range(12)),
        *(store.add("u", [item(f"free{i}", unit(0))]) for i in range(6)),
    )
    assert await store.count("u") == 3 + 6
    assert len(await store.get("u", ["k0", "k1", "k2"])) == 3


async def test_delete_by_ids_and_by_filter(store: MemoryStore) -> None:
    await store.add(
        "u",
        [
            item(f"t{i}", unit(i % DIM), id=f"i{i}", kind="turn" if i % 2 else "fact")
            for i in range(10)
        ],
    )
    assert await store.delete("u", ["i0", "i1", "missing"]) == 2
    assert await store.delete("u", []) == 0
    assert await store.delete("u", filter=MemoryFilter(kind="turn")) == 4
    assert {i.id for i in await store.get("u", [f"i{i}" for i in range(10)])} == {
        "i2",
        "i4",
        "i6",
        "i8",
    }
    assert await store.delete("u", ["i2"], MemoryFilter(kind="turn")) == 0
    assert await store.count("u") == 4


async def test_metadata_and_vectors_round_trip(store: MemoryStore) -> None:
    original = item(
        "hello",
        [0.5] * DIM,
        id="h",
        kind="fact",
        source="chat",
        tags=["greeting"],
        metadata={"turn": 3, "nested": {"ok": True}, "list": [1, "two"]},
        created_at=T0,
    )
    await store.add("u", [original])
    (got,) = await store.get("u", ["h"])
    assert got.model_dump() == original.model_dump()
    (hit,) = await store.search("u", [0.5] * DIM, k=1)
    assert (hit.metadata, hit.tags, hit.source, hit.kind) == (
        original.metadata,
        ["greeting"],
        "chat",
        "fact",
    )
    assert hit.created_at == T0


async def test_text_conveniences_embed_with_the_injected_function(store: MemoryStore) -> None:
    ids = await store.add_texts(
        "kb",
        ["cats purr softly", "dogs bark loudly", "stock prices fell"],
        ids=["cats", "dogs", "stocks"],
        kind="document",
        metadatas=[{"n": 1}, {"n": 2}, {"n": 3}],
    )
    assert ids == ["cats", "dogs", "stocks"]
    hits = await store.search_text("kb", "dogs bark", k=1)
    assert hits[0].id == "dogs" and hits[0].metadata == {"n": 2}
    with pytest.raises(InvalidMemoryInputError, match="same length"):
        await store.add_texts("kb", ["a", "b"], ids=["only-one"])


async def test_bad_inputs_are_refused(store: MemoryStore) -> None:
    with pytest.raises(InvalidMemoryInputError, match="dimensions"):
        await store.add("u", [item("short", [1.0, 2.0])])
    with pytest.raises(InvalidMemoryInputError, match="dimensions"):
        await store.search("u", [1.0])
    with pytest.raises(InvalidMemoryInputError, match="k must be"):
        await store.search("u", unit(0), k=0)
    with pytest.raises(InvalidMemoryInputError, match="namespace"):
        await store.count("")


async def test_no_embedder_means_text_calls_fail_clearly() -> None:
    async with InMemoryMemoryStore(DIM) as s:
        with pytest.raises(InvalidMemoryInputError, match="without an embed function"):
            await s.search_text("u", "hello")


async def test_a_closed_store_refuses_calls(store: MemoryStore) -> None:
    await store.close()
    with pytest.raises(MemoryClosedError):
        await store.search("u", unit(0))
    await store.close()


def test_an_item_remembers_across_a_pickle_whether_its_id_was_chosen() -> None:
    chosen = pickle.loads(pickle.dumps(item("x", unit(0), id="k")))
    generated = pickle.loads(pickle.dumps(item("x", unit(0))))
    assert (chosen.id_given, generated.id_given) == (True, False)
