"""The planner as a Ray actor, and a typed handle to it.

Kept apart from `actors.runtime` so that agent actors, which load their class from
there, do not import DuckDB and the planner.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayTaskError

from actorchestra.actors.endpoint import LocalAgentEndpoint, ReplicaChannel
from actorchestra.actors.history.errors import HistoryError
from actorchestra.actors.history.forwarding import ForwardingHistoryStore, HistoryHost, pack_call
from actorchestra.actors.json_codec import json_bytes, json_loads
from actorchestra.actors.planner.service import Planner, PlannerOptions, history_path
from actorchestra.actors.ray_options import runtime_actor
from actorchestra.actors.runtime import REGISTRY_NAME, RegistryHandle, freeze_startup_objects
from actorchestra.actors.spec import AgentRuntimeOptions, actor_name
from actorchestra.protocol.channel import ChannelClient, LazyChannel, Op
from actorchestra.protocol.codec import Packed
from actorchestra.protocol.context import CallInfo
from actorchestra.protocol.endpoint import AgentEndpoint
from actorchestra.protocol.errors import (
    ActorchestraError,
    AgentUnavailableError,
    InvalidInputError,
)

PLANNER_NAME = "planner"
HISTORY_NAME = "history"
RECORD_EVERY_S = 0.25  # events gather this long before one call records them
# How long the task API waits for the planner's channel: a restarting planner takes
# seconds to come back, and a submission would rather wait for it than fail.
CHANNEL_OPEN_S = 30.0
CPUS_REFRESH_S = 30.0  # how long the planner trusts its count of the cluster's CPUs
JSON_TYPE = "actorchestra.json"  # the planner channel's payloads (`codec.unpack` refuses it)
_NOBODY = CallInfo()  # the planner knows nothing of callers (see `serve_apps.task_routes`)


def pack_json(value: Any) -> Packed:
    return JSON_TYPE, json_bytes(value, default=str)


def unpack_json(packed: Packed | None) -> Any:
    if packed is None or packed[0] != JSON_TYPE:
        raise InvalidInputError(f"expected a JSON payload, got {packed[0] if packed else None!r}")
    return json_loads(packed[1])


def ensure_history(namespace: str, data_dir: str) -> Any:
    """The `history` actor, which owns the DuckDB file (one writing process per file)."""
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    return HistoryActorRemote.options(
        **runtime_actor(HISTORY_NAME, namespace, max_concurrency=1000)
    ).remote(str(history_path(str(Path(data_dir).resolve()))))


PLANNER_HEAP_RESERVE_MIB = 16  # a 1,000-subtask task's objects come and go every task
HISTORY_NICE = 10  # the recorder yields the CPU to the planner, agents and ingress


class RayHistoryHost(HistoryHost):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        freeze_startup_objects()
        lower_priority(HISTORY_NICE)


def lower_priority(nice: int) -> None:
    """Run this process's threads (and those they start: DuckDB's) at `nice`.

    Recording is background work: readers are served from memory and nothing waits on
    the write. On a busy machine the kernel should run the planner, agents and ingress
    first. Linux applies niceness per thread, so each existing one is set.
    """
    for tid in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else ():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.setpriority(os.PRIO_PROCESS, int(tid), nice)


HistoryActorRemote = ray.remote(RayHistoryHost)


class RayPlanner(Planner):
    """The planner as Ray runs it: agents and the registry found by name in its namespace."""

    def __init__(self, options: PlannerOptions, namespace: str) -> None:
        self._namespace = namespace
        self._registry_handle: RegistryHandle | None = None
        self._connecting: set[asyncio.Task[None]] = set()
        self._channel = LazyChannel(self._channel_call, self._channel_stream)
        self._cpus_known: tuple[float, int] | None = None  # (when, the cluster's CPUs)
        # The history store lives in an actor of its own: its DuckDB writes hold the GIL
        # for milliseconds at a time, which here stalled the loop that dispatches.
        self._history = ensure_history(namespace, options.data_dir)
        super().__init__(
            options,
            self._registry_rows,
            self._endpoint,
            store=ForwardingHistoryStore(self._history_call),
            record_every_s=RECORD_EVERY_S,
        )
        freeze_startup_objects(PLANNER_HEAP_RESERVE_MIB)

    async def _history_call(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        try:
            return await self._history.call_packed.remote(pack_call(method, args, kwargs))
        except RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise HistoryError(f"the history store failed: {e}") from None
        except (ActorDiedError, ActorUnavailableError) as e:
            raise HistoryError(f"the history store is restarting: {e}") from None

    async def _cpus(self) -> int:
        # The cluster's CPUs change when a node joins or leaves: asking the GCS from a
        # thread on every pool refresh (each second under load) is not worth it.
        now = time.monotonic()
        if self._cpus_known is None or now - self._cpus_known[0] >= CPUS_REFRESH_S:
            cpus = await asyncio.to_thread(lambda: ray.cluster_resources().get("CPU", 0))
            self._cpus_known = (now, int(cpus) or await super()._cpus())
        return self._cpus_known[1]

    async def _registry_rows(self) -> list[dict[str, Any]]:
        if self._registry_handle is None:
            handle = await asyncio.to_thread(ray.get_actor, REGISTRY_NAME, self._namespace)
            self._registry_handle = RegistryHandle(handle)
        return await self._registry_handle.list()

    async def _retired(self, name: str) -> bool:
        try:
            await asyncio.to_thread(ray.get_actor, actor_name(name, 0), self._namespace)
        except ValueError:
            return True
        return False

    async def _endpoint(self, name: str, replicas: int) -> AgentEndpoint:
        handles = await asyncio.to_thread(
            lambda: [
                ray.get_actor(actor_name(name, i), namespace=self._namespace)
                for i in range(replicas)
            ]
        )
        endpoint = LocalAgentEndpoint(name, handles, self._namespace)
        previous = self.pool.agents.get(name)
        if previous is not None and isinstance(previous.endpoint, LocalAgentEndpoint):
            endpoint.take_channels(previous.endpoint)  # a new replica count: keep the open ones
        # Channels open behind the first dispatch, not in its way.
        task = asyncio.get_running_loop().create_task(endpoint.connect_all())
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)
        return endpoint

    # -- the task API's channel (see protocol.channel) ------------------------------

    async def open_channel(self) -> tuple[str, int, str]:
        """Start (once) the channel the task API submits and streams over; returns its
        host, port and secret token. A Ray call from the ingress took 3-5 ms to reach the
        planner here, and each event batch as a Ray stream item 2-6 ms to come back: on
        the path of every task, at its start and at its final event."""
        return await self._channel.address(ray.util.get_node_ip_address())

    async def _channel_call(self, op: Op, packed: Packed | None, call: CallInfo) -> Packed | None:
        if op == Op.TASK_SUBMIT:
            body = unpack_json(packed)
            if not isinstance(body, dict):
                raise InvalidInputError("the body must be a JSON object with at least `input`")
            return pack_json(await self.submit(body))
        raise InvalidInputError(f"the planner's channel has no operation {op.name}")

    async def _channel_stream(
        self, op: Op, packed: Packed, call: CallInfo
    ) -> AsyncIterator[Packed]:
        if op != Op.TASK_EVENTS:
            raise InvalidInputError(f"the planner's channel has no stream {op.name}")
        args = unpack_json(packed)
        async for batch in self.stream_event_batches(str(args["task_id"]), int(args["after"])):
            yield pack_json(batch)


PlannerActorRemote = ray.remote(RayPlanner)


class PlannerHandle:
    """Typed facade over the planner actor (the task API's backend).

    Ray errors enter here: the planner's own errors come out as themselves, a dead
    planner as `AgentUnavailableError`. Submissions and event streams, on the path of
    every task, go over the planner's channel (`RayPlanner.open_channel`), the rest as
    Ray calls.
    """

    def __init__(self, handle: Any) -> None:
        self._h = handle
        self._channel = ReplicaChannel(handle, connect_timeout_s=CHANNEL_OPEN_S)

    async def _call(self, ref: Any) -> Any:
        try:
            return await ref
        except (RayTaskError, ActorDiedError, ActorUnavailableError) as e:
            raise _planner_error(e) from None

    async def reconfigure(self, options: PlannerOptions, deployed_at: float | None = None) -> None:
        """Hand the planner a deploy's options (see `Planner.reconfigure`); idempotent."""
        await self._call(self._h.reconfigure.remote(options, deployed_at))

    async def submit(self, body: dict[str, Any]) -> str:
        client = await self._client()
        try:
            return unpack_json(await client.call(Op.TASK_SUBMIT, pack_json(body), _NOBODY))
        except Exception as e:
            raise _planner_error(e) from None

    async def get(self, task_id: str) -> dict[str, Any]:
        return await self._call(self._h.get.remote(task_id))

    async def list(self, **filters: Any) -> dict[str, Any]:
        return await self._call(self._h.list.remote(**filters))

    async def cancel(self, task_id: str) -> dict[str, Any]:
        return await self._call(self._h.cancel.remote(task_id))

    async def delete(self, task_id: str) -> None:
        await self._call(self._h.delete.remote(task_id))

    async def event_batches(
        self, task_id: str, after_seq: int = 0
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The task's events as the planner batches them (one channel item per batch)."""
        client = await self._client()
        args = pack_json({"task_id": task_id, "after": after_seq})
        stream = client.stream(Op.TASK_EVENTS, args, _NOBODY)
        try:
            async for item in stream:
                yield unpack_json(item)
        except Exception as e:
            raise _planner_error(e) from None
        finally:
            await stream.aclose()

    async def _client(self) -> ChannelClient:
        try:
            return await self._channel.client()
        except Exception as e:
            raise _planner_error(e) from None

    async def events(self, task_id: str, after_seq: int = 0) -> AsyncIterator[dict[str, Any]]:
        async for batch in self.event_batches(task_id, after_seq):
            for event in batch:
                yield event


def _planner_error(err: Exception) -> Exception:
    """An error reaching the planner, by a Ray call or its channel, as the task API
    reports it: the planner's own errors as themselves, a dead planner as a 503."""
    if isinstance(err, RayTaskError):  # first: Ray may make it an instance of its cause too
        return _cause(err)
    if isinstance(err, ActorchestraError):
        return err
    if isinstance(err, ActorDiedError | ActorUnavailableError | OSError):  # channel errors too
        return AgentUnavailableError(f"the planner is not running ({err!r}); retry shortly")
    return AgentUnavailableError(f"the planner failed: {err}")


def _cause(err: RayTaskError) -> Exception:
    cause = getattr(err, "cause", None)
    if isinstance(cause, ActorchestraError):
        return cause
    return AgentUnavailableError(f"the planner failed: {cause!r}")


def ensure_planner(
    namespace: str, options: PlannerOptions, env: Mapping[str, str] | None = None
) -> PlannerHandle:
    """The planner actor, created with `options` on first use.

    An existing planner (it outlives deploys) keeps the options it has: a deploy hands
    it its own with `PlannerHandle.reconfigure`. `env` is its process's environment, as
    the agents get it (`AgentRuntimeOptions.process_env`; default: a2a-sdk tracing off);
    it is set when the process starts, so a planner that exists keeps its own.
    """
    env = AgentRuntimeOptions().process_env() if env is None else env
    handle = PlannerActorRemote.options(
        **runtime_actor(
            PLANNER_NAME,
            namespace,
            max_concurrency=10_000,
            runtime_env={"env_vars": dict(env)},
        )
    ).remote(options, namespace)
    return PlannerHandle(handle)
