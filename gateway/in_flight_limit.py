"""The in-flight limit: ``UCD_GATEWAY_MAX_IN_FLIGHT``, lowered while the event loop runs late.

Why not the fixed maximum alone: it has to be high for a remote UCD (at 100 ms a read,
256 operations in flight keep one process busy at 2,560 reads a second; 64 would cap it
at 640). But when the work admitted costs more CPU than the process has, as many
operations resume together as are in flight, and one turn of the event loop runs them
all: with 256 admitted on loopback that turn took ~100 ms, and every request arriving
meanwhile, a refusal included, waited for it. At 2 × saturation refusals reached the
client in 110-126 ms at p99 with the fixed 256 and in 21-26 ms with 64, and 64 also
accepted more (bench/README.md, "Overload"). Which number is right depends on the CPU an
operation costs against the time the UCD takes, so the gateway finds it as it runs.

How: additive increase, multiplicative decrease (TCP's congestion window; Netflix's
concurrency-limits), driven by the loop's own lateness (gateway/loop_lag.py, a timer
every 10 ms):

- a timer later than ``UCD_GATEWAY_TARGET_LOOP_LAG_MS`` while at least ``FLOOR``
  requests are in flight: the limit drops to ``DECREASE`` × the lesser of itself and
  the requests in flight, never below ``FLOOR``. The requests in flight, not the limit:
  if 120 of 256 made the loop late, 256 is not the number to shrink from;
- a timer on time: one more, up to the maximum (from the floor back to 256 in ~2.4 s).

The floor and the in-flight condition keep a busy neighbour from starving a light load:
a loop that is late with few requests in flight is late for another reason, and
refusing the few would not make it punctual.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DECREASE", "FLOOR", "InFlightLimit"]

#: The limit never goes below this (nor above the maximum, if that is lower).
FLOOR: Final = 16
#: The share of the requests in flight kept when a timer is late.
DECREASE: Final = 0.9


class InFlightLimit:
    """How many GraphQL requests this process admits at once, now (``current``).

    ``observe`` is called by the loop-lag timer with how late it fired and how many
    requests were in flight then; everything runs on the app's event loop, so plain
    attributes need no lock.
    """

    def __init__(self, maximum: int, *, target_lag_ms: float) -> None:
        #: ``UCD_GATEWAY_MAX_IN_FLIGHT``: where the limit starts and what it comes back to.
        self.maximum = maximum
        #: Later than this, a timer lowers the limit; 0: the limit stays at the maximum.
        self.target_lag_ms = target_lag_ms
        self.current = maximum
        self._floor = min(FLOOR, maximum)
        self._target_s = target_lag_ms / 1000

    @property
    def adaptive(self) -> bool:
        return self.target_lag_ms > 0

    def observe(self, late_s: float, in_flight: int) -> None:
        """One timer of the loop-lag monitor fired ``late_s`` late with ``in_flight``
        requests in flight."""
        if not self.adaptive:
            return
        if late_s > self._target_s:
            if in_flight >= self._floor:
                lowered = int(min(self.current, in_flight) * DECREASE)
                self.current = max(self._floor, lowered)
        elif self.current < self.maximum:
            self.current += 1
