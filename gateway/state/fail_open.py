"""Counters in the shared state that fail open to this process's memory.

The rate limits (gateway/rate_limits.py) and the partner's UCD quota
(gateway/partner_quota.py) count through ``StateStore.increment`` so every replica
shares one count. A limiter that refused everything while Redis is down would take the
gateway down with it, so while the shared state cannot be reached each process counts
on its own (its limit then holds per process), and after a failure the shared state is
not asked again for ``RETRY_SHARED`` seconds, so an outage does not add its timeout to
every operation. One warning line says so each time it happens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from gateway.errors import StateUnavailable
from gateway.state.memory import MemoryState
from gateway.state.protocol import Namespace, StateStore

__all__ = ["RETRY_SHARED", "FailOpenCounters"]

#: Seconds a process counts on its own after the shared state failed.
RETRY_SHARED: Final = 5.0


class FailOpenCounters:
    """``increment`` in ``state``'s ``namespace``, or in this process while it is down."""

    def __init__(
        self,
        state: StateStore,
        namespace: Namespace,
        *,
        logger: logging.Logger,
        what: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._state = state
        self._namespace = namespace
        self._logger = logger
        self._what = what
        self._clock = clock
        self._local = MemoryState(clock=clock)
        self._shared_down_until = 0.0

    async def increment(self, key: str, amount: int, *, ttl: float) -> int:
        """The counter's new value (see ``StateStore.increment``)."""
        now = self._clock()
        if now >= self._shared_down_until:
            try:
                return await self._state.increment(self._namespace, key, amount, ttl=ttl)
            except StateUnavailable:
                self._shared_down_until = now + RETRY_SHARED
                self._logger.warning(
                    "%s: the shared state cannot be reached; counting in this process for "
                    "%.0f s (each replica counts on its own)",
                    self._what,
                    RETRY_SHARED,
                )
        return await self._local.increment(self._namespace, key, amount, ttl=ttl)
