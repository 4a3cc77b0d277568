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
the in-flight limit while the loop is late and short of CPU.

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

Each timer also reads the loop thread's CPU time (``time.thread_time``), so the monitor
knows the share of the last ``BUSY_WINDOW_S`` the thread spent running (``busy_share``).
Lateness alone does not say the process is short of CPU: at two thirds of a CPU, with a
UCD 100 ms away, answers arriving together still made one timer in ten 10 ms late, and
a limit that followed those timers refused a fifth of the requests of a gateway with a
third of its CPU to spare.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Final

__all__ = ["BUSY_WINDOW_S", "PERIOD_S", "LoopLag"]

#: How often the timer fires: short enough that a reading follows the loop within a
#: turn or two of a busy loop, long enough to cost nothing measurable.
PERIOD_S: Final = 0.01
#: The time ``busy_share`` covers: the last periods until they add up to this. Counted in
#: time, not periods: a loop that turns once in 80 ms would otherwise need ten such turns
#: (0.8 s of a load's start) before its share counted.
BUSY_WINDOW_S: Final = 0.1
#: At most this many periods are kept (a window of 0.1 s has ten of 10 ms, at most).
_KEPT_PERIODS: Final = 16


class LoopLag:
    """How late this event loop runs, measured by a timer that notes its own lateness.

    ``start`` on the loop to watch (the app's lifespan does), ``stop`` when done;
    ``behind_s`` is 0 while stopped. Everything runs on the watched loop, so plain
    attributes need no lock.
    """

    def __init__(
        self, period_s: float = PERIOD_S, on_tick: Callable[[float, float], None] | None = None
    ) -> None:
        #: Seconds between two timers; read when the next one is scheduled.
        self.period_s = period_s
        #: Called after each timer with how late it fired (seconds) and ``busy_share``
        #: as it was before the period this timer ends.
        self.on_tick = on_tick
        self._last_s = 0.0
        self._previous_s = 0.0
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None
        # The last periods' (wall, thread CPU) seconds, oldest first, and where the
        # current period started on each clock.
        self._periods: deque[tuple[float, float]] = deque(maxlen=_KEPT_PERIODS)
        self._wall_at = 0.0
        self._cpu_at = 0.0

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        """Watch the running loop from now on (again, if stopped)."""
        if self._handle is None:
            self._last_s = self._previous_s = 0.0
            self._periods.clear()
            self._wall_at, self._cpu_at = time.monotonic(), time.thread_time()
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

    def busy_share(self) -> float:
        """The share of the last ``BUSY_WINDOW_S`` (whole timer periods, the last one at
        least) the loop's thread spent on a CPU: 0 to 1, and 1 means no idle moment, the
        work outgrows the CPU."""
        wall = cpu = 0.0
        for period_wall, period_cpu in reversed(self._periods):
            wall += period_wall
            cpu += period_cpu
            if wall >= BUSY_WINDOW_S:
                break
        return min(cpu / wall, 1.0) if wall > 0 else 0.0

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        period = self.period_s
        # Our own clock, not loop.time(): uvloop's is cached per turn, in milliseconds.
        self._due = time.monotonic() + period
        self._handle = loop.call_later(period, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        # A timer may fire up to a clock tick early (uvloop rounds to milliseconds).
        self._previous_s = self._last_s
        now = time.monotonic()
        self._last_s = max(now - self._due, 0.0)
        # The share before this period: a late timer ends a long turn, which was busy by
        # being long; whether the loop had idle moments before it is the question.
        busy_before = self.busy_share()
        cpu = time.thread_time()
        self._periods.append((now - self._wall_at, cpu - self._cpu_at))
        self._wall_at, self._cpu_at = now, cpu
        self._schedule(loop)
        if self.on_tick is not None:
            self.on_tick(self._last_s, busy_before)
