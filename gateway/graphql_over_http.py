"""The HTTP side of a GraphQL answer: media type, status code and caching headers.

The GraphQL-over-HTTP specification has two answer media types:

* ``application/json``, the legacy one every client reads: HTTP 200 for every answer
  that is a GraphQL response, with ``"data": null`` when the request failed before
  execution. The gateway answers it unless the client prefers the other, so clients that
  ask for it (or for ``*/*``, or nothing) see exactly what they saw before;
* ``application/graphql-response+json``, answered when the client's ``Accept`` names
  it with a weight at least that of ``application/json``: a request error (the request
  failed before execution: parse or validation failure, refused variables, a refused
  persisted document or cost, so no error has a ``path`` and there is no data) is HTTP
  400 and carries no ``data`` entry; an answer that executed is 200, field errors or not.

A batch (a JSON array of operations) is answered 200 with one entry per operation:
each entry tells its own outcome, and no status can speak for all of them.

A GET answered from a persisted document (named by hash or id, so the URL is the same
each time) that ran as a query without errors gets ``UCD_GATEWAY_PERSISTED_CACHE_CONTROL``
and ``Vary: Accept`` (the body depends on the media type). GET never runs a mutation
(strawberry refuses it with 400), so no mutation's answer is ever marked cacheable.
"""

from __future__ import annotations

import functools
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from gateway.error_codes import ErrorCode

__all__ = [
    "GRAPHQL_RESPONSE_MEDIA_TYPE",
    "Exchange",
    "current_exchange",
    "exchanging",
    "is_request_error",
    "prefers_graphql_response",
]

GRAPHQL_RESPONSE_MEDIA_TYPE: Final = "application/graphql-response+json"
_JSON: Final = "application/json"


#: Distinct ``Accept`` headers whose answer is kept: a client sends the same one on every
#: request, so a handful covers the traffic; the bound keeps odd callers from growing it.
ACCEPT_CACHE_SIZE: Final = 64


@functools.lru_cache(maxsize=ACCEPT_CACHE_SIZE)
def prefers_graphql_response(accept: str | None) -> bool:
    """Whether ``Accept`` asks for ``application/graphql-response+json`` over JSON.

    Only an explicit entry counts for it (a ``*/*`` client may be a legacy one), and it
    wins ties against ``application/json``:

    >>> prefers_graphql_response("application/graphql-response+json, application/json;q=0.9")
    True
    >>> prefers_graphql_response("application/json, application/graphql-response+json;q=0.5")
    False
    >>> prefers_graphql_response("*/*"), prefers_graphql_response(None)
    (False, False)
    """
    weights: dict[str, float] = {}
    for entry in (accept or "").split(","):
        media, *params = (part.strip() for part in entry.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        media = media.lower()
        weights[media] = max(weights.get(media, 0.0), weight)
    wanted = weights.get(GRAPHQL_RESPONSE_MEDIA_TYPE, 0.0)
    return wanted > 0 and wanted >= weights.get(_JSON, 0.0)


def is_request_error(result: ExecutionResult) -> bool:
    """True when the operation failed before it executed: errors, no data, no path."""
    return (
        result.data is None
        and bool(result.errors)
        and all(error.path is None for error in result.errors or ())
    )


_current: ContextVar[Exchange | None] = ContextVar("graphql_exchange", default=None)


@dataclass
class Exchange:
    """One HTTP request's GraphQL answers so far, and what they make of the response.

    The view's hooks reach it with ``current_exchange()``: strawberry hands them the
    request data, results or response, but not one object of the request's own.
    """

    graphql_response: bool
    method: str
    batch: bool = False
    results: int = 0
    request_errors: int = 0
    with_errors: int = 0
    persisted: int = 0
    #: Seconds from a RATE_LIMITED refusal of the caller's own limit: HTTP 429 with
    #: Retry-After (gateway/api/rate_limiting.py). The UCD's 429 is a field error, not this.
    retry_after: int | None = None

    #: ``_current``'s token while the exchange is entered (``exchanging``).
    _token: Token[Exchange | None] | None = field(default=None, init=False, repr=False)

    # A class's own enter and exit rather than a contextlib.contextmanager: this runs
    # on every request, and a generator-based manager costs a generator, a wrapper and
    # two ``next`` calls more.
    def __enter__(self) -> Exchange:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None

    def shape(self, result: ExecutionResult, body: GraphQLHTTPResponse) -> GraphQLHTTPResponse:
        """The body of one operation's answer (from the view's ``process_result``)."""
        self.results += 1
        self.with_errors += bool(result.errors)
        if is_request_error(result):
            self.request_errors += 1
            self._note_rate_limit(result)
            if self.graphql_response:
                body.pop("data", None)  # the spec: a request error has no data entry
        return body

    def _note_rate_limit(self, result: ExecutionResult) -> None:
        for error in result.errors or ():
            extensions = error.extensions or {}
            if extensions.get("code") == ErrorCode.RATE_LIMITED:
                retry_after = extensions.get("retryAfter")
                if isinstance(retry_after, int):
                    self.retry_after = max(self.retry_after or 0, retry_after)

    def finish(self, response: Response, *, cache_control: str) -> Response:
        """The HTTP response with this exchange's media type, status and caching."""
        if self.results == 0:
            return response  # not a GraphQL answer: GraphiQL's page, a refusal
        if self.retry_after is not None:
            response.headers["retry-after"] = str(self.retry_after)
            if not self.batch:  # a batch's other entries tell their own outcomes
                response.status_code = 429
        if self.graphql_response:
            response.headers["content-type"] = GRAPHQL_RESPONSE_MEDIA_TYPE
            if not self.batch and self.request_errors and response.status_code == 200:
                response.status_code = 400
        cacheable = not self.batch and self.persisted == 1 and self.with_errors == 0
        if self.method == "GET" and cache_control and cacheable:
            response.headers["cache-control"] = cache_control
            response.headers["vary"] = "Accept"
        return response


def exchanging(request: Request) -> Exchange:
    """The exchange of ``request``; as a ``with``, current for the code (and tasks) run
    inside."""
    return Exchange(prefers_graphql_response(request.headers.get("accept")), request.method)


def current_exchange() -> Exchange:
    """The exchange of the request being answered (``exchanging``), or a throwaway one
    outside of it (a view used without ``run``: nothing it records is read)."""
    return _current.get() or Exchange(graphql_response=False, method="POST")
