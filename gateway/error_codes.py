"""The table of every ``extensions.code`` the gateway answers with.

Clients branch on these codes, never on messages, so the set is part of the public
contract: README.md's error table is tested against ``ERROR_CODES`` in both directions
(tests/gateway/test_error_codes.py), and every code is provoked over HTTP there too.

Who writes them: the ``GatewayError`` classes (gateway/errors.py) take theirs from
``ErrorCode``; every other code is written by gateway/error_pipeline.py. No other module
spells a code as a string.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = ["ERROR_CODES", "CodeDoc", "ErrorCode"]


class ErrorCode(StrEnum):
    """The value of ``extensions.code``; a ``str``, so it compares equal to the wire text."""

    BAD_USER_INPUT = "BAD_USER_INPUT"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    RATE_LIMITED = "RATE_LIMITED"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    UPSTREAM_ERROR = "UPSTREAM_ERROR"
    UPSTREAM_AUTH = "UPSTREAM_AUTH"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    MAX_COST_EXCEEDED = "MAX_COST_EXCEEDED"
    UPSTREAM_OUTCOME_UNKNOWN = "UPSTREAM_OUTCOME_UNKNOWN"
    BAD_REQUEST = "BAD_REQUEST"
    OVERLOADED = "OVERLOADED"
    STATE_UNAVAILABLE = "STATE_UNAVAILABLE"
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    PERSISTED_QUERY_HASH_MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"
    TRUSTED_DOCUMENT_REQUIRED = "TRUSTED_DOCUMENT_REQUIRED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    AUDIT_UNAVAILABLE = "AUDIT_UNAVAILABLE"


@dataclass(frozen=True)
class CodeDoc:
    """What a code means: when it is answered, and the extension keys it may carry.

    ``extensions`` pairs each extra key of ``extensions`` (besides ``code``) with its
    meaning, in the order the README lists them.
    """

    when: str
    extensions: tuple[tuple[str, str], ...] = ()


#: Every code, in the README's order. Read-only: the table is the contract.
ERROR_CODES: Final[Mapping[ErrorCode, CodeDoc]] = MappingProxyType(
    {
        ErrorCode.BAD_USER_INPUT: CodeDoc(
            "the gateway (before any UCD call) or the UCD (HTTP 400) refused the caller's "
            "input; also variables that do not fit their type and @oneOf inputs without "
            "exactly one key",
            (("path", "the argument or input field at fault, e.g. key.email, when known"),),
        ),
        ErrorCode.NOT_FOUND: CodeDoc("the UCD has no user for these identifiers"),
        ErrorCode.CONFLICT: CodeDoc("the new identifier already belongs to another user"),
        ErrorCode.RATE_LIMITED: CodeDoc(
            "the UCD still answers 429 after the gateway's retries, or the gateway's share of "
            "the partner's UCD quota (UCD_GATEWAY_UCD_QUOTA_SHARE) has no room in time (no "
            "UCD call); or the caller has spent "
            "its own budget of UCD calls for the window (UCD_GATEWAY_RATE_LIMIT, or its API "
            "key's rate_limit): then HTTP 429 with Retry-After, before any UCD call",
            (
                (
                    "retryAfter",
                    "seconds to wait: the UCD's, or until the quota's or the caller's window ends",
                ),
            ),
        ),
        ErrorCode.UPSTREAM_UNAVAILABLE: CodeDoc(
            "the UCD cannot be reached: timeout, refused or dropped connection; or the "
            "endpoint failed UCD_GATEWAY_BREAKER_FAILURES times in a row and is not called "
            "until UCD_GATEWAY_BREAKER_COOLDOWN has passed (its circuit is open)",
            (("retryAfter", "seconds until the gateway tries the endpoint again, when open"),),
        ),
        ErrorCode.UPSTREAM_ERROR: CodeDoc(
            "the UCD answered with an unexpected status or a body the contract does not allow",
            (("status", "the UCD's HTTP status, when it answered"),),
        ),
        ErrorCode.UPSTREAM_AUTH: CodeDoc(
            "the UCD refused the gateway's partner name or token (401, 403)"
        ),
        ErrorCode.INTERNAL_SERVER_ERROR: CodeDoc(
            "anything unexpected; the message is masked as Internal server error",
            (("errorId", "the id of the log line with the exception's type and traceback"),),
        ),
        ErrorCode.GRAPHQL_PARSE_FAILED: CodeDoc(
            "the document is not GraphQL, or has more tokens than UCD_GATEWAY_MAX_TOKENS "
            "or more than 16 characters per token of it"
        ),
        ErrorCode.GRAPHQL_VALIDATION_FAILED: CodeDoc(
            "the document does not fit the schema, or is deeper or has more aliases than "
            "UCD_GATEWAY_MAX_QUERY_DEPTH or UCD_GATEWAY_MAX_ALIASES allow, or more fields or "
            "directives than UCD_GATEWAY_MAX_FIELDS or UCD_GATEWAY_MAX_DIRECTIVES, or "
            "fragments that spread themselves"
        ),
        ErrorCode.PAYLOAD_TOO_LARGE: CodeDoc(
            "the request body is over UCD_GATEWAY_MAX_BODY_BYTES; HTTP 413, before any parsing"
        ),
        ErrorCode.MAX_COST_EXCEEDED: CodeDoc(
            "the operation would make more UCD calls than "
            "UCD_GATEWAY_MAX_UCD_CALLS_PER_OPERATION (in a batch: with the calls its "
            "operations before it planned); refused before any UCD call"
        ),
        ErrorCode.UPSTREAM_OUTCOME_UNKNOWN: CodeDoc(
            "a write that is not safe to repeat (identifier change, delete, anonymize, export) "
            "reached or may have reached the UCD, but its answer was lost: it may or may not "
            "have been applied; the gateway did not repeat it. Also an operation the "
            "gateway's shutdown stopped before it finished (HTTP 503)"
        ),
        ErrorCode.BAD_REQUEST: CodeDoc(
            "the HTTP request is not a GraphQL request the gateway takes: the body is not "
            "one JSON object (or an array of them, a batch), or query, variables, "
            "operationName, extensions or documentId has the "
            "wrong type (HTTP 400); a mutation over GET (400); GraphiQL asked for while "
            "UCD_GATEWAY_GRAPHIQL is off (404); a method other than GET and POST (405); "
            "a body that is not application/json (415); a batch of more operations than "
            "UCD_GATEWAY_MAX_BATCH, or none (400); a malformed persistedQuery extension or "
            "documentId, or a documentId sent with a query (400)"
        ),
        ErrorCode.OVERLOADED: CodeDoc(
            "the gateway did not start the operation: its in-flight limit "
            "(UCD_GATEWAY_MAX_IN_FLIGHT, or lower while its event loop runs late) is "
            "reached, its event loop is more than "
            "UCD_GATEWAY_MAX_LOOP_LAG_MS behind, or it is shutting down (the message says "
            "which); "
            "HTTP 503 with Retry-After, before the body is read; safe to retry",
            (("retryAfter", "seconds to wait before retrying, as in the Retry-After header"),),
        ),
        ErrorCode.STATE_UNAVAILABLE: CodeDoc(
            "the gateway's shared state (Redis at UCD_GATEWAY_REDIS_URL) did not answer within "
            "UCD_GATEWAY_REDIS_TIMEOUT or the operation's deadline; a startExport answered so "
            "asked nothing of the UCD; safe to retry. With the profile cache on, a mutation "
            "answered so was applied by the UCD, but the replicas' caches could not be "
            "invalidated (the message says so): read with fresh: true until Redis is back"
        ),
        ErrorCode.PERSISTED_QUERY_NOT_FOUND: CodeDoc(
            "the request names its document only by hash (extensions.persistedQuery) or by "
            "documentId, and the gateway does not know it; the message is "
            "PersistedQueryNotFound, so Apollo's persisted-queries link sends the query again "
            "with the hash, which registers it"
        ),
        ErrorCode.PERSISTED_QUERY_HASH_MISMATCH: CodeDoc(
            "the request sends a query and, in extensions.persistedQuery, a sha256Hash that "
            "is not the hash of that query; nothing is registered or run"
        ),
        ErrorCode.TRUSTED_DOCUMENT_REQUIRED: CodeDoc(
            "UCD_GATEWAY_TRUSTED_DOCUMENTS_ONLY is on and the request's document is not in "
            "the manifest of UCD_GATEWAY_TRUSTED_DOCUMENTS; refused before any UCD call"
        ),
        ErrorCode.UNAUTHENTICATED: CodeDoc(
            "authentication is on (UCD_GATEWAY_API_KEYS_FILE or UCD_GATEWAY_JWT_JWKS_URL) and "
            "the request has no Authorization: Bearer credential, or one that is not a known "
            "API key or a valid JWT (expired, wrong issuer or audience, unknown key, bad "
            "signature); HTTP 401, before the body is read"
        ),
        ErrorCode.FORBIDDEN: CodeDoc(
            "the caller's scopes do not allow this: a field it may not read is null with "
            "this error at its path and the rest is answered; a mutation it may not run "
            "refuses the whole operation before any UCD call",
            (("scope", "the scope that would allow it, e.g. pii:read"),),
        ),
        ErrorCode.AUDIT_UNAVAILABLE: CodeDoc(
            "the audit trail (UCD_GATEWAY_AUDIT_LOG) cannot be written: a mutation or export "
            "is refused before any UCD call, and an answer with personal data is withheld "
            "(data null); safe to retry once the audit log is writable"
        ),
    }
)
