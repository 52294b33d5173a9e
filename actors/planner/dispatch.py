"""Sending subtasks to agents as A2A messages, and reading their outcomes back.

One subtask travels as an ordinary A2A streaming message (its progress and token
chunks become planner events). Several subtasks for the same agent travel as one
batch message (`actorchestra.batch` metadata, see `actors.executor`): the agent
answers with one artifact per item as each finishes, so dependants start at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from a2a.helpers import get_message_text, new_text_message
from a2a.types import a2a_pb2
from google.protobuf.json_format import MessageToDict

from actorchestra.actors.batch import BATCH_KEY, SUBTASK_KEY, part_value
from actorchestra.actors.json_codec import json_bytes
from actorchestra.protocol.context import CallInfo
from actorchestra.protocol.endpoint import AgentEndpoint

logger = logging.getLogger(__name__)

_FAILED = {
    a2a_pb2.TaskState.TASK_STATE_FAILED,
    a2a_pb2.TaskState.TASK_STATE_REJECTED,
    a2a_pb2.TaskState.TASK_STATE_CANCELED,
    a2a_pb2.TaskState.TASK_STATE_INPUT_REQUIRED,
    a2a_pb2.TaskState.TASK_STATE_AUTH_REQUIRED,
}


@dataclass
class Item:
    """One subtask as sent: its id, skill, input text and timeout."""

    id: str
    skill: str | None
    input: str
    timeout_s: float | None = None
    hold_s: float | None = None  # the agent may hold its result this long (nothing waits on it)
    # Sent ahead of its inputs (see `actors.batch`): (input id, its output text, or None
    # for an item of the same batch), and `input` is the step's own text.
    deps: list[tuple[str, str | None]] | None = None


@dataclass
class Outcome:
    ok: bool
    output: Any = None
    error: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    at: float | None = None  # when the agent finished it (seconds since the epoch)


OnOutcome = Callable[[str, Outcome], None]
OnNote = Callable[[str, str, str], None]  # item id, kind ("progress" | "token"), text
OnStarted = Callable[[str], None]  # the agent-side A2A task id, for CancelTask


def _usage(metadata: Any) -> dict[str, Any]:
    meta = MessageToDict(metadata) if metadata is not None else {}
    llm = meta.get("llm")
    return llm if isinstance(llm, dict) else {}


async def send_one(
    endpoint: AgentEndpoint, item: Item, call: CallInfo, on_note: OnNote, on_started: OnStarted
) -> Outcome:
    """One subtask as a plain streaming A2A message; its stream feeds progress/token notes."""
    message = new_text_message(item.input, role=a2a_pb2.Role.ROLE_USER)
    request = a2a_pb2.SendMessageRequest(message=message)
    request.metadata.update({SUBTASK_KEY: item.id, **({"skill": item.skill} if item.skill else {})})
    chunks: list[str] = []
    final: a2a_pb2.Task | None = None
    status_text = ""
    async for event in endpoint.send_message_stream(request, call):
        if isinstance(event, a2a_pb2.Task):
            on_started(event.id)
            final = event
        elif isinstance(event, a2a_pb2.TaskStatusUpdateEvent):
            state = event.status.state
            status_text = get_message_text(event.status.message)
            if state == a2a_pb2.TaskState.TASK_STATE_WORKING and status_text:
                on_note(item.id, "progress", status_text)
            if state == a2a_pb2.TaskState.TASK_STATE_COMPLETED:
                usage = _usage(event.metadata) if event.HasField("metadata") else {}
                return Outcome(True, _joined(chunks, final), usage=usage)
            if state in _FAILED:
                name = a2a_pb2.TaskState.Name(state).removeprefix("TASK_STATE_").lower()
                return Outcome(False, error=f"agent answered {name}: {status_text or 'no reason'}")
        elif isinstance(event, a2a_pb2.TaskArtifactUpdateEvent):
            for part in event.artifact.parts:
                value = part_value(part)
                if isinstance(value, str):
                    chunks.append(value)
                    if event.append or not event.last_chunk:
                        on_note(item.id, "token", value)
                else:
                    chunks.append(value)
        elif isinstance(event, a2a_pb2.Message):
            return Outcome(True, get_message_text(event))
    return Outcome(False, error=f"the agent's stream ended without a result ({status_text})")


def _joined(chunks: list[Any], final: a2a_pb2.Task | None) -> Any:
    if len(chunks) == 1:
        return chunks[0]
    if all(isinstance(c, str) for c in chunks):
        return "".join(chunks)
    return chunks


async def send_batch(
    endpoint: AgentEndpoint,
    skill: str | None,
    items: list[Item],
    call: CallInfo,
    on_outcome: OnOutcome,
    on_started: OnStarted,
) -> set[str]:
    """Several subtasks in one batch message; returns the ids that got an outcome."""
    message = new_text_message(f"batch of {len(items)}", role=a2a_pb2.Role.ROLE_USER)
    request = a2a_pb2.SendMessageRequest(message=message)
    meta: dict[str, Any] = {BATCH_KEY: json_bytes([_batch_entry(i) for i in items]).decode()}
    if skill:
        meta["skill"] = skill
    request.metadata.update(meta)
    done: set[str] = set()
    async for event in endpoint.send_message_stream(request, call):
        if isinstance(event, a2a_pb2.Task):
            on_started(event.id)
        elif isinstance(event, a2a_pb2.TaskArtifactUpdateEvent):
            # One artifact per flush: `items` metadata entry k answers part k.
            raw = event.artifact.metadata.fields.get("items")
            entries = json.loads(raw.string_value) if raw is not None and raw.string_value else []
            for info, part in zip(entries, event.artifact.parts, strict=False):
                item_id = str(info.get("item", ""))
                if not item_id or item_id in done:
                    continue
                done.add(item_id)
                at = info.get("at")
                at = float(at) if isinstance(at, int | float) else None
                if info.get("ok"):
                    llm = info.get("llm")
                    usage = llm if isinstance(llm, dict) else {}
                    on_outcome(item_id, Outcome(True, part_value(part), usage=usage, at=at))
                else:
                    error = str(info.get("error") or "failed")
                    on_outcome(item_id, Outcome(False, error=error, at=at))
        elif isinstance(event, a2a_pb2.TaskStatusUpdateEvent) and event.status.state in _FAILED:
            reason = get_message_text(event.status.message) or "no reason"
            for item in items:
                if item.id not in done:
                    done.add(item.id)
                    on_outcome(item.id, Outcome(False, error=f"the agent refused: {reason}"))
    return done


def _batch_entry(item: Item) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": item.id, "input": item.input}
    if item.timeout_s:
        entry["timeout_s"] = item.timeout_s
    if item.hold_s:
        entry["hold_s"] = item.hold_s
    if item.deps is not None:
        entry["deps"] = item.deps
    return entry


async def cancel_remote(endpoint: AgentEndpoint, a2a_task_id: str, call: CallInfo) -> None:
    """A2A CancelTask for a subtask's agent-side task; a finished one is not an error."""
    try:
        await endpoint.cancel_task(a2a_pb2.CancelTaskRequest(id=a2a_task_id), call)
    except Exception as e:  # already finished or gone: nothing left to cancel
        logger.debug("cancel of %s: %r", a2a_task_id, e)
