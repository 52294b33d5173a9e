"""The JSON text of batch item lists (`json_codec.json_bytes`: orjson, the stdlib behind it)."""

from __future__ import annotations

import json

from actorchestra.actors.batch import batch_items
from actorchestra.actors.json_codec import json_bytes


def dumps(value: object) -> str:
    return json_bytes(value).decode()  # as the planner and the executor write them


def test_an_item_list_reads_back_as_it_was_written() -> None:
    items = [
        {"id": "p1", "input": 'naïve \u2603 "quoted"\nnext line', "timeout_s": 2.5},
        {"id": "p2", "input": "x", "deps": [["p1", None], ["p0", "done"]], "hold_s": 0.25},
    ]
    text = dumps(items)
    assert json.loads(text) == items  # any JSON reader gets the same list
    assert batch_items(text) == items


def test_what_orjson_refuses_is_written_the_stdlib_way() -> None:
    # A skill's result metadata may carry an int key or an int past 64 bits.
    entries = [{"item": "p1", "ok": True, "llm": {1: "a"}, "big": 2**70}]
    assert json.loads(dumps(entries)) == [
        {"item": "p1", "ok": True, "llm": {"1": "a"}, "big": 2**70}
    ]


def test_text_that_is_not_an_item_list_is_no_batch() -> None:
    assert batch_items("not json") is None
    assert batch_items('{"id": "p1"}') is None
    assert batch_items('[{"id": "p1"}, 3, "x"]') == [{"id": "p1"}]


def test_an_item_list_written_the_stdlib_way_reads_back_exactly() -> None:
    items = [{"id": "p1", "input": "x", "n": 2**70}]
    text = dumps(items)
    assert text.startswith(" ")  # marked: orjson refused it
    assert batch_items(text) == items and isinstance(batch_items(text)[0]["n"], int)
