"""One authenticated ``/api/…`` operation of the local UCD's OpenAPI document (§2, §5.3).

Every such operation answers 200, 400, 403 and 500; 404 where a user is looked up; 429
where a rate limit or fault injection (§2.6, §5.7) can answer. Its request body carries
the contract's example, which schema-driven tools send first.
"""

from __future__ import annotations

from gateway.local_ucd.openapi.examples import EXAMPLES
from gateway.local_ucd.openapi.primitives import (
    JSON_MEDIA_TYPE,
    Schema,
    json_content,
    response_ref,
)

__all__ = ["api_operation"]

_SECURED: list[dict[str, list[str]]] = [{"PartnerName": [], "RequestToken": []}]


def api_operation(
    operation_id: str,
    summary: str,
    request: Schema | None,
    answer: Schema,
    *,
    not_found: bool = False,
    limited: bool = True,
    tag: str = "insider",
    body_optional_type: bool = False,
) -> Schema:
    """An authenticated ``/api/…`` operation with the common answers of §2.

    ``limited``: the endpoint can answer 429 (rate pool or fault injection; §3 endpoints).
    """
    responses: dict[str, Schema] = {
        "200": json_content(answer, "Success."),
        "400": response_ref("BadRequest"),
        "403": response_ref("Forbidden"),
    }
    if not_found:
        responses["404"] = response_ref("UserNotFound")
    if limited:
        responses["429"] = response_ref("TooManyRequests")
    responses["500"] = response_ref("ServerError")
    operation: Schema = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "security": _SECURED,
        "responses": responses,
    }
    if request is not None:
        media: Schema = {"schema": request}
        if operation_id in EXAMPLES:
            media["example"] = EXAMPLES[operation_id]
        body: Schema = {"required": True, "content": {JSON_MEDIA_TYPE: media}}
        if body_optional_type:
            body["description"] = "Content-Type may be omitted on this endpoint (§2.4)."
        operation["requestBody"] = body
    return operation
