"""The task API and the planner through HTTP, the Python client and A2A (issue 4)."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import httpx
import pytest
import ray
from a2a.helpers import new_text_message
from a2a.types import a2a_pb2

from actorchestra.actors.planner.actor import RECORD_EVERY_S
from actorchestra.client import Client, ClientError
from tests.integration.conftest import Runtime, async_wait_for, make_client

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(runtime: Runtime) -> Client:
    async with Client(runtime.base_url) as c:
        yield c


def by_id(task: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in task["subtasks"]}


async def test_a_planned_task_fans_out_to_several_agents(client: Client) -> None:
    seen: list[str] = []
    task = await client.run(
        "echo the greeting hello there, and uppercase: shout this, then count the words",
        on_event=lambda e: seen.append(e["kind"]),
        timeout_s=60,
    )
    assert task["state"] == "completed", task["error"]
    assert task["plan"]["source"] == "llm"
    agents = {s["agent"] for s in task["subtasks"]}
    assert {"echo", "text"} <= agents, task["subtasks"]
    assert seen[0] == "planned" and seen[-1] == "final"
    assert seen.count("subtask_completed") == len(task["subtasks"])
    assert task["result"]  # the synthesis answered
    assert task["usage"]["prompt_tokens"] > 0  # planning and synthesis were paid for


@pytest.mark.parametrize("kind", ["sequential", "parallel", "graph"])
async def test_each_workflow_kind_runs(client: Client, kind: str) -> None:
    steps: list[dict[str, Any]] = [
        {"id": "a", "skill": "uppercase", "input": "uppercase: first"},
        {"id": "b", "agent": "echo", "input": "second"},
    ]
    if kind == "graph":
        steps.append(
            {"id": "c", "skill": "word_count", "input": "count:", "depends_on": ["a", "b"]}
        )
    task = await client.run(
        "workflow", workflow={"kind": kind, "steps": steps}, synthesize=False, timeout_s=60
    )
    assert task["state"] == "completed", task["error"]
    subs = by_id(task)
    assert subs["a"]["output"] == "FIRST"
    if kind == "sequential":
        assert subs["b"]["depends_on"] == ["a"]
        assert "FIRST" in subs["b"]["output"]  # the previous output reached it
    if kind == "parallel":
        assert subs["b"]["depends_on"] == [] and subs["b"]["output"] == "second"
    if kind == "graph":
        c_input = subs["c"]["input"]
        assert subs["c"]["output"]["words"] > 0
        assert "FIRST" not in c_input  # the plan keeps the step's own input ...
        events = [e async for e in client.events(task["task_id"])]
        started = [e for e in events if e["kind"] == "subtask_started"]
        assert [e["data"]["subtask"] for e in started][-1] == "c"  # ... c ran after a and b


async def test_invalid_workflows_get_422_naming_the_problem(
    runtime: Runtime, http: httpx.AsyncClient
) -> None:
    cases = [
        (
            {
                "kind": "graph",
                "steps": [
                    {"id": "x", "skill": "echo", "depends_on": ["y"]},
                    {"id": "y", "skill": "echo", "depends_on": ["x"]},
                ],
            },
            "cycle",
        ),
        ({"kind": "parallel", "steps": [{"skill": "levitate"}]}, "unknown skill 'levitate'"),
        ({"kind": "parallel", "steps": [{"agent": "nobody"}]}, "unknown agent 'nobody'"),
        ({"kind": "loop", "steps": [{"skill": "echo"}]}, "workflow.kind"),
    ]
    for workflow, problem in cases:
        r = await http.post(
            f"{runtime.base_url}/v1/tasks", json={"input": "x", "workflow": workflow}
        )
        assert r.status_code == 422, r.text
        assert problem in r.json()["error"]["message"]
    r = await http.post(f"{runtime.base_url}/v1/tasks", json={"workflow": {}})
    assert r.status_code == 422 and "input" in r.json()["error"]["message"]
    r = await http.post(f"{runtime.base_url}/v1/tasks", content=b"{not json")
    assert r.status_code == 422


async def test_cancel_in_the_middle(client: Client, runtime: Runtime) -> None:
    task_id = await client.submit(
        "slow",
        workflow={
            "kind": "parallel",
            "steps": [
                {"skill": "sleep", "agent": "lab", "input": "30"},
                {"skill": "sleep", "agent": "lab", "input": "30"},
            ],
        },
    )

    async def running() -> bool:
        return (await client.get(task_id))["state"] == "running"

    await async_wait_for(running, timeout=20, what="task running")
    canceled = await client.cancel(task_id)
    assert canceled["state"] == "canceled"
    assert {s["state"] for s in canceled["subtasks"]} == {"canceled"}
    with pytest.raises(ClientError) as err:
        await client.cancel(task_id)
    assert err.value.status == 422 and "already canceled" in err.value.message


async def test_reconnect_with_last_event_id_loses_nothing(
    client: Client, runtime: Runtime, http: httpx.AsyncClient
) -> None:
    steps = [{"id": f"s{i}", "agent": "lab", "skill": "sleep", "input": "0.2"} for i in range(4)]
    task_id = await client.submit("stream me", workflow={"kind": "sequential", "steps": steps})
    first: list[dict[str, Any]] = []
    async for event in client.events(task_id):  # read a few, then drop the connection
        first.append(event)
        if len(first) == 3:
            break
    rest = [e async for e in client.events(task_id, after=first[-1]["seq"])]
    seqs = [e["seq"] for e in first + rest]
    assert seqs == list(range(1, len(seqs) + 1))  # no gap, no repeat
    assert rest[-1]["kind"] == "final"
    # The raw SSE carries the ids, and Last-Event-ID resumes after one.
    r = await http.get(
        f"{runtime.base_url}/v1/tasks/{task_id}/events", headers={"Last-Event-ID": str(seqs[-3])}
    )
    ids = [int(line[3:]) for line in r.text.splitlines() if line.startswith("id:")]
    assert ids == seqs[-2:]


async def test_the_websocket_carries_the_same_events(client: Client, runtime: Runtime) -> None:
    import websockets

    task = await client.run(
        "ws",
        workflow={"kind": "parallel", "steps": [{"agent": "echo", "input": "w"}]},
        timeout_s=30,
    )
    url = runtime.base_url.replace("http", "ws") + f"/v1/tasks/{task['task_id']}/ws?after=1"
    async with websockets.connect(url) as ws:
        got = [json.loads(m) async for m in ws]
    sse = [e async for e in client.events(task["task_id"], after=1)]
    assert [e["seq"] for e in got] == [e["seq"] for e in sse] and got[-1]["kind"] == "final"
    # A browser's offer (its token as a subprotocol; this runtime has no auth, so unused)
    # is answered through Serve's proxy with the runtime's subprotocol, as browsers require.
    offer = ["actorchestra.v1", "bearer.YW55LXRva2Vu"]
    async with websockets.connect(url, subprotocols=offer) as ws:
        assert ws.subprotocol == "actorchestra.v1"
        assert [json.loads(m) async for m in ws] == got


async def test_retry_on_another_replica_after_the_agent_is_killed(
    client: Client, runtime: Runtime
) -> None:
    task_id = await client.submit(
        "survive",
        workflow={"kind": "parallel", "steps": [{"id": "nap", "agent": "sleeper", "input": "3"}]},
    )

    async def started() -> str | None:
        task = await client.get(task_id)
        return task["subtasks"][0]["state"] == "running" if task["subtasks"] else None

    await async_wait_for(started, timeout=20, what="subtask running")
    await asyncio.sleep(0.3)
    # The subtask runs on one of sleeper's two replicas: find it by its in-flight count.
    agents = {a["name"]: a for a in (await client._json("GET", "/v1/agents"))["agents"]}
    busy = [r["index"] for r in agents["sleeper"]["replicas"] if r["in_flight"]] or [0]
    victim = ray.get_actor(f"agent:sleeper:{busy[0]}", namespace=runtime.namespace)
    ray.kill(victim, no_restart=False)
    task = await client.wait(task_id, timeout_s=60)
    assert task["state"] == "completed", task["error"]
    assert task["subtasks"][0]["attempts"] == 2
    assert task["result"] == "slept 3"


async def test_unknown_task_is_404(client: Client) -> None:
    for call in (client.get("nope"), client.cancel("nope")):
        with pytest.raises(ClientError) as err:
            await call
        assert err.value.status == 404


async def test_list_filters_and_pages(client: Client) -> None:
    ids = [
        await client.submit(
            f"p{i}", user_id="pager", workflow={"kind": "parallel", "steps": [{"agent": "echo"}]}
        )
        for i in range(5)
    ]
    for task_id in ids:
        await client.wait(task_id, timeout_s=30)
    seen, cursor = [], None
    while True:
        page = await client.list(user_id="pager", limit=2, cursor=cursor)
        seen += [t["task_id"] for t in page["tasks"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    completed = await client.list(user_id="pager", state="completed")
    assert {t["task_id"] for t in completed["tasks"]} == set(ids)
    with pytest.raises(ClientError) as err:
        await client.list(state="sleepy")
    assert err.value.status == 422
    await client.delete(ids[0])
    with pytest.raises(ClientError):
        await client.get(ids[0])


async def test_the_runtime_is_an_a2a_agent(runtime: Runtime, http: httpx.AsyncClient) -> None:
    a2a = await make_client(runtime, "orchestrator", http)
    message = new_text_message("uppercase: via a2a", role=a2a_pb2.Role.ROLE_USER)
    notes, final = [], None
    async for event in a2a.send_message(a2a_pb2.SendMessageRequest(message=message)):
        if event.HasField("status_update"):
            msg = event.status_update.status.message
            if msg.parts:
                notes.append(msg.parts[0].text)
            if event.status_update.status.state == a2a_pb2.TaskState.TASK_STATE_COMPLETED:
                final = event
        if event.HasField("artifact_update"):
            answer = event.artifact_update.artifact.parts[0].text
    assert final is not None
    assert answer == "VIA A2A"
    assert any(n.startswith("planned") for n in notes)


async def test_a_restarted_planner_takes_tasks_again(client: Client, runtime: Runtime) -> None:
    """Submissions and event streams reach the planner over its channel: after Ray
    restarts the planner, the ingress opens a new one; meanwhile a submission waits for
    the planner or is refused with a 503 that says to retry, and loses nothing. A task
    that was running in the killed planner ends failed, "interrupted", and a client
    following its events through the restart gets that final event."""
    steps = [{"agent": "echo", "input": "before"}]
    before = await client.run("before", workflow={"kind": "parallel", "steps": steps})
    assert before["state"] == "completed", before["error"]
    long_steps = [{"skill": "sleep", "input": "30"}]
    long_id = await client.submit(
        "long", workflow={"kind": "parallel", "steps": long_steps}, synthesize=False
    )
    followed: list[dict[str, Any]] = []
    started = asyncio.Event()

    async def follow() -> None:
        async for event in client.events(long_id):
            followed.append(event)
            if event["kind"] == "subtask_started":
                started.set()

    follower = asyncio.create_task(follow())
    await asyncio.wait_for(started.wait(), 30)

    async def recorded_running() -> bool:  # its row is in the history, as a crash leaves it
        listed = await client.list(state="running")
        return long_id in [t["task_id"] for t in listed["tasks"]]

    await async_wait_for(recorded_running, timeout=30, what="the long task's row")
    # Its events too: the planner records them every RECORD_EVERY_S, then the history
    # actor writes them (50 ms); twice that and more is room enough.
    await asyncio.sleep(2 * RECORD_EVERY_S + 0.2)
    planner = ray.get_actor("planner", namespace=runtime.namespace)
    pid = ray.get(planner.__ray_call__.remote(lambda self: __import__("os").getpid()))
    ray.kill(planner, no_restart=False)

    def gone() -> bool:  # a submission sent before the kill lands would die with it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    await async_wait_for(gone, timeout=30, what="the killed planner's process to exit")
    ids: list[str] = []

    async def submitted() -> bool:
        try:
            workflow = {"kind": "parallel", "steps": [{"agent": "echo", "input": "after"}]}
            ids.append(await client.submit("after", workflow=workflow, synthesize=False))
        except ClientError as e:
            assert e.status == 503 and "retry shortly" in e.message, e
            return False
        return True

    await async_wait_for(submitted, timeout=60, what="a submission after the planner restarted")
    [task_id] = ids
    seen = [e["kind"] async for e in client.events(task_id)]
    assert seen[0] == "planned" and seen[-1] == "final"
    after = await client.get(task_id)
    assert after["state"] == "completed" and after["result"] == "after"
    new_pid = ray.get(planner.__ray_call__.remote(lambda self: __import__("os").getpid()))
    assert new_pid != pid  # a new planner process took it
    await asyncio.wait_for(follower, 60)  # through the restart's dropped stream and 503s
    kinds = [e["kind"] for e in followed]
    assert kinds[:2] == ["planned", "subtask_started"] and kinds[-1] == "final", kinds
    assert [e["seq"] for e in followed] == list(range(1, len(followed) + 1))  # none twice
    assert followed[-1]["data"]["state"] == "failed"
    assert followed[-1]["data"]["error"].startswith("interrupted: the planner running this task")
    long = await client.get(long_id)
    assert long["state"] == "failed" and long["error"] == followed[-1]["data"]["error"]
    # Its subtask did not go on sleeping on its agent: the killed planner's stream of it
    # closed, and the agent canceled its A2A task (read from the agents' task stores).
    replicas = ["agent:lab:0", "agent:sleeper:0", "agent:sleeper:1"]  # the `sleep` skill's
    actors = [ray.get_actor(name, namespace=runtime.namespace) for name in replicas]

    def sleeping(self: Any) -> list[int]:
        tasks = [t for owned in self._task_store._impl.tasks.values() for t in owned.values()]
        return [t.status.state for t in tasks if t.history and t.history[0].parts[0].text == "30"]

    def canceled() -> bool:
        states = [
            s
            for states in ray.get([a.__ray_call__.remote(sleeping) for a in actors])
            for s in states
        ]
        return states == [a2a_pb2.TaskState.TASK_STATE_CANCELED]

    await async_wait_for(canceled, timeout=15, what="the long subtask canceled on its agent")
    # A follower that had events the killed planner never recorded resumes past the
    # recorded end (Last-Event-ID beyond it): it still gets the final event.
    final = followed[-1]
    beyond = [e async for e in client.events(long_id, after=final["seq"] + 40)]
    assert [(e["seq"], e["kind"], e["data"]) for e in beyond] == [
        (final["seq"], "final", final["data"])
    ]
