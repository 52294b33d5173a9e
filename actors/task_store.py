"""The agent actor's task store: a2a-sdk's in-memory store with a bound on finished tasks."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from a2a.server.context import ServerCallContext
from a2a.server.tasks.inmemory_task_store import InMemoryTaskStore
from a2a.types import a2a_pb2

from actorchestra.protocol.context import CallInfo

FINISHED_STATES = frozenset(  # terminal: a task in one of these never changes again
    {
        a2a_pb2.TaskState.TASK_STATE_COMPLETED,
        a2a_pb2.TaskState.TASK_STATE_FAILED,
        a2a_pb2.TaskState.TASK_STATE_CANCELED,
        a2a_pb2.TaskState.TASK_STATE_REJECTED,
    }
)


class BoundedTaskStore(InMemoryTaskStore):
    """Keeps at most `max_finished` finished tasks; the oldest finished go first.

    Running and input-required tasks are never evicted, so no live task is lost;
    history beyond the bound is the job of the durable history store.
    """

    def __init__(self, max_finished: int) -> None:
        super().__init__()
        self._max_finished = max_finished
        self._finished: OrderedDict[tuple[str, str], None] = OrderedDict()
        # (owner, context id) -> its task ids in creation order, and the way back, so a
        # conversation's tasks are found without scanning every task of the owner.
        self._by_context: dict[tuple[str, str], list[str]] = {}
        self._context_of: dict[tuple[str, str], str] = {}
        self._lock = asyncio.Lock()

    async def save(self, task: a2a_pb2.Task, context: ServerCallContext) -> None:
        await super().save(task, context)
        owner = context.user.user_name
        key = (owner, task.id)
        async with self._lock:
            if key not in self._context_of:
                self._context_of[key] = task.context_id
                self._by_context.setdefault((owner, task.context_id), []).append(task.id)
            if task.status.state in FINISHED_STATES:
                self._finished[key] = None
                self._finished.move_to_end(key)
            while len(self._finished) > self._max_finished:
                (old_owner, old_id), _ = self._finished.popitem(last=False)
                await super().delete(old_id, _owner_context(old_owner))
                self._forget(old_owner, old_id)

    def _forget(self, owner: str, task_id: str) -> None:
        context_id = self._context_of.pop((owner, task_id), None)
        if context_id is None:
            return
        ids = self._by_context.get((owner, context_id), [])
        if task_id in ids:
            ids.remove(task_id)
        if not ids:
            self._by_context.pop((owner, context_id), None)

    async def in_context(
        self, context_id: str, context: ServerCallContext, limit: int
    ) -> list[a2a_pb2.Task]:
        """The caller's most recent `limit` tasks in a conversation, oldest first."""
        ids = self._by_context.get((context.user.user_name, context_id), [])[-limit:]
        tasks = [await self.get(task_id, context) for task_id in ids] if limit else []
        return [t for t in tasks if t is not None]

    def count(self) -> int:
        """Tasks held now, all owners together."""
        return sum(len(v) for v in self._impl.tasks.values())


def _owner_context(owner: str) -> ServerCallContext:
    return CallInfo(user=owner).to_server_context()
