"""Bulkheads: hung reads hold only the reads pool; writes and /readyz go on.

The UCD is a loopback server whose profile endpoint never answers; the bound (1 s) is
generous for a shared two-core machine: an upsert there takes milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gateway.settings import Settings
from gateway.ucd.breaker import LocalCircuitBreakers
from gateway.ucd.bulkheads import Bulkheads
from gateway.ucd.client import UcdClient
from gateway.ucd.paths import METADATA_COLUMNS_PATH, PROFILE_PATH, UPSERT_PATH
from gateway.ucd.requests import ProfileRequest, UpsertRequest, UpsertUser, UserRef
from gateway.ucd.transport import build_http_client
from tests.gateway.conftest import UPSERT, serve_gateway
from tests.gateway.loopback_ucd import loopback_ucd

TOKEN = "s3cret-token-value"
HUNG_READS = 20


async def wait_for_reads(seen: dict[str, int], count: int) -> None:
    """Until ``count`` profile requests have reached the UCD (they hang there)."""
    async with asyncio.timeout(10):
        while seen.get(PROFILE_PATH, 0) < count:  # noqa: ASYNC110 (a server count; no event)
            await asyncio.sleep(0.01)


async def test_hung_reads_do_not_delay_an_upsert() -> None:
    async with loopback_ucd(profile="hang") as ucd:
        settings = Settings(_env_file=None, request_timeout=30)  # type: ignore[call-arg]
        async with build_http_client(settings, base_url=ucd.url) as http:
            client = UcdClient(
                http,
                partner="acme",
                token=TOKEN,
                bulkheads=Bulkheads(reads=16, writes=8),
                breakers=LocalCircuitBreakers(),
            )
            reads = [
                asyncio.create_task(client.profile(ProfileRequest(UserRef(uuid=f"u{i}"))))
                for i in range(HUNG_READS)
            ]
            await wait_for_reads(ucd.seen, 16)  # the reads pool is full; 4 more queue
            started = time.monotonic()
            upsert = UpsertRequest((UpsertUser(UserRef(uuid="w"), {"name": "Ada"}),))
            envelope = await client.upsert(upsert)
            elapsed = time.monotonic() - started
            for read in reads:
                read.cancel()
            await asyncio.gather(*reads, return_exceptions=True)
    assert envelope.successful_count == 1
    assert elapsed < 1.0
    assert ucd.seen == {PROFILE_PATH: 16, UPSERT_PATH: 1}


async def test_over_http_hung_reads_delay_neither_a_write_nor_readyz() -> None:
    async with loopback_ucd(profile="hang") as ucd:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, ucd_base_url=ucd.url, operation_timeout=30, request_timeout=30
        )
        async with build_http_client(settings) as http, serve_gateway(settings, http) as gw:
            reads = [
                asyncio.create_task(gw.post(f'{{ user(key: {{uuid: "u{i}"}}) {{ name }} }}'))
                for i in range(HUNG_READS)
            ]
            await wait_for_reads(ucd.seen, 16)
            started = time.monotonic()
            ready = await gw.client.get("/readyz")
            readyz_elapsed = time.monotonic() - started
            started = time.monotonic()
            user = {"key": {"uuid": "w"}, "attributes": {"name": "Ada"}}
            data = await gw.ok(UPSERT, {"input": {"users": [user]}})
            upsert_elapsed = time.monotonic() - started
            for read in reads:
                read.cancel()
            await asyncio.gather(*reads, return_exceptions=True)
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert data["upsertUsers"]["successCount"] == 1
    assert readyz_elapsed < 1.0
    assert upsert_elapsed < 1.0
    assert ucd.seen == {PROFILE_PATH: 16, METADATA_COLUMNS_PATH: 1, UPSERT_PATH: 1}


async def test_settings_size_each_pool() -> None:
    """UCD_GATEWAY_MAX_CONCURRENCY_READS bounds the reads in flight; MAX_CONCURRENCY is
    its default."""
    async with loopback_ucd(profile="hang") as ucd:
        cases: list[tuple[dict[str, Any], int]] = [
            ({"max_concurrency_reads": 3}, 3),
            ({"max_concurrency": 5}, 5),
        ]
        for values, expected in cases:
            ucd.seen.clear()
            settings = Settings(  # type: ignore[call-arg]
                _env_file=None, ucd_base_url=ucd.url, operation_timeout=30, **values
            )
            async with build_http_client(settings) as http, serve_gateway(settings, http) as gw:
                reads = [
                    asyncio.create_task(gw.post(f'{{ user(key: {{uuid: "u{i}"}}) {{ name }} }}'))
                    for i in range(8)
                ]
                await wait_for_reads(ucd.seen, expected)
                await asyncio.sleep(0.2)  # room for a read past the bound to arrive
                assert ucd.seen[PROFILE_PATH] == expected
                for read in reads:
                    read.cancel()
                await asyncio.gather(*reads, return_exceptions=True)
