"""A real `Planner` in this process: real agent actor classes, real DuckDB history."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from actorchestra.actors.agent_actor import AgentActor
from actorchestra.actors.inprocess import InProcessAgentEndpoint
from actorchestra.actors.llm.config import LLMConfig
from actorchestra.actors.planner.service import Planner, PlannerOptions
from actorchestra.actors.spec import AgentSpec


def make_planner(
    tmp_path: Path,
    specs: Mapping[str, AgentSpec],
    llm: LLMConfig | None = None,
    remote_rows: Sequence[dict[str, Any]] = (),
    remote_http: httpx.AsyncClient | None = None,
) -> Planner:
    """A planner over in-process actors for `specs`, every replica healthy, history in `tmp_path`.

    The registry listing and the endpoint lookup it is given stand in for the Ray ones.
    `remote_rows`: third-party agents' registry rows, listed first, reached through
    `remote_http`.
    """
    actors = {
        name: [AgentActor(spec, i, f"http://x/a2a/{name}") for i in range(spec.replicas)]
        for name, spec in specs.items()
    }

    async def registry() -> list[dict[str, Any]]:
        return [*remote_rows] + [
            {
                "name": name,
                "kind": "local",
                "health": "healthy",
                "concurrency": None,
                "replicas": [{}] * len(reps),
                "skills": [s.model_dump() for s in reps[0].info.skills],
            }
            for name, reps in actors.items()
        ]

    async def endpoint(name: str, replicas: int) -> InProcessAgentEndpoint:
        return InProcessAgentEndpoint(name, actors[name])

    return Planner(
        PlannerOptions(data_dir=str(tmp_path), llm=llm), registry, endpoint, remote_http=remote_http
    )


class InProcessPlanner:
    """The calls of `actors.planner.actor.PlannerHandle`, on a planner in this process."""

    def __init__(self, planner: Planner) -> None:
        self.planner = planner

    async def submit(self, body: dict[str, Any]) -> str:
        return await self.planner.submit(body)

    async def get(self, task_id: str) -> dict[str, Any]:
        return await self.planner.get(task_id)

    async def list(self, **filters: Any) -> dict[str, Any]:
        return await self.planner.list(**filters)

    async def cancel(self, task_id: str) -> dict[str, Any]:
        return await self.planner.cancel(task_id)

    async def delete(self, task_id: str) -> None:
        await self.planner.delete(task_id)

    async def event_batches(
        self, task_id: str, after_seq: int = 0
    ) -> AsyncIterator[list[dict[str, Any]]]:
        async for batch in self.planner.stream_event_batches(task_id, after_seq):
            yield batch

    async def events(self, task_id: str, after_seq: int = 0) -> AsyncIterator[dict[str, Any]]:
        async for event in self.planner.stream_events(task_id, after_seq):
            yield event
