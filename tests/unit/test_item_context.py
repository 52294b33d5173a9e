"""A batch item's context: what a skill sees is what a message of its own would give."""

from __future__ import annotations

from a2a.types import a2a_pb2

from actorchestra.actors.agent import SkillContext


def batch_context() -> SkillContext:
    message = a2a_pb2.Message(
        message_id="m1",
        context_id="c1",
        task_id="t1",
        role=a2a_pb2.Role.ROLE_USER,
        parts=[a2a_pb2.Part(text="batch of 2")],
    )
    return SkillContext(
        message=message, task_id="t1", context_id="c1", skill_id="echo", metadata={"a": 1}
    )


def test_an_items_context_reads_as_its_own_message() -> None:
    template = batch_context()
    ctx = template.for_item_text("hello\nthere", {"a": 1, "item": "p1"})
    assert isinstance(ctx, SkillContext)
    assert ctx.text == "hello\nthere"
    assert ctx.metadata == {"a": 1, "item": "p1"} and ctx.result_metadata == {}
    assert ctx.skill_id == "echo" and ctx.task_id == "t1"
    # the message, made when asked for: the batch's ids and role, the item's text
    assert ctx.message == a2a_pb2.Message(
        message_id="m1",
        context_id="c1",
        task_id="t1",
        role=a2a_pb2.Role.ROLE_USER,
        parts=[a2a_pb2.Part(text="hello\nthere")],
    )
    assert ctx.message is ctx.message  # made once
    assert ctx.data == []
    # the template is untouched, and a result on one item is not on another's
    ctx.result_metadata["k"] = "v"
    other = template.for_item_text("x", {"item": "p2"})
    assert other.result_metadata == {} and template.text == "batch of 2"


def test_a_message_set_on_an_items_context_is_the_one_it_reads() -> None:
    ctx = batch_context().for_item_text("first", {})
    ctx.message = a2a_pb2.Message(parts=[a2a_pb2.Part(text="replaced")])
    assert ctx.text == "replaced" and ctx.message.parts[0].text == "replaced"
