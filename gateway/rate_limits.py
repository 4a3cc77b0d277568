"""Per-principal rate limits: a budget of UCD calls per window, shared by every replica.

**The unit is the planned UCD call**, not the operation: the partner's UCD quota (§2.6)
is counted in calls, and one caller's ``users(keys: [100 keys])`` spends a hundred of
them. So an operation costs what the operation budget planned for it
(gateway/api/budget.py), and at least 1 (an operation that calls nothing still costs the
gateway its work). With ``UCD_GATEWAY_RATE_LIMIT=600/minute`` a caller may plan 600 UCD
calls a minute; a key's ``rate_limit`` in the keys file replaces the default for that
key; a JWT's principal is its ``sub``. Without either, nobody is limited.

**Fixed windows**: the count of ``(principal, window)`` is incremented atomically in the
shared state (``StateStore.increment``: a Redis Lua script, INCRBY and PEXPIRE, when
``UCD_GATEWAY_REDIS_URL`` is set, so N replicas share one count; this process's memory
otherwise). An operation that takes the count over the limit is refused with
RATE_LIMITED and ``retryAfter`` = the seconds until the window ends, before any UCD
call; refused operations count too, so a client that ignores Retry-After stays refused
until the window ends, and cannot crowd out the others. A fixed window lets a caller
spend up to twice its limit across a window boundary; that is the price of one atomic
command per operation.

The principal's id is hashed into the counter's key: a JWT's ``sub`` may be an email,
and a key in Redis must not carry personal data.

**Redis outage: fail open** to this process's own counters. A limiter that refused
everything while Redis is down would take the gateway down with it; counting locally
keeps each replica within the limit (so N replicas allow at most N times it) until
Redis answers again. After a failure Redis is not asked again for ``RETRY_SHARED``
seconds (gateway/state/fail_open.py), so an outage does not add Redis's timeout to every
operation.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from gateway.state.fail_open import FailOpenCounters
from gateway.state.protocol import Namespace, StateStore

__all__ = ["Decision", "RateLimit", "RateLimiter"]

logger = logging.getLogger("gateway.rate_limits")

_UNITS: Final = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class RateLimit:
    """``count`` UCD calls per ``window`` seconds; ``text`` as the setting spells it."""

    count: int
    window: int
    text: str

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``600/minute`` (the settings and the keys file have checked the shape)."""
        count, _, unit = text.partition("/")
        return cls(int(count), _UNITS[unit], text)


@dataclass(frozen=True)
class Decision:
    """The limiter's answer: ``retry_after`` seconds when refused, else None."""

    limit: RateLimit
    retry_after: int | None = None


class RateLimiter:
    """Counts each principal's planned UCD calls in ``state`` (see the module doc)."""

    def __init__(
        self,
        state: StateStore,
        default: str | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._default = RateLimit.parse(default) if default is not None else None
        self._clock = clock
        self._counters = FailOpenCounters(
            state, Namespace.RATE_LIMITS, logger=logger, what="rate limits", clock=clock
        )
        self._parsed: dict[str, RateLimit] = {}

    def limit_of(self, own: str | None) -> RateLimit | None:
        """The limit of a principal whose own limit is ``own`` (its key's), or the default."""
        if own is None:
            return self._default
        limit = self._parsed.get(own)
        if limit is None:
            limit = self._parsed[own] = RateLimit.parse(own)
        return limit

    async def take(self, principal: str, own: str | None, cost: int) -> Decision | None:
        """Spend ``cost`` calls of ``principal``'s window; None when it has no limit."""
        limit = self.limit_of(own)
        if limit is None:
            return None
        now = self._clock()
        window = math.floor(now / limit.window)
        digest = hashlib.sha256(principal.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        key = f"{digest}:{limit.window}:{window}"
        count = await self._counters.increment(key, max(1, cost), ttl=float(limit.window))
        if count <= limit.count:
            return Decision(limit)
        retry_after = max(1, math.ceil((window + 1) * limit.window - now))
        return Decision(limit, retry_after)
