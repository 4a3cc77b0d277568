"""The state operations the profile cache uses, on both backends (in process and a real
Redis), and the cache's behaviour at their edges: a read that races a write, a Redis
outage (reads uncached, writes STATE_UNAVAILABLE), records kept out of the state file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from gateway.reads.cache import ProfileCache
from gateway.reads.inflight import ProfileReads
from gateway.reads.need import ProfileNeed
from gateway.reads.touches import touch_of_upsert
from gateway.settings import Settings
from gateway.state.memory import FILE_NAME, MemoryState
from gateway.state.protocol import Namespace, StateStore, highest_mark
from gateway.state.redis import RedisState
from gateway.ucd.answers import ProfileAnswer
from gateway.ucd.client import UcdClient
from gateway.ucd.requests import UpsertUser, UserRef
from tests.gateway.conftest import (
    CallLog,
    GatewayHttp,
    HookRelay,
    put_users,
    serve_gateway,
)
from tests.gateway.redis_server import RedisServer

NS = Namespace.PROFILE_CACHE


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    store: StateStore
    if request.param == "memory":
        store = MemoryState()
    else:
        server: RedisServer = request.getfixturevalue("private_redis")
        store = RedisState(server.url, timeout=1.0, max_connections=4)
    yield store
    await store.aclose()


async def test_get_many_and_delete_many(state: StateStore) -> None:
    await state.put(NS, "a", b"1", ttl=60)
    await state.put(NS, "b", b"2", ttl=60)
    assert await state.get_many(NS, ["a", "x", "b"]) == [b"1", None, b"2"]
    await state.delete_many(NS, ["a", "x"])
    assert await state.get_many(NS, ["a", "b"]) == [None, b"2"]
    assert await state.get_many(NS, []) == []
    await state.delete_many(NS, [])


async def test_stamps_raise_one_counter_and_mark_records(state: StateStore) -> None:
    first = await state.stamp(NS, "clock", {"v:1": ["a.x", "a"]}, ttl=60)
    second = await state.stamp(NS, "clock", {"v:1": ["e.y"], "v:2": ["*"]}, ttl=60)
    assert second == first + 1
    one, two, clock = await state.get_many(NS, ["v:1", "v:2", "clock"])
    assert highest_mark(one) == second
    assert highest_mark(one, ["a.x"]) == first
    assert highest_mark(two, ()) == second  # * counts for every field
    assert int(clock or 0) == second
    # A * mark replaces the record's others (it outranks them all).
    third = await state.stamp(NS, "clock", {"v:1": ["*"]}, ttl=60)
    assert await state.get(NS, "v:1") == f"*={third};".encode()


async def test_an_overlong_record_of_marks_becomes_one_star(state: StateStore) -> None:
    for _ in range(300):
        last = await state.stamp(NS, "clock", {"v:1": ["a.0123456789abcdef"]}, ttl=60)
    record = await state.get(NS, "v:1")
    assert record is not None
    assert len(record) <= 4096
    assert highest_mark(record, ["a.other"]) <= last  # still outranks what came before
    assert highest_mark(record, ["a.0123456789abcdef"]) == last


async def test_put_unless_stamped_refuses_after_a_newer_mark(state: StateStore) -> None:
    snapshot = int(await state.get(NS, "clock") or 0)
    assert await state.put_unless_stamped(
        NS, {"e:1": b"old"}, guards=["v:1"], since=snapshot, ttl=60
    )
    await state.stamp(NS, "clock", {"v:1": ["a.x"]}, ttl=60)
    assert not await state.put_unless_stamped(
        NS, {"e:1": b"stale", "a:h": b"stale"}, guards=["v:0", "v:1"], since=snapshot, ttl=60
    )
    assert await state.get_many(NS, ["e:1", "a:h"]) == [b"old", None]
    now = int(await state.get(NS, "clock") or 0)
    assert await state.put_unless_stamped(NS, {"e:1": b"new"}, guards=["v:1"], since=now, ttl=60)
    assert await state.get(NS, "e:1") == b"new"


async def test_the_profile_cache_never_reaches_the_state_file(tmp_path: Path) -> None:
    store = MemoryState(tmp_path / FILE_NAME)
    await store.put(NS, "e:1", b"ada@example.com", ttl=60)
    await store.stamp(NS, "clock", {"v:1": ["*"]}, ttl=60)
    await store.put(Namespace.EXPORT_JOBS, "job", b"kept", ttl=60)
    await store.aclose()
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        rows = db.execute("SELECT namespace, key FROM records").fetchall()
    assert rows == [("export-jobs", "job")]


async def test_expired_cache_records_are_swept_from_memory() -> None:
    wall = [1_000.0]
    store = MemoryState(clock=lambda: wall[0])
    for n in range(1023):  # the first sweep comes at 1,024 records
        await store.put(NS, f"e:{n}", b"x", ttl=10)
    wall[0] += 20
    await store.put(NS, "e:new", b"y", ttl=10)
    assert set(store.records(NS)) == {"e:new"}


# --- the cache at its edges ----------------------------------------------------------------


class HeldReads(ProfileReads):
    """``ProfileReads`` whose answers wait, once the UCD gave them, until released: a read
    whose UCD call came before a write but whose store comes after it."""

    def __init__(self, ucd: UcdClient) -> None:
        super().__init__(ucd)
        self.hold = False
        self.answered = asyncio.Event()
        self.release = asyncio.Event()

    async def fetch_tagged(
        self, ref: UserRef, need: ProfileNeed, tag: int
    ) -> tuple[ProfileAnswer | None, int]:
        result = await super().fetch_tagged(ref, need, tag)
        if self.hold:
            self.answered.set()
            await self.release.wait()
        return result


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_read_answered_before_a_write_is_not_stored_after_it(
    ucd: UcdClient, backend: str, request: pytest.FixtureRequest
) -> None:
    store: StateStore = MemoryState()
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("private_redis")
        store = RedisState(server.url, timeout=1.0, max_connections=4)
    reads = HeldReads(ucd)
    cache = ProfileCache(store, reads, ttl=60, secret=b"k")
    ref = UserRef.of(uuid="race-1")
    need = ProfileNeed(attributes=frozenset({"name"}))
    await put_users(ucd, {"identifiers": {"uuid": "race-1"}, "attributes": {"name": "Old"}})
    reads.hold = True
    racing = asyncio.create_task(cache.fetch(ref, need))
    await reads.answered.wait()  # the UCD answered "Old"; the store waits
    written = UpsertUser(ref, {"name": "New"})
    await put_users(ucd, {"identifiers": {"uuid": "race-1"}, "attributes": {"name": "New"}})
    await cache.invalidate([touch_of_upsert(written)])
    reads.release.set()
    old = await racing
    assert old is not None
    assert old.attributes["name"] == "Old"  # answered before the write: fine
    reads.hold = False
    after = await cache.fetch(ref, need)
    assert after is not None
    assert after.attributes["name"] == "New"
    assert cache.hits == 0
    await store.aclose()


@pytest.fixture
async def on_redis(
    private_redis: RedisServer, settings: Settings, ucd_http: httpx.AsyncClient, hooks: HookRelay
) -> AsyncIterator[GatewayHttp]:
    update: dict[str, Any] = {
        "profile_cache_ttl": 60.0,
        "redis_url": SecretStr(private_redis.url),
        "redis_timeout": 0.3,
        "operation_timeout": 3.0,
    }
    async with serve_gateway(settings.model_copy(update=update), ucd_http, hooks) as served:
        yield served


READ = "query($uuid: String!) { user(key: {uuid: $uuid}) { name } }"
WRITE = """
mutation($uuid: String!, $name: String!) {
  upsertUsers(input: {users: [{key: {uuid: $uuid}, attributes: {name: $name}}]}) {
    failureCount
  }
}
"""


async def test_without_redis_reads_go_uncached_and_writes_are_state_unavailable(
    on_redis: GatewayHttp, private_redis: RedisServer, ucd_calls: CallLog
) -> None:
    await on_redis.ok(WRITE, {"uuid": "outage-1", "name": "Pia"})
    await on_redis.ok(READ, {"uuid": "outage-1"})
    private_redis.stop()
    ucd_calls.clear()
    for _ in range(3):
        body = await on_redis.post(READ, {"uuid": "outage-1"})
        assert body["data"] == {"user": {"name": "Pia"}}, body
        assert "errors" not in body
    assert len(ucd_calls.profiles) == 3  # read from the UCD, not from the cache
    error = await on_redis.error(WRITE, {"uuid": "outage-1", "name": "Quinn"})
    assert error["extensions"]["code"] == "STATE_UNAVAILABLE"
    assert "applied the write" in error["message"]
    assert "outage-1" not in error["message"]
    private_redis.start()
    await asyncio.sleep(PAUSE)  # the cache is skipped for a second after a failed read
    # Back: the write the UCD applied while Redis was away shows (the entry stored
    # before it is outranked only if its marks were written, so the caller was told).
    body = await on_redis.post(
        "query($uuid: String!) { user(key: {uuid: $uuid}, fresh: true) { name } }",
        {"uuid": "outage-1"},
    )
    assert body["data"] == {"user": {"name": "Quinn"}}
    await on_redis.ok(WRITE, {"uuid": "outage-1", "name": "Rex"})
    assert await on_redis.ok(READ, {"uuid": "outage-1"}) == {"user": {"name": "Rex"}}
    ucd_calls.clear()
    assert await on_redis.ok(READ, {"uuid": "outage-1"}) == {"user": {"name": "Rex"}}
    assert ucd_calls.profiles == []


PAUSE = 1.1
