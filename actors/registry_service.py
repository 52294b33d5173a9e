"""The registry as a service: the `Registry` book plus its health loop and probes.

Local agents are probed with an actor `ping` call, remote ones by fetching their
card. After a restart the service rebuilds its local entries from the named agent
actors it finds in its namespace, so a registry crash loses no local agent.

Card URLs come from callers (`POST /v1/agents`), so every card fetch, registration and
probe alike, goes through one guarded client (`protocol.remote.card_client`): public
addresses, plus the configured allow-list (`ACTORCHESTRA_ALLOWED_HOSTS`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import httpx
import ray
from google.protobuf.json_format import MessageToDict

from actorchestra.actors.spec import actor_name
from actorchestra.protocol.cards import AgentInfo, card_to_info
from actorchestra.protocol.codec import unpack
from actorchestra.protocol.netguard import Resolver, system_resolve
from actorchestra.protocol.remote import card_client, card_guard, fetch_card
from actorchestra.registry.models import AgentEntry, AgentKind
from actorchestra.registry.registry import ProbeResult, Registry

logger = logging.getLogger(__name__)


class RegistryService(Registry):
    """Registry with a background health loop; wrapped as the `registry` actor."""

    def __init__(
        self,
        namespace: str,
        health_interval_s: float = 1.0,
        probe_timeout_s: float = 2.0,
        allowed_hosts: Sequence[str] = (),
        resolve: Resolver = system_resolve,
    ) -> None:
        super().__init__(prober=self._probe_replica, probe_timeout_s=probe_timeout_s)
        self._namespace = namespace
        self._interval = health_interval_s
        self._handles: dict[tuple[str, int], Any] = {}
        # the resolver is injectable: unit tests simulate DNS answers
        self._guard = card_guard(allowed_hosts, resolve)
        self._http: httpx.AsyncClient | None = None
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """The guarded client every card fetch uses (made on first use)."""
        if self._http is None:
            self._http = card_client(self._guard, self._probe_timeout_s)
        return self._http

    def set_allowed_hosts(self, allowed_hosts: Sequence[str]) -> None:
        """Replace the card fetches' allow-list; the next fetch or probe follows it."""
        self._guard.set_allowed(allowed_hosts)

    async def start(self, allowed_hosts: Sequence[str] | None = None) -> None:
        """Rediscover local agents and start the health loop (idempotent).

        `allowed_hosts`, when given, replaces the card fetches' allow-list: the registry
        actor outlives a deploy, and each deploy's ingress brings its own.
        """
        if allowed_hosts is not None:
            self.set_allowed_hosts(allowed_hosts)
        if self._loop_task is not None:
            return
        await self._rediscover()
        self._loop_task = asyncio.create_task(self._health_loop(), name="registry-health-loop")
        self._loop_task.add_done_callback(_log_loop_exit)

    async def _health_loop(self) -> None:
        while True:
            await self.check_health()
            await asyncio.sleep(self._interval)

    async def _rediscover(self) -> None:
        names = ray.util.list_named_actors(all_namespaces=True)
        replicas: dict[str, int] = {}
        for item in names:
            if item.get("namespace") != self._namespace:
                continue
            parts = str(item.get("name", "")).split(":")
            if len(parts) == 3 and parts[0] == "agent" and parts[2].isdigit():
                replicas[parts[1]] = max(replicas.get(parts[1], 0), int(parts[2]) + 1)
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
            )

    async def register_local(
        self,
        name: str,
        info: dict[str, Any],
        card: dict[str, Any],
        endpoint: str,
        replicas: int,
        concurrency: int | None = None,
    ) -> dict[str, Any]:
        entry = await self.register(
            name,
            AgentKind.LOCAL,
            AgentInfo(**info),
            card,
            endpoint,
            replicas,
            concurrency=concurrency,
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

    async def _probe_replica(self, entry: AgentEntry, index: int) -> ProbeResult:
        if entry.kind == AgentKind.REMOTE:
            assert entry.card_url
            await fetch_card(entry.card_url, self.http)
            return ProbeResult(True)
        key = (entry.name, index)
        handle = self._handles.get(key)
        if handle is None:
            handle = ray.get_actor(actor_name(entry.name, index), namespace=self._namespace)
            self._handles[key] = handle
        try:
            status = await handle.ping.remote()
        except ray.exceptions.ActorDiedError:
            self._handles.pop(key, None)
            raise
        return ProbeResult(True, status.in_flight, status.tasks, status.pid)


def _log_loop_exit(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("registry health loop stopped: %r", task.exception())
