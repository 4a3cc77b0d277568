"""The deadline of one GraphQL operation's UCD work (``UCD_GATEWAY_OPERATION_TIMEOUT``).

The GraphQL view opens ``operation_deadline(seconds)`` around each request; every UCD
call made while it is open, retries and their waits included, ends by then. The
deadline is an absolute ``time.monotonic()`` instant in a ``ContextVar``, so it follows
the operation into the tasks it starts: a shared profile read (``gateway.reads``) runs
under the deadline of the request that started it, and the upsert coalescer sends each
batch under the latest deadline of its users (``latest``), since the call serves them all.

Whoever waits for a call shared with other operations waits through ``await_shared``:
it stops at its own deadline while the call goes on for the others.

Outside an operation (``/readyz``, seeding) there is no deadline: each attempt is bounded
by the request timeout alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Final, TypeVar

from gateway.errors import UpstreamUnavailable

__all__ = ["await_shared", "current", "latest", "operation_deadline", "time_left", "use"]

T = TypeVar("T")

_deadline: ContextVar[float | None] = ContextVar("ucd_operation_deadline", default=None)

#: How much longer than its own deadline a waiter gives a shared call. A call that runs
#: under the same deadline ends at it with the precise reason ("reset the connection",
#: "did not finish its answer in time"); the waiter should hear that, not its own timer.
_GRACE: Final = 0.2


def operation_deadline(seconds: float) -> contextlib.AbstractContextManager[float | None]:
    """UCD calls made inside end within ``seconds`` from now; yields the deadline."""
    return use(time.monotonic() + seconds)


@contextlib.contextmanager
def use(deadline: float | None) -> Iterator[float | None]:
    """UCD calls made inside end by ``deadline`` (``time.monotonic()``; None: no deadline)."""
    token = _deadline.set(deadline)
    try:
        yield deadline
    finally:
        _deadline.reset(token)


def current() -> float | None:
    """The operation's deadline (``time.monotonic()`` seconds), or None outside one."""
    return _deadline.get()


def time_left() -> float | None:
    """Seconds until the operation's deadline (negative once past), or None outside one."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def latest(deadlines: Iterable[float | None]) -> float | None:
    """The deadline a call serving several operations runs under: the latest one, or
    none if any of them has none (a caller outside an operation waits as long as it takes).

    >>> latest([3.0, 5.0]), latest([3.0, None]), latest([])
    (5.0, None, None)
    """
    found: float | None = None
    for deadline in deadlines:
        if deadline is None:
            return None
        found = deadline if found is None else max(found, deadline)
    return found


async def await_shared(future: asyncio.Future[T]) -> T:
    """The result of a call other operations may wait for too, by this one's deadline.

    ``shield``: this waiter giving up (its deadline, or its request being cancelled)
    must not cancel the call the others wait for.
    """
    left = time_left()
    if left is None:
        return await asyncio.shield(future)
    try:
        return await asyncio.wait_for(asyncio.shield(future), max(left, 0.0) + _GRACE)
    except TimeoutError:
        raise UpstreamUnavailable(
            "the UCD did not answer within the operation's deadline (shared call)"
        ) from None
