"""The memory store's own errors, under the project's one root.

`lancedb_store` translates every LanceDB (and Arrow) exception into one of these where
it enters, so no caller imports `lancedb` to handle a failure. A vector of the wrong
length or an empty namespace is the caller's input, and says so.
"""

from __future__ import annotations

from actorchestra.protocol.errors import ActorchestraError, ConfigError, InvalidInputError


class MemoryStoreError(ActorchestraError):
    """The memory store failed to read or write; the message names the operation."""

    http_status = 500
    reason = "MEMORY_ERROR"


class MemoryOpenError(ConfigError):
    """The memory directory cannot be opened, or holds a table this config cannot use
    (a different vector size)."""

    http_status = 500
    reason = "MEMORY_OPEN_FAILED"


class MemoryClosedError(MemoryStoreError):
    """The store was used after `close()` (or before `start()`)."""

    http_status = 503
    reason = "MEMORY_CLOSED"


class InvalidMemoryInputError(InvalidInputError):
    """A vector of the wrong size, an empty namespace, or a text call with no embedder."""

    reason = "INVALID_MEMORY_INPUT"
