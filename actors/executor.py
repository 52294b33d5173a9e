"""a2a-sdk `AgentExecutor` that runs an `Agent`'s skills and reports through `TaskUpdater`."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from a2a.helpers import new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events.event_queue_v2 import EventQueue
from a2a.server.tasks.task_updater import TaskUpdater
from a2a.types import a2a_pb2
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError

from actorchestra.actors.agent import Agent, Chunk, NeedsInput, Rejected, SkillContext, Turn
from actorchestra.actors.batch import (
    BATCH_KEY,
    batch_items,
    output_text,
    part_value,
    with_results,
)
from actorchestra.actors.json_codec import json_bytes

logger = logging.getLogger(__name__)

# (context_id, current task_id, request context) -> earlier turns of that context
ConversationSource = Callable[[str, str, RequestContext], Awaitable[list[Turn]]]

# Key in the server call context's state: set (by the actor) when the caller streams.
STREAMING_STATE = "actorchestra.streaming"


def _agent_message(text: str, ctx: RequestContext) -> a2a_pb2.Message:
    return new_text_message(
        text, context_id=ctx.context_id, task_id=ctx.task_id, role=a2a_pb2.Role.ROLE_AGENT
    )


async def _streamed_part(fn: Any, ctx: SkillContext) -> a2a_pb2.Part | None:
    """A streaming skill's answer as one artifact part: its chunks joined."""
    pieces = [c.text if isinstance(c, Chunk) else str(c) async for c in fn(ctx)]
    return a2a_pb2.Part(text="".join(pieces))


async def _returned_part(fn: Any, ctx: SkillContext) -> a2a_pb2.Part | None:
    """A skill's return value as one artifact part (a batch item's answer)."""
    result = await fn(ctx)
    if isinstance(result, NeedsInput | Rejected):
        raise RuntimeError(
            f"a batch item cannot ask for input or be rejected: "
            f"{getattr(result, 'question', None) or getattr(result, 'reason', '')}"
        )
    return _result_part(result)


_RESUMABLE = {
    a2a_pb2.TaskState.TASK_STATE_INPUT_REQUIRED,
    a2a_pb2.TaskState.TASK_STATE_AUTH_REQUIRED,
}


def _result_part(result: Any) -> a2a_pb2.Part | None:
    """The artifact part for a skill's return value; raises if it has no JSON form."""
    if result is None or isinstance(result, NeedsInput | Rejected):
        return None
    if isinstance(result, str):
        return a2a_pb2.Part(text=result)
    try:
        wrapper = ParseDict({"v": result}, struct_pb2.Struct())
    except (ParseError, TypeError, ValueError) as e:
        raise TypeError(
            f"returned a {type(result).__name__}, which has no JSON form; "
            "return str, dict, list, numbers or None"
        ) from e
    return a2a_pb2.Part(data=wrapper.fields["v"])


class SkillExecutor(AgentExecutor):
    """Runs the skill a message asks for; every outcome ends in an A2A task state.

    Cancellation: a2a-sdk cancels the task running `execute` (the skill sees
    `CancelledError` at its next await) and calls `cancel`, which records CANCELED.
    """

    def __init__(
        self,
        agent: Agent,
        conversation: ConversationSource | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.agent = agent
        self._conversation = conversation
        # Skills running at once in this replica (batch items included); None: no limit.
        self._slots = asyncio.Semaphore(concurrency) if concurrency else None

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None and context.task_id and context.context_id
        task = context.current_task
        metadata = {**context.metadata, **MessageToDict(context.message.metadata)}
        requested = metadata.get("skill") or None
        if requested is None and task is not None and task.status.state in _RESUMABLE:
            # An answer to "input required" belongs to the skill that asked for it.
            requested = MessageToDict(task.metadata).get("skill") or None
        text = context.get_user_input()
        try:
            skill_id: str | None = self.agent.choose_skill(
                text, str(requested) if requested else None
            )
        except KeyError:
            skill_id = None
        if task is None:
            new_task = a2a_pb2.Task(
                id=context.task_id,
                context_id=context.context_id,
                status=a2a_pb2.TaskStatus(state=a2a_pb2.TaskState.TASK_STATE_SUBMITTED),
                history=[context.message],
            )
            if skill_id is not None:
                new_task.metadata.update({"skill": skill_id})
            await event_queue.enqueue_event(new_task)
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        if skill_id is None:
            known = ", ".join(sorted(self.agent.skills()))
            await updater.reject(
                _agent_message(f"unknown skill {requested!r}; this agent has: {known}", context)
            )
            return
        await updater.start_work()

        async def progress(note: str) -> None:
            await updater.update_status(
                a2a_pb2.TaskState.TASK_STATE_WORKING, message=_agent_message(note, context)
            )

        turns: list[Turn] = []
        if self._conversation is not None:
            turns = await self._conversation(context.context_id, context.task_id, context)
        skill_ctx = SkillContext(
            message=context.message,
            task_id=context.task_id,
            context_id=context.context_id,
            skill_id=skill_id,
            history=list(task.history) if task is not None else [],
            metadata=metadata,
            conversation=turns,
            user=context.call_context.user.user_name,
            streaming=bool(context.call_context.state.get(STREAMING_STATE)),
            _progress=progress,
        )
        fn = self.agent.skill_function(skill_id)
        batch = batch_items(metadata.get(BATCH_KEY))
        if batch is not None:
            await self._run_batch(batch, fn, skill_ctx, updater)
            await updater.complete()
            return
        try:
            if self._slots is not None:
                await self._slots.acquire()
            if inspect.isasyncgenfunction(fn):
                await self._stream(fn(skill_ctx), updater, skill_id, skill_ctx.result_metadata)
                await self._complete(updater, skill_ctx.result_metadata)
                return
            result = await fn(skill_ctx)
            part = _result_part(result)
        except Exception as e:  # the skill's own failure: the task fails, the caller is told why
            logger.warning("skill %s of %s failed: %r", skill_id, type(self.agent).__name__, e)
            await updater.failed(_agent_message(f"skill {skill_id!r} failed: {e}", context))
            return
        finally:
            if self._slots is not None:
                self._slots.release()
        await self._finish(result, part, updater, context, skill_id, skill_ctx.result_metadata)

    async def _run_batch(
        self, items: list[dict[str, Any]], fn: Any, template: SkillContext, updater: TaskUpdater
    ) -> None:
        """Run one skill over many inputs; results go out as they finish, coalesced.

        A batch is many subtasks in one A2A message: the a2a-sdk task lifecycle costs
        about 2 ms of CPU per message here, and about as much again per event, so a
        planner dispatching thousands of subtasks a second sends them in batches and
        the results travel the same way: every item that finished by the time the
        previous artifact went out shares the next one (one part per item, and the
        artifact's `items` metadata says which item each part answers and how it went).
        An item finishing alone goes out alone, at once, unless it carries `hold_s`
        (nothing waits on its result): then it may wait that long for company, which
        items that finish one at a time under a concurrency limit otherwise never have.
        Failures and the batch's last result are never held; each entry's `at` says
        when the item finished. Items share the replica's concurrency limit; an item's
        failure or timeout is reported in its own entry and does not fail the others.

        An item with `deps` (see `actors.batch`) waits for the items of this batch it
        names and starts the moment the last of them finishes, with their outputs in its
        input; when one of them fails, it and everything waiting on it are answered
        "not run" (`unrun`) in the same flush, for the planner to send again.

        Without a concurrency limit the items that start with the batch start at once,
        so those with the same timeout share one deadline (one timer for the batch, not
        a timeout scope per item: 13 us each here); under a limit each item's clock
        starts with its slot, and a dependant's when it starts.
        """
        base = {k: v for k, v in template.metadata.items() if k != BATCH_KEY}
        run = _streamed_part if inspect.isasyncgenfunction(fn) else _returned_part
        finished: list[tuple[dict[str, Any], a2a_pb2.Part]] = []
        flushing: asyncio.Task[None] | None = None
        holding: asyncio.TimerHandle | None = None
        sent = 0
        left = len(items)
        all_done = asyncio.Event()
        loop = asyncio.get_running_loop()
        expired: set[asyncio.Task[None]] = set()  # cancelled by a shared deadline
        running: set[asyncio.Task[None]] = set()
        broken: list[BaseException | None] = []
        # Dependants sent ahead: which items each waits on, and who waits on each item.
        waiting: dict[str, int] = {}
        inputs: dict[str, list[tuple[str, str | None]]] = {}  # a waiting item's `deps`
        dependants: dict[str, list[dict[str, Any]]] = {}
        outputs: dict[str, str] = {}  # output text of finished items a dependant needs

        async def flush() -> None:
            nonlocal flushing, sent
            try:
                await asyncio.sleep(0)  # items finishing in this loop turn join in
                while finished:
                    out = finished[:]
                    finished.clear()
                    sent += 1
                    await updater.add_artifact(
                        [part for _, part in out],
                        artifact_id=f"items-{sent}",
                        name=template.skill_id,
                        metadata={"items": json_bytes([meta for meta, _ in out]).decode()},
                        last_chunk=True,
                    )
            finally:
                flushing = None

        def flush_now() -> None:
            nonlocal flushing, holding
            if holding is not None:
                holding.cancel()
                holding = None
            if flushing is None:
                flushing = loop.create_task(flush())

        def flush_within(hold_s: float) -> None:
            """A result nothing waits on: it goes with the next flush, at the latest
            `hold_s` from now (a flush under way takes it along)."""
            nonlocal holding
            if flushing is None and holding is None:
                holding = loop.call_later(hold_s, flush_now)

        def settled(count: int) -> None:
            nonlocal left
            left -= count
            if not left:
                all_done.set()

        def start(item: dict[str, Any], text: str, own_timeout: bool) -> asyncio.Task[None]:
            task = loop.create_task(one(item, text, own_timeout))
            running.add(task)
            task.add_done_callback(ended)
            return task

        def ended(task: asyncio.Task[None]) -> None:
            running.discard(task)
            if not task.cancelled() and task.exception() is not None:
                broken.append(task.exception())  # a bug here, not the skill's failure
                all_done.set()

        def failed(item_id: str, error: str, **extra: Any) -> None:
            """`item_id` answered with a failure: its entry, and the error as its part."""
            meta = {"item": item_id, "ok": False, **extra, "error": error, "at": time.time()}
            finished.append((meta, a2a_pb2.Part(text=error)))

        def not_run(item_id: str, why: str) -> int:
            """`item_id`'s dependants in this batch, and theirs, answered "not run"."""
            count, stack = 0, list(dependants.pop(item_id, ()))
            while stack:
                dep = stack.pop()
                dep_id = str(dep.get("id", ""))
                if waiting.pop(dep_id, None) is None:
                    continue  # answered already (it waits on two that failed)
                failed(dep_id, f"not run: its input {why}", unrun=True)
                count += 1
                stack.extend(dependants.pop(dep_id, ()))
            return count

        def release(item_id: str, part: a2a_pb2.Part) -> None:
            """`item_id` finished well: dependants waiting on nothing else start now."""
            ready = dependants.pop(item_id, ())
            if not ready:
                return
            outputs[item_id] = output_text(part_value(part))
            for dep in ready:
                dep_id = str(dep.get("id", ""))
                if dep_id not in waiting:
                    continue  # answered "not run" already: another of its inputs failed
                waiting[dep_id] -= 1
                if not waiting[dep_id]:
                    del waiting[dep_id]
                    results = [
                        (d, text if text is not None else outputs[d])
                        for d, text in inputs.pop(dep_id)
                    ]
                    start(dep, with_results(str(dep.get("input", "")), results), True)

        async def one(item: dict[str, Any], text: str, own_timeout: bool) -> None:
            item_id = str(item.get("id", ""))
            timeout = item.get("timeout_s")
            ctx = template.for_item_text(text, {**base, "item": item_id})
            part: a2a_pb2.Part | None = None
            error: str | None = None
            try:
                if self._slots is None and not own_timeout:
                    part = await run(fn, ctx)  # under the batch's shared deadline
                else:
                    async with self._slots or contextlib.nullcontext(), asyncio.timeout(timeout):
                        part = await run(fn, ctx)
            except (TimeoutError, asyncio.CancelledError) as e:
                if isinstance(e, asyncio.CancelledError):
                    task = asyncio.current_task()
                    if task not in expired:
                        raise  # the batch itself is cancelled (CancelTask)
                    assert task is not None
                    task.uncancel()  # its shared deadline passed
                error = f"timed out after {timeout}s"
            except Exception as e:  # the item's failure, reported in its entry
                error = f"{type(e).__name__}: {e}"
            count = 1
            if error is None:
                meta: dict[str, Any] = {"item": item_id, "ok": True}
                meta.update(ctx.result_metadata)
                meta["at"] = time.time()
                part = part if part is not None else a2a_pb2.Part(text="")  # it returned None
                finished.append((meta, part))
                release(item_id, part)
            else:
                failed(item_id, error)
                count += not_run(item_id, f"{item_id!r} failed: {error}")
            settled(count)
            hold_s = item.get("hold_s")
            if left and error is None and isinstance(hold_s, int | float) and hold_s > 0:
                flush_within(float(hold_s))
            else:  # awaited, failed (a retry may start at once), or the batch's last
                flush_now()

        first: list[tuple[dict[str, Any], str]] = []
        known = {str(item.get("id", "")) for item in items}
        for item in items:
            if "deps" not in item:  # most items: nothing to check or wait for
                first.append((item, str(item.get("input", ""))))
                continue
            item_id = str(item.get("id", ""))
            try:
                deps = _batch_deps(item.get("deps"), known, item_id)
            except ValueError as e:
                failed(item_id, str(e))
                settled(1)
                continue
            pending = [dep for dep, text in deps if text is None]
            if not pending:
                given = [(dep, text) for dep, text in deps if text is not None]
                first.append((item, with_results(str(item.get("input", "")), given)))
                continue
            waiting[item_id], inputs[item_id] = len(pending), deps
            for dep_id in pending:
                dependants.setdefault(dep_id, []).append(item)
        tasks = [start(item, text, False) for item, text in first]
        if finished:
            flush_now()
        deadlines: list[asyncio.TimerHandle] = []
        if self._slots is None:
            by_timeout: dict[float, list[asyncio.Task[None]]] = {}
            for (item, _), task in zip(first, tasks, strict=True):
                if item.get("timeout_s"):
                    by_timeout.setdefault(float(item["timeout_s"]), []).append(task)

            def expire(group: list[asyncio.Task[None]]) -> None:
                for task in group:
                    if not task.done():
                        expired.add(task)
                        task.cancel()

            now = loop.time()
            deadlines = [loop.call_at(now + t, expire, g) for t, g in by_timeout.items()]
        try:
            if left:
                await all_done.wait()
        finally:
            if left:  # cancelled (CancelTask) or broken: the running items stop with the batch
                for task in list(running):
                    task.cancel()
            for handle in deadlines:
                handle.cancel()
            if holding is not None:
                holding.cancel()
        if broken:
            raise RuntimeError("a batch item's run broke") from broken[0]
        while flushing is not None:
            await flushing

    async def _stream(
        self, chunks: Any, updater: TaskUpdater, skill_id: str, metadata: dict[str, Any]
    ) -> None:
        """Publish each chunk as an artifact append; the last one carries last_chunk.

        A plain string is held until the next one arrives (only then is it known not to
        be the last); a `Chunk` goes out at once with its own `last`. `metadata` is read
        when the last chunk goes out, so the skill can fill it as it finishes.
        """
        artifact_id = str(uuid.uuid4())
        first = True

        async def publish(text: str, last: bool) -> None:
            nonlocal first
            await updater.add_artifact(
                [a2a_pb2.Part(text=text)],
                artifact_id,
                name=skill_id,
                metadata=(metadata or None) if last else None,
                append=not first,
                last_chunk=last,
            )
            first = False

        held: str | None = None
        done = False
        async for chunk in chunks:
            if done:
                raise RuntimeError("yielded more after its last chunk")
            if held is not None:
                await publish(held, False)
                held = None
            if isinstance(chunk, Chunk):
                await publish(chunk.text, chunk.last)
                done = chunk.last
            else:
                held = str(chunk)
        if not done:
            await publish(held or "", True)

    async def _complete(self, updater: TaskUpdater, metadata: dict[str, Any]) -> None:
        """COMPLETED, with the skill's result metadata (it merges into the task's)."""
        await updater.update_status(
            a2a_pb2.TaskState.TASK_STATE_COMPLETED, metadata=metadata or None
        )

    async def _finish(
        self,
        result: Any,
        part: a2a_pb2.Part | None,
        updater: TaskUpdater,
        context: RequestContext,
        skill_id: str,
        metadata: dict[str, Any],
    ) -> None:
        if isinstance(result, NeedsInput):
            await updater.requires_input(_agent_message(result.question, context))
        elif isinstance(result, Rejected):
            await updater.reject(_agent_message(result.reason, context))
        else:
            if part is not None:
                await updater.add_artifact(
                    [part], name=skill_id, metadata=metadata or None, last_chunk=True
                )
            await self._complete(updater, metadata)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.cancel()


def _batch_deps(deps: Any, known: set[str], own_id: str) -> list[tuple[str, str | None]]:
    """Item `own_id`'s `deps`, checked: (input id, its output text, or None for another
    item of this batch, one of `known`). Raises ValueError, saying what is wrong, for a
    malformed list."""
    if deps is None:
        return []
    shape = "`deps` must be [[id, output text or null], ...], null naming an item of the batch"
    if not isinstance(deps, list):
        raise ValueError(shape)
    checked: list[tuple[str, str | None]] = []
    for entry in deps:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise ValueError(shape)
        dep, text = entry
        if text is None and (dep not in known or dep == own_id):
            raise ValueError(f"{shape}: {dep!r} is not one")
        if text is not None and not isinstance(text, str):
            raise ValueError(shape)
        checked.append((dep, text))
    return checked
