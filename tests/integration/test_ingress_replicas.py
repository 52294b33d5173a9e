"""Two ingress replicas: both serve, and a task made through one is reached through the other.

The ingress keeps no task state (tasks live in the agent actors), so whichever replica
the proxy or HAProxy picks must see every task. Each replica is addressed on its own
port (direct ingress, see conftest), and `X-Actorchestra-Replica` confirms which one
answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.types import a2a_pb2

from actorchestra.serve_apps.served_by import REPLICA_HEADER
from tests.integration.a2a_helpers import (
    TRANSPORTS,
    State,
    artifact_text,
    get_task,
    new_context,
    numbers,
    request,
    send,
)
from tests.integration.conftest import Runtime, ingress_urls, wait_for

pytestmark = pytest.mark.integration

AGENT = "text"


@pytest.fixture
def replicas(runtime: Runtime) -> list[tuple[str, str]]:
    """(replica tag, own base URL) of each ingress replica, in a stable order."""
    wait_for(
        lambda: len(ingress_urls()) == runtime.ingress_replicas,
        timeout=30,
        what=f"{runtime.ingress_replicas} ingress replicas with their own ports",
    )
    return sorted(ingress_urls().items())


@dataclass
class ReplicaClients:
    """Official a2a-sdk clients bound to one ingress replica."""

    plain: Client  # send, get, cancel
    streaming: Client  # subscribe


@asynccontextmanager
async def replica_clients(
    runtime: Runtime, replica_url: str, transport: str, answered: list[str]
) -> AsyncIterator[ReplicaClients]:
    """Clients whose every call goes to one ingress replica.

    The card advertises the proxy's URL; the clients are given the replica's instead.
    `answered` collects the replica header of every response, streams included.
    """

    async def record(response: httpx.Response) -> None:
        answered.append(response.headers.get(REPLICA_HEADER, "none"))

    async with httpx.AsyncClient(timeout=30, event_hooks={"response": [record]}) as http:
        card = await A2ACardResolver(http, f"{replica_url}/a2a/{AGENT}").get_agent_card()
        for interface in card.supported_interfaces:
            interface.url = interface.url.replace(runtime.base_url, replica_url, 1)

        def client(streaming: bool) -> Client:
            config = ClientConfig(
                httpx_client=http, streaming=streaming, supported_protocol_bindings=[transport]
            )
            return ClientFactory(config).create(card)

        answered.clear()  # the card fetch is not one of the calls under test
        yield ReplicaClients(plain=client(False), streaming=client(True))


async def test_both_replicas_serve(
    runtime: Runtime, replicas: list[tuple[str, str]], http: httpx.AsyncClient
) -> None:
    assert len(replicas) == 2
    for tag, url in replicas:
        r = await http.get(f"{url}/health")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "healthy"
        assert r.json()["replica"] == tag
        assert r.headers[REPLICA_HEADER] == tag

    # Through the proxy, requests reach both (which one answers is the router's choice).
    seen: set[str] = set()
    for _ in range(50):
        seen.add((await http.get(f"{runtime.base_url}/health")).headers[REPLICA_HEADER])
        if len(seen) == 2:
            break
    assert seen == {tag for tag, _ in replicas}


@pytest.mark.parametrize(("transport", "creator"), list(zip(TRANSPORTS, (0, 1), strict=True)))
async def test_task_created_through_one_replica_is_served_by_the_other(
    runtime: Runtime, replicas: list[tuple[str, str]], transport: str, creator: int
) -> None:
    (made_tag, made_url), (other_tag, other_url) = replicas[creator], replicas[1 - creator]
    made_by: list[str] = []
    served_by: list[str] = []
    async with (
        replica_clients(runtime, made_url, transport, made_by) as maker,
        replica_clients(runtime, other_url, transport, served_by) as other,
    ):
        # created through one replica: a slow count, answered at once
        created = await send(
            maker.plain,
            request(
                "stream 100",
                context_id=new_context(),
                metadata={"delay": 0.1},
                return_immediately=True,
            ),
        )
        assert made_by == [made_tag]

        # read through the other
        read = await get_task(other.plain, created.id)
        assert read.id == created.id
        assert read.status.state in (State.TASK_STATE_SUBMITTED, State.TASK_STATE_WORKING)

        # subscribed through the other; cancelled through the other once it counts
        counted: list[int] = []
        counting = asyncio.Event()
        last_state = State.TASK_STATE_UNSPECIFIED

        async def follow() -> None:
            nonlocal last_state
            subscription = other.streaming.subscribe(a2a_pb2.SubscribeToTaskRequest(id=created.id))
            async for event in subscription:
                if event.HasField("task"):
                    counted[:] = numbers(artifact_text(event.task))
                    last_state = event.task.status.state
                elif event.HasField("artifact_update"):
                    counted.extend(numbers(event.artifact_update.artifact.parts[0].text))
                elif event.HasField("status_update"):
                    last_state = event.status_update.status.state
                if counted:
                    counting.set()

        following = asyncio.create_task(follow(), name="follow-task")
        try:
            await asyncio.wait_for(counting.wait(), 15)
            canceled = await other.plain.cancel_task(a2a_pb2.CancelTaskRequest(id=created.id))
            assert canceled.status.state == State.TASK_STATE_CANCELED
            await asyncio.wait_for(following, 15)
        finally:
            following.cancel()

        assert last_state == State.TASK_STATE_CANCELED
        assert counted == list(range(1, len(counted) + 1)), "the stream, in order, no gaps"
        assert len(counted) < 100, "stopped before the end"
        # GetTask, the subscription and CancelTask: every one answered by the other replica
        assert len(served_by) >= 3 and set(served_by) == {other_tag}, served_by

        # and the replica that made it sees the cancellation as well
        again = await get_task(maker.plain, created.id)
        assert again.status.state == State.TASK_STATE_CANCELED
        assert set(made_by) == {made_tag}


async def test_conversation_continues_across_replicas(
    runtime: Runtime, replicas: list[tuple[str, str]]
) -> None:
    """A follow-up message sent through the other replica lands in the same conversation."""
    (first_tag, first_url), (second_tag, second_url) = replicas
    first_by: list[str] = []
    second_by: list[str] = []
    transport = TRANSPORTS[0]
    ctx = new_context()
    async with (
        replica_clients(runtime, first_url, transport, first_by) as first,
        replica_clients(runtime, second_url, transport, second_by) as second,
    ):
        one = await send(first.plain, request("uppercase: one", context_id=ctx))
        two = await send(second.plain, request("uppercase: two", context_id=ctx))
    assert artifact_text(one) == "ONE" and artifact_text(two) == "TWO"
    assert one.context_id == two.context_id == ctx
    assert one.id[:3] == two.id[:3], "one conversation stays on one agent replica"
    assert set(first_by) == {first_tag} and set(second_by) == {second_tag}
