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
concurrency-limits), driven by the loop's own timer (gateway/loop_lag.py, every 10 ms):

- a timer later than ``UCD_GATEWAY_TARGET_LOOP_LAG_MS`` with at least ``FLOOR`` requests
  in flight, while the loop's thread had no idle moment in the 0.1 s before
  (``busy_share`` at least ``SATURATED``) or the limit is reached: the limit drops to the
  lesser of itself and the requests in flight, times ``target / lateness`` (between
  ``DEEPEST`` and ``DECREASE``), never below ``FLOOR``. The requests in flight, not the
  limit: if 120 of 256 made the loop late, 256 is not the number to shrink from;
- any other timer: one more, up to the maximum (from the floor back to 256 in ~2.4 s).

Why each condition:

- **busy**: a late timer alone does not mean the work outgrows the CPU. With a UCD
  100 ms away, a gateway at two thirds of its CPU still saw one timer in ten more than
  10 ms late (answers arriving together), and a limit following lateness alone refused
  22 % of 1,500 requests a second that the fixed 256 all served. Its thread idles part
  of every 0.1 s, though, and an overloaded one never does (bench/README.md);
- **or the limit reached**: the busy share needs 0.1 s of a load to see it, and at the
  start of an overload 256 requests are admitted in ~0.1 s; their answers, resuming
  together, were what made the first second's refusals slow. A limit that is reached
  while the loop is late is cut at once;
- **the deeper the later**: at that start the turns run 30-50 ms late, and cuts of a
  tenth took 0.7 s to bring the limit down; a timer 20 ms late or more halves it;
- **in flight**: a loop late with few requests in flight is late for another reason
  (a busy neighbour), and refusing the few would not make it punctual.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DECREASE", "DEEPEST", "FLOOR", "SATURATED", "InFlightLimit"]

#: The limit never goes below this (nor above the maximum, if that is lower).
FLOOR: Final = 16
#: The share of the requests in flight kept when a timer is late, at most ...
DECREASE: Final = 0.9
#: ... and at least: the share is ``target / lateness`` between the two, so a timer
#: twice the target late or more keeps half.
DEEPEST: Final = 0.5
#: The loop thread's CPU share (gateway/loop_lag.py) from which a late timer counts.
#: Lower shares (0.9, 0.97) took the bursts of a far UCD's answers at 70 % of a CPU for
#: saturation and refused 8-11 % of its requests; 0.99 did not.
SATURATED: Final = 0.99


class InFlightLimit:
    """How many GraphQL requests this process admits at once, now (``current``).

    ``observe`` is called by the loop-lag timer with how late it fired, the loop thread's
    CPU share and how many requests were in flight then; everything runs on the app's
    event loop, so plain attributes need no lock.
    """

    def __init__(self, maximum: int, *, target_lag_ms: float) -> None:
        #: ``UCD_GATEWAY_MAX_IN_FLIGHT``: where the limit starts and what it comes back to.
        self.maximum = maximum
        self.current = maximum
        self._floor = min(FLOOR, maximum)
        # A timer later than this may lower the limit; 0: it stays at the maximum.
        self._target_s = target_lag_ms / 1000

    @property
    def adaptive(self) -> bool:
        return self._target_s > 0

    def observe(self, late_s: float, busy: float, in_flight: int) -> None:
        """One timer of the loop-lag monitor fired ``late_s`` late, the loop's thread
        having run ``busy`` of the 0.1 s before, with ``in_flight`` requests in flight."""
        if not self.adaptive:
            return
        if (
            late_s > self._target_s
            and in_flight >= self._floor
            and (busy >= SATURATED or in_flight >= self.current)
        ):
            share = min(DECREASE, max(DEEPEST, self._target_s / late_s))
            lowered = int(min(self.current, in_flight) * share)
            self.current = max(self._floor, lowered)
        elif self.current < self.maximum:
            self.current += 1
