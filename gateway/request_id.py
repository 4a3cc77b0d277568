"""The request id: taken from ``X-Request-Id`` or made, current for the whole request.

An audit line names the request it came from, so an operator can find the same request
in the load balancer's and the client's logs. A caller's id is kept only when it is a
short token (letters, digits, ``-_.:``, at most 128): a header is the caller's input, and
an audit line must not carry whatever a caller chooses to put there (an email, say).
Otherwise a new UUID4 is made. The id is echoed in the response's ``X-Request-Id``.

The id lives in a ``ContextVar`` set by the outermost middleware (``RequestIds``), so
code anywhere below reads it with ``current_request_id()`` without passing it along.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HEADER", "RequestIds", "current_request_id"]

HEADER: Final = "x-request-id"
_ACCEPTED: Final = re.compile(r"^[A-Za-z0-9\-_.:]{1,128}$")

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being answered; None outside of one."""
    return _current.get()


def _taken_or_made(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == HEADER.encode():
            text = value.decode("latin-1")
            if _ACCEPTED.match(text):
                return text
            break
    return str(uuid.uuid4())


class RequestIds:
    """Sets the request id for an HTTP request and echoes it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _taken_or_made(scope["headers"])
        token = _current.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != HEADER.encode()]
                headers.append((HEADER.encode(), request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)
