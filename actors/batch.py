"""The batch message: many subtasks in one A2A message, as the planner sends them and an
agent's executor runs them. Both sides read this module, so that what an item's input
says and what its output is as text cannot drift apart between them.

A batch travels in the message metadata under `BATCH_KEY`, as JSON text of one entry per
item: `{"id", "input", "timeout_s"?, "hold_s"?, "deps"?}`. Text, because a2a-sdk
validates a request's metadata value by value: a list of a thousand items costs more to
check than to run. Results come back the same way: each artifact's `items` metadata is
JSON text of one entry per part.

`deps` makes an item a dependant sent ahead of its inputs (the planner's pipelined
dispatch): `[[dep_id, text], ...]` in its `depends_on` order, where `text` is a finished
input's output and `null` names an item of the same batch. The agent starts the item
the moment those items finish, its input being `with_results(input, ...)` of every
dep's output text, exactly as the planner builds it for a subtask it sends when ready.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from a2a.types import a2a_pb2
from google.protobuf.json_format import MessageToDict

from actorchestra.actors.json_codec import json_loads

BATCH_KEY = "actorchestra.batch"
# On a single subtask's message, the planner's id for it. A batch or a message that
# carries either key lives only as long as its stream (`AgentActor.send_message_stream`).
SUBTASK_KEY = "actorchestra.subtask"


def batch_items(value: Any) -> list[dict[str, Any]] | None:
    """The items of a batch message's metadata value; None when it is not a batch."""
    if isinstance(value, str):
        try:
            value = json_loads(value.encode())  # as the planner wrote it (`json_codec`)
        except ValueError:
            return None
    if not isinstance(value, list):
        return None
    return [item for item in value if isinstance(item, dict)]


def part_value(part: a2a_pb2.Part) -> Any:
    """What an artifact part carries: its text, its JSON data, or the part as a dict."""
    if part.HasField("text"):
        return part.text
    if part.HasField("data"):
        return MessageToDict(part)["data"]
    return MessageToDict(part)


def output_text(value: Any) -> str:
    """A subtask output as text: strings as they are, structured outputs as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def with_results(text: str, results: Iterable[tuple[str, str]]) -> str:
    """A dependant's input: its own text, then each finished input's output by id."""
    context = "\n".join(f"[{dep}] {output}" for dep, output in results)
    return f"{text}\n\nResults of earlier steps:\n{context}" if context else text
