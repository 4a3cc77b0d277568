"""Load shedding: how many GraphQL requests this process takes at once, and when none.

``Admission`` counts the GraphQL requests in flight and knows whether the process is
draining (gateway/drain.py flips it on SIGTERM). ``ShedLoad``, the outermost ASGI
middleware, refuses a request to ``/graphql`` with HTTP 503, ``Retry-After`` and
OVERLOADED (gateway/error_pipeline.py) when the in-flight limit is reached
(``UCD_GATEWAY_MAX_IN_FLIGHT``, lowered while the event loop runs later than
``UCD_GATEWAY_TARGET_LOOP_LAG_MS``: gateway/in_flight_limit.py), while the event loop
runs more than ``UCD_GATEWAY_MAX_LOOP_LAG_MS`` behind with requests in flight
(gateway/loop_lag.py), or when the process drains.
Every other path (``/healthz``, ``/readyz``, the export webhook) always passes: a probe
must be answered most of all when the gateway is busy. A request the drain has to stop
(uvicorn cancels what still runs after it) is answered 503 UPSTREAM_OUTCOME_UNKNOWN,
since a write in it may have been applied, rather than uvicorn's bare 500.

Why refuse rather than queue: at twice the load the gateway can serve, a queue grows
without end; before this existed, 22 of 18,540 requests in 20 s succeeded, the rest
waited out their 10 s deadline while memory grew tenfold, and the gateway still timed
out every request 5 s after the load had stopped (bench/README.md). A refusal must cost
less than the work it saves: it reads neither the body nor the headers beyond the path,
and its bytes are built once (bench/overload.py measures it).

Why the loop's lag as well: the in-flight limit counts only the requests the loop has
read. When the admitted work outgrows the CPU the process gets, the loop falls behind,
and a new request waits unread in its socket for as long, refusal or not (11.6 s p99 at
the client against 4 ms in the gateway, bench/README.md). Refusing while the loop is
late starts less work, so the loop catches up and refusals stay fast. Only while
requests are in flight: theirs is the work a refusal can put off, and with none in
flight the next request is the one way to learn the gateway is fine again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any, Final

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.error_pipeline import (
    behind_schedule,
    interrupted_by_shutdown,
    overloaded,
    shutting_down,
)
from gateway.in_flight_limit import InFlightLimit
from gateway.loop_lag import LoopLag

__all__ = ["GRAPHQL_PATH", "LAG_LOG_EVERY_S", "RETRY_AFTER_S", "Admission", "ShedLoad"]

logger = logging.getLogger("gateway.load_shedding")

#: The one path whose requests are counted and refused.
GRAPHQL_PATH: Final = "/graphql"
#: Seconds a refused caller is asked to wait: long enough for the requests in flight
#: (most take milliseconds) to make room, short enough not to idle a client for long.
RETRY_AFTER_S: Final = 1
#: At most one log line about shedding on the loop's lag this often (seconds).
LAG_LOG_EVERY_S: Final = 10.0


class Admission:
    """The GraphQL requests in flight in this process, and whether it drains.

    One per app (``create_app``); everything runs on the app's event loop, so plain
    counters need no lock.
    """

    def __init__(
        self, max_in_flight: int, *, max_loop_lag_ms: float = 0, target_loop_lag_ms: float = 0
    ) -> None:
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        #: How many may be in flight now: ``max_in_flight``, lowered while the loop is
        #: later than ``target_loop_lag_ms`` (never, when that is 0).
        self.limit = InFlightLimit(max_in_flight, target_lag_ms=target_loop_lag_ms)
        #: Refuse while the event loop is more than this behind (0: never for that).
        self.max_loop_lag_ms = max_loop_lag_ms
        #: The loop's lag, watched while ``watching_the_loop`` is open; None when neither
        #: the lag limit nor the adaptive in-flight limit needs it.
        self.loop_lag = (
            LoopLag(on_tick=self._timer_fired)
            if max_loop_lag_ms > 0 or self.limit.adaptive
            else None
        )
        #: Requests refused for the loop's lag since the last log line about it, and when
        #: that was (``time.monotonic()``).
        self.refused_behind = 0
        self.logged_behind_at = -LAG_LOG_EVERY_S
        self.draining = False
        #: Set with the drain: the ``time.monotonic()`` instant the process must be gone by.
        self.stop_by: float | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight_limit(self) -> int:
        return self.limit.current

    def _timer_fired(self, late_s: float, busy: float) -> None:
        self.limit.observe(late_s, busy, self.in_flight)

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    @contextlib.contextmanager
    def watching_the_loop(self) -> Iterator[None]:
        """Measure the running event loop's lag for as long as this is open (the app's
        lifespan); nothing when ``max_loop_lag_ms`` is 0."""
        if self.loop_lag is None:
            yield
            return
        self.loop_lag.start()
        try:
            yield
        finally:
            self.loop_lag.stop()

    def behind_ms(self) -> float:
        """Milliseconds the loop is behind, if that is a reason to refuse a new request:
        over ``max_loop_lag_ms`` while requests are in flight; else 0."""
        if self.loop_lag is None or self.max_loop_lag_ms <= 0 or not self.in_flight:
            return 0.0
        behind = self.loop_lag.behind_s() * 1000
        return behind if behind > self.max_loop_lag_ms else 0.0

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


async def _refuse_behind(send: Send, admission: Admission, behind_ms: float) -> None:
    """The 503 of a request refused because the loop is behind: its message names by how
    much, so it is built for each refusal (a few microseconds, against ~3 ms of CPU the
    operation would have cost)."""
    admission.refused_behind += 1
    now = time.monotonic()
    # Under overload the shedding comes and goes many times a second: one line per
    # LAG_LOG_EVERY_S at most, with the count since the last one.
    if now - admission.logged_behind_at >= LAG_LOG_EVERY_S:
        logger.warning(
            "shedding load: the event loop is %.0f ms behind (UCD_GATEWAY_MAX_LOOP_LAG_MS "
            "%g) with %d GraphQL requests in flight; %d refused for it since the last line",
            behind_ms,
            admission.max_loop_lag_ms,
            admission.in_flight,
            admission.refused_behind,
        )
        admission.logged_behind_at = now
        admission.refused_behind = 0
    body = behind_schedule(round(behind_ms), admission.max_loop_lag_ms, RETRY_AFTER_S)
    await _Refusal(body, close=False)(send)


class ShedLoad:
    """Refuses GraphQL requests over the limit, while the loop is behind or while
    draining; counts the others."""

    def __init__(self, app: ASGIApp, *, admission: Admission) -> None:
        self.app = app
        self.admission = admission
        #: The 503 for each in-flight limit met so far (at most ``max_in_flight`` of them):
        #: its message names the limit, and a refusal must cost next to nothing.
        self._overloaded: dict[int, _Refusal] = {}
        self._shutting_down = _Refusal(shutting_down(RETRY_AFTER_S), close=True)
        self._interrupted = _Refusal(interrupted_by_shutdown(), close=True, retry_after=False)

    def _overloaded_at(self, limit: int) -> _Refusal:
        refusal = self._overloaded.get(limit)
        if refusal is None:
            body = overloaded(limit, RETRY_AFTER_S, maximum=self.admission.max_in_flight)
            refusal = self._overloaded[limit] = _Refusal(body, close=False)
        return refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != GRAPHQL_PATH:
            await self.app(scope, receive, send)
            return
        admission = self.admission
        if admission.draining:
            await self._shutting_down(send)
            return
        limit = admission.limit.current
        if admission.in_flight >= limit:
            await self._overloaded_at(limit)(send)
            return
        behind_ms = admission.behind_ms()
        if behind_ms:
            await _refuse_behind(send, admission, behind_ms)
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
