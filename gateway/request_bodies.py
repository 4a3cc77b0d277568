"""Which HTTP requests ``/graphql`` takes as GraphQL requests, and the answer to the rest.

A POST must be ``application/json`` (415 otherwise) with one JSON object as its body, or
an array of 1 to ``UCD_GATEWAY_MAX_BATCH`` of them (a batch), each of whose ``query``,
``operationName`` and ``documentId`` are strings or null and whose ``variables`` and
``extensions`` are objects or null (400 otherwise, naming the field). An
``extensions.persistedQuery`` must be Apollo's ``{"version": 1, "sha256Hash": <64 hex>}``,
and a ``documentId`` comes without a ``query`` (gateway/persisted/ decides the rest).
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

import re
from dataclasses import dataclass
from typing import Any, Final

import orjson
from starlette.responses import Response
from strawberry.http import GraphQLRequestData

from gateway.api.strawberry_internals import RequestRefused
from gateway.error_pipeline import bad_request

__all__ = [
    "JSON_MEDIA_TYPE",
    "GatewayRequestData",
    "graphql_request",
    "graphql_requests",
    "media_type",
    "refusal_response",
    "unsupported",
]

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
    ("documentId", (str, type(None)), "a string or null"),
)

#: An APQ hash: SHA-256, hex (Apollo's link sends it lower-case).
_SHA256_HEX: Final = re.compile(r"[0-9a-fA-F]{64}")


@dataclass
class GatewayRequestData(GraphQLRequestData):
    """strawberry's request data plus the GraphQL-over-HTTP ``documentId``."""

    document_id: str | None = None


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, lower case, without its parameters."""
    return (content_type or "").partition(";")[0].strip().lower()


def unsupported(content_type: str | None) -> RequestRefused:
    """The refusal of a POST whose body is not JSON (form posts, text/plain, none)."""
    shown = media_type(content_type) or "none"
    return RequestRefused(
        415, f"Unsupported content type {shown!r}: POST a JSON body as {JSON_MEDIA_TYPE}."
    )


def graphql_requests(
    data: object, *, max_batch: int
) -> GatewayRequestData | list[GatewayRequestData]:
    """The GraphQL request, or the batch of them, a decoded JSON body holds.

    >>> [r.query for r in graphql_requests([{"query": "{ a }"}, {"query": "{ b }"}], max_batch=2)]
    ['{ a }', '{ b }']
    >>> try:
    ...     graphql_requests([{"query": "{ a }"}] * 3, max_batch=2)
    ... except RequestRefused as refused:
    ...     print(refused.status_code, refused.reason[:41])
    400 The batch has 3 operations; at most 2 are
    """
    if not isinstance(data, list):
        return graphql_request(data)
    if not data:
        raise RequestRefused(400, "The batch is empty: send at least one operation.")
    if len(data) > max_batch:
        raise RequestRefused(
            400,
            f"The batch has {len(data)} operations; at most {max_batch} are allowed "
            "(UCD_GATEWAY_MAX_BATCH).",
        )
    return [graphql_request(item, where=f"batch[{index}]: ") for index, item in enumerate(data)]


def graphql_request(data: object, *, where: str = "") -> GatewayRequestData:
    """The GraphQL request a decoded JSON object holds, or ``RequestRefused`` (400);
    ``where`` starts each message (which operation of a batch).

    >>> graphql_request({"query": "{ __typename }"}).query
    '{ __typename }'
    >>> try:
    ...     graphql_request("{ __typename }", where="batch[1]: ")
    ... except RequestRefused as refused:
    ...     print(refused.reason)
    batch[1]: The request body must be a JSON object, or an array of them (a batch).
    >>> try:
    ...     graphql_request({"query": "{ a }", "operationName": 1})
    ... except RequestRefused as refused:
    ...     print(refused.status_code, refused.reason)
    400 The GraphQL operation's `operationName` must be a string or null, if provided.
    """
    if not isinstance(data, dict):
        raise RequestRefused(
            400, f"{where}The request body must be a JSON object, or an array of them (a batch)."
        )
    for key, types, expected in _FIELDS:
        if not isinstance(data.get(key), types):
            raise RequestRefused(
                400, f"{where}The GraphQL operation's `{key}` must be {expected}, if provided."
            )
    extensions = data.get("extensions")
    if extensions is not None and "persistedQuery" in extensions:
        _check_persisted_query(extensions["persistedQuery"], where)
    document_id = data.get("documentId")
    if document_id is not None and (not document_id or data.get("query") is not None):
        raise RequestRefused(
            400,
            f"{where}A GraphQL operation's `documentId` names its document instead of "
            "`query`: send a non-empty `documentId` without `query`.",
        )
    return GatewayRequestData(
        query=data.get("query"),
        variables=data.get("variables"),
        operation_name=data.get("operationName"),
        extensions=extensions,
        document_id=document_id,
    )


def _check_persisted_query(persisted: object, where: str) -> None:
    """Apollo's APQ extension: ``{"version": 1, "sha256Hash": "<64 hex digits>"}``."""
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise RequestRefused(
            400,
            f"{where}`extensions.persistedQuery` must be an object with `version` 1 "
            "(Apollo's automatic persisted queries).",
        )
    sha256 = persisted.get("sha256Hash")
    if not isinstance(sha256, str) or not _SHA256_HEX.fullmatch(sha256):
        raise RequestRefused(
            400,
            f"{where}`extensions.persistedQuery.sha256Hash` must be the 64 hex digits of "
            "the query's SHA-256 hash.",
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
