"""The whole runtime as one A2A agent, served at `/a2a/orchestrator`.

Any A2A client can hand it a task: it submits the task to the planner and streams the
planner's events back as A2A progress updates, then answers with the result. The
message may carry a workflow in its metadata (`{"workflow": {...}}`) like the task API.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import ray

from actorchestra.actors.agent import Agent, Chunk, SkillContext, skill
from actorchestra.actors.planner.actor import PLANNER_NAME, PlannerHandle


class OrchestratorAgent(Agent):
    """Plans a task across the runtime's agents, runs it in parallel, and answers."""

    name = "orchestrator"

    def __init__(self, namespace: str = "actorchestra", **options: Any) -> None:
        super().__init__(**options)
        self._namespace = namespace
        self._planner: PlannerHandle | None = None

    async def _handle(self) -> PlannerHandle:
        if self._planner is None:
            handle = await asyncio.to_thread(ray.get_actor, PLANNER_NAME, self._namespace)
            self._planner = PlannerHandle(handle)
        return self._planner

    @skill(
        tags=["plan", "orchestrate", "team", "workflow"],
        examples=["research the A2A protocol and then write a summary of it"],
    )
    async def orchestrate(self, ctx: SkillContext) -> AsyncIterator[Chunk]:
        """Split the request into subtasks for the runtime's agents and combine the results."""
        planner = await self._handle()
        body: dict[str, Any] = {"input": ctx.text, "user_id": ctx.user or None}
        if isinstance(ctx.metadata.get("workflow"), dict):
            body["workflow"] = ctx.metadata["workflow"]
        task_id = await planner.submit(body)
        await ctx.progress(f"task {task_id} accepted")
        final: dict[str, Any] = {}
        async for event in planner.events(task_id):
            kind, data = event["kind"], event["data"]
            if kind == "planned":
                steps = ", ".join(
                    f"{s['id']}:{s.get('skill') or s.get('agent')}" for s in data["subtasks"]
                )
                await ctx.progress(f"planned {len(data['subtasks'])} subtasks: {steps}")
            elif kind == "subtask_started":
                await ctx.progress(f"{data['subtask']} started on {data['agent']}")
            elif kind == "subtask_completed":
                await ctx.progress(f"{data['subtask']} completed")
            elif kind == "subtask_failed":
                await ctx.progress(f"{data['subtask']} failed: {data.get('error')}")
            elif kind == "final":
                final = data
        ctx.result_metadata["task"] = {"task_id": task_id, "usage": final.get("usage", {})}
        if final.get("state") != "completed":
            raise RuntimeError(f"task {task_id} {final.get('state')}: {final.get('error')}")
        result = final.get("result")
        yield Chunk(result if isinstance(result, str) else json.dumps(result), last=True)
