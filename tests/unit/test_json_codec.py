"""`json_codec`: what crosses a process boundary as JSON comes back as it was written."""

from __future__ import annotations

import pytest

from actorchestra.actors.history.forwarding import EventColumns
from actorchestra.actors.json_codec import json_bytes, json_loads


@pytest.mark.parametrize(
    "value",
    [
        {"id": 2**70, "n": -(2**63) - 1, "ok": 2**64 - 1},
        [1.5, "naïve \u2603", None, True, {"nested": [2**100]}],
        {"digits": "12345678901234567890123", "small": 7},  # a long digit string
    ],
)
def test_values_come_back_exactly(value: object) -> None:
    back = json_loads(json_bytes(value))
    assert back == value
    assert _types(back) == _types(value)  # an int past 64 bits is still an int


def test_any_json_reader_reads_what_was_written() -> None:
    import json

    for value in ({"id": 2**70}, {1: "int key"}, [1, "x"]):
        assert json.loads(json_bytes(value)) == json.loads(json.dumps(value))


def test_event_data_reaches_the_history_store_exactly() -> None:
    # A skill's output with an id past 64 bits, as the planner forwards events.
    rows = [
        {"task_id": "t", "kind": "subtask_completed", "data": {"output": {"id": 2**70}}, "ts": 1.0},
        {"task_id": "t", "kind": "final", "data": {"state": "completed"}, "ts": 2.0},
    ]
    back = EventColumns.of(rows).rows()
    assert [r.data for r in back] == [r["data"] for r in rows]
    assert isinstance(back[0].data["output"]["id"], int)


def _types(value: object) -> object:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value)


def test_the_planner_channel_keeps_big_ints() -> None:
    # Task views and events reach the ingress this way (`actors.planner.actor`).
    from actorchestra.actors.planner.actor import pack_json, unpack_json

    view = {"task_id": "t", "result": {"p1": {"id": 2**70}}, "usage": {"tokens": 12}}
    assert unpack_json(pack_json(view)) == view
    assert isinstance(unpack_json(pack_json(view))["result"]["p1"]["id"], int)
