"""Bulkheads: a separate pool of UCD call slots for each kind of work.

With one pool, calls that hang (a UCD whose profile endpoint stopped answering) take
every slot, and a healthy upsert waits behind them until they time out: 20 hung reads
delayed an upsert by 9.5 s. With one pool per kind, hung reads fill only the reads pool.

    reads      profile, metadata                    UCD_GATEWAY_MAX_CONCURRENCY_READS (16)
    writes     upsert, attribute delete             UCD_GATEWAY_MAX_CONCURRENCY_WRITES (8)
    identity   identity PATCH/DELETE, both          UCD_GATEWAY_MAX_CONCURRENCY_IDENTITY (4)
               anonymizations, user delete
    exports    export, the local UCD's segments     UCD_GATEWAY_MAX_CONCURRENCY_EXPORTS (2)
    readiness  /readyz's metadata call              2, fixed

``/readyz`` has a pool of its own rather than none: it must not queue behind hung reads,
and a flood of probes must not take more than two connections either.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["READINESS_SLOTS", "Bulkheads", "Pool"]

Pool = Literal["reads", "writes", "identity", "exports", "readiness"]

#: /readyz's slots: one probe at a time is all a load balancer needs; two leave room for a
#: second one while the first waits out a slow UCD.
READINESS_SLOTS: Final = 2


@dataclass(frozen=True)
class Bulkheads:
    """How many UCD calls of each kind may be in flight at once."""

    reads: int = 16
    writes: int = 8
    identity: int = 4
    exports: int = 2
    readiness: int = READINESS_SLOTS

    def semaphores(self) -> dict[Pool, asyncio.Semaphore]:
        """One fresh semaphore per pool, for one client."""
        return {
            "reads": asyncio.Semaphore(self.reads),
            "writes": asyncio.Semaphore(self.writes),
            "identity": asyncio.Semaphore(self.identity),
            "exports": asyncio.Semaphore(self.exports),
            "readiness": asyncio.Semaphore(self.readiness),
        }
