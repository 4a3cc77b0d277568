"""Where every error answer gets its ``extensions.code``, in the order a request meets them.

Codes come from the table in gateway/error_codes.py. ``GatewayError`` carries its own
(raised by resolvers and the UCD client); everything graphql-core or strawberry writes
without a code gets one here:

1. ``payload_too_large(max_bytes)``: the 413 body, before anything parses the request
   (``gateway.limits.BodySizeLimit``); ``bad_request(message)``: the body of a 400, 404,
   405 or 415 to an HTTP request that is not a GraphQL request the gateway takes (a body
   that is not one JSON object, a field of the wrong type; ``gateway.request_bodies``);
2. ``code_validation_errors(errors)``: GRAPHQL_VALIDATION_FAILED on the errors the
   validation rules found, the depth and alias limits included (the request extension's
   ``on_validate``);
3. ``code_one_of_refusals(errors, locate)``: a @oneOf input without exactly one key is
   BAD_USER_INPUT naming the argument (``locate`` is gateway.api.one_of's path finder),
   more precise than step 2's code, which it replaces (the schema's error hook);
3b. ``cost_exceeded(planned, limit)``: MAX_COST_EXCEEDED, the one error of an operation
   whose planned UCD calls are over the limit, answered instead of executing it
   (gateway/api/budget.py, from the request extension's ``on_execute``);
4. ``is_unexpected(error)`` / ``mask_unexpected(error)``: INTERNAL_SERVER_ERROR with an
   ``errorId`` instead of an unexpected exception's message, and the log line with the
   same id (the request extension's masking);
5. ``code_request_errors(errors)``: GRAPHQL_PARSE_FAILED and BAD_USER_INPUT for what is
   still without a code once the result is known: syntax errors (the token limit
   included) and variables that failed coercion (the HTTP view's ``process_result``);
   ``drop_suggestions(errors)``, there too when introspection is off: no "Did you mean
   ...?" in refused variables (validation hides its own, graphql-core's flag);
6. ``readiness_refusal(error)``: the code ``/readyz`` answers with when the UCD fails;
3c. ``persisted_query_not_found()``, ``persisted_hash_mismatch()``,
   ``trusted_document_required()``: the one error of an operation whose document could
   not be had or is not allowed (gateway/persisted/), answered before it parses;
7. ``overloaded(limit, retry_after)`` / ``behind_schedule(...)`` /
   ``shutting_down(retry_after)``: the 503 body (OVERLOADED) of a GraphQL request
   refused before anything reads it, because the process is at its limit of requests in
   flight, its event loop runs too late, or it is draining (``gateway.load_shedding``);
8. ``unauthenticated(message)``: the 401 body (UNAUTHENTICATED) of a request without a
   credential the gateway accepts, before its body is read (``gateway.auth.middleware``).

A code already set is never overwritten, except by step 3.
"""

from __future__ import annotations

import logging
import re
import traceback
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from graphql import GraphQLError, GraphQLSyntaxError

from gateway.error_codes import ErrorCode
from gateway.errors import GatewayError

__all__ = [
    "INTERNAL_ERROR_MESSAGE",
    "LocateOneOfArguments",
    "bad_request",
    "behind_schedule",
    "code_of",
    "code_one_of_refusals",
    "code_request_errors",
    "code_validation_errors",
    "cost_exceeded",
    "drop_suggestions",
    "drop_tracebacks",
    "is_unexpected",
    "mask_unexpected",
    "overloaded",
    "payload_too_large",
    "persisted_hash_mismatch",
    "persisted_query_not_found",
    "readiness_refusal",
    "shutting_down",
    "trusted_document_required",
    "unauthenticated",
]

# The name the masked errors were always logged under; log routing may depend on it.
logger = logging.getLogger("gateway.app")

INTERNAL_ERROR_MESSAGE: Final = "Internal server error"

#: For each error given, the argument it refuses (None: not found); errors that are not
#: @oneOf refusals are left out of the answer.
LocateOneOfArguments = Callable[[Sequence[GraphQLError]], Iterable[tuple[GraphQLError, str | None]]]

#: Codes a @oneOf refusal may carry when step 3 sees it and still be made more precise:
#: none (a refused variable), step 2's generic one, or BAD_USER_INPUT without a path.
_RECODABLE_AS_ONE_OF: Final = frozenset(
    {None, ErrorCode.GRAPHQL_VALIDATION_FAILED.value, ErrorCode.BAD_USER_INPUT.value}
)


def payload_too_large(max_bytes: int) -> dict[str, Any]:
    """The JSON body of the 413 answer to a request body over ``max_bytes``."""
    message = f"request body is larger than {max_bytes} bytes"
    return {
        "errors": [{"message": message, "extensions": {"code": ErrorCode.PAYLOAD_TOO_LARGE.value}}]
    }


def bad_request(message: str) -> dict[str, Any]:
    """The JSON body refusing an HTTP request GraphQL never sees, with ``message`` (about
    the request's shape, never echoing its content)."""
    return {"errors": [{"message": message, "extensions": {"code": ErrorCode.BAD_REQUEST.value}}]}


def code_validation_errors(errors: Sequence[GraphQLError] | None) -> None:
    """Validation errors without a code get GRAPHQL_VALIDATION_FAILED (in place).

    graphql-core writes them without one, and clients branch on codes, not messages.
    """
    _tag(errors, ErrorCode.GRAPHQL_VALIDATION_FAILED)


def code_one_of_refusals(errors: Sequence[GraphQLError], locate: LocateOneOfArguments) -> None:
    """BAD_USER_INPUT with ``path`` (the argument ``locate`` finds) on @oneOf refusals.

    Only errors that name no path yet and carry no code more precise than step 2's or
    step 5's are handed to ``locate``.
    """
    candidates = [
        e
        for e in errors
        if (e.extensions or {}).get("code") in _RECODABLE_AS_ONE_OF
        and "path" not in (e.extensions or {})
    ]
    if not candidates:
        return
    for error, path in locate(candidates):
        extensions: dict[str, Any] = dict(error.extensions or {})
        extensions["code"] = ErrorCode.BAD_USER_INPUT.value
        if path is not None:
            extensions["path"] = path
        error.extensions = extensions


def cost_exceeded(planned: int, limit: int, *, spent: int = 0) -> GraphQLError:
    """The refusal of an operation that would make ``planned`` UCD calls, over ``limit``;
    ``spent``: what the operations before it in the same batch planned."""
    batch = f" for the whole batch, whose other operations planned {spent}" if spent else ""
    return GraphQLError(
        f"this operation would make {planned} UCD calls; the limit is {limit}{batch} "
        "(UCD_GATEWAY_MAX_UCD_CALLS_PER_OPERATION)",
        extensions={"code": ErrorCode.MAX_COST_EXCEEDED.value},
    )


#: Apollo's persisted-queries link retries with the query when it reads this message (or
#: the code): Apollo Server's own words, so every Apollo client recognises them.
PERSISTED_QUERY_NOT_FOUND_MESSAGE: Final = "PersistedQueryNotFound"


def persisted_query_not_found() -> GraphQLError:
    """The answer to a hash or documentId the gateway does not know."""
    return GraphQLError(
        PERSISTED_QUERY_NOT_FOUND_MESSAGE,
        extensions={"code": ErrorCode.PERSISTED_QUERY_NOT_FOUND.value},
    )


def persisted_hash_mismatch() -> GraphQLError:
    """The refusal of a query sent with a ``sha256Hash`` that is not its hash."""
    return GraphQLError(
        "extensions.persistedQuery.sha256Hash is not the SHA-256 hash of the query sent "
        "with it (lower-case hex of the query's UTF-8 bytes)",
        extensions={"code": ErrorCode.PERSISTED_QUERY_HASH_MISMATCH.value},
    )


def trusted_document_required() -> GraphQLError:
    """The refusal of a document outside the trusted manifest, in trusted-only mode."""
    return GraphQLError(
        "this gateway runs only trusted documents (UCD_GATEWAY_TRUSTED_DOCUMENTS_ONLY): "
        "send the documentId or persistedQuery hash of one in its manifest",
        extensions={"code": ErrorCode.TRUSTED_DOCUMENT_REQUIRED.value},
    )


def is_unexpected(error: GraphQLError) -> bool:
    """True for an error whose message must not reach the caller (it is masked)."""
    original = error.original_error
    # Without a path the error came before execution: the caller's document or
    # variables were refused (a scalar's ValueError on a bad literal included), and the
    # message is about the caller's own input. With no original error, graphql-core
    # wrote it for the caller; a GraphQLError raised on purpose is meant for them too.
    return (
        original is not None
        and error.path is not None
        and not isinstance(original, GatewayError | GraphQLError)
    )


def drop_tracebacks(errors: Iterable[GraphQLError]) -> None:
    """Forget the tracebacks of ``errors``, their original exceptions and those
    exceptions' causes, once nothing needs them (the masked ones are logged).

    A traceback holds the frames it passed through, and the executor's frame holds the
    errors it collected: every failed field made the operation a reference cycle, left
    with its whole context to CPython's cyclic collector (tests/gateway/test_garbage.py).
    """
    pending: list[BaseException] = list(errors)
    seen: set[int] = set()
    while pending:
        exc = pending.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        exc.__traceback__ = None
        for linked in (
            exc.original_error if isinstance(exc, GraphQLError) else None,
            exc.__cause__,
            exc.__context__,
        ):
            if linked is not None:
                pending.append(linked)


def mask_unexpected(error: GraphQLError) -> GraphQLError:
    """``error`` as INTERNAL_SERVER_ERROR with a fresh ``errorId``, logged with that id.

    Only the exception's type and frames are logged, not its text: an unexpected
    exception's message may hold a caller's email or phone.
    """
    error_id = str(uuid.uuid4())
    original = error.original_error
    frames = "".join(traceback.format_tb(original.__traceback__)) if original else ""
    logger.error(
        "internal error %s in %s: %s\n%s",
        error_id,
        ".".join(str(p) for p in error.path or ()),
        type(original).__qualname__,
        frames,
    )
    return GraphQLError(
        message=INTERNAL_ERROR_MESSAGE,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions={"code": ErrorCode.INTERNAL_SERVER_ERROR.value, "errorId": error_id},
    )


def code_request_errors(errors: Sequence[GraphQLError]) -> None:
    """Codes for the errors still without one once the result is known (in place)."""
    for error in errors:
        default = _default_code(error)
        if default is not None:
            _tag([error], default)


def code_of(error: GraphQLError) -> ErrorCode:
    """The code ``error`` has, or gets from ``code_request_errors`` or masking, on the
    answer: for metrics and logs, which may see an error before the view codes it."""
    code = (error.extensions or {}).get("code")
    if isinstance(code, str) and code in ErrorCode.__members__:
        return ErrorCode(code)
    return _default_code(error) or ErrorCode.INTERNAL_SERVER_ERROR


def _default_code(error: GraphQLError) -> ErrorCode | None:
    """The code of an error that reached the answer without one, when its kind says it."""
    # With the parser cache a syntax error escapes the extension's hooks, so it is
    # only seen at the end.
    if isinstance(error, GraphQLSyntaxError):
        return ErrorCode.GRAPHQL_PARSE_FAILED
    # Without a path: variables that failed coercion.
    if error.path is None:
        return ErrorCode.BAD_USER_INPUT
    return None


#: graphql-core's suggestion (``graphql.pyutils.did_you_mean``): " Did you mean 'a' or
#: 'b'?", or " Did you mean the enum value 'A'?"; GraphQL names hold no "?".
_SUGGESTION: Final = re.compile(r" Did you mean [^?]*\?")


def drop_suggestions(errors: Sequence[GraphQLError]) -> None:
    """Messages without graphql-core's "Did you mean ...?" (in place).

    strawberry coerces variables without graphql-core's ``hide_suggestions`` flag, so a
    misspelt input field in a variable would still name the schema's fields:

    >>> error = GraphQLError("Field 'emial' is not defined by type 'Key'. Did you mean 'email'?")
    >>> drop_suggestions([error]); error.message
    "Field 'emial' is not defined by type 'Key'."
    """
    for error in errors:
        error.message = _SUGGESTION.sub("", error.message)


def readiness_refusal(error: GatewayError) -> dict[str, str]:
    """The ``/readyz`` body when its UCD call failed: the failure's code."""
    return {"status": "unavailable", "code": error.code.value}


def _tag(errors: Sequence[GraphQLError] | None, code: ErrorCode) -> None:
    for error in errors or ():
        if not (error.extensions or {}).get("code"):
            error.extensions = {**(error.extensions or {}), "code": code.value}


def overloaded(limit: int, retry_after: int, *, maximum: int | None = None) -> dict[str, Any]:
    """The 503 body refusing a GraphQL request while ``limit`` others are in flight;
    ``maximum``: ``UCD_GATEWAY_MAX_IN_FLIGHT``, when the limit was lowered from it
    (gateway/in_flight_limit.py)."""
    setting = (
        "UCD_GATEWAY_MAX_IN_FLIGHT"
        if maximum is None or maximum == limit
        else f"UCD_GATEWAY_MAX_IN_FLIGHT {maximum}, lowered while the event loop runs late"
    )
    return _not_started(
        f"the gateway is at its limit of {limit} GraphQL requests in flight ({setting}); "
        f"retry after {retry_after} s",
        retry_after,
    )


def behind_schedule(behind_ms: int, limit_ms: float, retry_after: int) -> dict[str, Any]:
    """The 503 body refusing a GraphQL request while the event loop runs ``behind_ms``
    late, over ``limit_ms``, with requests in flight (gateway/loop_lag.py)."""
    return _not_started(
        f"the gateway is behind by {behind_ms} ms, over its limit of {limit_ms:g} ms "
        f"(UCD_GATEWAY_MAX_LOOP_LAG_MS); retry after {retry_after} s",
        retry_after,
    )


def shutting_down(retry_after: int) -> dict[str, Any]:
    """The 503 body refusing a GraphQL request that arrives while the gateway drains.

    The same code as ``overloaded``: in both cases nothing was started and the caller
    should retry after ``retry_after`` seconds (reaching another instance, or this one
    restarted), so a client needs no second branch; the message tells people apart.
    """
    return _not_started(f"the gateway is shutting down; retry after {retry_after} s", retry_after)


def interrupted_by_shutdown() -> dict[str, Any]:
    """The 503 body of a GraphQL request the drain stopped before it finished.

    UPSTREAM_OUTCOME_UNKNOWN, not OVERLOADED: the operation had started, so a write in it
    may have reached the UCD, and a client must not simply send it again.
    """
    message = (
        "the gateway shut down before this operation finished; "
        "a write in it may or may not have been applied"
    )
    return {
        "errors": [
            {"message": message, "extensions": {"code": ErrorCode.UPSTREAM_OUTCOME_UNKNOWN.value}}
        ]
    }


def _not_started(message: str, retry_after: int) -> dict[str, Any]:
    extensions = {"code": ErrorCode.OVERLOADED.value, "retryAfter": retry_after}
    return {"errors": [{"message": message, "extensions": extensions}]}


def unauthenticated(message: str) -> dict[str, Any]:
    """The 401 body refusing a request whose credential is missing or not accepted;
    ``message`` says why in general terms and never repeats the credential."""
    return {
        "errors": [{"message": message, "extensions": {"code": ErrorCode.UNAUTHENTICATED.value}}]
    }


def over_rate_limit(limit: str, retry_after: int) -> GraphQLError:
    """The refusal of an operation whose caller has spent its UCD calls for the window
    (gateway/rate_limits.py); the view answers it HTTP 429 with Retry-After."""
    return GraphQLError(
        f"this caller has spent its rate limit of {limit} UCD calls; retry in {retry_after} s "
        "(UCD_GATEWAY_RATE_LIMIT, or the API key's rate_limit)",
        extensions={"code": ErrorCode.RATE_LIMITED.value, "retryAfter": retry_after},
    )


def audit_unavailable(path: Sequence[str | int] | None = None) -> GraphQLError:
    """The refusal of a mutation, or the withholding of an answer with personal data,
    whose audit line could not be written (gateway/audit.py): nothing without a trace."""
    return GraphQLError(
        "the audit trail cannot be written (UCD_GATEWAY_AUDIT_LOG), so this is refused",
        path=path,
        extensions={"code": ErrorCode.AUDIT_UNAVAILABLE.value},
    )
