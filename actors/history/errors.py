"""The history store's own errors, under the project's one root.

`duckdb_store` translates every `duckdb` exception into one of these where it enters
(the function that runs on the store's DuckDB thread), so no caller imports `duckdb` to
handle a failure. A bad cursor is the caller's input, not a storage failure, and says so.
"""

from __future__ import annotations

from actorchestra.protocol.errors import ActorchestraError, ConfigError, InvalidInputError


class HistoryError(ActorchestraError):
    """The history store failed to read or write; the message names the operation."""

    http_status = 500
    reason = "HISTORY_ERROR"


class HistoryOpenError(ConfigError):
    """The history database cannot be opened: bad path, locked by another process, or a
    file written by a newer schema than this code knows."""

    http_status = 500
    reason = "HISTORY_OPEN_FAILED"


class HistoryClosedError(HistoryError):
    """The store was used after `close()`."""

    http_status = 503
    reason = "HISTORY_CLOSED"


class InvalidCursorError(InvalidInputError):
    """A `list_tasks` cursor that this store did not hand out (or that was altered)."""

    http_status = 400
    reason = "INVALID_CURSOR"
