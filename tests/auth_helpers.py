"""What a caller of a runtime with auth sends, shared by unit and integration tests."""

from __future__ import annotations

import base64
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def browser_subprotocols(token: str) -> list[str]:
    """What a browser offers: the runtime's subprotocol and its token, base64url unpadded."""
    encoded = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
    return ["actorchestra.v1", f"bearer.{encoded}"]


async def assert_ws_token_refused(url: str) -> None:
    """An unknown subprotocol token: the handshake is refused with a 401 that says why."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, subprotocols=browser_subprotocols("not-a-token")):
            pass
    response = refused.value.response
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    message = json.loads(response.body)["error"]["message"]
    assert "not one this runtime accepts (ACTORCHESTRA_AUTH_TOKENS)" in message
