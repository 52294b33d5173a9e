"""The registry's probes of local agents: a PING over each replica's channel.

No Ray: the registry service runs in this process and its actor lookup answers with
stand-ins for Ray handles over real `AgentActor`s, whose `open_channel` is the one Ray
would call. A replica dies by closing its channel server (what a dead process's sockets
do), hangs by a ping that never answers, and restarts as a new actor behind its handle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from a2a.helpers import new_text_message
from a2a.types import a2a_pb2
from google.protobuf.json_format import MessageToDict
from ray.exceptions import ActorDiedError

from actorchestra.actors.agent_actor import AgentActor
from actorchestra.actors.endpoint import ChannelNotOpenedError, ReplicaChannel
from actorchestra.actors.registry_service import RegistryService
from actorchestra.actors.spec import AgentSpec, actor_name
from actorchestra.protocol.channel import ReplicaStatus
from actorchestra.protocol.codec import pack
from actorchestra.protocol.context import CallInfo
from actorchestra.registry.models import Health, ReplicaState

TEXT_SPEC = AgentSpec(name="text", cls="actorchestra.actors.examples:TextAgent", replicas=2)
PROBE_TIMEOUT_S = 1.0


class _Remote:
    def __init__(self, handle: Handle) -> None:
        self._handle = handle

    def remote(self) -> Any:
        return self._handle.open()


class Handle:
    """What the registry uses of a Ray actor handle: `open_channel.remote()`."""

    def __init__(self, actor: AgentActor) -> None:
        self.actor = actor
        self.opened = 0
        self.restarting = False
        self.dead = False
        self.open_channel = _Remote(self)

    async def open(self) -> tuple[str, int, str]:
        self.opened += 1
        if self.dead:
            raise ActorDiedError()
        if self.restarting:
            await asyncio.Event().wait()  # Ray holds the call until the actor is back
        return await self.actor.open_channel()


def _request(text: str) -> a2a_pb2.SendMessageRequest:
    return a2a_pb2.SendMessageRequest(message=new_text_message(text, role=a2a_pb2.Role.ROLE_USER))


def _replica(index: int) -> AgentActor:
    return AgentActor(TEXT_SPEC, index, "http://127.0.0.1:8000/a2a/text")


async def _die(actor: AgentActor, *channels: ReplicaChannel) -> None:
    """Close the actor's channel server, and wait until its callers have seen it close."""
    await actor._channel.close()
    deadline = time.monotonic() + 5
    while not all(c.lost for c in channels):
        assert time.monotonic() < deadline, "the channel's callers never saw it close"
        await asyncio.sleep(0.01)


class Runtime:
    """A registry that knows `text` (two replicas), and the replicas' handles."""

    def __init__(self) -> None:
        self.handles = {actor_name("text", i): Handle(_replica(i)) for i in range(2)}
        self.lookups: list[str] = []
        self.registry = RegistryService(
            "test", probe_timeout_s=PROBE_TIMEOUT_S, find_actor=self._find
        )

    def _find(self, name: str) -> Handle:
        self.lookups.append(name)
        return self.handles[name]

    def handle(self, index: int) -> Handle:
        return self.handles[actor_name("text", index)]

    async def kill(self, index: int) -> None:
        await _die(self.handle(index).actor, self.registry._channels[("text", index)])

    async def register(self) -> None:
        actor = self.handle(0).actor
        await self.registry.register_local(
            "text",
            actor.info.model_dump(),
            MessageToDict(actor.card),
            "/a2a/text",
            TEXT_SPEC.replicas,
        )

    async def replicas(self) -> list[ReplicaState]:
        await self.registry.check_health()
        return self.registry.get("text").replicas

    async def close(self) -> None:
        if "text" in {e.name for e in self.registry.list()}:
            await self.registry.unregister("text")
        await self.registry.check_health()  # closes the channels of unlisted replicas
        for handle in self.handles.values():
            await handle.actor._channel.close()


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    rt = Runtime()
    await rt.register()
    yield rt
    await rt.close()


async def test_probes_report_each_replica_with_its_load(runtime: Runtime) -> None:
    first = await runtime.replicas()
    assert [(r.healthy, r.in_flight, r.tasks, r.last_error) for r in first] == [
        (True, 0, 0, None)
    ] * 2
    assert all(r.pid for r in first)
    again = await runtime.replicas()
    assert all(r.healthy for r in again)
    # One lookup and one channel per replica; later probes only ping.
    assert runtime.lookups == [actor_name("text", 0), actor_name("text", 1)]
    assert [runtime.handle(i).opened for i in range(2)] == [1, 1]


async def test_a_dead_replica_is_unhealthy_at_once_and_healthy_after_its_restart(
    runtime: Runtime,
) -> None:
    await runtime.replicas()
    await runtime.kill(1)
    runtime.handle(1).restarting = True

    down = await runtime.replicas()
    assert [r.healthy for r in down] == [True, False]
    assert down[1].last_error == "its channel closed: the actor died or restarted"
    assert runtime.registry.get("text").health == Health.DEGRADED

    # While Ray restarts it, the channel cannot be had: said so, within the probe's time.
    still = await runtime.replicas()
    error = still[1].last_error or ""
    assert error.startswith("ChannelNotOpenedError: no channel within 0.5s"), error
    assert still[1].consecutive_failures == 2

    restarted = _replica(1)
    await restarted.send_message(pack(_request("uppercase: new")), CallInfo())
    runtime.handle(1).actor, runtime.handle(1).restarting = restarted, False
    back = await runtime.replicas()
    assert [r.healthy for r in back] == [True, True]
    assert back[1].last_error is None
    assert (back[0].tasks, back[1].tasks) == (0, 1)  # the restarted actor answers
    assert runtime.registry.get("text").health == Health.HEALTHY


async def test_a_hung_replica_is_unhealthy_by_the_probe_timeout_then_healthy(
    runtime: Runtime,
) -> None:
    await runtime.replicas()
    actor = runtime.handle(0).actor

    async def never() -> ReplicaStatus:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    actor.ping = never  # type: ignore[method-assign]
    hung = await runtime.replicas()
    assert [r.healthy for r in hung] == [False, True]
    assert hung[0].last_error == f"no answer within {PROBE_TIMEOUT_S:g}s"

    del actor.ping
    back = await runtime.replicas()
    assert [r.healthy for r in back] == [True, True]
    # After a failure the channel is asked of Ray again (it may be dead without knowing).
    assert runtime.handle(0).opened == 2


async def test_a_replica_dead_for_good_is_looked_up_again(runtime: Runtime) -> None:
    await runtime.replicas()
    await runtime.kill(0)
    runtime.handle(0).dead = True
    await runtime.replicas()  # the closed channel
    gone = await runtime.replicas()  # Ray: the actor is dead
    assert gone[0].healthy is False and "ActorDiedError" in (gone[0].last_error or "")

    # Redeployed: a new actor under the same name.
    runtime.handles[actor_name("text", 0)] = Handle(_replica(0))
    back = await runtime.replicas()
    assert [r.healthy for r in back] == [True, True]
    assert runtime.lookups.count(actor_name("text", 0)) == 2


async def test_unregistering_closes_the_agents_channels(runtime: Runtime) -> None:
    await runtime.replicas()
    channels = dict(runtime.registry._channels)
    assert len(channels) == 2
    await runtime.registry.unregister("text")
    await runtime.registry.check_health()
    assert runtime.registry._channels == {}
    assert all(c._client is None for c in channels.values())


async def test_a_replica_channel_pings_and_reopens_after_its_actor_restarts() -> None:
    handle = Handle(_replica(0))
    channel = ReplicaChannel(handle, connect_timeout_s=0.2)
    try:
        status = await channel.ping()
        assert (status.agent, status.replica) == ("text", 0)
        first_pid = status.pid

        await _die(handle.actor, channel)
        handle.restarting = True
        with pytest.raises(ChannelNotOpenedError, match=r"no channel within 0\.2s"):
            await channel.ping()

        handle.actor, handle.restarting = _replica(0), False
        assert (await channel.ping()).pid == first_pid  # same process here; a new actor
        assert handle.opened == 3  # the first channel, the one given up on, the new one
    finally:
        await channel.close()
        await handle.actor._channel.close()
