"""Counting the UCD calls one GraphQL operation makes: ``extensions.cost.ucdCalls.actual``.

The operation's extension opens ``counting_calls()`` around execution; ``UcdClient`` calls
``count_call()`` for every request it puts on the wire (retries included, each is a call
the UCD sees). The count lives in a ``ContextVar`` rather than being handed down: a call
belongs to the operation whose task (or a task that task started) sends it, which is
exactly right for the shared paths without threading a counter through them:

* ``ProfileReads``: the call runs in a task the reading request started; a request that
  joins it waits for that task and counts nothing, so actual may be below planned;
* ``UpsertCoalescer``: its flush runs in a timer or task made while the batch's first
  (or filling) request was running, so one request counts the shared E1 call.

Outside of ``counting_calls`` (``seed``, ``/readyz``, the coalescer's shutdown flush)
nothing is counted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["CallCount", "carrying_calls", "count_call", "counting_calls"]


@dataclass
class CallCount:
    """The UCD calls sent on behalf of one operation so far."""

    calls: int = 0


_current: ContextVar[CallCount | None] = ContextVar("ucd_call_count", default=None)
_carried: ContextVar[int] = ContextVar("ucd_calls_carried", default=0)


@contextlib.contextmanager
def counting_calls() -> Iterator[CallCount]:
    """Count the calls made from here (and from tasks started here) into the count yielded."""
    count = CallCount(_carried.get())
    token = _current.set(count)
    try:
        yield count
    finally:
        _current.reset(token)


@contextlib.contextmanager
def carrying_calls(calls: int) -> Iterator[None]:
    """A ``counting_calls`` opened in here starts at ``calls``: the operation already made
    them on another path (the compiled execution's reads, before it handed the operation
    to graphql-core, whose resolvers then find those answers in the request's loader)."""
    token = _carried.set(calls)
    try:
        yield
    finally:
        _carried.reset(token)


def count_call() -> None:
    """One request to the UCD is being sent; counted for the operation that sends it."""
    count = _current.get()
    if count is not None:
        count.calls += 1
