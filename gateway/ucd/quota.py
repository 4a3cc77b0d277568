"""The UCD's rate-limit pools (§1.1, §2.6), what one call costs in them, and the seam
through which a partner-wide budget (gateway/partner_quota.py) admits each call.

The UCD limits each partner per pool, whatever process calls it: N gateway replicas that
each stay under the limit can together go over it, and then every replica's calls meet
429s and wait out Retry-After. ``UcdClient`` asks its ``QuotaGate`` before every attempt
of a call in a pool; the gate answers at once from a share it has already reserved, so
the wire keys and costs stay here, in the one package that knows the UCD.

E3 (exports, 1 a UTC day, failed ones not counted) and E10 (no documented limit) are in
no pool: whether an export counts is known only from the UCD's answer, and the
gateway's exports are rare enough for the UCD's own 429 to say no.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol

from gateway.ucd.paths import (
    ATTRIBUTE_DELETE_PATH,
    CONTACT_ANONYMIZE_PATH,
    IDENTITY_PATH,
    PROFILE_PATH,
    UPSERT_PATH,
    USER_ANONYMIZE_PATH,
    USER_DELETE_PATH,
)

__all__ = ["POOLS", "QuotaGate", "QuotaPool", "pool_of", "units_of"]


@dataclass(frozen=True, slots=True)
class QuotaPool:
    """One of the UCD's rate-limit pools: its name (§2.6) and the real UCD's limit in
    units a minute (§1.1; a call is one unit, but for ``profile``)."""

    name: str
    per_minute: int


UPSERT: Final = QuotaPool("upsert", 25_000)
PROFILE: Final = QuotaPool("profile", 1_000)
IDENTITY_UPDATE: Final = QuotaPool("identity_update", 2_000)
#: §1.1: "25,000 or 1,000 req/min (sources conflict)": the lower one, to stay under both.
IDENTITY_DELETE: Final = QuotaPool("identity_delete", 1_000)
ANONYMIZE: Final = QuotaPool("anonymize", 500)
DELETE: Final = QuotaPool("delete", 10_000)

POOLS: Final = (UPSERT, PROFILE, IDENTITY_UPDATE, IDENTITY_DELETE, ANONYMIZE, DELETE)

_BY_CALL: Final[dict[tuple[str, str], QuotaPool]] = {
    ("POST", UPSERT_PATH): UPSERT,
    ("POST", ATTRIBUTE_DELETE_PATH): UPSERT,  # E4 shares E1's pool
    ("POST", PROFILE_PATH): PROFILE,
    ("PATCH", IDENTITY_PATH): IDENTITY_UPDATE,
    ("DELETE", IDENTITY_PATH): IDENTITY_DELETE,
    ("POST", CONTACT_ANONYMIZE_PATH): ANONYMIZE,  # E7 and E8 share one pool
    ("POST", USER_ANONYMIZE_PATH): ANONYMIZE,
    ("POST", USER_DELETE_PATH): DELETE,
}


def pool_of(method: str, path: str) -> QuotaPool | None:
    """The pool a call spends from; None for a call in no pool (E3, E10, local ones)."""
    return _BY_CALL.get((method, path))


def units_of(pool: QuotaPool, body: dict[str, Any] | None) -> int:
    """What the call costs in its pool: 1, but for E2, ``1 + the number of distinct
    wanted event names`` (§2.6, the local UCD's formula; the real UCD's may be
    fractional, and this is its documented estimate)."""
    if pool is not PROFILE or body is None:
        return 1
    events = body.get("events")
    if not isinstance(events, dict):
        return 1
    wanted = events.get("wanted")
    if not isinstance(wanted, list):
        return 1
    return 1 + len({item.get("event_name") for item in wanted if isinstance(item, dict)})


class QuotaGate(Protocol):
    """Admits calls against the partner's budget in each pool."""

    async def take(self, pool: QuotaPool, units: int) -> float | None:
        """Spend ``units`` of ``pool``: None when the call may go now, else the seconds
        until the budget has room for it (nothing is spent then)."""
        ...
