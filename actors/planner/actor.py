"""The planner as a Ray actor, and a typed handle to it.

Kept apart from `actors.runtime` so that agent actors, which load their class from
there, do not import DuckDB and the planner.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayTaskError

from actorchestra.actors.endpoint import LocalAgentEndpoint
from actorchestra.actors.planner.service import Planner, PlannerOptions
from actorchestra.actors.runtime import REGISTRY_NAME, RegistryHandle, freeze_startup_objects
from actorchestra.actors.spec import actor_name
from actorchestra.protocol.endpoint import AgentEndpoint
from actorchestra.protocol.errors import ActorchestraError, AgentUnavailableError

PLANNER_NAME = "planner"
SWITCH_INTERVAL_S = 0.0005


class RayPlanner(Planner):
    """The planner as Ray runs it: agents and the registry found by name in its namespace."""

    def __init__(self, options: PlannerOptions, namespace: str) -> None:
        # The history store writes on a thread of its own, which holds the GIL for
        # Arrow and JSON work; at Python's default 5 ms switch interval the event loop
        # waits up to 5 ms for the GIL on every wakeup while it does (a 1,000-subtask
        # fan-out stalled ~0.6 s that way). A short interval keeps dispatch moving.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._namespace = namespace
        self._registry_handle: RegistryHandle | None = None
        self._connecting: set[asyncio.Task[None]] = set()
        super().__init__(options, self._registry_rows, self._endpoint)
        freeze_startup_objects()

    async def _registry_rows(self) -> list[dict[str, Any]]:
        if self._registry_handle is None:
            handle = await asyncio.to_thread(ray.get_actor, REGISTRY_NAME, self._namespace)
            self._registry_handle = RegistryHandle(handle)
        return await self._registry_handle.list()

    async def _endpoint(self, name: str, replicas: int) -> AgentEndpoint:
        handles = await asyncio.to_thread(
            lambda: [
                ray.get_actor(actor_name(name, i), namespace=self._namespace)
                for i in range(replicas)
            ]
        )
        endpoint = LocalAgentEndpoint(name, handles)
        # Channels open behind the first dispatch, not in its way.
        task = asyncio.get_running_loop().create_task(endpoint.connect_all())
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)
        return endpoint


PlannerActorRemote = ray.remote(RayPlanner)


class PlannerHandle:
    """Typed facade over the planner actor (the task API's backend).

    Ray errors enter here: the planner's own errors come out as themselves, a dead
    planner as `AgentUnavailableError`.
    """

    def __init__(self, handle: Any) -> None:
        self._h = handle

    async def _call(self, ref: Any) -> Any:
        try:
            return await ref
        except RayTaskError as e:
            raise _cause(e) from None
        except (ActorDiedError, ActorUnavailableError) as e:
            raise AgentUnavailableError(
                f"the planner is not running ({e!r}); retry shortly"
            ) from None

    async def submit(self, body: dict[str, Any]) -> str:
        return await self._call(self._h.submit.remote(body))

    async def get(self, task_id: str) -> dict[str, Any]:
        return await self._call(self._h.get.remote(task_id))

    async def list(self, **filters: Any) -> dict[str, Any]:
        return await self._call(self._h.list.remote(**filters))

    async def cancel(self, task_id: str) -> dict[str, Any]:
        return await self._call(self._h.cancel.remote(task_id))

    async def delete(self, task_id: str) -> None:
        await self._call(self._h.delete.remote(task_id))

    async def event_batches(
        self, task_id: str, after_seq: int = 0
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The task's events as the planner batches them (one Ray item per batch)."""
        async for ref in self._h.stream_event_batches.remote(task_id, after_seq):
            yield await self._call(ref)

    async def events(self, task_id: str, after_seq: int = 0) -> AsyncIterator[dict[str, Any]]:
        async for batch in self.event_batches(task_id, after_seq):
            for event in batch:
                yield event


def _cause(err: RayTaskError) -> BaseException:
    cause = getattr(err, "cause", None)
    if isinstance(cause, ActorchestraError):
        return cause
    return AgentUnavailableError(f"the planner failed: {cause!r}")


def ensure_planner(namespace: str, options: PlannerOptions) -> PlannerHandle:
    handle = PlannerActorRemote.options(
        name=PLANNER_NAME,
        namespace=namespace,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
        max_concurrency=10_000,
        num_cpus=0,
        runtime_env={"env_vars": {"OTEL_INSTRUMENTATION_A2A_SDK_ENABLED": "false"}},
    ).remote(options, namespace)
    return PlannerHandle(handle)
