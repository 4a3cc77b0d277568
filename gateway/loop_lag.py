"""Event loop lag: how far behind its own schedule this process's event loop runs.

Why the gateway measures it: ``UCD_GATEWAY_MAX_IN_FLIGHT`` counts only the requests the
event loop has already read. When the work admitted costs more CPU than the process gets
(twice its saturation, or a noisy neighbour, or a container's CPU quota), the loop falls
behind: each of its turns runs longer, and a new request waits in its socket, unread,
for as long as the loop is late, however cheap its refusal would be. The overload bench
measured a refusal that took 4 ms in the gateway and 11.6 s at the client
(bench/README.md, "Overload"). The loop's lag is the one figure that sees that wait
from inside, so gateway/load_shedding.py also refuses new GraphQL requests while it is
over ``UCD_GATEWAY_MAX_LOOP_LAG_MS``: fewer operations started means shorter turns, and
the loop catches up. gateway/in_flight_limit.py reads every timer (``on_tick``) to lower
the in-flight limit while the loop is late.

How: a timer every ``PERIOD_S`` notes how late it fired (a timer cannot fire before
the loop's turn that runs it, so its lateness is how long the turns in front of it
took). The loop counts as behind by the lesser of two consecutive observations: the
last timer's lateness, and the larger of the one before it and how overdue the next
timer already is. So one late timer alone is not enough: on a busy machine the kernel
now and then leaves the process without a CPU for tens of milliseconds, and a gateway
that refused every request in flight then would turn a noisy neighbour's hiccup into
errors (the first version refused 5 of 100 requests at light load after an overload
on the loaded machine of bench/README.md). A loop that stays behind is late at every
timer, and is seen within two. It costs one timer callback per period (about 100 a
second, a few microseconds each) and nothing per request but a clock read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

__all__ = ["PERIOD_S", "LoopLag"]

#: How often the timer fires: short enough that a reading follows the loop within a
#: turn or two of a busy loop, long enough to cost nothing measurable.
PERIOD_S: Final = 0.01


class LoopLag:
    """How late this event loop runs, measured by a timer that notes its own lateness.

    ``start`` on the loop to watch (the app's lifespan does), ``stop`` when done;
    ``behind_s`` is 0 while stopped. Everything runs on the watched loop, so plain
    attributes need no lock.
    """

    def __init__(
        self, period_s: float = PERIOD_S, on_tick: Callable[[float], None] | None = None
    ) -> None:
        #: Seconds between two timers; read when the next one is scheduled.
        self.period_s = period_s
        #: Called after each timer with how late it fired (seconds).
        self.on_tick = on_tick
        self._last_s = 0.0
        self._previous_s = 0.0
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        """Watch the running loop from now on (again, if stopped)."""
        if self._handle is None:
            self._last_s = self._previous_s = 0.0
            self._schedule(asyncio.get_running_loop())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def behind_s(self) -> float:
        """Seconds the loop is behind, seen twice in a row: the last timer's lateness,
        or less if neither the timer before it nor the next one (overdue now) was as
        late; 0 while stopped."""
        if self._handle is None:
            return 0.0
        return min(self._last_s, max(self._previous_s, time.monotonic() - self._due))

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        period = self.period_s
        # Our own clock, not loop.time(): uvloop's is cached per turn, in milliseconds.
        self._due = time.monotonic() + period
        self._handle = loop.call_later(period, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        # A timer may fire up to a clock tick early (uvloop rounds to milliseconds).
        self._previous_s = self._last_s
        self._last_s = max(time.monotonic() - self._due, 0.0)
        self._schedule(loop)
        if self.on_tick is not None:
            self.on_tick(self._last_s)
