"""A hung and a killed agent actor: the registry notices, and the agent comes back.

These tests hurt the `lab` agent on purpose. Each starts from, and ends with, a
healthy `lab` that answers, so the modules sharing the runtime are not disturbed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import ray
from a2a.client import Client

from tests.integration.a2a_helpers import State, artifact_text, new_context, request, send
from tests.integration.conftest import Runtime, async_wait_for, make_client

pytestmark = pytest.mark.integration


async def _lab(http: httpx.AsyncClient, runtime: Runtime) -> dict[str, Any]:
    return (await http.get(f"{runtime.base_url}/v1/agents/lab")).json()


async def _wait_lab(
    http: httpx.AsyncClient, runtime: Runtime, health: str, within: float, **replica: Any
) -> dict[str, Any]:
    """Wait until the registry reports `lab` in `health` (and its replica matches `replica`)."""
    seen: list[dict[str, Any]] = []

    async def reached() -> bool:
        seen.append(await _lab(http, runtime))
        row = seen[-1]
        r0 = row["replicas"][0]
        return row["health"] == health and all(r0.get(k) == v for k, v in replica.items())

    await async_wait_for(reached, within, f"lab {health} {replica}", interval=0.05)
    return seen[-1]


async def _answers(client: Client) -> None:
    task = await send(client, request("sleep 0.05", context_id=new_context()))
    assert task.status.state == State.TASK_STATE_COMPLETED
    assert artifact_text(task) == "slept 0.05"


@pytest.fixture
async def lab(runtime: Runtime, http: httpx.AsyncClient) -> Client:
    """A client of a `lab` that is healthy before the test, and must be again after it."""
    await _wait_lab(http, runtime, "healthy", 30)
    client = await make_client(runtime, "lab", http, streaming=False)
    yield client
    await _wait_lab(http, runtime, "healthy", 30)


async def test_hung_actor_is_marked_unhealthy_then_healthy(
    runtime: Runtime, http: httpx.AsyncClient, lab: Client
):
    before = await _lab(http, runtime)
    blocked = asyncio.create_task(
        send(lab, request("block 3", context_id=new_context())), name="blocks-lab"
    )
    try:
        hung = await _wait_lab(http, runtime, "unhealthy", 5, healthy=False)
        assert "no answer within" in hung["replicas"][0]["last_error"]
        health = await http.get(f"{runtime.base_url}/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unhealthy"
        assert health.json()["agents"]["lab"] == "unhealthy"

        back = await _wait_lab(http, runtime, "healthy", 10, healthy=True)
        assert back["replicas"][0]["pid"] == before["replicas"][0]["pid"], "not restarted"
        task = await blocked
    finally:
        blocked.cancel()
    assert task.status.state == State.TASK_STATE_COMPLETED
    assert artifact_text(task) == "unblocked"
    await _answers(lab)


async def test_killed_actor_is_unhealthy_until_ray_restarts_it(
    runtime: Runtime, http: httpx.AsyncClient, lab: Client
):
    old_pid = (await _lab(http, runtime))["replicas"][0]["pid"]
    handle = ray.get_actor("agent:lab:0", namespace=runtime.namespace)
    ray.kill(handle, no_restart=False)

    down = await _wait_lab(http, runtime, "unhealthy", 5, healthy=False)
    assert down["replicas"][0]["last_error"]
    back = await _wait_lab(http, runtime, "healthy", 30, healthy=True)
    assert back["replicas"][0]["pid"] != old_pid, "a new process"
    health = (await http.get(f"{runtime.base_url}/health")).json()
    assert health["status"] == "healthy"
    await _answers(lab)


async def test_one_replica_down_degrades_and_the_other_takes_the_work(
    runtime: Runtime, http: httpx.AsyncClient
):
    async def text_row() -> dict[str, Any]:
        return (await http.get(f"{runtime.base_url}/v1/agents/text")).json()

    async def text_is(health: str) -> bool:
        return (await text_row())["health"] == health

    await async_wait_for(lambda: text_is("healthy"), 30, "text healthy")
    old_pids = [r["pid"] for r in (await text_row())["replicas"]]
    client = await make_client(runtime, "text", http, streaming=False)
    ray.kill(ray.get_actor("agent:text:1", namespace=runtime.namespace), no_restart=False)

    await async_wait_for(lambda: text_is("degraded"), 5, "text degraded", interval=0.05)
    health = await http.get(f"{runtime.base_url}/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    ctx = new_context()
    tasks = [await send(client, request(f"uppercase: {i}", context_id=ctx)) for i in range(4)]
    assert [artifact_text(t) for t in tasks] == ["0", "1", "2", "3"]

    await async_wait_for(lambda: text_is("healthy"), 30, "text healthy again", interval=0.05)
    pids = [r["pid"] for r in (await text_row())["replicas"]]
    assert pids[0] == old_pids[0] and pids[1] != old_pids[1]
    await async_wait_for(lambda: _lands_on_r1(client), 10, "new work reaches the restarted replica")


async def _lands_on_r1(client: Client) -> bool:
    task = await send(client, request("uppercase: back", context_id=new_context()))
    assert task.status.state == State.TASK_STATE_COMPLETED
    return task.id.startswith("r1-")
