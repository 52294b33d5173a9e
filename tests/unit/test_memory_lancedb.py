"""What only the LanceDB memory store does: persistence, table checks, upkeep."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from actorchestra.actors.memory import MemoryConfig, MemoryItem, MemoryOpenError
from actorchestra.actors.memory.lancedb_store import LanceDBMemoryStore

DIM = 384  # what the offline model server's embeddings have


def vec(seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(-1, 1) for _ in range(DIM)]


async def test_reopening_the_directory_keeps_the_memories(tmp_path: Path) -> None:
    cfg = MemoryConfig(path=tmp_path / "mem", dim=DIM)
    async with await LanceDBMemoryStore.open(cfg) as store:
        await store.add(
            "u", [MemoryItem(text=f"m{i}", vector=vec(i), id=f"m{i}") for i in range(50)]
        )
    async with await LanceDBMemoryStore.open(cfg) as store:
        assert await store.count("u") == 50
        hits = await store.search("u", vec(17), k=3)
        assert hits[0].id == "m17" and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert hits[1].score < 0.5  # random 384-d vectors are nearly orthogonal


async def test_a_table_of_another_vector_size_is_refused(tmp_path: Path) -> None:
    async with await LanceDBMemoryStore.open(MemoryConfig(path=tmp_path / "mem", dim=DIM)):
        pass
    with pytest.raises(MemoryOpenError, match="384"):
        await LanceDBMemoryStore.open(MemoryConfig(path=tmp_path / "mem", dim=16))


async def test_background_optimize_keeps_data_searchable(tmp_path: Path) -> None:
    cfg = MemoryConfig(path=tmp_path / "mem", dim=DIM, optimize_every_writes=5)
    async with await LanceDBMemoryStore.open(cfg) as store:
        for i in range(12):  # twelve small writes: the optimize task runs at least twice
            await store.add("u", [MemoryItem(text=f"m{i}", vector=vec(i))])
        await store.delete("u", filter=None, ids=[])
        await store.optimize()
        assert await store.count("u") == 12
        assert (await store.search("u", vec(3), k=1))[0].text == "m3"
