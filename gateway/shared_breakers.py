"""The UCD endpoints' circuit breakers shared by every replica, through Redis.

With one process, each endpoint's circuit lives in memory (``LocalCircuitBreakers`` of
gateway/ucd/breaker.py). With N replicas that would make a failing UCD pay N × 5
failures before every replica stops calling it, and each would probe it on its own.
``SharedCircuitBreakers`` keeps the circuit's state in the shared state instead
(``Namespace.BREAKERS``), per endpoint:

* ``<endpoint>:failures``: the consecutive failures any replica saw (``incr``; a success
  deletes it; it expires ``FAILURE_MEMORY_S`` after the last failure);
* ``<endpoint>:open``: when the circuit opened (wall-clock seconds, since replicas share
  no monotonic clock; skew between hosts is small against a cool-down of seconds);
  absent while closed;
* ``<endpoint>:probe``: the half-open probe's lease (``put_if_absent``): exactly one
  replica probes, and a replica that dies mid-probe frees it when the lease expires.

The same state machine as the local breaker (closed, open, half-open; a probe's success
closes, its failure opens for another cool-down), with the same ``Admission`` and
``Verdict``. Each replica mirrors what it last read, so the hot paths cost no Redis
round trip:

* closed with no failures known: an attempt goes at once; the mirror is read again after
  ``UCD_GATEWAY_BREAKER_REFRESH`` seconds, so an opening elsewhere is seen that fast;
* open within the cool-down: refused at once from the mirror (microseconds);
* failures known, the cool-down over, or the mirror stale: the state is read first.

If the shared state cannot be reached (``StateUnavailable``), the replica uses its own
``LocalCircuitBreakers`` for ``RETRY_STATE_AFTER_S`` and then tries the shared state
again: an outage of Redis costs at most one bounded state call per that interval and
never stops calls to a healthy UCD.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from gateway.errors import StateUnavailable
from gateway.settings import Settings
from gateway.state.protocol import Namespace, StateStore
from gateway.ucd.breaker import Admission, LocalCircuitBreakers, Verdict

__all__ = [
    "FAILURE_MEMORY_S",
    "RETRY_STATE_AFTER_S",
    "SharedCircuitBreakers",
    "circuit_breakers",
]

logger = logging.getLogger("gateway.breakers")

#: A count of consecutive failures is forgotten this long after its last failure.
FAILURE_MEMORY_S: Final = 60.0
#: An open record outlives its cool-down by this much even when nobody probes.
OPEN_MEMORY_S: Final = 300.0
#: After the shared state failed, the local breaker decides for this long.
RETRY_STATE_AFTER_S: Final = 1.0

_NS: Final = Namespace.BREAKERS
_GO: Final = Admission()
_PROBE: Final = Admission(probe=True)


@dataclass(frozen=True, slots=True)
class _LocalAdmission(Admission):
    """An admission of the local breaker (the shared state was unreachable): its result
    goes back to the local breaker."""


@dataclass(slots=True)
class _Mirror:
    """What this replica last knew of one endpoint's shared circuit."""

    failures: int = 0
    #: Wall-clock seconds when the circuit opened; None while closed.
    opened_at: float | None = None
    #: ``clock()`` of the last read or write of the shared state (-inf: never).
    seen_at: float = -math.inf
    #: Until then (``clock()``) another replica holds the probe: refuse without asking.
    probe_elsewhere_until: float = -math.inf


class SharedCircuitBreakers:
    """``CircuitBreakers`` whose state is in ``state``, shared by every replica on it."""

    def __init__(
        self,
        state: StateStore,
        *,
        failures: int = 5,
        cooldown: float = 5.0,
        refresh: float = 0.5,
        probe_lease: float = 16.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._state = state
        self._threshold = failures
        self._cooldown = cooldown
        self._refresh = refresh
        self._probe_lease = probe_lease
        self._clock = clock
        self._wall = wall
        self._mirrors: dict[str, _Mirror] = {}
        self.local = LocalCircuitBreakers(failures=failures, cooldown=cooldown, clock=clock)
        self._local_until = -math.inf

    def state(self, endpoint: str) -> Literal["closed", "open", "half-open"]:
        """For the metrics (gateway/metrics.py): this replica's view, from its mirror, so a
        scrape never waits on Redis; the local breaker's while the shared state is out."""
        if self._clock() < self._local_until:
            return self.local.state(endpoint)
        mirror = self._mirrors.get(endpoint)
        if mirror is None or mirror.opened_at is None:
            return "closed"
        if self._wall() - mirror.opened_at >= self._cooldown:
            return "half-open"
        return "open"

    # --- admit ------------------------------------------------------------------------

    async def admit(self, endpoint: str) -> Admission:
        now = self._clock()
        if now < self._local_until:
            return await self._admit_locally(endpoint)
        mirror = self._mirrors.get(endpoint)
        if mirror is None:
            mirror = self._mirrors[endpoint] = _Mirror()
        # The fast paths, from the mirror alone.
        if mirror.opened_at is None:
            if mirror.failures == 0 and now - mirror.seen_at < self._refresh:
                return _GO
        else:
            left = self._cooldown - (self._wall() - mirror.opened_at)
            if left > 0:
                return Admission(retry_after=max(1, math.ceil(left)))
            if now < mirror.probe_elsewhere_until:
                return Admission(retry_after=1)
        try:
            return await self._admit_shared(endpoint, mirror, now)
        except StateUnavailable:
            self._use_local(now)
            return await self._admit_locally(endpoint)

    async def _admit_shared(self, endpoint: str, mirror: _Mirror, now: float) -> Admission:
        await self._read(endpoint, mirror, now)
        if mirror.opened_at is None:
            return _GO
        left = self._cooldown - (self._wall() - mirror.opened_at)
        if left > 0:
            return Admission(retry_after=max(1, math.ceil(left)))
        if await self._state.put_if_absent(
            _NS, _key(endpoint, "probe"), b"1", ttl=self._probe_lease
        ):
            return _PROBE
        # Another replica probes; its result is the next chance (1 s: the honest bound).
        mirror.probe_elsewhere_until = now + 1.0
        return Admission(retry_after=1)

    async def _read(self, endpoint: str, mirror: _Mirror, now: float) -> None:
        # Fresh from now on: the attempts that come while this read waits (on a slow
        # Redis) go on the mirror as it is, instead of all reading it again.
        mirror.seen_at = now
        opened = await self._state.get(_NS, _key(endpoint, "open"))
        count = await self._state.get(_NS, _key(endpoint, "failures"))
        mirror.opened_at = float(opened) if opened is not None else None
        mirror.failures = int(count) if count is not None else 0
        mirror.seen_at = now

    # --- record -------------------------------------------------------------------------

    async def record(self, endpoint: str, admission: Admission, verdict: Verdict) -> bool:
        if isinstance(admission, _LocalAdmission):
            return await self.local.record(endpoint, admission, verdict)
        mirror = self._mirrors.setdefault(endpoint, _Mirror())
        try:
            if admission.probe:
                return await self._end_probe(endpoint, mirror, verdict)
            return await self._record_shared(endpoint, mirror, verdict)
        except StateUnavailable:
            self._use_local(self._clock())
            # Admitted through the shared state: the local breaker counts it as one attempt
            # (a shared probe's lease expires by itself).
            return await self.local.record(endpoint, _GO, verdict)

    async def _record_shared(self, endpoint: str, mirror: _Mirror, verdict: Verdict) -> bool:
        if mirror.opened_at is not None:
            return False  # admitted before it opened: only the probe decides now
        if verdict == "success":
            if mirror.failures:
                await self._state.delete_many(_NS, [_key(endpoint, "failures")])
                mirror.failures = 0
            return True
        if verdict == "abandoned":
            return True
        count = await self._state.incr(_NS, _key(endpoint, "failures"), ttl=FAILURE_MEMORY_S)
        mirror.failures = count
        mirror.seen_at = self._clock()
        if count < self._threshold:
            return True
        stamp = self._wall()
        if await self._state.put_if_absent(
            _NS, _key(endpoint, "open"), repr(stamp).encode(), ttl=self._open_ttl
        ):
            mirror.opened_at = stamp
        else:  # another replica opened it first: its time counts
            await self._read(endpoint, mirror, mirror.seen_at)
        return mirror.opened_at is None

    async def _end_probe(self, endpoint: str, mirror: _Mirror, verdict: Verdict) -> bool:
        probe = _key(endpoint, "probe")
        if verdict == "success":
            await self._state.delete_many(
                _NS, [_key(endpoint, "open"), _key(endpoint, "failures"), probe]
            )
            mirror.opened_at = None
            mirror.failures = 0
            mirror.seen_at = self._clock()
            return True
        if verdict == "failure":
            stamp = self._wall()
            await self._state.put(
                _NS, _key(endpoint, "open"), repr(stamp).encode(), ttl=self._open_ttl
            )
            mirror.opened_at = stamp
        # "abandoned": still half-open; the lease goes, and the next caller anywhere probes.
        await self._state.delete_many(_NS, [probe])
        return False

    # --- the local fallback ---------------------------------------------------------------

    @property
    def _open_ttl(self) -> float:
        return self._cooldown + OPEN_MEMORY_S

    def _use_local(self, now: float) -> None:
        if now >= self._local_until:
            logger.warning(
                "circuit breakers: shared state unavailable; this replica's own for %g s",
                RETRY_STATE_AFTER_S,
            )
        self._local_until = now + RETRY_STATE_AFTER_S

    async def _admit_locally(self, endpoint: str) -> Admission:
        admission = await self.local.admit(endpoint)
        return _LocalAdmission(retry_after=admission.retry_after, probe=admission.probe)


def _key(endpoint: str, part: str) -> str:
    return f"{endpoint}:{part}"


def circuit_breakers(
    settings: Settings, state: StateStore
) -> LocalCircuitBreakers | SharedCircuitBreakers:
    """The app's breakers: shared through ``state`` with Redis, else this process's."""
    if settings.redis_url is None:
        return LocalCircuitBreakers(
            failures=settings.breaker_failures, cooldown=settings.breaker_cooldown
        )
    return SharedCircuitBreakers(
        state,
        failures=settings.breaker_failures,
        cooldown=settings.breaker_cooldown,
        refresh=settings.breaker_refresh,
        # One attempt is bounded by the request timeout; a second more for the answer.
        probe_lease=settings.request_timeout + 1.0,
    )
