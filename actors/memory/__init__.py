"""Memory: long-term memories and retrieval documents as vectors, per namespace.

`MemoryStore` is the interface (`store`), `InMemoryMemoryStore` the test double
(`memory_store`), and `actorchestra.actors.memory.lancedb_store.LanceDBMemoryStore` the
real one over a LanceDB directory. The LanceDB store is not imported here, so code that
only needs the interface does not load LanceDB.
"""

from actorchestra.actors.memory.config import MemoryConfig
from actorchestra.actors.memory.errors import (
    InvalidMemoryInputError,
    MemoryClosedError,
    MemoryOpenError,
    MemoryStoreError,
)
from actorchestra.actors.memory.memory_store import InMemoryMemoryStore
from actorchestra.actors.memory.store import Embed, MemoryFilter, MemoryHit, MemoryItem, MemoryStore

__all__ = [
    "Embed",
    "InMemoryMemoryStore",
    "InvalidMemoryInputError",
    "MemoryClosedError",
    "MemoryConfig",
    "MemoryFilter",
    "MemoryHit",
    "MemoryItem",
    "MemoryOpenError",
    "MemoryStore",
    "MemoryStoreError",
]
