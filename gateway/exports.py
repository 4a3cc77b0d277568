"""Export jobs: the gateway's record of E3 exports and their webhook deliveries.

``startExport`` creates a job and hands the UCD ``hook_url(job)`` as the export's
``hook``; when the file is ready the UCD POSTs ``{"url": ...}`` there and the app's
webhook route calls ``mark_ready``. The URL carries an unguessable per-job token, so
only the UCD (which received it) can complete the job.

Job state lives in this process's memory: a restart forgets running jobs (said in
the README). Links expire 24 hours after the file is ready (§3.3.3).
"""

from __future__ import annotations

import enum
import hmac
import secrets
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

LINK_TTL: Final = timedelta(hours=24)
FORMATS: Final = frozenset({"csv", "json", "parquet"})


class ExportStatus(enum.Enum):
    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


@dataclass
class ExportJobRecord:
    """One export job; mutable because its status moves on as the UCD reports back."""

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


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ExportJobs:
    """In-memory registry of export jobs, bounded to the newest ``max_jobs``."""

    def __init__(
        self,
        webhook_base_url: str,
        *,
        max_jobs: int = 10_000,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._base_url = webhook_base_url.rstrip("/")
        self._max_jobs = max_jobs
        self._now = now
        self._jobs: OrderedDict[str, ExportJobRecord] = OrderedDict()

    def __len__(self) -> int:
        return len(self._jobs)

    def create(self, *, format: str, segment_id: str) -> ExportJobRecord:
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
        self._jobs[job.id] = job
        while len(self._jobs) > self._max_jobs:
            self._jobs.popitem(last=False)
        return job

    def hook_url(self, job: ExportJobRecord) -> str:
        """The webhook the UCD must POST the file's link to."""
        return f"{self._base_url}/hooks/exports/{job.id}/{job.token}"

    def mark_ready(self, job_id: str, token: str, url: str) -> bool:
        """Record the link from the webhook; False for an unknown job or a wrong token."""
        job = self._jobs.get(job_id)
        # Constant-time comparison: the token is the only thing guarding the webhook.
        if job is None or not hmac.compare_digest(job.token.encode(), token.encode()):
            return False
        now = self._now()
        job.status = ExportStatus.READY
        job.url = url
        job.ready_at = now
        job.expires_at = now + LINK_TTL
        job.error = None
        return True

    def mark_failed(self, job_id: str, error: str) -> None:
        """Record that the export could not be started (e.g. the UCD refused it)."""
        job = self._jobs.get(job_id)
        if job is not None:
            job.status = ExportStatus.FAILED
            job.error = error

    def get(self, job_id: str) -> ExportJobRecord | None:
        """The job, EXPIRED once its link's lifetime has passed; None if unknown."""
        job = self._jobs.get(job_id)
        if (
            job is not None
            and job.status is ExportStatus.READY
            and job.expires_at is not None
            and self._now() > job.expires_at
        ):
            job.status = ExportStatus.EXPIRED
        return job
