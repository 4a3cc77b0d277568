"""Fault injection (§5.7): latency, injected 500/429 answers and dropped connections.

Pipeline stage 2 (§2.7) asks :meth:`FaultInjector.draw` for the request's endpoint key and
acts on the answer. Each key draws from its own ``random.Random`` seeded with the string
``"<seed>:<key>"``, so a fixed sequence of requests to one endpoint meets the same faults
whatever the traffic on other endpoints. The bands are consecutive in this order::

    0 ........ error_500 ........ +error_429 ........ +drop ........ +drop_after_commit ..... 1
       500 unknown error          429 + Retry-After   no answer     commit, then no answer   none

e.g. ``error_500_rate=0.1, drop_rate=0.2``: r < 0.1 -> 500, 0.1 <= r < 0.3 -> drop, else none.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from gateway.local_ucd.config import EndpointFaults, FaultConfig

__all__ = ["FaultAction", "FaultInjector", "FaultKind"]

FaultKind = Literal["none", "error_500", "error_429", "drop", "drop_after_commit"]


@dataclass(frozen=True)
class FaultAction:
    """What the pipeline must do with one request."""

    kind: FaultKind
    #: ``Retry-After`` of an injected 429 (the key's ``retry_after_s``).
    retry_after_s: int = 1


_NO_FAULT = FaultAction("none")


class FaultInjector:
    """Draws the fault of each request from per-endpoint-key generators."""

    def __init__(
        self,
        config: FaultConfig,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._generators: dict[str, random.Random] = {}

    def _generator(self, key: str) -> random.Random:
        generator = self._generators.get(key)
        if generator is None:
            # A str seed is hashed with SHA-512 by random.Random: stable across runs and
            # processes (unlike hash()), which is what makes a seeded run repeatable.
            seed = None if self.config.seed is None else f"{self.config.seed}:{key}"
            generator = self._generators[key] = random.Random(seed)
        return generator

    async def draw(self, key: str) -> FaultAction:
        """Sleep the key's latency, then pick this request's fault."""
        faults = self.config.for_key(key)
        if faults.latency_ms > 0:
            await self._sleep(faults.latency_ms / 1000)
        if faults.total_rate <= 0:
            # No band to land in: skip the draw (it could not change the outcome).
            return _NO_FAULT
        return _pick(faults, self._generator(key).random())


def _pick(faults: EndpointFaults, r: float) -> FaultAction:
    bands: tuple[tuple[FaultKind, float], ...] = (
        ("error_500", faults.error_500_rate),
        ("error_429", faults.error_429_rate),
        ("drop", faults.drop_rate),
        ("drop_after_commit", faults.drop_after_commit_rate),
    )
    bound = 0.0
    for kind, rate in bands:
        bound += rate
        if r < bound:
            return FaultAction(kind, faults.retry_after_s)
    return _NO_FAULT
