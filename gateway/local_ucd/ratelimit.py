"""Rate limits of the local UCD (§2.6): sliding 60-second windows per partner and pool.

Pools and limits (per partner, enforced only with ``strict_rate_limits``)::

    upsert            E1 + E4     25,000 requests in any 60 s
    profile           E2           1,000 units in any 60 s (cost = 1 + distinct wanted names)
    identity_update   E5           2,000 requests in any 60 s
    identity_delete   E6           1,000 requests in any 60 s
    anonymize         E7 + E8        500 requests in any 60 s
    delete            E9          10,000 requests in any 60 s
    export            E3               1 accepted request per UTC calendar day

A request is admitted when ``used in the last 60 s + cost <= limit``. A refused request
is never counted. ``Retry-After`` is the time until enough of the window has expired for
*this* request to fit, rounded up to whole seconds, at least 1. Example with a limit of 3
and requests admitted at t=0, 10 and 20: at t=30 a fourth request is refused and told to
retry after 30 s (the t=0 entry leaves the window at t=60).

State lives in memory (it resets with the process, as §2.6 allows) and is touched only
from the event loop's thread, so it needs no lock.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from gateway.local_ucd.http import ApiError

__all__ = ["POOL_LIMITS", "PROFILE_QUOTA", "WINDOW_S", "RateLimiter"]

#: Length of the sliding window in seconds.
WINDOW_S = 60.0

#: E2's quota in units per window; also the ``total`` of E2's ``quota`` object.
PROFILE_QUOTA = 1000

#: Windowed pools and their limits (requests, or units for ``profile``).
POOL_LIMITS: dict[str, float] = {
    "upsert": 25_000,
    "profile": PROFILE_QUOTA,
    "identity_update": 2_000,
    "identity_delete": 1_000,
    "anonymize": 500,
    "delete": 10_000,
}


@dataclass
class _Window:
    """Admitted requests of one partner and pool, oldest first, with their total cost."""

    entries: deque[tuple[float, float]] = field(default_factory=deque)  # (admitted at, cost)
    used: float = 0  # stays an int while costs are whole, so E2's quota shows `3`, not `3.0`

    def prune(self, now: float) -> None:
        # An entry counts while now - t < WINDOW_S; at exactly 60 s it has left the window.
        while self.entries and self.entries[0][0] + WINDOW_S <= now:
            _, cost = self.entries.popleft()
            self.used -= cost
        if not self.entries:
            self.used = 0  # drop accumulated float error whenever the window empties

    def seconds_until_fits(self, now: float, cost: float, limit: float) -> float:
        """How long until ``used + cost <= limit`` once older entries have expired."""
        remaining = self.used
        for admitted_at, entry_cost in self.entries:
            remaining -= entry_cost
            if remaining + cost <= limit:
                return admitted_at + WINDOW_S - now
        # [LOCAL] A request costing more than the whole limit can never fit; tell the
        # caller to come back when the window is empty (it will be refused again).
        return (self.entries[-1][0] + WINDOW_S - now) if self.entries else WINDOW_S


def _retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds - 1e-9))


class RateLimiter:
    """Per-partner admission control for the pools of §2.6.

    ``clock`` is a monotonic seconds clock for the windows and ``wall`` the UTC wall clock
    for the export pool's calendar day; tests inject both.
    """

    def __init__(
        self,
        strict: bool,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.strict = strict
        self._clock = clock
        self._wall = wall
        self._windows: dict[tuple[str, str], _Window] = {}
        self._export_days: dict[str, date] = {}

    def admit(self, partner: str, pool: str, cost: float = 1) -> None:
        """Admit one request of ``partner`` to ``pool`` and record it, or raise the 429.

        Without strict mode nothing is refused, and only the ``profile`` pool is recorded
        (its usage feeds E2's ``quota`` object whether or not limits are enforced).
        """
        limit = POOL_LIMITS.get(pool)
        if limit is None:
            raise ValueError(f"unknown rate-limit pool {pool!r}")
        if not self.strict and pool != "profile":
            return
        now = self._clock()
        window = self._windows.setdefault((partner, pool), _Window())
        window.prune(now)
        if self.strict and window.used + cost > limit:
            raise ApiError.too_many_requests(
                _retry_after(window.seconds_until_fits(now, cost, limit))
            )
        window.entries.append((now, cost))
        window.used += cost

    def profile_used(self, partner: str) -> float:
        """Units of E2 ``partner`` used in the last 60 s (the current call included)."""
        window = self._windows.get((partner, "profile"))
        if window is None:
            return 0
        window.prune(self._clock())
        return window.used

    def check_export(self, partner: str) -> None:
        """Raise the 429 when strict and ``partner`` already had an export accepted today (UTC)."""
        if not self.strict:
            return
        now = self._wall().astimezone(UTC)
        if self._export_days.get(partner) == now.date():
            midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
            raise ApiError.too_many_requests(_retry_after((midnight - now).total_seconds()))

    def record_export(self, partner: str) -> None:
        """Count an export of ``partner`` answered 200 against today's (UTC) allowance."""
        self._export_days[partner] = self._wall().astimezone(UTC).date()
