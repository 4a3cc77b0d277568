"""ExportJobs: job creation, webhook tokens, readiness and expiry, over the in-process state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.exports import ExportJobRecord, ExportJobs, ExportStatus
from gateway.state.memory import MemoryState


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
    return ExportJobs("http://gw.test:8000/", MemoryState(), now=clock)


async def test_new_job_is_pending_with_a_webhook_url(jobs: ExportJobs, clock: Clock) -> None:
    job = await jobs.create(format="csv", segment_id="7")
    assert job.status is ExportStatus.PENDING
    assert (job.format, job.segment_id, job.requested_at) == ("csv", "7", clock.now)
    assert (job.url, job.ready_at, job.expires_at, job.error) == (None, None, None, None)
    assert jobs.hook_url(job) == f"http://gw.test:8000/hooks/exports/{job.id}/{job.token}"
    assert await jobs.get(job.id) == job


async def test_ids_and_tokens_are_unique_and_unguessable(jobs: ExportJobs) -> None:
    created = [await jobs.create(format="json", segment_id="1") for _ in range(50)]
    assert len({j.id for j in created}) == 50
    assert len({j.token for j in created}) == 50
    assert all(len(j.token) >= 40 for j in created)  # 32 random bytes, base64url


async def test_token_stays_out_of_the_repr(jobs: ExportJobs) -> None:
    job = await jobs.create(format="csv", segment_id="1")
    assert job.token not in repr(job)


async def test_webhook_with_the_right_token_marks_ready(jobs: ExportJobs, clock: Clock) -> None:
    job = await jobs.create(format="parquet", segment_id="3")
    clock.now += timedelta(minutes=5)
    assert await jobs.mark_ready(job.id, job.token, "http://ucd/exports/local/p/abc.parquet")
    got = await jobs.get(job.id)
    assert got is not None
    assert got.status is ExportStatus.READY
    assert got.url == "http://ucd/exports/local/p/abc.parquet"
    assert got.ready_at == clock.now
    assert got.expires_at == clock.now + timedelta(hours=24)


async def test_wrong_token_or_unknown_job_changes_nothing(jobs: ExportJobs) -> None:
    job = await jobs.create(format="csv", segment_id="3")
    assert not await jobs.mark_ready(job.id, job.token[:-1] + "x", "http://evil/x.csv")
    assert not await jobs.mark_ready("no-such-job", job.token, "http://evil/x.csv")
    assert await jobs.get(job.id) == job


async def test_link_expires_24_hours_after_ready(jobs: ExportJobs, clock: Clock) -> None:
    job = await jobs.create(format="csv", segment_id="3")
    await jobs.mark_ready(job.id, job.token, "http://ucd/x.csv")
    clock.now += timedelta(hours=24)
    assert (await jobs.get(job.id)).status is ExportStatus.READY  # type: ignore[union-attr]
    clock.now += timedelta(seconds=1)
    assert (await jobs.get(job.id)).status is ExportStatus.EXPIRED  # type: ignore[union-attr]


async def test_mark_failed_records_the_error(jobs: ExportJobs) -> None:
    job = await jobs.create(format="csv", segment_id="3")
    await jobs.mark_failed(job.id, "segment not found: bad request")
    got = await jobs.get(job.id)
    assert got is not None
    assert got.status is ExportStatus.FAILED
    assert got.error == "segment not found: bad request"
    await jobs.mark_failed("unknown", "ignored")  # no error for an unknown job
    assert await jobs.get("unknown") is None


async def test_unknown_format_is_refused(jobs: ExportJobs) -> None:
    with pytest.raises(ValueError, match="xml"):
        await jobs.create(format="xml", segment_id="1")


async def test_the_state_keeps_only_the_newest_jobs(clock: Clock) -> None:
    jobs = ExportJobs("http://gw", MemoryState(max_entries=3), now=clock)
    created = [await jobs.create(format="csv", segment_id=str(i)) for i in range(5)]
    assert await jobs.get(created[0].id) is None
    assert await jobs.get(created[1].id) is None
    assert await jobs.get(created[4].id) == created[4]


async def test_a_job_is_forgotten_its_ttl_after_its_last_change() -> None:
    wall = [1_000.0]
    jobs = ExportJobs("http://gw", MemoryState(clock=lambda: wall[0]), ttl=60)
    job = await jobs.create(format="csv", segment_id="1")
    wall[0] += 50
    assert await jobs.mark_ready(job.id, job.token, "http://ucd/x.csv")  # written again
    wall[0] += 50
    assert await jobs.get(job.id) is not None
    wall[0] += 10
    assert await jobs.get(job.id) is None


async def test_a_record_reads_back_as_it_was_stored(jobs: ExportJobs) -> None:
    job = await jobs.create(format="json", segment_id="9")
    await jobs.mark_ready(job.id, job.token, "http://ucd/x.json")
    ready = await jobs.get(job.id)
    assert ready is not None
    assert ExportJobRecord.from_bytes(ready.to_bytes()) == ready
    assert ready.token.encode() in ready.to_bytes()  # stored: the webhook must check it
