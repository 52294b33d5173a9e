"""The registry: who exists, what they can do, whether they are healthy.

A plain class: the Ray actor wrapper lives in `actors.runtime`. Health probing is
injected (`Prober`), so this module knows nothing of Ray or HTTP; it only keeps the
book and decides health from probe outcomes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from actorchestra.protocol.cards import AgentInfo
from actorchestra.protocol.errors import AgentNotFoundError, InvalidInputError
from actorchestra.registry.models import AgentEntry, AgentKind, Health, ReplicaState

logger = logging.getLogger(__name__)


class ProbeResult:
    """A replica's answer to a health probe (or the reason there was none)."""

    __slots__ = ("error", "in_flight", "ok", "pid", "tasks")

    def __init__(
        self,
        ok: bool,
        in_flight: int = 0,
        tasks: int = 0,
        pid: int | None = None,
        error: str | None = None,
    ) -> None:
        self.ok, self.in_flight, self.tasks, self.pid, self.error = ok, in_flight, tasks, pid, error


Prober = Callable[[AgentEntry, int], Awaitable[ProbeResult]]

_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


# How long a local agent's replica that has never answered a probe counts as starting
# (health unknown) rather than unhealthy. One that answered once and then stops is
# unhealthy at its first missed probe.
STARTUP_GRACE_S = 30.0


class Registry:
    """The book of agents. Async methods interleave: writes hold `_lock`."""

    def __init__(
        self,
        prober: Prober | None = None,
        probe_timeout_s: float = 2.0,
        startup_grace_s: float = STARTUP_GRACE_S,
    ) -> None:
        self._agents: dict[str, AgentEntry] = {}
        self._lock = asyncio.Lock()
        self._prober = prober
        self._probe_timeout_s = probe_timeout_s
        self._startup_grace_s = startup_grace_s

    async def register(
        self,
        name: str,
        kind: AgentKind,
        info: AgentInfo,
        card: dict[str, Any],
        endpoint: str,
        replicas: int = 1,
        card_url: str | None = None,
        concurrency: int | None = None,
        revision: str | None = None,
    ) -> AgentEntry:
        """Add or replace an agent; replica health starts unknown until the first probe.

        Registered again with the same revision (a deploy that left it as it was), its
        replicas keep what the probes found; with another, they are new processes.
        """
        async with self._lock:
            existing = self._agents.get(name)
            if existing is not None and existing.kind != kind:
                raise InvalidInputError(
                    f"an agent named {name!r} is already registered as {existing.kind.value}"
                )
            old = {}
            if existing is not None and existing.revision == revision:
                old = {r.index: r for r in existing.replicas}
            entry = AgentEntry(
                name=name,
                kind=kind,
                info=info,
                card=card,
                endpoint=endpoint,
                card_url=card_url,
                concurrency=concurrency,
                revision=revision,
                replicas=[old.get(i, ReplicaState(index=i)) for i in range(replicas)],
            )
            self._agents[name] = entry
            return entry

    async def unregister(self, name: str) -> None:
        async with self._lock:
            if self._agents.pop(name, None) is None:
                raise AgentNotFoundError(f"no agent named {name!r} is registered")

    def get(self, name: str) -> AgentEntry:
        entry = self._agents.get(name)
        if entry is None:
            known = ", ".join(sorted(self._agents)) or "none"
            raise AgentNotFoundError(f"no agent named {name!r}; registered agents: {known}")
        return entry

    def list(self) -> list[AgentEntry]:
        return sorted(self._agents.values(), key=lambda e: e.name)

    def find(
        self,
        skill: str | None = None,
        tag: str | None = None,
        query: str | None = None,
        healthy_only: bool = False,
    ) -> list[AgentEntry]:
        """Agents with skill id `skill`, with a skill tagged `tag`, and/or matching `query`.

        The free-text query scores agents by the words it shares with skill names,
        descriptions and tags (and the agent's own description); best first.
        """
        out: list[tuple[float, AgentEntry]] = []
        q = _words(query) if query else set()
        for entry in self._agents.values():
            if healthy_only and entry.health in (Health.UNHEALTHY,):
                continue
            skills = entry.info.skills
            if skill is not None and not any(s.id == skill for s in skills):
                continue
            if tag is not None and not any(
                tag.lower() in (t.lower() for t in s.tags) for s in skills
            ):
                continue
            score = 0.0
            if q:
                for s in skills:
                    score = max(
                        score,
                        2 * len(q & _words(f"{s.id} {s.name}"))
                        + len(q & _words(s.description))
                        + 1.5 * len(q & {t.lower() for t in s.tags}),
                    )
                score += 0.5 * len(q & _words(entry.info.description))
                if score == 0:
                    continue
            out.append((score, entry))
        out.sort(key=lambda p: (-p[0], p[1].in_flight, p[1].name))
        return [e for _, e in out]

    def skills(self) -> dict[str, list[str]]:
        """Every skill id and the agents that offer it."""
        table: dict[str, list[str]] = {}
        for entry in self.list():
            for s in entry.info.skills:
                table.setdefault(s.id, []).append(entry.name)
        return table

    async def check_health(self, spread_s: float = 0.0) -> None:
        """Probe every replica of every agent once, concurrently, each with a timeout.

        With `spread_s` the probes start evenly over that many seconds rather than all at
        once: each wakes a replica's process, and fifty woken together took a 2-core
        machine from whatever task was running for several milliseconds every round.
        """
        if self._prober is None:
            return
        probes = [(e, r.index) for e in list(self._agents.values()) for r in e.replicas]
        step = spread_s / len(probes) if probes else 0.0
        results = await asyncio.gather(
            *(self._probe(e, i, k * step) for k, (e, i) in enumerate(probes))
        )
        async with self._lock:
            now = time.time()
            for (entry, index), result in zip(probes, results, strict=True):
                current = self._agents.get(entry.name)
                if current is None or index >= len(current.replicas):
                    continue
                r = current.replicas[index]
                if result.ok:
                    if r.healthy is False:
                        logger.info("agent %s replica %d is healthy again", entry.name, index)
                    r.healthy, r.last_ok, r.last_error = True, now, None
                    r.in_flight, r.tasks, r.pid = result.in_flight, result.tasks, result.pid
                    r.consecutive_failures = 0
                elif r.last_ok is None and self._starting(current, now):
                    # Never answered yet, and still within its start-up grace: a local
                    # replica whose process is still starting (50 of them on 2 cores
                    # take tens of seconds). It stays unknown, not unhealthy.
                    r.last_error = f"starting: {result.error}"
                    r.consecutive_failures += 1
                else:
                    if r.healthy is not False:
                        logger.warning(
                            "agent %s replica %d is unhealthy: %s", entry.name, index, result.error
                        )
                    r.healthy, r.last_error = False, result.error
                    r.consecutive_failures += 1

    def _starting(self, entry: AgentEntry, now: float) -> bool:
        return entry.kind is AgentKind.LOCAL and now - entry.registered_at < self._startup_grace_s

    async def _probe(self, entry: AgentEntry, index: int, after_s: float = 0.0) -> ProbeResult:
        assert self._prober is not None
        if after_s > 0:
            await asyncio.sleep(after_s)
        try:
            return await asyncio.wait_for(self._prober(entry, index), self._probe_timeout_s)
        except TimeoutError:
            return ProbeResult(False, error=f"no answer within {self._probe_timeout_s:g}s")
        except Exception as e:  # a probe failure is a health outcome, not an error
            return ProbeResult(False, error=f"{type(e).__name__}: {e}")
