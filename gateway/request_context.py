"""Which request a log line belongs to: a request id and its operation, per request.

``RequestIds``, an ASGI middleware, gives every HTTP request a ``RequestInfo`` in a
``ContextVar`` for as long as the request runs: its id is the caller's ``X-Request-Id``
when that is well formed and bounded (``ACCEPTED_ID``), else a new one, and the id is
sent back in the response's ``X-Request-Id``. The operation observer
(gateway/operations.py) fills in the operation's name, type, duration and outcome, and
the log filter (gateway/logs.py) copies them onto every log record made while the
request runs, uvicorn's access line included (it is logged from inside the response).

A ``ContextVar``, not an argument: a log line deep in the UCD client belongs to the
request whose task (or a task it started) logs it, without threading an id through
every call.
"""

from __future__ import annotations

import itertools
import os
import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "ACCEPTED_ID",
    "HEADER",
    "RequestIds",
    "RequestInfo",
    "current_request",
    "current_request_id",
]

#: The response header (and the request header it is taken from).
HEADER: Final = b"x-request-id"
#: A caller's id is kept when it is 1-128 characters of these (UUIDs, W3C trace ids,
#: most load balancers' ids); anything else (too long, spaces, an email) is replaced, so
#: the id is safe to log and to use as a log field as it is.
ACCEPTED_ID: Final = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")


@dataclass(slots=True)
class RequestInfo:
    """One request's id and, once an operation ran, what it was and how it ended."""

    request_id: str
    operation: str | None = None
    operation_type: str | None = None
    duration_ms: float | None = None
    outcome: str | None = None


_current: ContextVar[RequestInfo | None] = ContextVar("request_info", default=None)

#: A made id is this process's random prefix and a count: unique across replicas and
#: restarts like a UUID, without a ``uuid4()`` (an ``os.urandom`` call) per request.
_prefix = ""
_made = itertools.count(1)


def _fresh_ids() -> None:
    """A new prefix and count for this process. Also after a fork: the workers of
    ``serve --workers`` are forked from one process, and with its prefix and count they
    would all hand out the same ids."""
    global _prefix, _made
    _prefix = uuid.uuid4().hex[:16]
    _made = itertools.count(1)


_fresh_ids()
os.register_at_fork(after_in_child=_fresh_ids)


def _new_id() -> str:
    return f"{_prefix}{next(_made):016x}"


def current_request() -> RequestInfo | None:
    """The request running in this context, if any."""
    return _current.get()


def current_request_id() -> str | None:
    """The id of the request running in this context (an audit line names it); None
    outside of one."""
    info = _current.get()
    return None if info is None else info.request_id


def _caller_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == HEADER:
            text = value.decode("latin-1")
            return text if ACCEPTED_ID.fullmatch(text) else None
    return None


class RequestIds:
    """Every HTTP request gets a ``RequestInfo`` and its id in the response header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _caller_id(scope) or _new_id()
        header = (HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        token = _current.set(RequestInfo(request_id))
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)
