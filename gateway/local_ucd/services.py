"""What an endpoint handler gets: the request's partner and body, and the shared services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from gateway.local_ucd.exports.worker import ExportWorker

if TYPE_CHECKING:
    from gateway.local_ucd.callbacks import CallbackDispatcher
    from gateway.local_ucd.config import LocalUcdConfig
    from gateway.local_ucd.faults import FaultInjector
    from gateway.local_ucd.ratelimit import RateLimiter
    from gateway.local_ucd.store.database import Store

__all__ = ["Services", "UcdRequest", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    """One local UCD's long-lived parts, built by the app's lifespan."""

    config: LocalUcdConfig
    store: Store
    limiter: RateLimiter
    faults: FaultInjector | None
    callbacks: CallbackDispatcher
    hook_client: httpx.AsyncClient
    #: The server's UTC clock; tests replace it to move time (retention, expiry).
    now: Callable[[], datetime] = field(default=utc_now)
    #: The export worker (§3.3.3), built from the parts above, which it reads as they are
    #: when used (:class:`~gateway.local_ucd.exports.worker.ExportContext`).
    exports: ExportWorker = field(init=False)

    def __post_init__(self) -> None:
        self.exports = ExportWorker(self)


@dataclass
class UcdRequest:
    """One authenticated request whose body passed the §2.4 checks."""

    partner: str
    body: dict[str, Any]
    services: Services

    def admit(self, pool: str, cost: float = 1) -> None:
        """Rate-limit stage (§2.6): call after the endpoint's request-level validation."""
        self.services.limiter.admit(self.partner, pool, cost)
