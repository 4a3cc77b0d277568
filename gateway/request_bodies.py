"""Which HTTP requests ``/graphql`` takes as GraphQL requests, and the answer to the rest.

A POST must be ``application/json`` (415 otherwise) with one JSON object as its body
(batching is off), whose ``query`` and ``operationName`` are strings or null and whose
``variables`` and ``extensions`` are objects or null (400 otherwise, naming the field).
strawberry checks some of this itself, but answers in plain text, and it calls ``.get``
on whatever JSON value the body holds: ``"..."``, ``1``, ``null`` or ``true`` were an
``AttributeError``, a 500 and a traceback in the log. GET requests keep strawberry's own
checks (its query parameters are strings by construction).

Every refusal, strawberry's and these, is ``RequestRefused``, answered by
``refusal_response`` with the error pipeline's body: HTTP status as refused,
``{"errors": [{"message": ..., "extensions": {"code": "BAD_REQUEST"}}]}``, and nothing in
the log but the access line.

    >>> media_type("Application/JSON; charset=utf-8"), media_type(None)
    ('application/json', '')
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from starlette.responses import Response
from strawberry.http import GraphQLRequestData

from gateway.api.strawberry_internals import RequestRefused
from gateway.error_pipeline import bad_request

__all__ = ["JSON_MEDIA_TYPE", "graphql_request", "media_type", "refusal_response", "unsupported"]

JSON_MEDIA_TYPE: Final = "application/json"

#: The methods ``/graphql`` answers; a 405 names them in ``Allow`` (as RFC 9110 asks).
ALLOWED_METHODS: Final = "GET, POST"

#: (body key, the types it may have, their names for the message). The message names the
#: field in strawberry's own words, so GET and POST refusals read alike.
_FIELDS: Final[tuple[tuple[str, tuple[type, ...], str], ...]] = (
    ("query", (str, type(None)), "a string or null"),
    ("variables", (dict, type(None)), "an object or null"),
    ("operationName", (str, type(None)), "a string or null"),
    ("extensions", (dict, type(None)), "an object or null"),
)


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, lower case, without its parameters."""
    return (content_type or "").partition(";")[0].strip().lower()


def unsupported(content_type: str | None) -> RequestRefused:
    """The refusal of a POST whose body is not JSON (form posts, text/plain, none)."""
    shown = media_type(content_type) or "none"
    return RequestRefused(
        415, f"Unsupported content type {shown!r}: POST a JSON body as {JSON_MEDIA_TYPE}."
    )


def graphql_request(data: object) -> GraphQLRequestData:
    """The GraphQL request a decoded JSON body holds, or ``RequestRefused`` (400).

    >>> graphql_request({"query": "{ __typename }"}).query
    '{ __typename }'
    >>> graphql_request([{"query": "{ __typename }"}])
    Traceback (most recent call last):
    ...
    cross_web.exceptions.HTTPException: The request body must be one JSON object (batching is off).
    >>> try:
    ...     graphql_request({"query": "{ a }", "operationName": 1})
    ... except RequestRefused as refused:
    ...     print(refused.status_code, refused.reason)
    400 The GraphQL operation's `operationName` must be a string or null, if provided.
    """
    if not isinstance(data, dict):
        raise RequestRefused(400, "The request body must be one JSON object (batching is off).")
    for key, types, expected in _FIELDS:
        if not isinstance(data.get(key), types):
            raise RequestRefused(
                400, f"The GraphQL operation's `{key}` must be {expected}, if provided."
            )
    return GraphQLRequestData(
        query=data.get("query"),
        variables=data.get("variables"),
        operation_name=data.get("operationName"),
        extensions=data.get("extensions"),
    )


def refusal_response(refused: RequestRefused) -> Response:
    """The answer to a refused request: its status, the pipeline's ``BAD_REQUEST`` body."""
    headers: dict[str, Any] = {"Allow": ALLOWED_METHODS} if refused.status_code == 405 else {}
    return Response(
        orjson.dumps(bad_request(refused.reason)),
        status_code=refused.status_code,
        headers=headers,
        media_type=JSON_MEDIA_TYPE,
    )
