"""Error bodies of the local UCD's OpenAPI document (§2.2, §2.4, §2.5).

The texts are pinned (``const``/``enum``/patterns) to the contract's, so a schema-driven
fuzzer fails on an answer with a wrong text. ``error_schemas`` are component schemas,
``shared_responses`` the ``components/responses`` every ``/api/…`` operation refers to.
"""

from __future__ import annotations

from gateway.local_ucd.auth import EMPTY_PARTNER, EMPTY_TOKEN, PARTNER_INVALID
from gateway.local_ucd.bodies import CONTENT_TYPE_ERROR, TOO_BIG_ERROR
from gateway.local_ucd.http import (
    ACCESS_DENIED,
    INVALID_JSON,
    NO_SUCH_USER,
    TOO_MANY_REQUESTS,
    UNKNOWN_ERROR,
)
from gateway.local_ucd.openapi.primitives import STRING, Schema, json_content, obj, ref

__all__ = ["error_schemas", "go_error_schema", "message_error_schema", "shared_responses"]

_AUTH_400_TEXTS = [body["message"] for body in (EMPTY_PARTNER, EMPTY_TOKEN, PARTNER_INVALID)]


def go_error_schema(text_schema: Schema) -> Schema:
    """The schema of :func:`gateway.local_ucd.http.go_error` bodies with this text."""
    return obj({"error": text_schema}, required=("error",), additionalProperties=False)


def message_error_schema(text_schema: Schema) -> Schema:
    """The schema of :func:`gateway.local_ucd.http.message_error` bodies with this text."""
    return obj(
        {"success": {"const": False}, "message": text_schema},
        required=("success", "message"),
        additionalProperties=False,
    )


def error_schemas() -> dict[str, Schema]:
    return {
        "GoError": {
            **go_error_schema(STRING),
            "description": 'Go-style error envelope {"error": text} (§2.5).',
        },
        "MessageError": {
            **message_error_schema(STRING),
            "description": 'Success/message envelope {"success": false, "message": text} (§2.5).',
        },
        "BadRequest": {
            "description": (
                "Authentication failures (§2.2), body checks (§2.4) and the endpoint's "
                "request-level validation (Go style, ending in ': bad request')."
            ),
            "anyOf": [
                message_error_schema({"enum": [*_AUTH_400_TEXTS, INVALID_JSON["message"]]}),
                go_error_schema({"enum": [CONTENT_TYPE_ERROR["error"], TOO_BIG_ERROR["error"]]}),
                go_error_schema({"type": "string", "pattern": ": bad request$"}),
            ],
        },
    }


def shared_responses() -> dict[str, Schema]:
    retry_after = {
        "description": "Whole seconds until the request would be admitted (at least 1).",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
    return {
        "BadRequest": json_content(ref("BadRequest"), "Invalid headers, body or request."),
        "Forbidden": json_content(
            message_error_schema({"const": ACCESS_DENIED["message"]}),
            "Unknown partner, or a token that is not one of the partner's tokens.",
        ),
        "UserNotFound": json_content(
            go_error_schema({"const": NO_SUCH_USER["error"]}), "No user for these identifiers."
        ),
        "TooManyRequests": {
            **json_content(
                go_error_schema({"const": TOO_MANY_REQUESTS["error"]}),
                "Rate limited (§2.6, strict mode) or an injected fault (§5.7).",
            ),
            "headers": {"Retry-After": retry_after},
        },
        "ServerError": json_content(
            message_error_schema({"const": UNKNOWN_ERROR["message"]}),
            "Unexpected failure; the request's transaction was rolled back.",
        ),
    }
