"""The shared state's two backends: in process (with its file) and a real Redis."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio
from pydantic import ValidationError

from gateway.errors import StateUnavailable
from gateway.settings import Settings
from gateway.state.backend import open_state
from gateway.state.memory import FILE_NAME, MemoryState
from gateway.state.protocol import Namespace
from gateway.state.redis import KEY_PREFIX, RedisState
from tests.gateway.conftest import free_port_url
from tests.gateway.redis_server import RedisServer

JOBS = Namespace.EXPORT_JOBS


# --- in process ----------------------------------------------------------------------------


async def test_records_outlive_the_process_in_the_state_file(tmp_path: Path) -> None:
    first = MemoryState(tmp_path / FILE_NAME)
    await first.put(JOBS, "a", b"one", ttl=60)
    await first.put(JOBS, "a", b"two", ttl=60)
    await first.aclose()
    second = MemoryState(tmp_path / FILE_NAME)
    assert await second.get(JOBS, "a") == b"two"
    assert await second.get(JOBS, "b") is None
    await second.aclose()


async def test_expired_records_are_gone_after_a_restart_and_from_the_file(tmp_path: Path) -> None:
    wall = [1_000.0]
    first = MemoryState(tmp_path / FILE_NAME, clock=lambda: wall[0])
    await first.put(JOBS, "short", b"x", ttl=10)
    await first.put(JOBS, "long", b"y", ttl=100)
    await first.aclose()
    wall[0] += 20
    second = MemoryState(tmp_path / FILE_NAME, clock=lambda: wall[0])
    assert (await second.get(JOBS, "short"), await second.get(JOBS, "long")) == (None, b"y")
    wall[0] += 100
    assert await second.get(JOBS, "long") is None  # expired while running: dropped from file
    await second.aclose()
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        assert db.execute("SELECT count(*) FROM records").fetchone() == (0,)


async def test_evicted_records_leave_the_file_too(tmp_path: Path) -> None:
    first = MemoryState(tmp_path / FILE_NAME, max_entries=2)
    for key in ("a", "b", "c"):
        await first.put(JOBS, key, key.encode(), ttl=60)
    await first.aclose()
    second = MemoryState(tmp_path / FILE_NAME, max_entries=2)
    assert [await second.get(JOBS, key) for key in ("a", "b", "c")] == [None, b"b", b"c"]
    await second.aclose()


async def test_a_namespace_of_a_later_version_stays_in_the_file_unread(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    await MemoryState(path).aclose()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO records VALUES ('later', 'k', x'00', ?)", (time.time() + 60,))
    state = MemoryState(path)
    assert await state.get(JOBS, "k") is None
    await state.aclose()
    await state.aclose()  # closing twice is harmless
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT namespace FROM records").fetchall() == [("later",)]


def test_without_a_redis_url_the_state_is_in_process_in_the_data_folder(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, local_ucd_data_dir=tmp_path / "data")  # type: ignore[call-arg]
    state = open_state(settings, time_left=lambda: None)
    assert isinstance(state, MemoryState)
    assert (tmp_path / "data" / FILE_NAME).exists()


# --- Redis ---------------------------------------------------------------------------------


@pytest.fixture
async def shared(redis_server: RedisServer) -> AsyncIterator[RedisState]:
    state = RedisState(redis_server.url, timeout=1.0, max_connections=4)
    yield state
    await state.aclose()


async def test_two_replicas_share_records_in_redis(
    redis_server: RedisServer, shared: RedisState
) -> None:
    other = open_state(
        Settings(_env_file=None, redis_url=redis_server.url),  # type: ignore[call-arg,arg-type]
        time_left=lambda: None,
    )
    assert isinstance(other, RedisState)
    try:
        await shared.put(JOBS, "job-1", b"\x00record", ttl=30)
        assert await other.get(JOBS, "job-1") == b"\x00record"
        assert await other.get(JOBS, "job-2") is None
    finally:
        await other.aclose()


async def test_records_in_redis_carry_their_ttl_and_a_prefixed_key(
    redis_server: RedisServer, shared: RedisState
) -> None:
    await shared.put(JOBS, "job-ttl", b"r", ttl=30)
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        ttl_ms = await client.pttl(f"{KEY_PREFIX}:export-jobs:job-ttl")
    finally:
        await client.aclose()
    assert 29_000 < ttl_ms <= 30_000


async def test_an_unreachable_redis_is_state_unavailable_at_once() -> None:
    url = free_port_url().replace("http://", "redis://")
    state = RedisState(url, timeout=5.0, max_connections=2)
    started = time.monotonic()
    with pytest.raises(StateUnavailable, match="ConnectionError") as caught:
        await state.get(JOBS, "x")
    assert time.monotonic() - started < 1.0  # refused, not timed out
    assert "127.0.0.1" not in caught.value.message  # never the URL (it may hold a password)
    await state.aclose()


async def test_a_paused_redis_is_state_unavailable_at_the_timeout(
    private_redis: RedisServer,
) -> None:
    state = RedisState(private_redis.url, timeout=0.3, max_connections=2)
    await state.put(JOBS, "k", b"v", ttl=30)
    os.kill(private_redis.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(StateUnavailable):
            await state.get(JOBS, "k")
        assert 0.25 < time.monotonic() - started < 1.5
    finally:
        os.kill(private_redis.pid, signal.SIGCONT)
    assert await state.get(JOBS, "k") == b"v"
    await state.aclose()


async def test_the_operation_deadline_bounds_a_call_before_the_timeout(
    private_redis: RedisServer,
) -> None:
    state = RedisState(private_redis.url, timeout=5.0, max_connections=2, time_left=lambda: 0.2)
    await state.put(JOBS, "k", b"v", ttl=30)
    os.kill(private_redis.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(StateUnavailable):
            await state.put(JOBS, "k", b"w", ttl=30)
        assert time.monotonic() - started < 1.0
    finally:
        os.kill(private_redis.pid, signal.SIGCONT)
    await state.aclose()


async def test_the_pool_reconnects_after_redis_restarts(private_redis: RedisServer) -> None:
    state = RedisState(private_redis.url, timeout=0.5, max_connections=2)
    await state.put(JOBS, "k", b"v", ttl=30)
    private_redis.stop()
    with pytest.raises(StateUnavailable):
        await state.get(JOBS, "k")
    private_redis.start()  # same port, empty: no persistence
    assert await state.get(JOBS, "k") is None
    await state.put(JOBS, "k", b"again", ttl=30)
    assert await state.get(JOBS, "k") == b"again"
    await state.aclose()


# --- settings ------------------------------------------------------------------------------


def test_shared_state_settings_default_to_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UCD_GATEWAY_REDIS_URL", raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.redis_url is None
    assert (settings.redis_timeout, settings.redis_max_connections) == (1.0, 32)
    assert settings.export_job_ttl == 172_800


def test_the_redis_url_is_a_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UCD_GATEWAY_REDIS_URL", "redis://:hunter2@redis.internal:6379/0")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.redis_url is not None
    assert settings.redis_url.get_secret_value() == "redis://:hunter2@redis.internal:6379/0"
    assert "hunter2" not in repr(settings)


def test_a_redis_url_of_another_scheme_is_refused_without_repeating_it() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, redis_url="http://:hunter2@redis:6379")  # type: ignore[call-arg,arg-type]
    (error,) = refused.value.errors()
    assert error["loc"] == ("redis_url",)
    assert error["msg"] == "Value error, must start with redis://, rediss://, unix://"


# --- counters, leases and deletes, on both backends ----------------------------------------

BREAKERS = Namespace.BREAKERS


@pytest.fixture(params=["memory", "redis"])
async def any_state(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[MemoryState | RedisState]:
    if request.param == "memory":
        state: MemoryState | RedisState = MemoryState(tmp_path / FILE_NAME)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        state = RedisState(server.url, timeout=1.0, max_connections=2)
        await state.delete_many(BREAKERS, ["count", "lease", "gone"])
    yield state
    await state.aclose()


async def test_incr_counts_from_one_and_delete_starts_it_again(
    any_state: MemoryState | RedisState,
) -> None:
    assert [await any_state.incr(BREAKERS, "count", ttl=30) for _ in range(3)] == [1, 2, 3]
    assert await any_state.get(BREAKERS, "count") == b"3"
    await any_state.delete_many(BREAKERS, ["count", "never-written"])
    await any_state.delete_many(BREAKERS, [])  # no keys: nothing to do
    assert await any_state.incr(BREAKERS, "count", ttl=30) == 1


async def test_put_if_absent_writes_once_until_the_record_goes(
    any_state: MemoryState | RedisState,
) -> None:
    assert await any_state.put_if_absent(BREAKERS, "lease", b"a", ttl=30)
    assert not await any_state.put_if_absent(BREAKERS, "lease", b"b", ttl=30)
    assert await any_state.get(BREAKERS, "lease") == b"a"
    await any_state.delete_many(BREAKERS, ["lease"])
    assert await any_state.put_if_absent(BREAKERS, "lease", b"c", ttl=30)


async def test_an_incremented_count_expires_with_its_ttl(tmp_path: Path) -> None:
    wall = [1_000.0]
    state = MemoryState(tmp_path / FILE_NAME, clock=lambda: wall[0])
    await state.incr(BREAKERS, "count", ttl=10)
    wall[0] += 11
    assert await state.incr(BREAKERS, "count", ttl=10) == 1
    await state.aclose()
