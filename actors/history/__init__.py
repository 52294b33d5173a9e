"""Task history: tasks, subtasks, events, model and tool calls, chat turns.

`HistoryStore` is the interface (`store`), `InMemoryHistoryStore` the bounded test double
(`memory_store`), and `actorchestra.actors.history.duckdb_store.DuckDBHistoryStore` the
real one over a DuckDB file. The DuckDB store is not imported here, so code that only
needs the interface and the records does not load DuckDB.
"""

from actorchestra.actors.history.config import HistoryConfig
from actorchestra.actors.history.errors import (
    HistoryClosedError,
    HistoryError,
    HistoryOpenError,
    InvalidCursorError,
)
from actorchestra.actors.history.memory_store import InMemoryHistoryStore
from actorchestra.actors.history.records import (
    FINISHED_STATES,
    ChatTurn,
    EventRecord,
    LLMCallRecord,
    NewEvent,
    SubtaskRecord,
    TaskDetail,
    TaskPage,
    TaskRecord,
    TaskUpdate,
    TaskUsage,
    ToolCallRecord,
)
from actorchestra.actors.history.store import MAX_PAGE, HistoryStore

__all__ = [
    "FINISHED_STATES",
    "MAX_PAGE",
    "ChatTurn",
    "EventRecord",
    "HistoryClosedError",
    "HistoryConfig",
    "HistoryError",
    "HistoryOpenError",
    "HistoryStore",
    "InMemoryHistoryStore",
    "InvalidCursorError",
    "LLMCallRecord",
    "NewEvent",
    "SubtaskRecord",
    "TaskDetail",
    "TaskPage",
    "TaskRecord",
    "TaskUpdate",
    "TaskUsage",
    "ToolCallRecord",
]
