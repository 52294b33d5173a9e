"""`trusted` builds the same models as validation does, from values already valid."""

from __future__ import annotations

from datetime import UTC, datetime

from actorchestra.actors.history.records import NewEvent, SubtaskRecord
from actorchestra.actors.planner.models import Subtask, SubtaskState, SubtaskView
from actorchestra.actors.trusted import trusted


def test_a_trusted_model_is_the_validated_one() -> None:
    view = {
        "id": "a",
        "skill": "s",
        "agent": None,
        "state": SubtaskState.COMPLETED,
        "input": "x",
        "depends_on": ["b"],
        "attempts": 2,
        "output": {"k": [1, 2]},
        "error": None,
        "started_at": 1.5,
        "finished_at": 2.5,
    }
    built, checked = trusted(SubtaskView, **view), SubtaskView(**view)
    assert built == checked
    assert built.model_dump_json() == checked.model_dump_json()
    assert built.model_fields_set == checked.model_fields_set
    assert built.model_copy(update={"error": "e"}).error == "e"
    now = datetime.now(UTC)
    record = {"task_id": "t", "kind": "k", "data": {"a": 1}, "ts": now}
    assert trusted(NewEvent, **record) == NewEvent(**record)


def test_a_partial_set_of_fields_falls_back_to_model_construct() -> None:
    # Defaults to fill: model_construct's job, and what `trusted` hands it to.
    built = trusted(Subtask, id="a", input="x")
    assert built == Subtask(id="a", input="x")
    assert built.depends_on == [] and built.optional is False
    record = trusted(SubtaskRecord, task_id="t", subtask_id="a", state="running")
    assert record == SubtaskRecord(task_id="t", subtask_id="a", state="running")
