"""The one interface of shared state, and the kinds of record kept through it.

A record is opaque bytes under ``(namespace, key)`` that expires ``ttl`` seconds after
it was last written, so nothing shared grows without bound. Both backends implement
exactly what is used today; the pieces of shared state still to come add their
operation here when they land, each with both backends and a test:

* persisted documents: records without expiry, written once;
* circuit-breaker state: records per UCD endpoint, read on every call;
* the profile cache: records per user and an invalidation broadcast (pub/sub).
"""

from __future__ import annotations

import enum
from typing import Protocol

__all__ = ["Namespace", "StateStore"]


class Namespace(enum.Enum):
    """A kind of shared record; its value is part of the record's key in every backend."""

    EXPORT_JOBS = "export-jobs"
    #: Per-principal rate-limit counters (gateway/rate_limits.py).
    RATE_LIMITS = "rate-limits"
    #: The partner's UCD quota per pool and window (gateway/partner_quota.py).
    UCD_QUOTA = "ucd-quota"


class StateStore(Protocol):
    """Records shared by every replica using the same backend.

    Every method either completes or raises ``gateway.errors.StateUnavailable`` (the
    backend cannot be reached) within its timeout; a caller never waits longer.
    """

    async def get(self, namespace: Namespace, key: str) -> bytes | None:
        """The record, or None when it was never written or has expired."""
        ...

    async def put(self, namespace: Namespace, key: str, value: bytes, *, ttl: float) -> None:
        """Write the record (replacing any), to expire ``ttl`` seconds from now."""
        ...

    # --- counters (rate limits) ---------------------------------------------------

    async def increment(self, namespace: Namespace, key: str, amount: int, *, ttl: float) -> int:
        """Add ``amount`` to the counter (0 when absent or expired) and answer its new
        value, atomically across replicas; a new counter expires ``ttl`` seconds from
        now, and adding to it does not move that."""
        ...

    async def aclose(self) -> None:
        """Release connections and files; the store is not used afterwards."""
        ...
