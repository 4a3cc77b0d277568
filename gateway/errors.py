"""Errors the gateway reports to its callers.

Every class carries ``extensions = {"code": ...}`` with its code from the table in
gateway/error_codes.py; graphql-core copies the ``extensions`` of the original
exception into the GraphQL response, so a resolver only has to raise one of these.

    GatewayError
    ├── BadUserInput          the UCD (or the gateway) rejected the caller's input
    ├── NotFound              the UCD has no such user
    ├── Conflict              the new identifier already belongs to another user
    ├── RateLimited           the UCD answered 429 after our retries (retryAfter, seconds)
    ├── UpstreamAuth          the UCD refused the gateway's credentials (401/403)
    ├── UpstreamUnavailable   timeout, refused or dropped connection, open circuit
    ├── UpstreamOutcomeUnknown  a write not safe to repeat lost its answer
    ├── UpstreamError         the UCD sent an unexpected status or body
    ├── StateUnavailable      the shared state (Redis) cannot be reached in time
    └── Forbidden             the caller's scopes do not allow a field or mutation (scope)

Messages never contain the UCD token. A message may repeat the caller's own
input (the UCD's texts do, e.g. "not a valid email address: sample: bad
request"), which is fine to send back to that caller but must never be logged.
"""

from __future__ import annotations

from typing import ClassVar

from gateway.error_codes import ErrorCode


class GatewayError(Exception):
    """Base class: an error whose message and extensions are safe to show the caller."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL_SERVER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        # The plain text, not the enum member: the same bytes on the wire either way,
        # and a log or repr of the extensions shows what the caller saw.
        self.extensions: dict[str, object] = {"code": self.code.value}


class BadUserInput(GatewayError):
    """Raised when the input is invalid (the UCD answered 400, or the gateway checked first)."""

    code: ClassVar[ErrorCode] = ErrorCode.BAD_USER_INPUT

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        if path is not None:
            self.extensions["path"] = path


class NotFound(GatewayError):
    """Raised when the UCD answers 404: no user for these identifiers."""

    code: ClassVar[ErrorCode] = ErrorCode.NOT_FOUND


class Conflict(GatewayError):
    """Raised when an identifier change collides with another user's identifier."""

    code: ClassVar[ErrorCode] = ErrorCode.CONFLICT


class RateLimited(GatewayError):
    """Raised when the UCD still answers 429 after the client's retries."""

    code: ClassVar[ErrorCode] = ErrorCode.RATE_LIMITED

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.extensions["retryAfter"] = retry_after


class UpstreamAuth(GatewayError):
    """Raised when the UCD answers 401 or 403 to the gateway's partner and token."""

    code: ClassVar[ErrorCode] = ErrorCode.UPSTREAM_AUTH


class UpstreamUnavailable(GatewayError):
    """Raised when the UCD cannot be reached: timeout, refused or dropped connection, or
    the endpoint's circuit is open (then with retryAfter, seconds until it is tried)."""

    code: ClassVar[ErrorCode] = ErrorCode.UPSTREAM_UNAVAILABLE

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        if retry_after is not None:
            self.extensions["retryAfter"] = retry_after


class UpstreamOutcomeUnknown(GatewayError):
    """Raised when a write that is not safe to repeat may have reached the UCD, but its
    answer was lost: it may or may not have been applied, and it is not sent again."""

    code: ClassVar[ErrorCode] = ErrorCode.UPSTREAM_OUTCOME_UNKNOWN


class UpstreamError(GatewayError):
    """Raised when the UCD answers with an unexpected status or an unparseable body."""

    code: ClassVar[ErrorCode] = ErrorCode.UPSTREAM_ERROR

    def __init__(self, message: str, *, status: int | None) -> None:
        super().__init__(message)
        self.status = status
        if status is not None:
            self.extensions["status"] = status


class StateUnavailable(GatewayError):
    """Raised when the gateway's shared state (Redis, gateway/state/) does not answer
    within its timeout or the operation's deadline: refused, dropped, paused."""

    code: ClassVar[ErrorCode] = ErrorCode.STATE_UNAVAILABLE


class Forbidden(GatewayError):
    """Raised when the caller's scopes do not include ``scope``, which this field needs."""

    code: ClassVar[ErrorCode] = ErrorCode.FORBIDDEN

    def __init__(self, message: str, *, scope: str) -> None:
        super().__init__(message)
        self.scope = scope
        self.extensions["scope"] = scope


__all__ = [
    "BadUserInput",
    "Conflict",
    "Forbidden",
    "GatewayError",
    "NotFound",
    "RateLimited",
    "StateUnavailable",
    "UpstreamAuth",
    "UpstreamError",
    "UpstreamOutcomeUnknown",
    "UpstreamUnavailable",
]
