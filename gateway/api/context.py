"""The per-request GraphQL context: shared services plus this request's loader and clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway.audit import AuditLog
from gateway.auth.pii import pii_read_names
from gateway.auth.principal import ANONYMOUS, Principal
from gateway.auth.scopes import Scope
from gateway.catalog import CatalogCache
from gateway.exports import ExportJobs
from gateway.rate_limits import RateLimiter
from gateway.reads.cache import ProfileCache
from gateway.reads.inflight import ProfileReads
from gateway.reads.loader import ProfileLoader
from gateway.settings import Settings
from gateway.ucd.client import UcdClient
from gateway.upserts import UpsertCoalescer

__all__ = ["Context", "PlannedCalls", "build_context"]


@dataclass
class PlannedCalls:
    """The UCD calls the operations of one HTTP request planned so far: the operations of
    a batch share one context, and the budget is the batch's (gateway/api/budget.py)."""

    calls: int = 0


@dataclass
class Context:
    """What resolvers receive as ``info.context``.

    ``now`` is read once per request, so every ``events(...)`` default window of one
    operation (the push-down and the resolvers' filtering) uses the same instant.
    ``principal`` is the caller (gateway/auth/); ``withheld`` the read names of the PII
    it may not see: never asked of the UCD, FORBIDDEN where selected.
    """

    ucd: UcdClient
    exports: ExportJobs
    upserts: UpsertCoalescer
    settings: Settings
    profiles: ProfileLoader
    #: The process's cache of the partner's catalogue (``Query.catalog``).
    catalog: CatalogCache
    principal: Principal = ANONYMOUS
    withheld: frozenset[str] = frozenset()
    #: The profile cache (gateway/reads/cache.py), None when it is off.
    cache: ProfileCache | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    planned: PlannedCalls = field(default_factory=PlannedCalls)
    #: The audit trail and the rate limits (gateway/api/audit_trail.py,
    #: gateway/api/rate_limiting.py); None: not configured.
    audit: AuditLog | None = None
    rate_limiter: RateLimiter | None = None


async def build_context(
    *,
    ucd: UcdClient,
    exports: ExportJobs,
    upserts: UpsertCoalescer,
    settings: Settings,
    reads: ProfileReads,
    catalog: CatalogCache,
    principal: Principal = ANONYMOUS,
    cache: ProfileCache | None = None,
    audit: AuditLog | None = None,
    rate_limiter: RateLimiter | None = None,
) -> Context:
    """Build one request's context (async: the loader binds the running loop).

    ``reads`` is the process-wide in-flight sharing of profile calls, and ``catalog`` the
    process-wide catalogue cache, made by the app's lifespan like the other services.
    ``principal`` defaults to the caller of a gateway without authentication (every
    scope); the app passes the authenticated one.
    """
    withheld = (
        frozenset() if principal.may(Scope.PII_READ) else pii_read_names(settings.pii_attributes)
    )
    return Context(
        ucd=ucd,
        exports=exports,
        upserts=upserts,
        settings=settings,
        profiles=ProfileLoader(reads, cache, withheld),
        catalog=catalog,
        principal=principal,
        withheld=withheld,
        cache=cache,
        audit=audit,
        rate_limiter=rate_limiter,
    )
