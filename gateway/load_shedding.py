"""Load shedding: how many GraphQL requests this process takes at once, and when none.

``Admission`` counts the GraphQL requests in flight and knows whether the process is
draining (gateway/drain.py flips it on SIGTERM). ``ShedLoad``, the outermost ASGI
middleware, refuses a request to ``/graphql`` with HTTP 503, ``Retry-After`` and
OVERLOADED (gateway/error_pipeline.py) when ``UCD_GATEWAY_MAX_IN_FLIGHT`` requests are
already in flight, or when the process drains. Every other path (``/healthz``,
``/readyz``, the export webhook) always passes: a probe must be answered most of all
when the gateway is busy. A request the drain has to stop (uvicorn cancels what still
runs after it) is answered 503 UPSTREAM_OUTCOME_UNKNOWN, since a write in it may have
been applied, rather than uvicorn's bare 500.

Why refuse rather than queue: at twice the load the gateway can serve, a queue grows
without end; before this existed, 22 of 18,540 requests in 20 s succeeded, the rest
waited out their 10 s deadline while memory grew tenfold, and the gateway still timed
out every request 5 s after the load had stopped (bench/README.md). A refusal must cost
less than the work it saves: it reads neither the body nor the headers beyond the path,
and its bytes are built once (bench/overload.py measures it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.error_pipeline import interrupted_by_shutdown, overloaded, shutting_down

__all__ = ["GRAPHQL_PATH", "RETRY_AFTER_S", "Admission", "ShedLoad"]

logger = logging.getLogger("gateway.load_shedding")

#: The one path whose requests are counted and refused.
GRAPHQL_PATH: Final = "/graphql"
#: Seconds a refused caller is asked to wait: long enough for the requests in flight
#: (most take milliseconds) to make room, short enough not to idle a client for long.
RETRY_AFTER_S: Final = 1


class Admission:
    """The GraphQL requests in flight in this process, and whether it drains.

    One per app (``create_app``); everything runs on the app's event loop, so plain
    counters need no lock.
    """

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.draining = False
        #: Set with the drain: the ``time.monotonic()`` instant the process must be gone by.
        self.stop_by: float | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    def start_draining(self, *, stop_by: float | None = None) -> None:
        """From now on every new GraphQL request is refused and ``/readyz`` answers 503;
        ``stop_by`` (``time.monotonic()``) bounds what the shutdown may still wait for."""
        self.draining = True
        self.stop_by = stop_by

    def shutdown_time_left(self) -> float | None:
        """Seconds the shutdown may still take (at least 0), or None if nothing bounds it."""
        if self.stop_by is None:
            return None
        return max(self.stop_by - time.monotonic(), 0.0)

    async def wait_idle(self) -> None:
        """Return once no GraphQL request is in flight (callers bound it with a timeout)."""
        await self._idle.wait()


class _Refusal:
    """One 503 answer, its ASGI messages built once."""

    def __init__(self, body: dict[str, Any], *, close: bool, retry_after: bool = True) -> None:
        content = orjson.dumps(body)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode()),
        ]
        if retry_after:
            headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
        if close:
            # Draining: the caller's next request should open a connection elsewhere.
            headers.append((b"connection", b"close"))
        self._headers = headers
        self._content = content

    async def __call__(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": self._headers})
        await send({"type": "http.response.body", "body": self._content})


class ShedLoad:
    """Refuses GraphQL requests over the limit or while draining; counts the others."""

    def __init__(self, app: ASGIApp, *, admission: Admission) -> None:
        self.app = app
        self.admission = admission
        self._overloaded = _Refusal(overloaded(admission.max_in_flight, RETRY_AFTER_S), close=False)
        self._shutting_down = _Refusal(shutting_down(RETRY_AFTER_S), close=True)
        self._interrupted = _Refusal(interrupted_by_shutdown(), close=True, retry_after=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != GRAPHQL_PATH:
            await self.app(scope, receive, send)
            return
        admission = self.admission
        if admission.draining:
            await self._shutting_down(send)
            return
        if admission.in_flight >= admission.max_in_flight:
            await self._overloaded(send)
            return
        admission.enter()
        started = False

        async def noting_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, noting_send)
        except asyncio.CancelledError:
            # uvicorn cancels the requests still running after the drain and its grace
            # (gateway/drain.py); its own answer would be a bare 500 and a traceback.
            if not admission.draining or started:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            logger.warning("a GraphQL request was stopped by the shutdown before it finished")
            await self._interrupted(send)
        finally:
            admission.leave()
