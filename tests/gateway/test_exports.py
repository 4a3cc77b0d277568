"""ExportJobs: job creation, webhook tokens, readiness and expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.exports import ExportJobs, ExportStatus


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def jobs(clock: Clock) -> ExportJobs:
    return ExportJobs("http://gw.test:8000/", now=clock)


def test_new_job_is_pending_with_a_webhook_url(jobs: ExportJobs, clock: Clock) -> None:
    job = jobs.create(format="csv", segment_id="7")
    assert job.status is ExportStatus.PENDING
    assert (job.format, job.segment_id, job.requested_at) == ("csv", "7", clock.now)
    assert (job.url, job.ready_at, job.expires_at, job.error) == (None, None, None, None)
    assert jobs.hook_url(job) == f"http://gw.test:8000/hooks/exports/{job.id}/{job.token}"
    assert jobs.get(job.id) is job


def test_ids_and_tokens_are_unique_and_unguessable(jobs: ExportJobs) -> None:
    created = [jobs.create(format="json", segment_id="1") for _ in range(50)]
    assert len({j.id for j in created}) == 50
    assert len({j.token for j in created}) == 50
    assert all(len(j.token) >= 40 for j in created)  # 32 random bytes, base64url


def test_token_stays_out_of_the_repr(jobs: ExportJobs) -> None:
    job = jobs.create(format="csv", segment_id="1")
    assert job.token not in repr(job)


def test_webhook_with_the_right_token_marks_ready(jobs: ExportJobs, clock: Clock) -> None:
    job = jobs.create(format="parquet", segment_id="3")
    clock.now += timedelta(minutes=5)
    assert jobs.mark_ready(job.id, job.token, "http://ucd/exports/local/p/abc.parquet")
    got = jobs.get(job.id)
    assert got is not None
    assert got.status is ExportStatus.READY
    assert got.url == "http://ucd/exports/local/p/abc.parquet"
    assert got.ready_at == clock.now
    assert got.expires_at == clock.now + timedelta(hours=24)


def test_wrong_token_or_unknown_job_changes_nothing(jobs: ExportJobs) -> None:
    job = jobs.create(format="csv", segment_id="3")
    assert not jobs.mark_ready(job.id, job.token[:-1] + "x", "http://evil/x.csv")
    assert not jobs.mark_ready("no-such-job", job.token, "http://evil/x.csv")
    assert jobs.get(job.id) is not None
    assert job.status is ExportStatus.PENDING
    assert job.url is None


def test_link_expires_24_hours_after_ready(jobs: ExportJobs, clock: Clock) -> None:
    job = jobs.create(format="csv", segment_id="3")
    jobs.mark_ready(job.id, job.token, "http://ucd/x.csv")
    clock.now += timedelta(hours=24)
    assert jobs.get(job.id).status is ExportStatus.READY  # type: ignore[union-attr]
    clock.now += timedelta(seconds=1)
    assert jobs.get(job.id).status is ExportStatus.EXPIRED  # type: ignore[union-attr]


def test_mark_failed_records_the_error(jobs: ExportJobs) -> None:
    job = jobs.create(format="csv", segment_id="3")
    jobs.mark_failed(job.id, "segment not found: bad request")
    assert job.status is ExportStatus.FAILED
    assert job.error == "segment not found: bad request"
    jobs.mark_failed("unknown", "ignored")  # no error for an unknown job


def test_unknown_format_is_refused(jobs: ExportJobs) -> None:
    with pytest.raises(ValueError, match="xml"):
        jobs.create(format="xml", segment_id="1")


def test_registry_keeps_only_the_newest_jobs(clock: Clock) -> None:
    jobs = ExportJobs("http://gw", max_jobs=3, now=clock)
    created = [jobs.create(format="csv", segment_id=str(i)) for i in range(5)]
    assert len(jobs) == 3
    assert jobs.get(created[0].id) is None
    assert jobs.get(created[4].id) is created[4]
