"""The partner's UCD quota, shared by every replica: N gateways together stay under the
UCD's limits (§1.1, §2.6) instead of each meeting its 429s.

**Strictly under a sliding minute.** The UCD counts each pool over any 60 seconds. The
budget is counted in fixed windows of ``WINDOW`` (10) seconds, each allowed
``limit × UCD_GATEWAY_UCD_QUOTA_SHARE / 7`` units: any 60 seconds touch at most 7 such
windows, so whatever the timing the replicas together never spend more than the
share of the limit in any minute. The price is a seventh of the limit left unused at a
steady rate (for E2's 1,000 units a minute: 852 usable) and bursts capped at 142 units
in 10 s; a budget that allowed more could meet the UCD's 429 after all.

**Leases, not a shared-state call per UCD call.** A process takes units from the
window's shared counter (``StateStore.increment``: one Redis command with
``UCD_GATEWAY_REDIS_URL``, this process's memory otherwise) a sixteenth of the window's
allowance at a time, and spends them locally; one refill at a time per pool. Units a
process took and did not spend lapse with the window, so the replicas together may use
a little less than the allowance, never more. Once the shared counter is full, the
process asks it nothing more until the next window.

**Refusals.** When a window has no room, the caller gets the seconds until the next
one; ``UcdClient`` waits them like a 429's Retry-After when that fits its retries and
the operation's deadline, and answers ``RATE_LIMITED`` with ``retryAfter`` otherwise,
without calling the UCD.

**Redis outage: fail open** to this process's own counters for a few seconds
(gateway/state/fail_open.py, as the rate limits do): the UCD still enforces its limits itself,
and the client retries its 429s.

The counters are keyed by partner and pool, nothing else: no caller's data.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from gateway.state.fail_open import FailOpenCounters
from gateway.state.protocol import Namespace, StateStore
from gateway.ucd.quota import QuotaPool

__all__ = ["WINDOW", "PartnerQuota"]

logger = logging.getLogger("gateway.partner_quota")

#: Seconds of one counting window.
WINDOW: Final = 10.0
#: How many windows one sliding minute can touch: 60 / WINDOW + 1.
_SPAN: Final = 7
#: A refill takes this fraction of the window's allowance (at least what the call needs).
_LEASE_PARTS: Final = 16


@dataclass(slots=True)
class _Lease:
    """The units this process holds of one pool's window."""

    window: int
    left: int = 0
    #: The shared counter is full: nothing more to take in this window.
    spent: bool = False


class PartnerQuota:
    """A ``QuotaGate`` (gateway/ucd/quota.py) over the shared state (see the module doc)."""

    def __init__(
        self,
        state: StateStore,
        partner: str,
        share: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._partner = partner
        self._share = share
        self._clock = clock
        self._counters = FailOpenCounters(
            state, Namespace.UCD_QUOTA, logger=logger, what="UCD quota", clock=clock
        )
        self._leases: dict[str, _Lease] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def allowance(self, pool: QuotaPool) -> int:
        """Units of ``pool`` every replica together may spend in one window."""
        return max(1, math.floor(pool.per_minute * self._share / _SPAN))

    async def take(self, pool: QuotaPool, units: int) -> float | None:
        now = self._clock()
        window = math.floor(now / WINDOW)
        # A call dearer than a whole window could never go: it takes the whole window.
        needed = min(units, self.allowance(pool))
        lease = self._lease(pool, window)
        if lease.left >= needed:  # the common case: no await, no shared state
            lease.left -= needed
            return None
        if lease.spent:
            return _until_next(window, now)
        lock = self._locks.get(pool.name)
        if lock is None:
            lock = self._locks[pool.name] = asyncio.Lock()
        async with lock:
            # Another task may have refilled (or the window turned) while this one waited.
            lease = self._lease(pool, window)
            if lease.left < needed and not lease.spent:
                await self._refill(pool, lease, needed)
            if lease.left >= needed:
                lease.left -= needed
                return None
            return _until_next(window, now)

    def _lease(self, pool: QuotaPool, window: int) -> _Lease:
        lease = self._leases.get(pool.name)
        if lease is None or lease.window != window:
            lease = self._leases[pool.name] = _Lease(window)
        return lease

    async def _refill(self, pool: QuotaPool, lease: _Lease, needed: int) -> None:
        allowance = self.allowance(pool)
        chunk = max(needed - lease.left, -(-allowance // _LEASE_PARTS))
        key = f"{self._partner}:{pool.name}:{lease.window}"
        # Kept a little past its window: a replica whose clock is behind still finds it.
        total = await self._counters.increment(key, chunk, ttl=2 * WINDOW)
        before = total - chunk
        lease.left += max(0, min(chunk, allowance - before))
        if total >= allowance:
            lease.spent = True


def _until_next(window: int, now: float) -> float:
    """Seconds until the window after ``window`` begins (never 0: the caller waits)."""
    return max(0.001, (window + 1) * WINDOW - now)
