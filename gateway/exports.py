"""Export jobs: the gateway's record of E3 exports and their webhook deliveries.

``startExport`` creates a job and hands the UCD ``hook_url(job)`` as the export's
``hook``; when the file is ready the UCD POSTs ``{"url": ...}`` there and the app's
webhook route calls ``mark_ready``. The URL carries an unguessable per-job token, so
only the UCD (which received it) can complete the job; it is compared in constant time.

Jobs are records of the shared state (``gateway.state``): with Redis, any replica
answers ``exportJob`` and accepts the webhook, whichever replica started the job; in
process, they are also kept in the local data folder, so a restart does not forget
them. A job expires ``UCD_GATEWAY_EXPORT_JOB_TTL`` seconds after its last change; its
link 24 hours after the file is ready (§3.3.3), after which the job reads EXPIRED.

Every method may raise ``StateUnavailable`` when the shared state cannot be reached.
"""

from __future__ import annotations

import enum
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from gateway.state.protocol import Namespace, StateStore

LINK_TTL: Final = timedelta(hours=24)
FORMATS: Final = frozenset({"csv", "json", "parquet"})
#: UCD_GATEWAY_EXPORT_JOB_TTL's default: two days.
DEFAULT_JOB_TTL: Final = 172_800.0


class ExportStatus(enum.Enum):
    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


_TIMES: Final = ("requested_at", "ready_at", "expires_at")


@dataclass(frozen=True)
class ExportJobRecord:
    """One export job as last stored; a status change is a new record, written back."""

    id: str
    token: str
    status: ExportStatus
    format: str
    segment_id: str
    requested_at: datetime
    ready_at: datetime | None = None
    url: str | None = None
    expires_at: datetime | None = None
    error: str | None = None

    def __repr__(self) -> str:
        # The token is a capability: keep it out of reprs and therefore out of logs.
        return f"ExportJobRecord(id={self.id!r}, status={self.status.name}, format={self.format!r})"

    def to_bytes(self) -> bytes:
        """The stored form: JSON, times in RFC 3339 (orjson writes datetimes so)."""
        return orjson.dumps(asdict(self) | {"status": self.status.value})

    @classmethod
    def from_bytes(cls, data: bytes) -> ExportJobRecord:
        fields: dict[str, Any] = orjson.loads(data)
        for name in _TIMES:
            if fields[name] is not None:
                fields[name] = datetime.fromisoformat(fields[name])
        return cls(**fields | {"status": ExportStatus(fields["status"])})


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ExportJobs:
    """Export jobs kept in ``store``, each for ``ttl`` seconds after its last change."""

    def __init__(
        self,
        webhook_base_url: str,
        store: StateStore,
        *,
        ttl: float = DEFAULT_JOB_TTL,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._base_url = webhook_base_url.rstrip("/")
        self._store = store
        self._ttl = ttl
        self._now = now

    async def _load(self, job_id: str) -> ExportJobRecord | None:
        data = await self._store.get(Namespace.EXPORT_JOBS, job_id)
        return None if data is None else ExportJobRecord.from_bytes(data)

    async def _save(self, job: ExportJobRecord) -> None:
        await self._store.put(Namespace.EXPORT_JOBS, job.id, job.to_bytes(), ttl=self._ttl)

    async def create(self, *, format: str, segment_id: str) -> ExportJobRecord:
        """Register a PENDING job with a fresh id and webhook token."""
        if format not in FORMATS:
            raise ValueError(f"unknown export format {format!r}")
        job = ExportJobRecord(
            id=str(uuid.uuid4()),
            token=secrets.token_urlsafe(32),
            status=ExportStatus.PENDING,
            format=format,
            segment_id=segment_id,
            requested_at=self._now(),
        )
        await self._save(job)
        return job

    def hook_url(self, job: ExportJobRecord) -> str:
        """The webhook the UCD must POST the file's link to."""
        return f"{self._base_url}/hooks/exports/{job.id}/{job.token}"

    async def mark_ready(self, job_id: str, token: str, url: str) -> bool:
        """Record the link from the webhook; False for an unknown job or a wrong token.

        Two deliveries of the same webhook (the UCD retries) write the same job twice,
        which is harmless: the last one's time stands.
        """
        job = await self._load(job_id)
        # Constant-time comparison: the token is the only thing guarding the webhook.
        if job is None or not hmac.compare_digest(job.token.encode(), token.encode()):
            return False
        now = self._now()
        await self._save(
            replace(
                job,
                status=ExportStatus.READY,
                url=url,
                ready_at=now,
                expires_at=now + LINK_TTL,
                error=None,
            )
        )
        return True

    async def mark_failed(self, job_id: str, error: str) -> None:
        """Record that the export could not be started (e.g. the UCD refused it)."""
        job = await self._load(job_id)
        if job is not None:
            await self._save(replace(job, status=ExportStatus.FAILED, error=error))

    async def get(self, job_id: str) -> ExportJobRecord | None:
        """The job, EXPIRED once its link's lifetime has passed; None if unknown."""
        job = await self._load(job_id)
        if (
            job is not None
            and job.status is ExportStatus.READY
            and job.expires_at is not None
            and self._now() > job.expires_at
        ):
            return replace(job, status=ExportStatus.EXPIRED)
        return job
