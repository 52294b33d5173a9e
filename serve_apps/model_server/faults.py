"""The fault queue: which of the next requests fail or hang, and request counters.

All methods run on the server's event loop (they are called from request handlers), so
the read-modify-write of a fault's remaining count never spans an `await`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from actorchestra.serve_apps.model_server.config import FaultSpec

logger = logging.getLogger(__name__)

_POLL_S = 0.02


class FaultInjector:
    """Faults queued by the admin API, consumed one request at a time, first in first out."""

    def __init__(self, faults: list[FaultSpec] | None = None) -> None:
        self._faults: list[FaultSpec] = [f.model_copy() for f in faults or []]
        self._generation = 0
        self.stopping = False
        self.requests: dict[str, int] = {}
        self.faults_served = 0

    def add(self, fault: FaultSpec) -> None:
        """Queue a fault behind the ones already waiting."""
        self._faults.append(fault.model_copy())

    def clear(self) -> None:
        """Drop every queued fault and end the hangs in progress."""
        self._faults.clear()
        self._generation += 1

    def pending(self) -> list[FaultSpec]:
        """The faults still to be served, with their remaining counts."""
        return [f.model_copy() for f in self._faults]

    def record(self, path: str) -> None:
        """Count a request, so tests can see how many attempts a client really made."""
        self.requests[path] = self.requests.get(path, 0) + 1

    def take(self, path: str) -> FaultSpec | None:
        """The fault this request must suffer, if any, counting it as served."""
        for fault in self._faults:
            if fault.path is None or path.startswith(fault.path):
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
                self.faults_served += 1
                return fault
        return None

    async def hang(self, fault: FaultSpec, disconnected: Callable[[], Awaitable[bool]]) -> None:
        """Hold the request until the hang expires, is cleared, the client leaves, or we stop."""
        generation = self._generation
        deadline = time.monotonic() + fault.hang_s
        while time.monotonic() < deadline:
            if self.stopping or generation != self._generation or await disconnected():
                break
            await asyncio.sleep(_POLL_S)
        logger.debug("hang ended after %.2fs", fault.hang_s - (deadline - time.monotonic()))
