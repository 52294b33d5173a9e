"""What the registry knows about an agent."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from actorchestra.protocol.cards import AgentInfo


class AgentKind(StrEnum):
    LOCAL = "local"  # Ray actors of this runtime
    REMOTE = "remote"  # a third-party A2A server, registered by its card URL


class Health(StrEnum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    DEGRADED = "degraded"  # some replicas down
    UNHEALTHY = "unhealthy"


class ReplicaState(BaseModel):
    index: int
    healthy: bool | None = None
    in_flight: int = 0
    tasks: int = 0
    pid: int | None = None
    last_ok: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0


class AgentEntry(BaseModel):
    """One registered agent: its card, where it is, and how it is doing."""

    name: str
    kind: AgentKind
    info: AgentInfo
    card: dict[str, Any] = Field(description="the A2A agent card as JSON")
    endpoint: str = Field(description="A2A base URL (local: path under the ingress)")
    card_url: str | None = None
    concurrency: int | None = Field(
        default=None, description="skills one replica runs at once; None: no limit"
    )
    replicas: list[ReplicaState] = Field(default_factory=list)
    revision: str | None = Field(
        default=None, description="local: the config its replicas run (a deploy's digest)"
    )
    registered_at: float = Field(default_factory=time.time)

    @property
    def health(self) -> Health:
        states = [r.healthy for r in self.replicas]
        if not states or all(s is None for s in states):
            return Health.UNKNOWN
        up = sum(1 for s in states if s)
        if up == len(states):
            return Health.HEALTHY
        return Health.DEGRADED if up else Health.UNHEALTHY

    @property
    def in_flight(self) -> int:
        return sum(r.in_flight for r in self.replicas)

    def summary(self) -> dict[str, Any]:
        """The JSON shape of `GET /v1/agents` rows."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "description": self.info.description,
            "endpoint": self.endpoint,
            "card_url": self.card_url,
            "health": self.health.value,
            "in_flight": self.in_flight,
            "concurrency": self.concurrency,
            "revision": self.revision,
            "replicas": [r.model_dump() for r in self.replicas],
            "skills": [s.model_dump() for s in self.info.skills],
        }
