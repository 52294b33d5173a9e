"""Who is calling, and which chat sessions that caller may continue.

Chat memory is kept per (user, session): an agent replica's task store files each turn
under its caller and contextId. So whoever can claim a user and name a session can
read that conversation back through the model. Two modes close that, by configuration:

- **With auth** (`auth_tokens`, from `ACTORCHESTRA_AUTH_TOKENS=user=token,...`): the
  caller is whoever its `Authorization: Bearer <token>` says, on every route (A2A
  included: a2a-sdk takes the user from the request). `/v1/chat`, the task API
  (`serve_apps.task_routes`) and changes to the agent registry (`POST /v1/agents`,
  `DELETE /v1/agents/{name}`) require a token (401 without, `require_caller`); a body
  or query `user_id` must be absent or that same user (403 otherwise). Session ids are
  the caller's to choose: its sessions live under its user, which nobody else can be. A
  request with no token stays anonymous (cards, health, A2A) and an unknown token is a
  401.
- **WebSockets from a browser**, which cannot set an Authorization header, offer the
  token as a subprotocol instead (the Kubernetes API server's way):
  `Sec-WebSocket-Protocol: actorchestra.v1, bearer.<base64url(token), unpadded>`. The
  header wins when both are sent. The route accepts with `actorchestra.v1` (never echoing the
  token); a browser fails a handshake whose answer names no subprotocol it offered, so
  it must offer both. An unknown token refuses the handshake before it is accepted: a
  401 with the JSON error body where the server can answer a handshake with an HTTP
  response (ASGI's `websocket.http.response`: uvicorn), else a close with 1008 (policy
  violation) and the reason, which servers turn into a 403.
- **Without auth** (the default, listening on loopback): the runtime cannot tell
  callers apart, so the body's `user_id` is only a label anyone may claim. The wall is
  then the session id: the runtime issues it (`<128 random bits>.<tag>`, the tag an
  HMAC of the user label and the random part under the runtime's session secret) and
  takes back only ids it issued for that same label. A made-up id (`"s1"`), a guessed
  one, or another user's is a 403, so reading a conversation takes its id, which only
  the caller that started it was given.

The session secret is `session_secret` (`ACTORCHESTRA_SESSION_SECRET`) when set, else a
random key kept in `<data_dir>/chat-session.key` (created once, mode 0600), so every
ingress replica and a restarted one accept the same ids. Ingress replicas on several
nodes need the setting, or a shared data dir.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from pydantic import SecretStr
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
    SimpleUser,
    UnauthenticatedUser,
)
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from actorchestra.protocol.errors import ConfigError, ForbiddenError, UnauthenticatedError
from actorchestra.serve_apps.middleware import error_payload

logger = logging.getLogger(__name__)

SESSION_KEY_FILE = "chat-session.key"
_KEY_BYTES = 32

# The WebSocket subprotocol the runtime speaks, and the prefix of the one that carries a
# browser's token (see the module doc).
WS_SUBPROTOCOL = "actorchestra.v1"
WS_BEARER_PREFIX = "bearer."


class AuthTokens:
    """The bearer tokens the runtime accepts, each naming its user.

    Kept as SHA-256 digests: a lookup compares digests of fixed length, and the tokens
    themselves are not held beyond construction.
    """

    def __init__(self, tokens: Mapping[str, SecretStr] | None = None) -> None:
        self._user_of: dict[bytes, str] = {}
        for user, token in (tokens or {}).items():
            self._user_of[_digest(token.get_secret_value())] = user

    @property
    def enabled(self) -> bool:
        return bool(self._user_of)

    def user_for(self, token: str) -> str | None:
        """The user `token` belongs to, or None."""
        return self._user_of.get(_digest(token))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class BearerAuth(AuthenticationBackend):
    """Starlette auth backend: a known bearer token is its user; no token, anonymous."""

    def __init__(self, tokens: AuthTokens) -> None:
        self._tokens = tokens

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        token = _bearer_token(conn)
        if token is None:
            return None
        user = self._tokens.user_for(token)
        if user is None:
            raise AuthenticationError(
                "the bearer token is not one this runtime accepts (ACTORCHESTRA_AUTH_TOKENS)"
            )
        return AuthCredentials(["authenticated"]), SimpleUser(user)


def _bearer_token(conn: HTTPConnection) -> str | None:
    """The Authorization header's bearer token, else a WebSocket's `bearer.*` subprotocol."""
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return token.strip()
    if conn.scope["type"] != "websocket":
        return None
    for offered in conn.scope.get("subprotocols") or ():
        if offered.startswith(WS_BEARER_PREFIX):
            encoded = offered.removeprefix(WS_BEARER_PREFIX)
            try:
                raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), b"-_", validate=True)
                return raw.decode()
            except ValueError:  # not base64url, or not UTF-8 text
                raise AuthenticationError(
                    f"the {WS_BEARER_PREFIX}* subprotocol must carry the token as unpadded "
                    "base64url"
                ) from None
    return None


def _auth_failed(conn: HTTPConnection, exc: Exception) -> Response:
    return JSONResponse(
        error_payload(conn.scope, 401, -32600, str(exc)),
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


class _BearerAuthentication(AuthenticationMiddleware):
    """Starlette's middleware, except that a refused WebSocket handshake is told why.

    Starlette closes it with 1000 (a normal closure) and no reason. Here it is the HTTP
    401 a request gets, where the server can answer a handshake with an HTTP response,
    else a close with 1008 (policy violation) and the reason; both before accepting.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await super().__call__(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        try:
            result = await self.backend.authenticate(conn)
        except AuthenticationError as exc:
            if "websocket.http.response" in (scope.get("extensions") or {}):
                await _auth_failed(conn, exc)(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008, "reason": str(exc)})
            return
        scope["auth"], scope["user"] = result or (AuthCredentials(), UnauthenticatedUser())
        await self.app(scope, receive, send)


def install_auth(app: FastAPI, tokens: AuthTokens) -> None:
    """Identify callers by bearer token on every route; nothing to do without tokens."""
    if tokens.enabled:
        app.add_middleware(
            _BearerAuthentication,
            backend=BearerAuth(tokens),
            on_error=_auth_failed,  # type: ignore[arg-type]
        )


class SessionIds:
    """Chat session ids the runtime issues, bound to the user label they were issued for."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def issue(self, user: str) -> str:
        nonce = secrets.token_hex(16)
        return f"{nonce}.{self._tag(user, nonce)}"

    def valid(self, user: str, session_id: str) -> bool:
        nonce, dot, tag = session_id.partition(".")
        return bool(dot) and hmac.compare_digest(tag, self._tag(user, nonce))

    def _tag(self, user: str, nonce: str) -> str:
        message = f"{user}\x00{nonce}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]


def session_secret(configured: SecretStr | None, data_dir: str | Path) -> bytes:
    """The configured secret, else the one in `data_dir` (made there on first use)."""
    if configured is not None:
        return configured.get_secret_value().encode()
    path = Path(data_dir) / SESSION_KEY_FILE
    if not path.exists():
        _create_key(path)
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError:
        key = b""
    if len(key) != _KEY_BYTES:
        raise ConfigError(
            f"{path} does not hold a chat session key ({2 * _KEY_BYTES} hex digits); "
            "delete it to have a new one made, or set ACTORCHESTRA_SESSION_SECRET"
        )
    return key


def _create_key(path: Path) -> None:
    """Write a fresh key to `path` unless one is there: whole, or not at all.

    Several ingress replicas may start at once: the key goes to a private temporary
    file that is then hard-linked into place, which fails if another got there first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(_KEY_BYTES))
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
            logger.info("created the chat session key %s", path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class ChatCaller:
    """Who a chat turn is for, and in which session."""

    user: str
    authenticated: bool
    session_id: str


class ChatIdentity:
    """Decides a chat turn's user and session from the request (see the module doc)."""

    def __init__(self, tokens: AuthTokens, sessions: SessionIds | None) -> None:
        if not tokens.enabled and sessions is None:
            raise ValueError("without auth tokens, chat sessions need a session secret")
        self.tokens = tokens
        self._sessions = sessions

    @classmethod
    def from_options(
        cls,
        auth_tokens: Mapping[str, SecretStr],
        configured_secret: SecretStr | None,
        data_dir: str | Path,
    ) -> ChatIdentity:
        tokens = AuthTokens(auth_tokens)
        if tokens.enabled:
            return cls(tokens, None)
        return cls(tokens, SessionIds(session_secret(configured_secret, data_dir)))

    def caller(
        self, connection: HTTPConnection, user_id: str | None, session_id: str | None
    ) -> ChatCaller:
        """The caller of one turn; 401/403 (as runtime errors) when it may not be."""
        if self.tokens.enabled:
            return self._authenticated(connection, user_id, session_id)
        assert self._sessions is not None
        label = user_id or ""
        if session_id is None:
            return ChatCaller(label, False, self._sessions.issue(label))
        if not self._sessions.valid(label, session_id):
            raise ForbiddenError(
                f"session_id {session_id!r} is not a session this runtime started for "
                f"user_id {label!r}. Leave session_id out to start a session and send back "
                "the session_id its answer gives; to name sessions yourself, configure "
                "ACTORCHESTRA_AUTH_TOKENS and call with a bearer token"
            )
        return ChatCaller(label, False, session_id)

    def _authenticated(
        self, connection: HTTPConnection, user_id: str | None, session_id: str | None
    ) -> ChatCaller:
        name = authenticated_user(connection, user_id, "chat")
        return ChatCaller(name, True, session_id or uuid.uuid4().hex)


def require_caller(
    tokens: AuthTokens, connection: HTTPConnection, what: str, user_id: object = None
) -> str | None:
    """With auth, the caller `authenticated_user` names (401/403); None without auth."""
    if not tokens.enabled:
        return None
    return authenticated_user(connection, user_id, what)


def authenticated_user(connection: HTTPConnection, user_id: object, what: str) -> str:
    """The user the request's bearer token names (the app runs `install_auth`).

    401 without a token; 403 when the request also names a `user_id` that is someone
    else. `what` names the API in the 401 ("chat", "task", "agent registry").
    """
    user = connection.scope.get("user")
    if user is None or not user.is_authenticated:
        raise UnauthenticatedError(
            f"this runtime identifies {what} callers: send `Authorization: Bearer <token>` "
            "with a token from ACTORCHESTRA_AUTH_TOKENS"
        )
    name: str = user.display_name
    if user_id is not None and user_id != name:
        raise ForbiddenError(
            f"user_id {user_id!r} is not the authenticated caller; leave user_id out "
            "(the bearer token says who you are)"
        )
    return name
