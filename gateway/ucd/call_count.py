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

The profile cache (``gateway/reads/cache.py``) counts here too the reads it answered
without a call (``count_cache_hit``: ``extensions.cost.ucdCalls.cacheHits``).

Outside of ``counting_calls`` (``seed``, ``/readyz``, the coalescer's shutdown flush)
nothing is counted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["CallCount", "carrying_calls", "count_cache_hit", "count_call", "counting_calls"]


@dataclass
class CallCount:
    """The UCD calls sent on behalf of one operation so far."""

    calls: int = 0
    cache_hits: int = 0


_current: ContextVar[CallCount | None] = ContextVar("ucd_call_count", default=None)
_carried: ContextVar[CallCount | None] = ContextVar("ucd_calls_carried", default=None)


@contextlib.contextmanager
def counting_calls() -> Iterator[CallCount]:
    """Count the calls made from here (and from tasks started here) into the count yielded."""
    carried = _carried.get()
    count = CallCount() if carried is None else CallCount(carried.calls, carried.cache_hits)
    token = _current.set(count)
    try:
        yield count
    finally:
        _current.reset(token)


@contextlib.contextmanager
def carrying_calls(carried: CallCount) -> Iterator[None]:
    """A ``counting_calls`` opened in here starts at ``carried`` (calls and cache hits):
    the operation already made them on another path (the compiled execution's reads,
    before it handed the operation to graphql-core, whose resolvers then find those
    answers in the request's loader)."""
    token = _carried.set(carried)
    try:
        yield
    finally:
        _carried.reset(token)


def count_call() -> None:
    """One request to the UCD is being sent; counted for the operation that sends it."""
    count = _current.get()
    if count is not None:
        count.calls += 1


def count_cache_hit() -> None:
    """A profile read was answered from the profile cache, without a UCD call."""
    count = _current.get()
    if count is not None:
        count.cache_hits += 1
