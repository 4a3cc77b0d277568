"""Responses and errors of the local UCD, with the contract's common bodies (§2.5).

Handlers raise :class:`ApiError` for every non-2xx answer; the pipeline turns it into a
JSON response. Bodies are built with the helpers below so each text exists once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

__all__ = [
    "ACCESS_DENIED",
    "INVALID_JSON",
    "NO_SUCH_USER",
    "TOO_MANY_REQUESTS",
    "UNKNOWN_ERROR",
    "ApiError",
    "ConnectionDropped",
    "bad_request",
    "data_envelope",
    "dumps",
    "go_error",
    "json_response",
    "message_error",
    "render_value",
]


def dumps(value: Any) -> bytes:
    """Compact JSON as the UCD sends it (orjson keeps 1 and 1.0 apart, as §2.4 wants)."""
    return orjson.dumps(value)


def render_value(value: Any) -> str:
    """``<v>`` of §3.1.3: a string verbatim, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return dumps(value).decode()


def go_error(text: str) -> dict[str, Any]:
    """The Go-style envelope ``{"error": text}``."""
    return {"error": text}


def bad_request(text: str) -> dict[str, Any]:
    """A Go-style validation failure: ``{"error": "<text>: bad request"}``."""
    return {"error": f"{text}: bad request"}


def data_envelope(successful: int, failed: int, errors: Mapping[str, Any]) -> dict[str, Any]:
    """The per-user data envelope of E1 and E4 (§3.1.5): ``{}`` instead of a zero count."""
    return {
        "data": {
            "successful": {"count": successful} if successful else {},
            "fail": {"count": failed, "errors": errors} if failed else {},
        }
    }


def message_error(text: str) -> dict[str, Any]:
    """The success/message envelope ``{"success": false, "message": text}``."""
    return {"success": False, "message": text}


NO_SUCH_USER = go_error("no such user for these identifiers: no data")
TOO_MANY_REQUESTS = go_error("rejected: too many requests")
UNKNOWN_ERROR = message_error("The request processing has failed because of an unknown error.")
INVALID_JSON = message_error("Request data is not in valid JSON format.")
ACCESS_DENIED = message_error(
    "Access Denied. You do not have sufficient access to perform this action."
)


class ApiError(Exception):
    """A non-2xx answer: ``status`` with JSON ``body`` and extra ``headers``."""

    def __init__(
        self,
        status: int,
        body: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status}")
        self.status = status
        self.body = dict(body)
        self.headers = dict(headers or {})

    @classmethod
    def bad_request(cls, text: str) -> ApiError:
        """400 with ``{"error": "<text>: bad request"}``."""
        return cls(400, bad_request(text))

    @classmethod
    def not_found(cls) -> ApiError:
        """404 with the unknown-user body of §2.5."""
        return cls(404, NO_SUCH_USER)

    @classmethod
    def too_many_requests(cls, retry_after: int) -> ApiError:
        """429 with the rate-limit body and ``Retry-After`` (whole seconds, at least 1)."""
        return cls(429, TOO_MANY_REQUESTS, {"Retry-After": str(max(1, int(retry_after)))})

    def response(self) -> Response:
        return json_response(self.body, status=self.status, headers=self.headers)


class ConnectionDropped(Exception):
    """Fault injection asks to close the connection without an answer (§5.7).

    Under uvicorn the pipeline raises this after starting the response, so the server
    closes the socket mid-answer and the client sees a dropped connection. In-process,
    :class:`gateway.local_ucd.transport.LocalUcdTransport` turns it into
    :class:`httpx.RemoteProtocolError`, which is what a client sees on the wire.
    """


def json_response(
    body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        content=dumps(body),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json",
    )
