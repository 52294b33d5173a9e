"""What the history store keeps: tasks, subtasks, events, model and tool calls, chat turns.

Plain pydantic models, frozen, so they pickle across Ray and a caller cannot change a
record it got back from the in-memory store behind the store's back. Free-form payloads
(task input, plan, results, event data, tool arguments) are `JsonValue`: checked to be
JSON when the record is built, not when a write fails later on the DuckDB thread.

Every timestamp is timezone-aware UTC. A naive datetime given by a caller is taken as
UTC; the DuckDB file stores naive UTC and the models put the zone back on the way out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

# The states the planner reports a task as finished in; `prune_tasks` only removes these.
FINISHED_STATES: frozenset[str] = frozenset({"completed", "failed", "canceled", "rejected"})


def utc_now() -> datetime:
    """Now, as an aware UTC datetime at the microsecond precision DuckDB keeps."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """`value` in UTC; a naive datetime is read as UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TaskRecord(_Record):
    """One user task as the planner sees it.

    `created_at` orders task lists and is part of their cursors, so an upsert of a task
    already stored keeps the stored `created_at` whatever the new record says.
    """

    task_id: str
    user_id: str
    state: str
    session_id: str | None = None
    context_id: str | None = None
    input: JsonValue = None
    plan: JsonValue = None
    result: JsonValue = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    created_at: UtcDatetime = Field(default_factory=utc_now)
    updated_at: UtcDatetime = Field(default_factory=utc_now)
    finished_at: UtcDatetime | None = None


# Fields of TaskRecord a TaskUpdate may change (the identity and created_at stay).
UPDATABLE_TASK_FIELDS: tuple[str, ...] = (
    "state",
    "plan",
    "result",
    "error",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "metadata",
    "finished_at",
)


class TaskUpdate(_Record):
    """A partial change to one task: only the fields given are written.

    "Given" is pydantic's `model_fields_set`, which survives pickling, so `result=None`
    passed on purpose clears the result while an absent `result` leaves it alone.
    `updated_at` is always written.
    """

    task_id: str
    state: str | None = None
    plan: JsonValue = None
    result: JsonValue = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    metadata: dict[str, JsonValue] | None = None
    finished_at: UtcDatetime | None = None
    updated_at: UtcDatetime = Field(default_factory=utc_now)

    def changes(self) -> dict[str, Any]:
        """Column -> new value for the fields the caller set, plus `updated_at`."""
        out = {k: getattr(self, k) for k in UPDATABLE_TASK_FIELDS if k in self.model_fields_set}
        for counter in ("prompt_tokens", "completion_tokens", "cost_usd", "metadata"):
            if counter in out and out[counter] is None:
                del out[counter]  # these columns are NOT NULL: None means "leave it"
        out["updated_at"] = self.updated_at
        return out


class SubtaskRecord(_Record):
    """One step of a task's plan: which skill, which agent ran it, how it went."""

    task_id: str
    subtask_id: str
    state: str
    position: int = Field(default=0, description="order in the plan, for display")
    skill: str | None = None
    agent: str | None = None
    input: JsonValue = None
    depends_on: list[str] = Field(default_factory=list)
    attempts: int = 0
    output: JsonValue = None
    error: str | None = None
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None


class NewEvent(_Record):
    """An event to append; the store gives it the task's next sequence number."""

    task_id: str
    kind: str
    data: JsonValue = None
    ts: UtcDatetime = Field(default_factory=utc_now)


class EventRecord(_Record):
    """A stored event. `seq` starts at 1 per task and only grows: it is the SSE event id
    a reconnecting client sends back as `Last-Event-ID`."""

    task_id: str
    seq: int
    kind: str
    data: JsonValue = None
    ts: UtcDatetime


class LLMCallRecord(_Record):
    """One model call (chat or embedding), successful or not.

    Field names follow `actors.llm.results` (`cost_usd`, `latency_s`) so a caller builds
    one from an `LLMResult` without renaming.
    """

    model: str
    call_id: str | None = None
    task_id: str | None = None
    subtask_id: str | None = None
    agent: str | None = None
    operation: str = "chat"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    error: str | None = None
    started_at: UtcDatetime = Field(default_factory=utc_now)


class ToolCallRecord(_Record):
    """One tool call. The fields of `actors.tools.registry.ToolCallRecord` plus where it
    happened, so `ToolCallRecord(**rec.model_dump(), task_id=...)` converts one."""

    name: str
    call_id: str | None = None
    task_id: str | None = None
    subtask_id: str | None = None
    agent: str | None = None
    arguments: JsonValue = None
    result: JsonValue = None
    error: str | None = None
    started_at: UtcDatetime = Field(default_factory=utc_now)
    duration_ms: float = 0.0


class ChatTurn(_Record):
    """One message of a conversation, kept for chat memory."""

    user_id: str
    session_id: str
    role: str
    content: str
    context_id: str | None = None
    tokens: int = 0
    ts: UtcDatetime = Field(default_factory=utc_now)


class TaskUsage(_Record):
    """What a task's model and tool calls added up to, from the call records."""

    task_id: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    llm_calls: int = 0
    llm_errors: int = 0
    llm_latency_s: float = 0.0
    tool_calls: int = 0
    tool_errors: int = 0


class TaskDetail(_Record):
    """Everything `GET /v1/tasks/{id}` shows, in one read."""

    task: TaskRecord
    subtasks: list[SubtaskRecord]
    usage: TaskUsage
    last_event_seq: int


class TaskPage(_Record):
    """One page of a task list; `next_cursor` is None on the last page."""

    items: list[TaskRecord]
    next_cursor: str | None = None
