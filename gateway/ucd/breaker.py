"""A circuit breaker per UCD endpoint: stop calling an endpoint that keeps failing.

Each endpoint (a path) has its own circuit, so a failing profile endpoint does not stop
upserts::

    closed --(N consecutive failures)--> open --(cool-down)--> half-open
      ^                                   ^                        |
      +-------- the probe succeeds -------|---- the probe fails ---+

* closed: every attempt goes; a failure adds one, a success resets the count.
* open: no attempt goes; the caller is told how many seconds until the probe.
* half-open: exactly one attempt, the probe, goes; every other is refused as while open.
  The probe's success closes the circuit, its failure opens it for another cool-down. A
  probe that never reached the UCD (cancelled, or it waited too long for a slot of the
  gateway's own) hands the probe to the next caller.

What counts (``Verdict``, decided by UcdClient): a failure is an attempt without an answer
(refused, reset or dropped connection, timeout) or a 5xx. A 4xx is the UCD working (it
read the request and refused it), and so is a 429: it rate limits by design (§2.6), and
the client already waits out its Retry-After, so it counts as a success. An attempt that
never reached the UCD is ``abandoned``: it says nothing about the UCD.

Results of attempts admitted before the circuit opened are ignored once it is open or
half-open: only the probe decides when the circuit closes again.

The state is kept behind ``CircuitBreakers`` (async, so a shared store such as Redis can
hold it later); ``LocalCircuitBreakers`` keeps it in this process.

Why not a library: purgatory, aiobreaker and pybreaker were read (PyPI, 2024-2025
releases). All three let every concurrent call through while half-open instead of one
probe and time the cool-down with the wall clock (``time.time()``/``datetime``, which
jumps with NTP); aiobreaker (last release 2021) mixes ``utcnow()`` and ``now()``, and
pybreaker's async support goes through Tornado. They also classify by exceptions around
a block, while a 5xx here is an answer the client may still retry.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["Admission", "CircuitBreakers", "LocalCircuitBreakers", "Verdict"]

#: What one admitted attempt says about the UCD (see the module docstring).
Verdict = Literal["success", "failure", "abandoned"]


@dataclass(frozen=True, slots=True)
class Admission:
    """The breaker's answer to one attempt: go (``retry_after`` None), as the half-open
    probe or not, or don't, and retry after this many whole seconds (at least 1)."""

    retry_after: int | None = None
    probe: bool = False


_GO = Admission()
_PROBE = Admission(probe=True)


class CircuitBreakers(Protocol):
    """The circuits of every endpoint; UcdClient asks before and reports after each attempt."""

    async def admit(self, endpoint: str) -> Admission:
        """Whether an attempt on ``endpoint`` may go now."""
        ...

    async def record(self, endpoint: str, admission: Admission, verdict: Verdict) -> bool:
        """Report how an admitted attempt went; True while the circuit is closed (another
        attempt, a retry, may go)."""
        ...


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    #: When the circuit opened (``clock()``); None while closed.
    opened_at: float | None = None
    #: A probe is on its way (half-open).
    probing: bool = False


class LocalCircuitBreakers:
    """Circuits kept in this process, one per endpoint, created on first use.

    Not locked: every method runs to its end without awaiting, so on one event loop no
    two calls interleave.
    """

    def __init__(
        self,
        *,
        failures: int = 5,
        cooldown: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def state(self, endpoint: str) -> Literal["closed", "open", "half-open"]:
        """For logs and tests: "half-open" once the cool-down is over."""
        circuit = self._circuits.get(endpoint)
        if circuit is None or circuit.opened_at is None:
            return "closed"
        if circuit.probing or self._clock() - circuit.opened_at >= self._cooldown:
            return "half-open"
        return "open"

    async def admit(self, endpoint: str) -> Admission:
        circuit = self._circuits.get(endpoint)
        if circuit is None or circuit.opened_at is None:
            return _GO
        waited = self._clock() - circuit.opened_at
        if waited >= self._cooldown and not circuit.probing:
            circuit.probing = True
            return _PROBE
        # While the probe is out, the next chance is when it fails: a cool-down from now
        # at worst, but most likely sooner; 1 s is the honest lower bound.
        left = 1.0 if circuit.probing else self._cooldown - waited
        return Admission(retry_after=max(1, math.ceil(left)))

    async def record(self, endpoint: str, admission: Admission, verdict: Verdict) -> bool:
        circuit = self._circuits.get(endpoint)
        if circuit is None:
            if verdict != "failure":
                return True
            circuit = self._circuits[endpoint] = _Circuit()
        if admission.probe:
            return self._end_probe(circuit, verdict)
        if circuit.opened_at is not None:
            return False  # admitted before it opened: only the probe decides now
        if verdict == "success":
            circuit.failures = 0
        elif verdict == "failure":
            circuit.failures += 1
            if circuit.failures >= self._threshold:
                circuit.opened_at = self._clock()
                return False
        return True

    def _end_probe(self, circuit: _Circuit, verdict: Verdict) -> bool:
        circuit.probing = False
        if verdict == "success":
            circuit.failures = 0
            circuit.opened_at = None
            return True
        if verdict == "failure":
            circuit.opened_at = self._clock()
        # "abandoned": still half-open; the next caller probes.
        return False
