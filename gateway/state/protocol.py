"""The one interface of shared state, and the kinds of record kept through it.

A record is opaque bytes under ``(namespace, key)`` that expires ``ttl`` seconds after
it was last written, so nothing shared grows without bound. Both backends implement
exactly what is used today; the pieces of shared state still to come add their
operation here when they land, each with both backends and a test:

* persisted documents: records written once, kept for ``UCD_GATEWAY_PERSISTED_TTL``
  (here already, gateway/persisted/shared.py);
* per-principal rate-limit counters (here already: ``increment``, a fixed window,
  gateway/rate_limits.py) and the partner's UCD quota budget (still to come: the same);
* circuit-breaker state (here already): a failure counter (``incr``, whose expiry moves
  with each failure), an open record and a probe lease (``put_if_absent``) per UCD
  endpoint, mirrored in each process (gateway/shared_breakers.py);
* the profile cache: records per user and an invalidation broadcast (pub/sub).
"""

from __future__ import annotations

import enum
from typing import Protocol

__all__ = ["Namespace", "StateStore"]


class Namespace(enum.Enum):
    """A kind of shared record; its value is part of the record's key in every backend."""

    EXPORT_JOBS = "export-jobs"
    #: APQ-registered documents by SHA-256 (gateway/persisted/shared.py).
    PERSISTED_DOCUMENTS = "persisted-documents"
    #: Circuit-breaker state per UCD endpoint (gateway/shared_breakers.py).
    BREAKERS = "breakers"
    #: Per-principal rate-limit counters (gateway/rate_limits.py).
    RATE_LIMITS = "rate-limits"


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

    # --- counters, leases and deletes (the shared circuit breakers) --------------------

    async def incr(self, namespace: Namespace, key: str, *, ttl: float) -> int:
        """Add one to the integer record (0 when absent) and return the new value; the
        record then expires ``ttl`` seconds from now. Atomic across replicas."""
        ...

    async def put_if_absent(
        self, namespace: Namespace, key: str, value: bytes, *, ttl: float
    ) -> bool:
        """Write the record only if none is there (a lease): True when this call wrote it.
        Atomic across replicas, so exactly one of them wins."""
        ...

    async def delete(self, namespace: Namespace, *keys: str) -> None:
        """Forget these records (absent ones are no error)."""
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
