"""The registry as a service: the `Registry` book plus its health loop and probes.

Local agents are probed with a PING over each replica's channel (`protocol.channel`,
opened once through a Ray call), remote ones by fetching their card. A Ray call costs
about a millisecond of CPU on each side, the channel tens of microseconds: with a probe
per replica every second, the difference is a steady share of a core while the
runtime is idle. After a restart the service rebuilds its local entries from the named
agent actors it finds in its namespace, so a registry crash loses no local agent.

Card URLs come from callers (`POST /v1/agents`), so every card fetch, registration and
probe alike, goes through one guarded client (`protocol.remote.card_client`): public
addresses, plus the configured allow-list (`ACTORCHESTRA_ALLOWED_HOSTS`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import ray
from google.protobuf.json_format import MessageToDict

from actorchestra.actors.endpoint import ReplicaChannel
from actorchestra.actors.spec import actor_name, parse_actor_name
from actorchestra.protocol.cards import AgentInfo, card_to_info
from actorchestra.protocol.channel import ChannelClosedError
from actorchestra.protocol.codec import unpack
from actorchestra.protocol.netguard import Resolver, system_resolve
from actorchestra.protocol.remote import card_client, card_guard, fetch_card
from actorchestra.registry.models import AgentEntry, AgentKind
from actorchestra.registry.registry import ProbeResult, Registry

logger = logging.getLogger(__name__)

_CHANNEL_CLOSED = "its channel closed: the actor died or restarted"
# A round's probes start spread over this share of the health interval (see
# `Registry.check_health`); a round then takes 1.5 intervals, plus the probes' own time.
PROBE_SPREAD = 0.5


class RegistryService(Registry):
    """Registry with a background health loop; wrapped as the `registry` actor."""

    def __init__(
        self,
        namespace: str,
        health_interval_s: float = 1.0,
        probe_timeout_s: float = 2.0,
        allowed_hosts: Sequence[str] = (),
        resolve: Resolver = system_resolve,
        find_actor: Callable[[str], Any] | None = None,
    ) -> None:
        super().__init__(prober=self._probe_replica, probe_timeout_s=probe_timeout_s)
        self._namespace = namespace
        self._interval = health_interval_s
        # actor name -> handle; injectable: unit tests give in-process actors
        self._find_actor = find_actor or self._ray_actor
        self._channels: dict[tuple[str, int], ReplicaChannel] = {}
        # the resolver is injectable: unit tests simulate DNS answers
        self._guard = card_guard(allowed_hosts, resolve)
        self._http: httpx.AsyncClient | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._deployed_at = 0.0  # of the newest deploy whose settings it took

    @property
    def http(self) -> httpx.AsyncClient:
        """The guarded client every card fetch uses (made on first use)."""
        if self._http is None:
            self._http = card_client(self._guard, self._probe_timeout_s)
        return self._http

    def set_allowed_hosts(self, allowed_hosts: Sequence[str]) -> None:
        """Replace the card fetches' allow-list; the next fetch or probe follows it."""
        self._guard.set_allowed(allowed_hosts)

    def set_probe_timeout(self, probe_timeout_s: float) -> None:
        """Replace the probe timeout; the next probe and card fetch follow it."""
        self._probe_timeout_s = probe_timeout_s
        if self._http is not None:
            self._http.timeout = httpx.Timeout(probe_timeout_s)

    async def start(
        self,
        allowed_hosts: Sequence[str] | None = None,
        health_interval_s: float | None = None,
        probe_timeout_s: float | None = None,
        deployed_at: float | None = None,
    ) -> None:
        """Rediscover local agents and start the health loop (idempotent).

        Each setting given replaces the registry's own: the registry actor outlives a
        deploy, and each deploy's ingress brings its settings, again every few seconds
        (a registry that Ray restarted starts with the first deploy's). Settings of a
        deploy older than the newest seen (`deployed_at`) are ignored: an ingress
        replica of the previous deploy can still be running for a moment.
        """
        if deployed_at is not None:
            if deployed_at < self._deployed_at:
                allowed_hosts = health_interval_s = probe_timeout_s = None
            else:
                self._deployed_at = deployed_at
        if allowed_hosts is not None:
            self.set_allowed_hosts(allowed_hosts)
        if health_interval_s is not None:
            self._interval = health_interval_s  # from the loop's next pause on
        if probe_timeout_s is not None:
            self.set_probe_timeout(probe_timeout_s)
        if self._loop_task is not None:
            return
        await self._rediscover()
        self._loop_task = asyncio.create_task(self._health_loop(), name="registry-health-loop")
        self._loop_task.add_done_callback(_log_loop_exit)

    async def _health_loop(self) -> None:
        while True:
            await self.check_health(spread_s=self._interval * PROBE_SPREAD)
            await asyncio.sleep(self._interval)

    async def check_health(self, spread_s: float = 0.0) -> None:
        """Probe every replica once; first close the channels of replicas no longer listed."""
        listed = {
            (e.name, r.index) for e in self.list() if e.kind == AgentKind.LOCAL for r in e.replicas
        }
        for key in [k for k in self._channels if k not in listed]:
            await self._channels.pop(key).close()
        await super().check_health(spread_s)

    async def _rediscover(self) -> None:
        names = ray.util.list_named_actors(all_namespaces=True)
        replicas: dict[str, int] = {}
        for item in names:
            if item.get("namespace") != self._namespace:
                continue
            parsed = parse_actor_name(str(item.get("name", "")))
            if parsed is not None:
                agent, index = parsed
                replicas[agent] = max(replicas.get(agent, 0), index + 1)
        for name, count in replicas.items():
            if name in {e.name for e in self.list()}:
                continue
            try:
                handle = ray.get_actor(actor_name(name, 0), namespace=self._namespace)
                described = await asyncio.wait_for(handle.describe.remote(), self._probe_timeout_s)
                card = unpack(
                    await asyncio.wait_for(handle.get_card.remote(), self._probe_timeout_s)
                )
            except (
                Exception
            ) as e:  # an agent that cannot describe itself stays out until re-registered
                logger.warning("could not rediscover agent %s: %r", name, e)
                continue
            await self.register(
                name,
                AgentKind.LOCAL,
                AgentInfo(**described["info"]),
                MessageToDict(card),
                card.supported_interfaces[0].url,
                count,
                concurrency=described["spec"].get("concurrency"),
                revision=described.get("revision"),
            )

    async def register_local(
        self,
        name: str,
        info: dict[str, Any],
        card: dict[str, Any],
        endpoint: str,
        replicas: int,
        concurrency: int | None = None,
        revision: str | None = None,
    ) -> dict[str, Any]:
        previous = self._agents.get(name)
        if previous is not None and previous.revision != revision:
            # A deploy replaced its replicas: the channels reach the old processes.
            for key in [k for k in self._channels if k[0] == name]:
                await self._channels.pop(key).close()
        entry = await self.register(
            name,
            AgentKind.LOCAL,
            AgentInfo(**info),
            card,
            endpoint,
            replicas,
            concurrency=concurrency,
            revision=revision,
        )
        return entry.summary()

    async def register_remote(self, card_url: str, name: str | None = None) -> dict[str, Any]:
        """Register a third-party A2A agent by its card URL (the card is fetched now).

        403 (`AddressRefusedError`) for a URL that is, resolves to or redirects to a
        private, loopback or link-local address the allow-list does not name.
        """
        card = await fetch_card(card_url, self.http)
        info = card_to_info(card)
        if name:
            info.name = name
        endpoint = card.supported_interfaces[0].url if card.supported_interfaces else card_url
        entry = await self.register(
            info.name, AgentKind.REMOTE, info, MessageToDict(card), endpoint, 1, card_url=card_url
        )
        return entry.summary()

    async def summaries(self) -> list[dict[str, Any]]:
        return [e.summary() for e in self.list()]

    async def summary(self, name: str) -> dict[str, Any]:
        return self.get(name).summary() | {"card": self.get(name).card}

    async def find_summaries(
        self,
        skill: str | None = None,
        tag: str | None = None,
        query: str | None = None,
        healthy_only: bool = False,
    ) -> list[dict[str, Any]]:
        return [e.summary() for e in self.find(skill, tag, query, healthy_only)]

    async def skill_table(self) -> dict[str, list[str]]:
        return self.skills()

    async def remove(self, name: str) -> None:
        await self.unregister(name)

    async def remove_if_local(self, name: str) -> None:
        entry = self._agents.get(name)
        if entry is not None and entry.kind == AgentKind.LOCAL:
            await self.unregister(name)

    async def _probe_replica(self, entry: AgentEntry, index: int) -> ProbeResult:
        if entry.kind == AgentKind.REMOTE:
            assert entry.card_url
            await fetch_card(entry.card_url, self.http)
            return ProbeResult(True)
        key = (entry.name, index)
        channel = self._channels.get(key)
        if channel is None:
            # Half the probe's time for opening the channel, so that a replica that
            # cannot give one says so rather than timing the whole probe out.
            handle = self._find_actor(actor_name(entry.name, index))
            channel = self._channels[key] = ReplicaChannel(handle, self._probe_timeout_s / 2)
        elif channel.lost:
            # The replica died since the last probe. Said at once, even where Ray has
            # restarted it already; the next probe opens a channel to the new one.
            await channel.close()
            return ProbeResult(False, error=_CHANNEL_CLOSED)
        elif entry.replicas[index].healthy is False:
            # After a failed probe, ask Ray for the channel again: a channel can look open
            # and be dead (its node gone without closing it), and Ray knows where the
            # actor restarted.
            await channel.close()
        try:
            status = await channel.ping()
        except ChannelClosedError:  # died while asked
            return ProbeResult(False, error=_CHANNEL_CLOSED)
        except ray.exceptions.ActorDiedError:
            # Dead for good: an actor of that name made since (a redeploy) is looked up
            # by the next probe.
            self._channels.pop(key, None)
            await channel.close()
            raise
        return ProbeResult(True, status.in_flight, status.tasks, status.pid)

    def _ray_actor(self, name: str) -> Any:
        return ray.get_actor(name, namespace=self._namespace)


def _log_loop_exit(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("registry health loop stopped: %r", task.exception())
