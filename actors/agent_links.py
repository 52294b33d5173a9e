"""How an agent, inside its actor, reaches another local agent: the one Ray-aware module.

An LLM agent configured with `tools: ["agent:<name>"]` gets a tool that sends the
model's text to that agent over A2A and returns its answer. The target's replicas are
found by their Ray actor names (`agent:<name>:<i>`, counting up until one is missing)
in this actor's own namespace, and called through `LocalAgentEndpoint`, the same
endpoint the ingress uses, so routing and error translation are the usual ones.

The namespace is looked up from this actor's own id, not taken from
`ray.get_runtime_context().namespace`: that is the namespace of the job that created
the actor (a Serve replica's, or a CLI's), which need not be the runtime's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import ray
from a2a.helpers import get_artifact_text, get_message_text, new_text_message
from a2a.types import a2a_pb2

from actorchestra.actors.endpoint import LocalAgentEndpoint
from actorchestra.actors.spec import actor_name
from actorchestra.actors.tools.errors import ToolError
from actorchestra.protocol.context import CallInfo
from actorchestra.protocol.errors import AgentNotFoundError

logger = logging.getLogger(__name__)

MAX_REPLICAS = 64  # AgentSpec.replicas' upper bound
_FAILED = {
    a2a_pb2.TaskState.TASK_STATE_FAILED,
    a2a_pb2.TaskState.TASK_STATE_REJECTED,
    a2a_pb2.TaskState.TASK_STATE_CANCELED,
}


def _own_namespace() -> str:
    """The namespace this actor is registered in (blocking: GCS lookups)."""
    context = ray.get_runtime_context()
    name, actor_id = context.get_actor_name(), context.get_actor_id()
    if name and actor_id:
        for item in ray.util.list_named_actors(all_namespaces=True):
            if item.get("name") != name:
                continue
            try:
                handle = ray.get_actor(name, namespace=item["namespace"])
            except ValueError:
                continue
            if handle._actor_id.hex() == actor_id:  # no public accessor for a handle's id
                return str(item["namespace"])
    return str(context.namespace)


def _replica_handles(agent: str) -> tuple[str, list[object]]:
    """The target's namespace and replica actor handles, in index order (blocking)."""
    namespace = _own_namespace()
    handles = []
    for index in range(MAX_REPLICAS):
        try:
            handles.append(ray.get_actor(actor_name(agent, index), namespace=namespace))
        except ValueError:
            break
    if not handles:
        raise AgentNotFoundError(
            f"no local agent named {agent!r} is running (namespace {namespace!r})"
        )
    return namespace, handles


class LocalAgentLink:
    """ "Send text, get text" to one local agent, found on first use and then kept."""

    def __init__(self, agent: str) -> None:
        self.agent = agent
        self._endpoint: LocalAgentEndpoint | None = None
        self._lock = asyncio.Lock()

    async def _get_endpoint(self) -> LocalAgentEndpoint:
        async with self._lock:
            if self._endpoint is None:
                namespace, handles = await asyncio.to_thread(_replica_handles, self.agent)
                self._endpoint = LocalAgentEndpoint(self.agent, handles, namespace)
            return self._endpoint

    async def send(self, text: str, user: str = "") -> str:
        """The target's answer to `text`; ToolError when it failed or cannot be reached."""
        try:
            endpoint = await self._get_endpoint()
        except AgentNotFoundError as e:
            raise ToolError(e.message) from None
        request = a2a_pb2.SendMessageRequest(
            message=new_text_message(text, role=a2a_pb2.Role.ROLE_USER)
        )
        call = CallInfo(user=user, authenticated=bool(user))
        result = await endpoint.send_message(request, call)
        if isinstance(result, a2a_pb2.Message):
            return get_message_text(result)
        status_text = get_message_text(result.status.message)
        if result.status.state in _FAILED:
            raise ToolError(
                f"agent {self.agent!r} did not answer "
                f"({a2a_pb2.TaskState.Name(result.status.state)}): {status_text or 'no reason'}"
            )
        answer = "\n".join(get_artifact_text(a, "") for a in result.artifacts).strip()
        if result.status.state == a2a_pb2.TaskState.TASK_STATE_INPUT_REQUIRED:
            return f"agent {self.agent!r} needs more input: {status_text}"
        return answer or status_text


SendAs = Callable[[str, str], Awaitable[str]]


def local_agent_sender(agent: str) -> SendAs:
    """`send(text, user)` to the local agent `agent` (resolved lazily, at the first call)."""
    return LocalAgentLink(agent).send
