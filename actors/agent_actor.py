"""The agent actor as a plain class: one replica of one agent, speaking A2A.

Every A2A operation goes through a2a-sdk's `DefaultRequestHandler` (task lifecycle,
event queues, push notifications); this class only owns the pieces and carries the
caller identity in. `ray.remote` wraps it in `actors.runtime`, nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

from actorchestra.actors.spec import AGENT_PROCESS_ENV

if os.environ.get(AGENT_PROCESS_ENV) == "1" and "a2a.server.request_handlers" not in sys.modules:
    # An agent actor's own process: a2a-sdk's request_handlers package imports its gRPC
    # handler whenever grpcio is installed (Ray brings it), about 10 MB per process that
    # never serves gRPC. None in sys.modules makes that optional import fail, as a2a-sdk
    # expects without grpcio. Other processes are left as they are.
    sys.modules["a2a.server.request_handlers.grpc_handler"] = None  # type: ignore[assignment]

import httpx
from a2a.helpers import get_artifact_text, get_message_text
from a2a.server.agent_execution import RequestContext, SimpleRequestContextBuilder
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.tasks import BasePushNotificationSender, InMemoryPushNotificationConfigStore
from a2a.types import a2a_pb2
from a2a.utils.errors import InvalidRequestError
from a2a.utils.push_url_validator import validate_push_notification_url

from actorchestra.actors.agent import Turn
from actorchestra.actors.batch import BATCH_KEY, SUBTASK_KEY
from actorchestra.actors.executor import STREAMING_STATE, SkillExecutor
from actorchestra.actors.spec import AgentRuntimeOptions, AgentSpec, config_revision
from actorchestra.actors.task_store import FINISHED_STATES, BoundedTaskStore
from actorchestra.protocol.cards import build_agent_card
from actorchestra.protocol.channel import LazyChannel, Op, ReplicaStatus, pack_status
from actorchestra.protocol.codec import Packed, pack, unpack
from actorchestra.protocol.context import CallInfo, ReplicaTaskIdGenerator

logger = logging.getLogger(__name__)

# A task in one of these runs nothing now: it ended, or it waits for its caller.
_SETTLED = FINISHED_STATES | {
    a2a_pb2.TaskState.TASK_STATE_INPUT_REQUIRED,
    a2a_pb2.TaskState.TASK_STATE_AUTH_REQUIRED,
}


class AgentActor:
    """One replica of one agent. Async: many requests interleave on its event loop."""

    def __init__(
        self,
        spec: AgentSpec,
        replica: int,
        base_url: str,
        options: AgentRuntimeOptions | None = None,
    ) -> None:
        self.spec = spec
        self.replica = replica
        self.options = options or AgentRuntimeOptions()
        # what it runs with: a deploy replaces a replica whose revision is not its own
        self.revision = config_revision(spec, base_url, self.options)
        agent_cls = spec.load_class()
        self.agent = agent_cls(**spec.options)
        self.agent.attach(spec.name, self.options)
        self.info = self.agent.card_info(name=spec.name, description=spec.description)
        self.card = build_agent_card(self.info, base_url)
        self._http = httpx.AsyncClient(timeout=self.options.push_timeout_s)
        self._task_store = BoundedTaskStore(self.options.max_tasks)
        self._abandoning: set[asyncio.Task[None]] = set()  # see `_abandon`
        push_store = InMemoryPushNotificationConfigStore()
        self.handler = DefaultRequestHandler(
            agent_executor=SkillExecutor(self.agent, self._conversation, spec.concurrency),
            task_store=self._task_store,
            agent_card=self.card,
            push_config_store=push_store,
            push_sender=BasePushNotificationSender(
                self._http, push_store, push_url_validator=self._push_url_allowed
            ),
            push_url_validator=self._push_url_allowed,
            request_context_builder=SimpleRequestContextBuilder(
                task_id_generator=ReplicaTaskIdGenerator(replica)
            ),
        )
        self._in_flight = 0
        self._started_at = time.time()
        self._setup_done = False
        self._setup_lock = asyncio.Lock()
        # Its own lock, not the setup's: a slow `agent.setup()` must not hold up opening
        # the channel, which the registry's health probe waits on after a restart.
        self._channel = LazyChannel(self._channel_call, self._channel_stream)

    async def _conversation(
        self, context_id: str, task_id: str, request: RequestContext
    ) -> list[Turn]:
        """Earlier turns of this caller's conversation, from this replica's tasks.

        The endpoint routes a context to one replica, so its tasks are all here; the
        store indexes tasks by context, so a new conversation costs one lookup.
        """
        tasks = await self._task_store.in_context(
            context_id, request.call_context, self.options.conversation_tasks
        )
        turns: list[Turn] = []
        for task in tasks:
            if task.id == task_id:
                continue
            for message in task.history:
                text = get_message_text(message)
                if text:
                    role = "agent" if message.role == a2a_pb2.Role.ROLE_AGENT else "user"
                    turns.append(Turn(role, text, task.id))
            # A streamed answer is one text in many parts: join them as they were cut.
            answer = "\n".join(get_artifact_text(a, "") for a in task.artifacts).strip()
            if answer:
                turns.append(Turn("agent", answer, task.id))
        return turns

    async def _push_url_allowed(self, url: str) -> bool:
        host = urllib.parse.urlparse(url).hostname or ""
        if host in self.options.push_allowed_hosts:
            return True
        return await validate_push_notification_url(url)

    async def _ensure_setup(self) -> None:
        if self._setup_done:
            return
        async with self._setup_lock:
            if not self._setup_done:
                await self.agent.setup()
                self._setup_done = True

    # -- A2A operations: protos travel packed (see protocol.codec) ----------------

    async def send_message(self, request: Packed, call: CallInfo) -> Packed:
        await self._ensure_setup()
        self._in_flight += 1
        try:
            return pack(
                await self.handler.on_message_send(unpack(request), call.to_server_context())
            )
        finally:
            self._in_flight -= 1

    async def send_message_stream(self, request: Packed, call: CallInfo) -> AsyncIterator[Packed]:
        """A streamed message; the planner's subtasks (a batch, `BATCH_KEY`, or one,
        `SUBTASK_KEY`) are canceled if their stream closes before their task ends.

        A2A lets a client drop a stream and resubscribe, so a task outlives its stream.
        A subtask's result goes to the planner that sent it and nowhere else: a planner
        that stops, or whose channel to this replica drops, counts the unanswered
        subtasks failed and runs them again elsewhere. Left running here, they would
        be done twice, or, for a planner that stopped, for no one.
        """
        await self._ensure_setup()
        self._in_flight += 1
        context = call.to_server_context()
        context.state[STREAMING_STATE] = True  # skills may stream finer than for a send
        message = unpack(request)
        fields = message.metadata.fields if isinstance(message, a2a_pb2.SendMessageRequest) else {}
        owned = BATCH_KEY in fields or SUBTASK_KEY in fields
        # Settled: the last state seen says the task is done or waits for its caller.
        # Not the stream's end: a2a-sdk ends the stream quietly when it is cancelled.
        task_id, settled = "", False
        try:
            async for event in self.handler.on_message_send_stream(message, context):
                if owned:
                    if isinstance(event, a2a_pb2.Task):
                        task_id = task_id or event.id
                        settled = event.status.state in _SETTLED
                    elif isinstance(event, a2a_pb2.TaskStatusUpdateEvent):
                        settled = event.status.state in _SETTLED
                    elif isinstance(event, a2a_pb2.Message):
                        settled = True  # answered without a task
                yield pack(event)
        finally:
            self._in_flight -= 1
            if task_id and not settled:
                self._abandon(task_id, call)

    def _abandon(self, task_id: str, call: CallInfo) -> None:
        """Cancel the planner's subtasks whose caller is gone (a task of its own: this
        runs while their stream is being closed or cancelled)."""

        async def cancel() -> None:
            request = a2a_pb2.CancelTaskRequest(id=task_id)
            try:
                await self.handler.on_cancel_task(request, call.to_server_context())
            except Exception as e:  # it ended meanwhile: nothing left to stop
                logger.debug("task %s: not canceled (%r)", task_id, e)
            else:
                logger.info("task %s canceled: the planner's stream of it closed", task_id)

        task = asyncio.get_running_loop().create_task(cancel(), name=f"abandon-{task_id}")
        self._abandoning.add(task)
        task.add_done_callback(self._abandoning.discard)

    async def subscribe(self, request: Packed, call: CallInfo) -> AsyncIterator[Packed]:
        async for event in self.handler.on_subscribe_to_task(
            unpack(request), call.to_server_context()
        ):
            yield pack(event)

    async def get_task(self, request: Packed, call: CallInfo) -> Packed:
        return pack(await self.handler.on_get_task(unpack(request), call.to_server_context()))

    async def list_tasks(self, request: Packed, call: CallInfo) -> Packed:
        return pack(await self.handler.on_list_tasks(unpack(request), call.to_server_context()))

    async def cancel_task(self, request: Packed, call: CallInfo) -> Packed:
        return pack(await self.handler.on_cancel_task(unpack(request), call.to_server_context()))

    async def create_push_config(self, request: Packed, call: CallInfo) -> Packed:
        return pack(
            await self.handler.on_create_task_push_notification_config(
                unpack(request), call.to_server_context()
            )
        )

    async def get_push_config(self, request: Packed, call: CallInfo) -> Packed:
        return pack(
            await self.handler.on_get_task_push_notification_config(
                unpack(request), call.to_server_context()
            )
        )

    async def list_push_configs(self, request: Packed, call: CallInfo) -> Packed:
        return pack(
            await self.handler.on_list_task_push_notification_configs(
                unpack(request), call.to_server_context()
            )
        )

    async def delete_push_config(self, request: Packed, call: CallInfo) -> None:
        await self.handler.on_delete_task_push_notification_config(
            unpack(request), call.to_server_context()
        )

    async def extended_card(self, request: Packed, call: CallInfo) -> Packed:
        return pack(
            await self.handler.on_get_extended_agent_card(unpack(request), call.to_server_context())
        )

    # -- the direct channel (see protocol.channel) -----------------------------------

    async def open_channel(self) -> tuple[str, int, str]:
        """Start (once) the channel server; returns host, port and the secret token."""
        return await self._channel.address(self.channel_host())

    def channel_host(self) -> str:
        """The address the channel binds to; the Ray wrapper answers with the node's IP."""
        return "127.0.0.1"

    async def _channel_call(self, op: Op, packed: Packed | None, call: CallInfo) -> Packed | None:
        if op == Op.PING:
            return pack_status(await self.ping())
        assert packed is not None
        match op:
            case Op.SEND:
                return await self.send_message(packed, call)
            case Op.GET:
                return await self.get_task(packed, call)
            case Op.LIST:
                return await self.list_tasks(packed, call)
            case Op.CANCEL:
                return await self.cancel_task(packed, call)
            case Op.PUSH_CREATE:
                return await self.create_push_config(packed, call)
            case Op.PUSH_GET:
                return await self.get_push_config(packed, call)
            case Op.PUSH_LIST:
                return await self.list_push_configs(packed, call)
            case Op.PUSH_DELETE:
                await self.delete_push_config(packed, call)
                return None
            case Op.EXTENDED_CARD:
                return await self.extended_card(packed, call)
        raise InvalidRequestError(message=f"unknown channel operation {op!r}")

    def _channel_stream(self, op: Op, packed: Packed, call: CallInfo) -> AsyncIterator[Packed]:
        if op == Op.STREAM:
            return self.send_message_stream(packed, call)
        return self.subscribe(packed, call)

    # -- runtime --------------------------------------------------------------------

    async def get_card(self) -> Packed:
        return pack(self.card)

    async def ping(self) -> ReplicaStatus:
        return ReplicaStatus(
            agent=self.spec.name,
            replica=self.replica,
            in_flight=self._in_flight,
            tasks=self._task_store.count(),
            pid=os.getpid(),
            started_at=self._started_at,
        )

    async def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec.model_dump(),
            "info": self.info.model_dump(),
            "revision": self.revision,
        }
