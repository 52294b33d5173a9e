"""`AgentEndpoint` over HTTP: a third-party A2A agent, reached with a2a-sdk's client.

The agent's card is read (again) from its card URL on first use, and after each time
the agent could not be reached, so a moved or redeployed agent is found where its card
now says. Every request goes through the `httpx.AsyncClient` the caller injects; the
planner gives a guarded one (`protocol.remote.card_client`), since the URLs are
whatever was registered through `POST /v1/agents` (SSRF). Only HTTP transports
(JSON-RPC, HTTP+JSON) are used: gRPC would connect past the guard.

Failures are translated here: a refused connection, a timeout, a host that does not
resolve or a 502/503/504 answer becomes `AgentUnavailableError` (retry elsewhere); an
address the guard refuses stays `AddressRefusedError`; the agent's own A2A errors come
out as a2a-sdk raised them. The caller's identity (`CallInfo`) is not forwarded: a
third party gets no credentials of ours.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx
from a2a.types import a2a_pb2
from google.protobuf.message import Message

from actorchestra.protocol.context import CallInfo
from actorchestra.protocol.endpoint import AgentEndpoint, Event
from actorchestra.protocol.errors import AddressRefusedError, AgentUnavailableError
from actorchestra.protocol.remote import fetch_card

if TYPE_CHECKING:
    from a2a.client import Client

logger = logging.getLogger(__name__)

# What a client may speak to the agent: the HTTP bindings, which go through `http`.
HTTP_BINDINGS = ["JSONRPC", "HTTP+JSON"]
_UNAVAILABLE_STATUS = {502, 503, 504}


class RemoteAgentEndpoint(AgentEndpoint):
    """The A2A operations of one third-party agent, over HTTP."""

    def __init__(self, name: str, card_url: str, http: httpx.AsyncClient) -> None:
        self.name = name
        self.card_url = card_url
        self._http = http
        self._clients: tuple[a2a_pb2.AgentCard, Client, Client] | None = None
        self._lock = asyncio.Lock()

    # -- transport --------------------------------------------------------------------

    async def _connected(self) -> tuple[a2a_pb2.AgentCard, Client, Client]:
        """The card and two clients built from it: (card, streaming, non-streaming)."""
        if self._clients is not None:
            return self._clients
        async with self._lock:
            if self._clients is None:
                # Imported here: a2a-sdk's client package pulls in grpc (see remote.py).
                from a2a.client import ClientConfig, ClientFactory

                card = await self._fetch_card()

                def client(streaming: bool) -> Client:
                    config = ClientConfig(
                        httpx_client=self._http,
                        streaming=streaming,
                        supported_protocol_bindings=HTTP_BINDINGS,
                    )
                    return ClientFactory(config).create(card)

                try:
                    self._clients = (card, client(True), client(False))
                except ValueError as e:  # no interface in a binding we speak
                    raise AgentUnavailableError(
                        f"agent {self.name!r} offers no HTTP interface we can use: {e}"
                    ) from None
            return self._clients

    async def _fetch_card(self) -> a2a_pb2.AgentCard:
        try:
            return await fetch_card(self.card_url, self._http)
        except AddressRefusedError:
            raise
        except Exception as e:  # unreadable or unreachable now: not this agent's turn
            raise self._unavailable(
                f"its card at {self.card_url} could not be read ({e})"
            ) from None

    def _unavailable(self, why: str) -> AgentUnavailableError:
        self._clients = None  # read the card again next time: the agent may have moved
        logger.info("remote agent %s unavailable: %s", self.name, why)
        return AgentUnavailableError(f"remote agent {self.name!r} is not reachable: {why}")

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """a2a-sdk's transport failures as `AgentUnavailableError`; anything else as is."""
        from a2a.client.errors import A2AClientError, A2AClientTimeoutError

        try:
            yield
        except A2AClientTimeoutError as e:
            raise self._unavailable(f"timed out ({e})") from None
        except A2AClientError as e:
            cause = e.__cause__
            if isinstance(cause, httpx.TransportError) or (
                isinstance(cause, httpx.HTTPStatusError)
                and cause.response.status_code in _UNAVAILABLE_STATUS
            ):
                raise self._unavailable(str(e)) from None
            raise
        except httpx.TransportError as e:  # raised past a2a-sdk's own wrapping
            raise self._unavailable(repr(e)) from None

    # -- AgentEndpoint ----------------------------------------------------------------

    async def card(self) -> a2a_pb2.AgentCard:
        card, _, _ = await self._connected()
        return card

    async def send_message(
        self, request: a2a_pb2.SendMessageRequest, call: CallInfo
    ) -> a2a_pb2.Task | a2a_pb2.Message:
        _, _, client = await self._connected()
        with self._translated():
            async for response in client.send_message(request):
                event = _event(response)
                if isinstance(event, a2a_pb2.Task | a2a_pb2.Message):
                    return event
        raise self._unavailable("it answered SendMessage with neither a task nor a message")

    async def send_message_stream(
        self, request: a2a_pb2.SendMessageRequest, call: CallInfo
    ) -> AsyncIterator[Event]:
        _, client, _ = await self._connected()
        with self._translated():
            async for response in client.send_message(request):
                yield _event(response)

    async def subscribe(
        self, request: a2a_pb2.SubscribeToTaskRequest, call: CallInfo
    ) -> AsyncIterator[Event]:
        _, client, _ = await self._connected()
        with self._translated():
            async for response in client.subscribe(request):
                yield _event(response)

    async def _unary(self, method: str, request: Message) -> Any:
        """One request-response operation of the (streaming-capable) client."""
        _, client, _ = await self._connected()
        with self._translated():
            return await getattr(client, method)(request)

    async def get_task(self, request: a2a_pb2.GetTaskRequest, call: CallInfo) -> a2a_pb2.Task:
        return await self._unary("get_task", request)

    async def cancel_task(self, request: a2a_pb2.CancelTaskRequest, call: CallInfo) -> a2a_pb2.Task:
        return await self._unary("cancel_task", request)

    async def list_tasks(
        self, request: a2a_pb2.ListTasksRequest, call: CallInfo
    ) -> a2a_pb2.ListTasksResponse:
        return await self._unary("list_tasks", request)

    async def create_push_config(
        self, request: a2a_pb2.TaskPushNotificationConfig, call: CallInfo
    ) -> a2a_pb2.TaskPushNotificationConfig:
        return await self._unary("create_task_push_notification_config", request)

    async def get_push_config(
        self, request: a2a_pb2.GetTaskPushNotificationConfigRequest, call: CallInfo
    ) -> a2a_pb2.TaskPushNotificationConfig:
        return await self._unary("get_task_push_notification_config", request)

    async def list_push_configs(
        self, request: a2a_pb2.ListTaskPushNotificationConfigsRequest, call: CallInfo
    ) -> a2a_pb2.ListTaskPushNotificationConfigsResponse:
        return await self._unary("list_task_push_notification_configs", request)

    async def delete_push_config(
        self, request: a2a_pb2.DeleteTaskPushNotificationConfigRequest, call: CallInfo
    ) -> None:
        await self._unary("delete_task_push_notification_config", request)

    async def extended_card(
        self, request: a2a_pb2.GetExtendedAgentCardRequest, call: CallInfo
    ) -> a2a_pb2.AgentCard:
        return await self._unary("get_extended_agent_card", request)


def _event(response: a2a_pb2.StreamResponse) -> Event:
    """The event a `StreamResponse` carries, as the types `LocalAgentEndpoint` yields."""
    kind = response.WhichOneof("payload")  # task, message, status_update, artifact_update
    if kind is None:
        raise AgentUnavailableError("a remote agent sent an empty stream response")
    event: Event = getattr(response, kind)
    return event
