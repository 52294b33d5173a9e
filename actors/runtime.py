"""The one place where plain classes become Ray actors, and typed handles to them.

Every actor lives in one Ray namespace, detached (it outlives the CLI that started
it) and restartable (Ray restarts it if its process dies). Agents are named
`agent:<name>:<replica>`, the registry `registry`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import warnings
from collections.abc import Sequence
from typing import Any

import ray
from google.protobuf.json_format import MessageToDict

from actorchestra.actors.agent_actor import AgentActor
from actorchestra.actors.endpoint import LocalAgentEndpoint
from actorchestra.actors.ray_options import runtime_actor
from actorchestra.actors.registry_service import RegistryService
from actorchestra.actors.spec import (
    HEAP_RESERVE_MIB,
    AgentRuntimeOptions,
    AgentSpec,
    actor_name,
    config_revision,
    parse_actor_name,
)
from actorchestra.protocol.codec import unpack
from actorchestra.protocol.errors import ConfigError

logger = logging.getLogger(__name__)

REGISTRY_NAME = "registry"
GC_YOUNG = 20_000  # allocations between young collections (the default: 700)
_PIN_SPACING = 256 << 10  # one pinned object per this many bytes of the reserve
_heap_reserve: list[bytes] = []  # this process's pinned objects (`freeze_startup_objects`)


def reserve_small_object_heap(mib: int) -> list[bytes]:
    """Touch `mib` MiB of CPython's small-object heap now and keep it mapped.

    CPython's allocator takes its small objects from 1 MiB arenas that it maps on
    demand and unmaps once empty, so the first burst of work in a fresh process (an
    agent's first batch of 250 subtasks: some 390 page faults, 1.5 MB) page-faults its
    way through new arenas while the machine is busiest. Here the arenas are filled
    once, at start-up, and then emptied but for one small object every 256 KiB, which
    keeps each of them mapped: the allocator fills them before it maps another. The
    same idea as the JVM's `AlwaysPreTouch`. Returns the pinned objects (4 per MiB,
    ~240 bytes each), which must stay alive.
    """
    filler = [bytes(200) + i.to_bytes(2, "little") for i in range(mib * 4096)]
    filler.sort(key=id)
    pinned, edge = [], 0
    for block in filler:
        if id(block) >= edge:
            pinned.append(block)
            edge = id(block) + _PIN_SPACING
    return pinned


def freeze_startup_objects(reserve_mib: int = HEAP_RESERVE_MIB) -> list[bytes]:
    """Move everything alive after start-up out of the collector's way; reserve heap.

    An actor process holds a few hundred thousand objects after its imports (a2a-sdk,
    pydantic, protobuf, Ray), none of which ever becomes garbage. Left to themselves,
    the first full collections walk them all: about 80 ms of CPU per process, paid by
    each replica on its first messages (50 replicas: seconds of CPU in the middle of
    a fan-out). Frozen, they are never scanned again.

    The young generation is also collected less often: a task's burst of objects (a
    thousand-subtask fan-out makes some 20,000 in the planner, a batch of 250 a few
    thousand in an agent) lives until the task ends, so the default's collection every
    700 allocations scanned them over and over, finding nothing (a few milliseconds of
    each fan-out's first 20, in the planner's loop).

    Then `reserve_mib` of small-object heap is touched and kept mapped
    (`reserve_small_object_heap`) for as long as the process lives: the pinned objects
    are held here (and returned), in place of any earlier reserve of this process.
    """
    global _heap_reserve
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, 10, 10)
    _heap_reserve = reserve_small_object_heap(reserve_mib)
    return _heap_reserve


class RayAgentActor(AgentActor):
    """The agent actor as Ray runs it: its channel binds to the node's own address."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        freeze_startup_objects(self.options.heap_reserve_mib)

    def channel_host(self) -> str:
        return ray.util.get_node_ip_address()


class RayRegistryService(RegistryService):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        freeze_startup_objects()
        context = ray.get_runtime_context()
        with warnings.catch_warnings():  # Ray's own property reads a deprecated one
            warnings.simplefilter("ignore", DeprecationWarning)
            restarted = context.was_current_actor_reconstructed
        if restarted:
            # Ray restarted this process. A deploy's ingress calls `start`; after a crash
            # nobody would, so the registry rediscovers its agents and resumes its health
            # loop itself (the call runs once this constructor returns).
            logger.warning("the registry was restarted: rediscovering agents")
            context.current_actor.start.remote()


AgentActorRemote = ray.remote(RayAgentActor)
RegistryActorRemote = ray.remote(RayRegistryService)


class RegistryHandle:
    """Typed facade over the registry actor."""

    def __init__(self, handle: Any) -> None:
        self._h = handle

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
        return await self._h.register_local.remote(
            name, info, card, endpoint, replicas, concurrency, revision
        )

    async def register_remote(self, card_url: str, name: str | None = None) -> dict[str, Any]:
        return await self._h.register_remote.remote(card_url, name)

    async def list(self) -> list[dict[str, Any]]:
        return await self._h.summaries.remote()

    async def get(self, name: str) -> dict[str, Any]:
        return await self._h.summary.remote(name)

    async def find(
        self,
        skill: str | None = None,
        tag: str | None = None,
        query: str | None = None,
        healthy_only: bool = False,
    ) -> list[dict[str, Any]]:
        return await self._h.find_summaries.remote(skill, tag, query, healthy_only)

    async def skills(self) -> dict[str, list[str]]:
        return await self._h.skill_table.remote()

    async def remove(self, name: str) -> None:
        await self._h.remove.remote(name)

    async def remove_if_local(self, name: str) -> None:
        """Forget a local agent a deploy retired (a third party of that name stays)."""
        await self._h.remove_if_local.remote(name)

    async def start(
        self,
        allowed_hosts: Sequence[str],
        health_interval_s: float,
        probe_timeout_s: float,
        deployed_at: float,
    ) -> None:
        """Hand the registry a deploy's settings again (see `RegistryService.start`)."""
        await self._h.start.remote(
            list(allowed_hosts), health_interval_s, probe_timeout_s, deployed_at
        )


def ensure_registry(
    namespace: str,
    health_interval_s: float = 1.0,
    probe_timeout_s: float = 2.0,
    allowed_hosts: Sequence[str] = (),
    deployed_at: float | None = None,
) -> RegistryHandle:
    """The registry actor, created on first use; its health loop is started.

    `allowed_hosts`: private or loopback hosts its card fetches may reach (third-party
    agents). The settings are given to an existing registry too, so that a redeploy's
    take effect (`deployed_at`: when that deploy began; see `RegistryService.start`).
    """
    allowed = list(allowed_hosts)
    handle = RegistryActorRemote.options(
        **runtime_actor(REGISTRY_NAME, namespace, max_concurrency=1000)
    ).remote(namespace, health_interval_s, probe_timeout_s, allowed)
    ray.get(handle.start.remote(allowed, health_interval_s, probe_timeout_s, deployed_at))
    return RegistryHandle(handle)


# How long a deploy waits for a replica it replaces to be gone, and for the new one to
# answer (a fresh process imports the agent's code: seconds).
REPLACE_TIMEOUT_S = 120.0
# How long a replica to be replaced gets to finish the requests it is running.
DRAIN_S = 30.0


def ensure_agent(
    spec: AgentSpec, namespace: str, base_url: str, options: AgentRuntimeOptions
) -> list[Any]:
    """The agent's replica actors, created where missing (idempotent across callers).

    A running replica of another revision (the agent's class, options, limits or card,
    or the runtime's agent options changed: a deploy of a changed config) is replaced,
    one replica at a time so that the others go on serving: it gets up to `DRAIN_S` to
    finish what it is running, then it is killed and made again under its name. Work
    it still had then fails there (the planner retries a subtask elsewhere).
    """
    revision = config_revision(spec, base_url, options)
    handles = [_agent_replica(spec, i, namespace, base_url, options) for i in range(spec.replicas)]
    # asked of all at once: new replicas start in parallel
    running = [_revision(ref) for ref in [handle.describe.remote() for handle in handles]]
    for index, (handle, found) in enumerate(zip(handles, running, strict=True)):
        if found == revision:
            continue
        logger.warning(
            "agent %s replica %d runs revision %s, the config %s: replacing it",
            spec.name,
            index,
            found,
            revision,
        )
        _drain(handle, DRAIN_S)
        _kill_and_wait(handle, actor_name(spec.name, index))
        handles[index] = _agent_replica(spec, index, namespace, base_url, options)
        now = _revision(handles[index].describe.remote())
        if now != revision:  # another deploy, with another config, got there first
            raise ConfigError(
                f"agent {spec.name!r} replica {index} was made again with revision {now}, "
                f"not this deploy's {revision}: two deploys of different configs at once?"
            )
    return handles


def _agent_replica(
    spec: AgentSpec, index: int, namespace: str, base_url: str, options: AgentRuntimeOptions
) -> Any:
    return AgentActorRemote.options(
        **runtime_actor(
            actor_name(spec.name, index),
            namespace,
            max_concurrency=spec.max_concurrency,
            num_cpus=spec.num_cpus,
            runtime_env={"env_vars": options.agent_process_env()},
        )
    ).remote(spec, index, base_url, options)


def _revision(described: Any) -> str | None:
    """The revision a replica's `describe` reference names: None for a replica that
    died for good (another deploy killed it) or predates revisions. A replica that
    cannot start (its class does not import) raises: the config is wrong, not old."""
    try:
        return ray.get(described, timeout=REPLACE_TIMEOUT_S).get("revision")
    except ray.exceptions.ActorDiedError as e:
        if e.actor_init_failed:
            raise
        return None


def _drain(handle: Any, grace_s: float) -> None:
    """Wait until the replica runs no request, for at most `grace_s`."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            status = ray.get(handle.ping.remote(), timeout=2.0)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            return  # dead already, or hung: nothing to wait for
        if status.in_flight == 0:
            return
        time.sleep(0.2)


def _kill_and_wait(handle: Any, name: str) -> None:
    """Kill a replica for good and wait until Ray has let go of its name."""
    ray.kill(handle, no_restart=True)
    deadline = time.monotonic() + REPLACE_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            ray.get(handle.describe.remote(), timeout=1.0)
        except ray.exceptions.RayActorError:
            return  # dead: Ray released its name with it
        except ray.exceptions.GetTimeoutError:
            pass
        time.sleep(0.1)
    raise ConfigError(f"replica {name!r} was killed but did not stop within {REPLACE_TIMEOUT_S}s")


def retire_agents(namespace: str, keep: dict[str, int]) -> list[str]:
    """Kill the agent replicas a deploy no longer has: agents gone from the config,
    and replicas past an agent's new count. Returns the names of the agents gone."""
    gone: set[str] = set()
    for item in ray.util.list_named_actors(all_namespaces=True):
        if item.get("namespace") != namespace:
            continue
        parsed = parse_actor_name(str(item.get("name", "")))
        if parsed is None:
            continue
        agent, index = parsed
        if index < keep.get(agent, 0):
            continue
        if agent not in keep:
            gone.add(agent)
        logger.warning("retiring %s: not in this deploy's config", item["name"])
        try:
            ray.kill(ray.get_actor(item["name"], namespace=namespace), no_restart=True)
        except ValueError:  # gone meanwhile
            continue
    return sorted(gone)


async def register_agent(registry: RegistryHandle, spec: AgentSpec, handles: list[Any]) -> None:
    """Tell the registry about an agent, with the card its first replica serves."""
    card = unpack(await handles[0].get_card.remote())
    described = await handles[0].describe.remote()
    await registry.register_local(
        spec.name,
        described["info"],
        MessageToDict(card),
        card.supported_interfaces[0].url,
        spec.replicas,
        spec.concurrency,
        described.get("revision"),
    )


def local_endpoint(spec: AgentSpec, handles: list[Any], namespace: str) -> LocalAgentEndpoint:
    return LocalAgentEndpoint(spec.name, handles, namespace)


def kill_namespace(namespace: str) -> list[str]:
    """Kill every named actor of the runtime's namespace; returns their names."""
    killed = []
    for item in ray.util.list_named_actors(all_namespaces=True):
        if item.get("namespace") != namespace:
            continue
        try:
            ray.kill(ray.get_actor(item["name"], namespace=namespace), no_restart=True)
            killed.append(item["name"])
        except ValueError:
            continue
    return killed


async def wait_healthy(registry: RegistryHandle, names: list[str], timeout_s: float) -> bool:
    """Wait until every named agent reports healthy (all replicas up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        rows = {r["name"]: r for r in await registry.list()}
        if all(rows.get(n, {}).get("health") == "healthy" for n in names):
            return True
        await asyncio.sleep(0.2)
    return False
