"""Request body checks (§2.4): content type, then size, then JSON."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from gateway.local_ucd.http import INVALID_JSON, ApiError, go_error

__all__ = ["CONTENT_TYPE_ERROR", "MAX_BODY_BYTES", "TOO_BIG_ERROR", "read_json_body"]

#: The UCD's body limit; exactly this many bytes is accepted.
MAX_BODY_BYTES = 5_000_000

CONTENT_TYPE_ERROR = go_error("content type must be application/json")
TOO_BIG_ERROR = go_error(
    f"request body is bigger than maximum allowed size {MAX_BODY_BYTES:,} bytes"
)


async def read_json_body(
    request: Request, *, content_type_optional: bool = False
) -> dict[str, Any]:
    """Check and parse the body; raise the §2.4 answer of the first failing check."""
    content_type = request.headers.get("content-type")
    if content_type is None:
        if not content_type_optional:
            raise ApiError(400, CONTENT_TYPE_ERROR)
    elif content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise ApiError(400, CONTENT_TYPE_ERROR)

    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            size = -1
        if size > MAX_BODY_BYTES:
            raise ApiError(400, TOO_BIG_ERROR)

    # Read with a cap even when Content-Length was given: a chunked body has none, and a
    # client may lie. We stop at byte 5,000,001.
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > MAX_BODY_BYTES:
            raise ApiError(400, TOO_BIG_ERROR)
        chunks.append(chunk)
    raw = b"".join(chunks)

    try:
        # orjson is strict RFC 8259: NaN/Infinity and invalid UTF-8 are errors.
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, INVALID_JSON) from None
    if not isinstance(body, dict):
        raise ApiError(400, INVALID_JSON)
    return body
