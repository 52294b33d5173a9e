"""The part of a server call context that crosses a process boundary.

a2a-sdk's `ServerCallContext` holds the Starlette user and raw request state, which
neither pickle nor belong in an agent actor. `CallInfo` keeps what the agent side
needs (who is calling, for which tenant, with which extensions) and rebuilds a
`ServerCallContext` there.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from a2a.auth.user import User
from a2a.server.context import ServerCallContext
from a2a.server.id_generator import IDGenerator, IDGeneratorContext


class NamedUser(User):
    """A user known only by name; tasks are scoped to it by a2a-sdk's owner resolver."""

    def __init__(self, name: str, authenticated: bool) -> None:
        self._name = name
        self._authenticated = authenticated

    @property
    def is_authenticated(self) -> bool:
        return self._authenticated

    @property
    def user_name(self) -> str:
        return self._name


@dataclass(frozen=True)
class CallInfo:
    """Who called, for which tenant: picklable, small."""

    user: str = ""
    authenticated: bool = False
    tenant: str = ""
    extensions: frozenset[str] = field(default_factory=frozenset)
    method: str = ""

    @classmethod
    def from_server_context(cls, ctx: ServerCallContext) -> CallInfo:
        return cls(
            user=ctx.user.user_name,
            authenticated=ctx.user.is_authenticated,
            tenant=ctx.tenant,
            extensions=frozenset(ctx.requested_extensions),
            method=str(ctx.state.get("method", "")),
        )

    def to_server_context(self) -> ServerCallContext:
        return ServerCallContext(
            user=NamedUser(self.user, self.authenticated),
            tenant=self.tenant,
            requested_extensions=set(self.extensions),
            state={"method": self.method} if self.method else {},
        )


# Task ids carry the replica that owns the task, so that GetTask, CancelTask and
# SubscribeToTask reach it from any ingress replica without a lookup.
_TASK_ID = re.compile(r"^r(\d{1,4})-[0-9a-f-]{8,}$")


def make_task_id(replica: int) -> str:
    return f"r{replica}-{uuid.uuid4()}"


def replica_of_task(task_id: str) -> int | None:
    """The owning replica encoded in `task_id`, or None for an id we did not make."""
    m = _TASK_ID.match(task_id)
    return int(m.group(1)) if m else None


class ReplicaTaskIdGenerator(IDGenerator):
    """a2a-sdk id generator that stamps new task ids with their replica."""

    def __init__(self, replica: int) -> None:
        self._replica = replica

    def generate(self, context: IDGeneratorContext) -> str:
        return make_task_id(self._replica)
