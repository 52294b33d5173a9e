"""Which ingress replica answered: the `X-Actorchestra-Replica` header on every response.

Behind Serve's proxy or HAProxy a caller cannot tell the ingress replicas apart; the
header (and `replica` in `/health`) names the one that served the request, so a slow or
failing replica can be found from the client side.
"""

from __future__ import annotations

from ray import serve
from ray.serve.exceptions import RayServeException

from actorchestra.serve_apps.middleware import ASGIApp, Message, Receive, Scope, Send

REPLICA_HEADER = "x-actorchestra-replica"


def current_replica() -> str:
    """This Serve replica's id (Serve's replica tag); `local` outside a Serve replica."""
    try:
        return serve.get_replica_context().replica_tag
    except RayServeException:
        return "local"


class ServedBy:
    """Adds the replica header to every HTTP response, streamed ones included."""

    def __init__(self, app: ASGIApp, replica: str) -> None:
        self.app = app
        self.header = (REPLICA_HEADER.encode(), replica.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self.header]}
            await send(message)

        await self.app(scope, receive, named)
