"""What a task is, as the task API and the planner see it.

States: pending -> planning -> running -> completed | failed | canceled.
Events (each with a per-task, increasing `seq`, the SSE event id): planned,
subtask_started, progress, token, subtask_completed, subtask_failed, final.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator


class TaskState(StrEnum):
    PENDING = "pending"
    PLANNING = "planning"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


FINISHED = {TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED}


class SubtaskState(StrEnum):
    WAITING = "waiting"  # dependencies not done yet
    QUEUED = "queued"  # sent to an agent, not started there yet
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"  # optional and failed, or its dependency did
    CANCELED = "canceled"


class EventKind(StrEnum):
    PLANNED = "planned"
    SUBTASK_STARTED = "subtask_started"
    PROGRESS = "progress"
    TOKEN = "token"
    SUBTASK_COMPLETED = "subtask_completed"
    SUBTASK_FAILED = "subtask_failed"
    FINAL = "final"


class Step(BaseModel):
    """One step of an explicit workflow: a skill or a specific agent, and its input."""

    id: str | None = None
    skill: str | None = None
    agent: str | None = None
    input: str | None = Field(
        default=None, description="the step's input; default: the task input (plus context)"
    )
    depends_on: list[str] = Field(default_factory=list)
    optional: bool = Field(default=False, description="the task may finish without it")

    @model_validator(mode="after")
    def _skill_or_agent(self) -> Step:
        if not self.skill and not self.agent:
            raise ValueError("a step names a `skill` or an `agent`")
        return self


class Workflow(BaseModel):
    kind: Literal["sequential", "parallel", "graph"]
    steps: list[Step] = Field(min_length=1)


class TaskRequest(BaseModel):
    """`POST /v1/tasks`: all but `input` optional."""

    input: str = Field(min_length=1)
    user_id: str | None = None
    session_id: str | None = None
    workflow: Workflow | None = None
    max_parallel: int | None = Field(
        default=None, ge=1, description="subtasks of this task in flight at once"
    )
    subtask_timeout_s: float | None = Field(default=None, gt=0)
    max_attempts: int | None = Field(default=None, ge=1, le=10)
    synthesize: bool | None = Field(
        default=None, description="final LLM synthesis step (default: when the plan has >1 step)"
    )


class Subtask(BaseModel):
    """A node of the plan graph."""

    id: str
    skill: str | None = None
    agent: str | None = None
    input: str
    depends_on: list[str] = Field(default_factory=list)
    optional: bool = False


class Plan(BaseModel):
    subtasks: list[Subtask]
    routed: bool = Field(default=False, description="one agent answers alone: no synthesis")
    source: Literal["workflow", "llm", "route"] = "llm"


class SubtaskView(BaseModel):
    id: str
    skill: str | None
    agent: str | None
    state: SubtaskState
    input: str
    depends_on: list[str]
    attempts: int = 0
    output: Any = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class TaskView(BaseModel):
    """`GET /v1/tasks/{id}`."""

    task_id: str
    state: TaskState
    input: str
    user_id: str | None = None
    session_id: str | None = None
    plan: Plan | None = None
    subtasks: list[SubtaskView] = Field(default_factory=list)
    result: Any = None
    error: str | None = None
    usage: Usage = Field(default_factory=Usage)
    created_at: float
    updated_at: float
    finished_at: float | None = None


class TaskPage(BaseModel):
    """`GET /v1/tasks`: newest first; pass `next_cursor` back as `cursor`."""

    tasks: list[TaskView]
    next_cursor: str | None = None
