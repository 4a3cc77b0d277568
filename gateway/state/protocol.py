"""The one interface of shared state, and the kinds of record kept through it.

A record is opaque bytes under ``(namespace, key)`` that expires ``ttl`` seconds after
it was last written, so nothing shared grows without bound. Both backends implement
exactly what is used today; the pieces of shared state still to come add their
operation here when they land, each with both backends and a test:

* persisted documents: records written once, kept for ``UCD_GATEWAY_PERSISTED_TTL``
  (gateway/persisted/shared.py);
* per-principal rate-limit counters and the partner's UCD quota: ``increment``, a fixed
  window (gateway/rate_limits.py, gateway/partner_quota.py);
* circuit-breaker state: a failure counter (``incr``, whose expiry moves with each
  failure), an open record and a probe lease (``put_if_absent``) per UCD endpoint,
  mirrored in each process (gateway/shared_breakers.py);
* the profile cache (``gateway/reads/cache.py``): several records in one round trip
  (``get_many``, ``delete_many``), and key versioning instead of a broadcast: ``stamp``
  raises a shared counter and marks records with it, ``put_unless_stamped`` writes only
  when no mark newer than the writer's snapshot of the counter exists. Both are atomic
  (one Lua script in Redis), which is what makes read-your-writes across replicas hold.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Protocol

__all__ = ["Namespace", "StateStore", "highest_mark"]


class Namespace(enum.Enum):
    """A kind of shared record; its value is part of the record's key in every backend."""

    EXPORT_JOBS = "export-jobs"
    #: APQ-registered documents by SHA-256 (gateway/persisted/shared.py).
    PERSISTED_DOCUMENTS = "persisted-documents"
    #: Circuit-breaker state per UCD endpoint (gateway/shared_breakers.py).
    BREAKERS = "breakers"
    #: The profile cache: never written to the in-process backend's file (personal data
    #: stays in memory), and not limited by count (its marks must outlive the entries
    #: they invalidate; everything in it expires with the cache's TTL).
    PROFILE_CACHE = "profile-cache"
    #: Per-principal rate-limit counters (gateway/rate_limits.py).
    RATE_LIMITS = "rate-limits"
    #: The partner's UCD quota per pool and window (gateway/partner_quota.py).
    UCD_QUOTA = "ucd-quota"

    @property
    def kept_on_disk(self) -> bool:
        return self is not Namespace.PROFILE_CACHE


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

    # --- counters and leases (the shared circuit breakers) ---------------------------

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

    # --- the profile cache ----------------------------------------------------------

    async def get_many(self, namespace: Namespace, keys: Sequence[str]) -> list[bytes | None]:
        """The records, in the order of ``keys`` (None where absent), in one round trip."""
        ...

    async def delete_many(self, namespace: Namespace, keys: Sequence[str]) -> None:
        """Forget the records (absent ones are no error)."""
        ...

    async def stamp(
        self, namespace: Namespace, counter: str, marks: Mapping[str, Sequence[str]], *, ttl: float
    ) -> int:
        """Atomically: raise the counter ``counter`` by one to ``g``, and add the mark
        ``<field>=g;`` for each field to each record of ``marks`` (a mark ``*`` replaces
        the record's others, since it outranks them; so may an overlong record), each to
        expire ``ttl`` seconds from now. ``g``; the counter itself never expires.

        Fields are made of letters, digits, ``*``, ``.`` and ``_`` only."""
        ...

    async def put_unless_stamped(
        self,
        namespace: Namespace,
        items: Mapping[str, bytes],
        *,
        guards: Sequence[str],
        since: int,
        ttl: float,
    ) -> bool:
        """Atomically: unless a record of ``guards`` holds a mark above ``since``, write
        ``items`` (to expire ``ttl`` seconds from now); True when they were written."""
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


def highest_mark(record: bytes | None, fields: Sequence[str] | None = None) -> int:
    """The highest mark of a ``stamp``ed record: of any field (``fields`` None), or of
    ``*`` and the given fields; 0 for no record. Both backends keep marks as
    ``<field>=<g>;`` text, so this one parser reads them.

    >>> highest_mark(b"a=3;*=5;b=9;"), highest_mark(b"a=3;*=5;b=9;", ["a"])
    (9, 5)
    """
    if not record:
        return 0
    highest = 0
    for mark in record.split(b";"):
        field, _, value = mark.partition(b"=")
        if value and (fields is None or field == b"*" or field.decode() in fields):
            highest = max(highest, int(value))
    return highest
