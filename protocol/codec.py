"""Protobuf messages across process boundaries.

a2a-sdk's types are protobuf messages, which Ray's pickler cannot carry. Every A2A
value that crosses an actor boundary travels as `Packed`: the message type's full
name and its wire bytes, which is also the most compact and fastest form.
"""

from __future__ import annotations

from typing import Any

from a2a.types import a2a_pb2
from google.protobuf.message import Message

Packed = tuple[str, bytes]

_TYPES: dict[str, type[Message]] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in vars(a2a_pb2).values()
    if isinstance(cls, type) and issubclass(cls, Message)
}


def pack(message: Message) -> Packed:
    return (message.DESCRIPTOR.full_name, message.SerializeToString())


def unpack(packed: Packed) -> Any:
    name, data = packed
    cls = _TYPES.get(name)
    if cls is None:
        raise ValueError(f"not an A2A message type: {name!r}")
    return cls.FromString(data)


def pack_optional(message: Message | None) -> Packed | None:
    return None if message is None else pack(message)


def unpack_optional(packed: Packed | None) -> Any:
    return None if packed is None else unpack(packed)
