"""JSON of values crossing a process boundary, fast, and exact where orjson is not."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson


def json_bytes(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """JSON of `value` (batch item lists, event data, the planner channel's payloads):
    orjson, several times the stdlib's speed on thousands of entries, with non-string
    keys written as the stdlib writes them; what it refuses (an int past 64 bits, a type
    it does not know) the stdlib way, with `default`."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(value, default=default).encode()
