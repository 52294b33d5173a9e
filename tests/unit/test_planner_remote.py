"""Third-party agents as workflow steps: the planner calls them over HTTP.

The third party is a2a-sdk's own server (its routes, `DefaultRequestHandler`) serving
the echo agent on a loopback port, registered the way `POST /v1/agents` leaves it (a
"remote" registry row with its card URL). Loopback is refused by default: the planner's
guarded client allows exactly `127.0.0.1:<port>`, as ACTORCHESTRA_ALLOWED_HOSTS would.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.helpers import new_text_message
from a2a.server.agent_execution import RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import a2a_pb2
from starlette.applications import Starlette

from actorchestra.actors.examples import EchoAgent
from actorchestra.actors.executor import BATCH_KEY, SkillExecutor
from actorchestra.actors.planner.service import Planner, PlannerOptions
from actorchestra.actors.spec import AgentSpec
from actorchestra.protocol.cards import build_agent_card
from actorchestra.protocol.context import CallInfo
from actorchestra.protocol.errors import InvalidInputError
from actorchestra.protocol.remote import card_client, card_guard
from actorchestra.protocol.remote_endpoint import RemoteAgentEndpoint
from tests.unit.planner_helpers import make_planner
from tests.unit.runtime_app import served

ECHO = {"echo": AgentSpec(name="echo", cls="actorchestra.actors.examples:EchoAgent")}


class RecordingExecutor(SkillExecutor):
    """The echo agent's executor, keeping the metadata of every request it gets."""

    def __init__(self) -> None:
        super().__init__(EchoAgent())
        self.requests: list[dict[str, Any]] = []

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        self.requests.append(context.metadata)
        await super().execute(context, event_queue)


@dataclass
class ThirdParty:
    base: str
    executor: RecordingExecutor
    allowed: list[str] = field(default_factory=list)

    def row(self, name: str = "faraway") -> dict[str, Any]:
        """The registry row `register_remote` leaves for it."""
        return {
            "name": name,
            "kind": "remote",
            "health": "healthy",
            "concurrency": None,
            "replicas": [{"index": 0}],
            "skills": [{"id": "echo", "name": "echo"}],
            "endpoint": self.base,
            "card_url": self.base,
        }


@pytest.fixture
async def third_party() -> AsyncIterator[ThirdParty]:
    executor = RecordingExecutor()
    holder: dict[str, a2a_pb2.AgentCard] = {}

    async def card_here(_: a2a_pb2.AgentCard) -> a2a_pb2.AgentCard:
        return holder["card"]  # the port is known only once serving

    placeholder = build_agent_card(EchoAgent.agent_info(), "http://127.0.0.1")
    handler = DefaultRequestHandler(
        agent_executor=executor, task_store=InMemoryTaskStore(), agent_card=placeholder
    )
    app = Starlette(
        routes=[
            *create_agent_card_routes(placeholder, card_modifier=card_here),
            *create_jsonrpc_routes(handler, "/"),
        ]
    )
    async with served(app) as base:  # type: ignore[arg-type]
        card = build_agent_card(EchoAgent.agent_info(), base)
        jsonrpc = [i for i in card.supported_interfaces if i.protocol_binding == "JSONRPC"]
        del card.supported_interfaces[:]
        card.supported_interfaces.extend(jsonrpc)
        holder["card"] = card
        yield ThirdParty(base, executor, [base.removeprefix("http://")])


@pytest.fixture
async def guarded() -> AsyncIterator[list[httpx.AsyncClient]]:
    """Guarded clients made by a test (`card_client`), closed after it."""
    clients: list[httpx.AsyncClient] = []
    yield clients
    for client in clients:
        await client.aclose()


def planner_for(
    tmp_path: Path,
    rows: list[dict[str, Any]],
    allowed: list[str],
    clients: list[httpx.AsyncClient],
    local: bool = False,
) -> Planner:
    http = card_client(card_guard(allowed), 10.0)
    clients.append(http)
    return make_planner(tmp_path, ECHO if local else {}, remote_rows=rows, remote_http=http)


def one_step(step: dict[str, Any], **options: Any) -> dict[str, Any]:
    """A task body whose workflow is the one step `step`, on input "x"."""
    return {
        "input": "go",
        **options,
        "workflow": {"kind": "sequential", "steps": [{**step, "input": "x"}]},
    }


async def run(planner: Planner, body: dict[str, Any]) -> dict[str, Any]:
    task_id = await planner.submit(body)
    _ = [e async for e in planner.stream_events(task_id)]
    return await planner.get(task_id)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_a_step_naming_a_remote_agent_completes_with_its_answer(
    tmp_path: Path, third_party: ThirdParty, guarded: list[httpx.AsyncClient]
) -> None:
    planner = planner_for(tmp_path, [third_party.row()], third_party.allowed, guarded)
    task = await run(
        planner,
        {
            "input": "go",
            "workflow": {
                "kind": "sequential",
                "steps": [{"agent": "faraway", "skill": "echo", "input": "hello out there"}],
            },
        },
    )
    assert task["state"] == "completed", task
    assert task["result"] == "hello out there"
    assert task["subtasks"][0]["agent"] == "faraway"
    assert len(third_party.executor.requests) == 1


async def test_several_subtasks_reach_a_remote_agent_as_plain_messages(
    tmp_path: Path, third_party: ThirdParty, guarded: list[httpx.AsyncClient]
) -> None:
    planner = planner_for(tmp_path, [third_party.row()], third_party.allowed, guarded)
    steps = [{"id": f"p{i}", "agent": "faraway", "input": f"item {i}"} for i in range(5)]
    task = await run(
        planner,
        {"input": "many", "synthesize": False, "workflow": {"kind": "parallel", "steps": steps}},
    )
    assert task["state"] == "completed", task
    assert task["result"] == {f"p{i}": f"item {i}" for i in range(5)}
    requests = third_party.executor.requests
    assert len(requests) == 5  # one message per subtask
    assert not any(BATCH_KEY in meta for meta in requests)


async def test_a_remote_agent_that_is_down_fails_the_subtask_clearly(
    tmp_path: Path, third_party: ThirdParty, guarded: list[httpx.AsyncClient]
) -> None:
    down = third_party.row() | {"card_url": closed_port_url()}
    allowed = [down["card_url"].removeprefix("http://")]
    planner = planner_for(tmp_path, [down], allowed, guarded)
    task = await run(planner, one_step({"agent": "faraway"}, max_attempts=2))
    assert task["state"] == "failed"
    assert "remote agent 'faraway' is not reachable" in task["error"]
    assert task["subtasks"][0]["attempts"] == 2


async def test_a_subtask_goes_elsewhere_when_the_remote_agent_is_down(
    tmp_path: Path, third_party: ThirdParty, guarded: list[httpx.AsyncClient]
) -> None:
    down = third_party.row() | {"card_url": closed_port_url()}
    allowed = [down["card_url"].removeprefix("http://")]
    planner = planner_for(tmp_path, [down], allowed, guarded, local=True)
    task = await run(planner, one_step({"skill": "echo"}))
    assert task["state"] == "completed", task
    sub = task["subtasks"][0]
    # tried on the remote agent first (listed first, equally loaded), then on the local one
    assert sub["agent"] == "echo" and sub["attempts"] == 2 and task["result"] == "x"


async def test_the_allow_list_guards_calls_to_remote_agents(
    tmp_path: Path, third_party: ThirdParty, guarded: list[httpx.AsyncClient]
) -> None:
    planner = planner_for(tmp_path, [third_party.row()], [], guarded)  # loopback not allowed
    task = await run(planner, one_step({"agent": "faraway"}, max_attempts=1))
    assert task["state"] == "failed"
    assert "ACTORCHESTRA_ALLOWED_HOSTS" in task["error"]
    assert third_party.executor.requests == []


async def test_an_unregistered_remote_agent_gets_no_more_steps(
    tmp_path: Path, third_party: ThirdParty, guarded: list[httpx.AsyncClient]
) -> None:
    rows = [third_party.row()]
    planner = planner_for(tmp_path, rows, third_party.allowed, guarded)
    body = one_step({"agent": "faraway"})
    assert (await run(planner, body))["state"] == "completed"
    rows.clear()  # DELETE /v1/agents/faraway
    await planner.refresh_pool(force=True)  # as every `registry_refresh_s`
    with pytest.raises(InvalidInputError, match="unknown agent 'faraway'"):
        await planner.submit(body)


async def test_the_remote_endpoint_carries_the_other_a2a_operations(
    third_party: ThirdParty, guarded: list[httpx.AsyncClient]
) -> None:
    """Beyond the planner's send: GetTask and ListTasks reach the third party too."""
    http = card_client(card_guard(third_party.allowed), 10.0)
    guarded.append(http)
    endpoint = RemoteAgentEndpoint("faraway", third_party.base, http)
    call = CallInfo()
    message = new_text_message("hello", role=a2a_pb2.Role.ROLE_USER)
    sent = await endpoint.send_message(a2a_pb2.SendMessageRequest(message=message), call)
    assert isinstance(sent, a2a_pb2.Task)
    got = await endpoint.get_task(a2a_pb2.GetTaskRequest(id=sent.id), call)
    assert got.id == sent.id and got.status.state == a2a_pb2.TaskState.TASK_STATE_COMPLETED
    listed = await endpoint.list_tasks(a2a_pb2.ListTasksRequest(), call)
    assert sent.id in [t.id for t in listed.tasks]


async def test_reconfigure_gives_a_running_planner_a_deploys_allow_list_and_limits(
    tmp_path: Path, third_party: ThirdParty
) -> None:
    """The planner actor outlives deploys: a redeploy's options reach the guarded client it
    made for third parties (loopback refused, then allowed) and the tasks after it."""
    down = third_party.row("gone") | {"card_url": closed_port_url()}
    planner = make_planner(tmp_path, {}, remote_rows=[third_party.row(), down])
    refused = await run(planner, one_step({"agent": "faraway"}, max_attempts=1))
    assert refused["state"] == "failed" and "ACTORCHESTRA_ALLOWED_HOSTS" in refused["error"]

    allowed = [*third_party.allowed, down["card_url"].removeprefix("http://")]
    options = PlannerOptions(data_dir=str(tmp_path), allowed_hosts=allowed, max_attempts=2)
    await planner.reconfigure(options)
    await planner.reconfigure(options)  # each ingress replica hands it the same

    done = await run(planner, one_step({"agent": "faraway"}))
    assert done["state"] == "completed", done
    assert done["result"] == "x" and len(third_party.executor.requests) == 1
    failed = await run(planner, one_step({"agent": "gone"}))
    assert failed["subtasks"][0]["attempts"] == 2  # the deploy's max_attempts, not 3
    # the tasks from before are still there
    assert (await planner.get(refused["task_id"]))["state"] == "failed"


async def test_a_planner_takes_no_options_from_a_deploy_older_than_the_newest_seen(
    tmp_path: Path,
) -> None:
    """Each ingress replica hands the planner its deploy's options every few seconds; a
    replica of the previous deploy, still running for a moment, must not win back."""
    planner = make_planner(tmp_path, {})
    new = PlannerOptions(data_dir=str(tmp_path), max_attempts=2)
    old = PlannerOptions(data_dir=str(tmp_path), max_attempts=5)
    await planner.reconfigure(new, deployed_at=200.0)
    await planner.reconfigure(old, deployed_at=100.0)
    assert planner.options.max_attempts == 2
    await planner.reconfigure(old, deployed_at=300.0)  # a newer deploy, whatever it says
    assert planner.options.max_attempts == 5
