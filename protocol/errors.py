"""One root exception, subclasses that only set a code, and one table to wire codes.

Errors that belong to the A2A protocol itself (task not found, invalid params, ...) are
a2a-sdk's own `A2AError` classes; the request handler and route builders already map
those to JSON-RPC codes and HTTP statuses. The errors here are the runtime's own
(unknown agent, agent unavailable, bad configuration) and `to_a2a_error` turns them
into the protocol error a caller sees.
"""

from __future__ import annotations

from a2a.utils import errors as a2a_errors


class ActorchestraError(Exception):
    """Root of every error the runtime raises on purpose."""

    http_status: int = 500
    jsonrpc_code: int = -32603
    reason: str = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(ActorchestraError):
    """The runtime configuration cannot be used as written."""

    http_status = 400
    jsonrpc_code = -32602
    reason = "INVALID_CONFIG"


class InvalidInputError(ActorchestraError):
    """A request names or carries something the runtime cannot accept."""

    http_status = 422
    jsonrpc_code = -32602
    reason = "INVALID_INPUT"


class UnauthenticatedError(InvalidInputError):
    """The runtime requires an identity for this request and the caller gave none."""

    http_status = 401
    reason = "UNAUTHENTICATED"


class ForbiddenError(InvalidInputError):
    """A well-formed request this caller may not make (another user's session, say)."""

    http_status = 403
    reason = "FORBIDDEN"


class AddressRefusedError(ForbiddenError):
    """A URL the runtime was asked to reach resolves to a private or local address."""

    reason = "ADDRESS_REFUSED"


class AgentNotFoundError(ActorchestraError):
    """No agent of that name is registered."""

    http_status = 404
    jsonrpc_code = -32601
    reason = "AGENT_NOT_FOUND"


class AgentUnavailableError(ActorchestraError):
    """The agent exists but none of its replicas can take the call right now."""

    http_status = 503
    jsonrpc_code = -32603
    reason = "AGENT_UNAVAILABLE"


class TaskNotFound(ActorchestraError):
    """No task of that id is known to the planner."""

    http_status = 404
    jsonrpc_code = -32001
    reason = "TASK_NOT_FOUND"


class PayloadTooLargeError(ActorchestraError):
    """The request body is over the configured limit."""

    http_status = 413
    jsonrpc_code = -32600
    reason = "PAYLOAD_TOO_LARGE"


# One table: runtime error -> the a2a-sdk error class that carries it on the wire.
_A2A_EQUIVALENT: dict[type[ActorchestraError], type[a2a_errors.A2AError]] = {
    ConfigError: a2a_errors.InvalidParamsError,
    InvalidInputError: a2a_errors.InvalidParamsError,
    AgentNotFoundError: a2a_errors.MethodNotFoundError,
    AgentUnavailableError: a2a_errors.InternalError,
    PayloadTooLargeError: a2a_errors.InvalidRequestError,
    TaskNotFound: a2a_errors.TaskNotFoundError,
}


def to_a2a_error(error: ActorchestraError) -> a2a_errors.A2AError:
    """The protocol error that reports `error` to an A2A caller, message kept."""
    for cls in type(error).__mro__:
        target = _A2A_EQUIVALENT.get(cls)  # type: ignore[arg-type]
        if target is not None:
            return target(message=error.message)
    return a2a_errors.InternalError(message=error.message)


def error_body(error: ActorchestraError) -> dict[str, object]:
    """The JSON body of an HTTP error answer from the runtime's own endpoints."""
    return {"error": {"code": error.http_status, "reason": error.reason, "message": error.message}}
