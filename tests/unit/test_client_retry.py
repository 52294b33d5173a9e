"""The Python client while the runtime's planner restarts: the task API answers 503
("retry shortly") for a while, and a client following a task waits it out.

The runtime is the task API as the ingress mounts it, served by uvicorn on loopback, in
front of a real `Planner` in this process that refuses its first calls as a planner
Ray is restarting does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actorchestra.actors.spec import AgentSpec
from actorchestra.client import Client, ClientError
from actorchestra.protocol.errors import AgentUnavailableError
from actorchestra.serve_apps.identity import AuthTokens
from actorchestra.serve_apps.task_routes import add_task_routes
from tests.unit.planner_helpers import InProcessPlanner, make_planner
from tests.unit.runtime_app import runtime_app, served

pytestmark = pytest.mark.usefixtures("clean_env")

ECHO = AgentSpec(name="echo", cls="actorchestra.actors.examples:EchoAgent")
WORKFLOW = {"kind": "parallel", "steps": [{"agent": "echo", "input": "hello"}]}


class Restarting(InProcessPlanner):
    """The planner as the ingress sees it while Ray restarts it: reads are refused with
    the ingress's 503 until `down` of them have been."""

    down = 0
    refused = 0
    reads_only = False  # refuse `get` only, not the event stream

    def _unavailable(self) -> None:
        if self.refused < self.down:
            self.refused += 1
            raise AgentUnavailableError("the planner is not running (restarting); retry shortly")

    async def get(self, task_id: str) -> dict[str, Any]:
        self._unavailable()
        return await super().get(task_id)

    async def event_batches(
        self, task_id: str, after_seq: int = 0
    ) -> AsyncIterator[list[dict[str, Any]]]:
        if not self.reads_only:
            self._unavailable()
        async for batch in super().event_batches(task_id, after_seq):
            yield batch


async def test_following_a_task_waits_out_a_restarting_planner(tmp_path: Path) -> None:
    planner = make_planner(tmp_path, {"echo": ECHO})
    restarting = Restarting(planner)
    app = runtime_app(AuthTokens({}))
    add_task_routes(app, restarting, AuthTokens({}))
    try:
        async with served(app) as base, Client(base, token="") as client:
            task_id = await client.submit("say hello", workflow=WORKFLOW)
            restarting.down = 2
            task = await client.wait(task_id, timeout_s=30)
            assert restarting.refused == 2  # both 503s were met, and waited out
            assert task["state"] == "completed" and task["result"] == "hello"

            # Retries are bounded: a planner that stays away is reported as it answers.
            restarting.down, restarting.refused = 5, 0
            with pytest.raises(ClientError) as refused:
                async for _ in client.events(task_id, reconnects=1):
                    pass
            assert refused.value.status == 503 and "retry shortly" in refused.value.message
            assert restarting.refused == 2

            # `wait` passes its bound on: to the event stream ...
            restarting.down, restarting.refused = 5, 0
            with pytest.raises(ClientError) as waited:
                await client.wait(task_id, timeout_s=30, reconnects=1)
            assert waited.value.status == 503 and restarting.refused == 2
            # ... and to the read of the finished task once the stream is done.
            restarting.down, restarting.refused, restarting.reads_only = 5, 0, True
            with pytest.raises(ClientError) as read:
                await client.wait(task_id, timeout_s=30, reconnects=1)
            assert read.value.status == 503 and restarting.refused == 2
            restarting.down, restarting.refused = 3, 0
            task = await client.wait(task_id, timeout_s=30, reconnects=3)
            assert task["state"] == "completed" and restarting.refused == 3
            restarting.reads_only = False

            # Other refusals are not retried: an unknown task is a 404 at once.
            restarting.down = 0
            with pytest.raises(ClientError) as unknown:
                async for _ in client.events("no-such-task"):
                    pass
            assert unknown.value.status == 404
    finally:
        await planner.store.close()
