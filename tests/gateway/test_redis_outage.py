"""A Redis outage in the middle of a run: typed errors within the deadline, never a hang,
and back to normal when Redis is back. The gateway app runs in-process over the local
UCD (``serve_gateway``) with a Redis of the test's own (``private_redis``), which the
test kills and restarts, or pauses (SIGSTOP: connections stay open, nothing answers).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from gateway.settings import Settings
from tests.gateway.conftest import CallLog, GatewayHttp, HookRelay, serve_gateway
from tests.gateway.redis_server import RedisServer

START_EXPORT = 'mutation { startExport(input: {segmentId: "1"}) { id status } }'
EXPORT_JOB = "query($id: ID!) { exportJob(id: $id) { status url } }"
EXPORT_PATH = "/api/raw/v1/export"
#: The operation deadline of these tests; Redis's own timeout is shorter.
DEADLINE = 2.0


@pytest.fixture
async def gateway(
    private_redis: RedisServer, settings: Settings, ucd_http: httpx.AsyncClient, hooks: HookRelay
) -> AsyncIterator[GatewayHttp]:
    shared = settings.model_copy(
        update={
            "redis_url": SecretStr(private_redis.url),
            "redis_timeout": 0.5,
            "operation_timeout": DEADLINE,
        }
    )
    async with serve_gateway(shared, ucd_http, hooks) as served:
        yield served


async def ready_export(gateway: GatewayHttp, hooks: HookRelay) -> tuple[str, dict[str, Any]]:
    """Start an export, wait for the UCD's webhook; the job id and what exportJob says."""
    job_id = (await gateway.ok(START_EXPORT))["startExport"]["id"]
    async with asyncio.timeout(10):
        await hooks.wait_for_posts(len(hooks.posts) + 1)
    job = (await gateway.ok(EXPORT_JOB, {"id": job_id}))["exportJob"]
    return job_id, job


async def timed_error(gateway: GatewayHttp, query: str, **variables: Any) -> tuple[str, float]:
    started = time.monotonic()
    error = await gateway.error(query, variables)
    return error["extensions"]["code"], time.monotonic() - started


async def test_redis_killed_is_state_unavailable_then_works_again_when_back(
    gateway: GatewayHttp, private_redis: RedisServer, hooks: HookRelay, ucd_calls: CallLog
) -> None:
    job_id, job = await ready_export(gateway, hooks)
    assert job["status"] == "READY"

    private_redis.stop()
    code, took = await timed_error(gateway, EXPORT_JOB, id=job_id)
    assert (code, took < DEADLINE) == ("STATE_UNAVAILABLE", True)
    exports_before = len(ucd_calls.to(EXPORT_PATH))
    code, took = await timed_error(gateway, START_EXPORT)
    assert (code, took < DEADLINE) == ("STATE_UNAVAILABLE", True)
    # No job could be recorded, so the UCD was not asked for an export nobody could follow.
    assert len(ucd_calls.to(EXPORT_PATH)) == exports_before
    # Users are not shared state: reads and writes go on while Redis is away.
    written = await gateway.ok(
        'mutation { upsertUsers(input: {users: [{key: {uuid: "u-1"}, attributes: {name: "A"}}]}) '
        "{ failureCount } }"
    )
    assert written == {"upsertUsers": {"failureCount": 0}}

    private_redis.start()  # the same port; empty, as it keeps nothing on disk
    assert await gateway.ok(EXPORT_JOB, {"id": job_id}) == {"exportJob": None}
    _, again = await ready_export(gateway, hooks)
    assert again["status"] == "READY"


async def test_a_paused_redis_is_state_unavailable_within_the_deadline_and_the_webhook_503(
    gateway: GatewayHttp, private_redis: RedisServer, hooks: HookRelay
) -> None:
    pending = await gateway.runtime.exports.create(format="csv", segment_id="1")
    os.kill(private_redis.pid, signal.SIGSTOP)
    try:
        code, took = await timed_error(gateway, EXPORT_JOB, id=pending.id)
        assert (code, took < DEADLINE) == ("STATE_UNAVAILABLE", True)
        hook = httpx.URL(gateway.runtime.exports.hook_url(pending)).path
        late = await gateway.client.post(hook, json={"url": "http://ucd.test/exports/f.csv"})
        assert late.status_code == 503  # the UCD delivers it again
    finally:
        os.kill(private_redis.pid, signal.SIGCONT)
    delivered = await gateway.client.post(hook, json={"url": "http://ucd.test/exports/f.csv"})
    assert delivered.status_code == 200
    job = (await gateway.ok(EXPORT_JOB, {"id": pending.id}))["exportJob"]
    assert job == {"status": "READY", "url": "http://ucd.test/exports/f.csv"}
