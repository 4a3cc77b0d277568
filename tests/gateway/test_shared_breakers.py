"""Circuit breakers shared by replicas through a real Redis (gateway/shared_breakers.py).

Two ``SharedCircuitBreakers`` on one Redis stand for two replicas; each has its own
mirror and local fallback, as separate processes would. Clocks are the test's where the
cool-down matters; UCD calls are counted on the wire (``LoopbackUcd.seen``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from gateway.errors import UpstreamError, UpstreamUnavailable
from gateway.settings import Settings
from gateway.shared_breakers import (
    RETRY_STATE_AFTER_S,
    SharedCircuitBreakers,
    circuit_breakers,
)
from gateway.state.protocol import StateStore
from gateway.state.redis import KEY_PREFIX, RedisState
from gateway.ucd.breaker import Admission, LocalCircuitBreakers
from gateway.ucd.client import UcdClient
from gateway.ucd.paths import PROFILE_PATH
from gateway.ucd.requests import ProfileRequest, UserRef
from gateway.ucd.transport import build_http_client
from tests.gateway.loopback_ucd import LoopbackUcd, loopback_ucd
from tests.gateway.redis_server import RedisServer

PROFILE = ProfileRequest(UserRef(email="ada@example.com"), attributes=("name",))


class Clocks:
    """A monotonic clock and a wall clock the test moves together."""

    def __init__(self) -> None:
        self.mono = 100.0
        self.wall = 1_700_000_000.0

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


@contextlib.asynccontextmanager
async def redis_state(url: str, redis_timeout: float = 0.5) -> AsyncIterator[RedisState]:
    state = RedisState(url, timeout=redis_timeout, max_connections=4)
    try:
        yield state
    finally:
        await state.aclose()


_endpoints = iter(range(1_000_000))


@pytest.fixture
def endpoint() -> str:
    """An endpoint name of this test alone: the session's Redis is shared."""
    return f"/test/{os.getpid()}/{next(_endpoints)}"


def replica(state: StateStore, clocks: Clocks, **options: float) -> SharedCircuitBreakers:
    values: dict[str, float] = {"failures": 5, "cooldown": 5.0} | options
    return SharedCircuitBreakers(
        state,
        failures=int(values["failures"]),
        cooldown=values["cooldown"],
        refresh=0.5,
        probe_lease=10.0,
        clock=lambda: clocks.mono,
        wall=lambda: clocks.wall,
    )


async def fail(breakers: SharedCircuitBreakers, endpoint: str, times: int) -> list[bool]:
    closed = []
    for _ in range(times):
        admission = await breakers.admit(endpoint)
        assert admission.retry_after is None
        closed.append(await breakers.record(endpoint, admission, "failure"))
    return closed


async def test_failures_on_two_replicas_add_up_and_open_the_circuit_on_both(
    redis_server: RedisServer, endpoint: str
) -> None:
    clocks = Clocks()
    async with redis_state(redis_server.url) as state:
        a, b = replica(state, clocks), replica(state, clocks)
        assert await fail(a, endpoint, 3) == [True, True, True]
        assert await fail(b, endpoint, 2) == [True, False]  # 5 in all: open
        # A saw failures, so it reads the shared state: open, without a failure of its own.
        assert await a.admit(endpoint) == Admission(retry_after=5)
        clocks.advance(1.5)
        assert await b.admit(endpoint) == Admission(retry_after=4)


async def test_the_state_for_metrics_is_each_replicas_mirror_and_asks_redis_nothing(
    redis_server: RedisServer, endpoint: str
) -> None:
    clocks = Clocks()
    async with redis_state(redis_server.url) as state:
        a, b = replica(state, clocks), replica(state, clocks)
        assert await fail(b, endpoint, 5) == [True] * 4 + [False]
        assert b.state(endpoint) == "open"
        assert a.state(endpoint) == "closed"  # a has not read the shared state yet
        assert (await a.admit(endpoint)).retry_after is not None  # once a reads it...
        assert a.state(endpoint) == "open"  # ...its mirror says so
        clocks.advance(5.0)
        assert (a.state(endpoint), b.state(endpoint)) == ("half-open", "half-open")


async def test_a_success_anywhere_resets_the_shared_count(
    redis_server: RedisServer, endpoint: str
) -> None:
    clocks = Clocks()
    async with redis_state(redis_server.url) as state:
        a, b = replica(state, clocks), replica(state, clocks)
        await fail(a, endpoint, 4)
        admission = await b.admit(endpoint)  # B has never looked: it reads 4 failures
        assert await b.record(endpoint, admission, "success")
        assert await fail(a, endpoint, 4) == [True] * 4  # counted from 0 again


async def test_after_the_cooldown_exactly_one_replica_probes_and_its_success_closes_all(
    redis_server: RedisServer, endpoint: str
) -> None:
    clocks = Clocks()
    async with redis_state(redis_server.url) as state:
        a, b = replica(state, clocks, failures=2), replica(state, clocks, failures=2)
        await fail(a, endpoint, 1)
        await fail(b, endpoint, 1)
        clocks.advance(5.0)
        probe = await a.admit(endpoint)
        assert probe == Admission(probe=True)
        assert await b.admit(endpoint) == Admission(retry_after=1)  # A holds the probe
        assert await a.admit(endpoint) == Admission(retry_after=1)
        assert await a.record(endpoint, probe, "success")
        clocks.advance(1.0)  # past B's "the probe is elsewhere" second
        assert await b.admit(endpoint) == Admission()
        assert await a.admit(endpoint) == Admission()


async def test_a_failed_probe_opens_the_circuit_for_another_cooldown_on_every_replica(
    redis_server: RedisServer, endpoint: str
) -> None:
    clocks = Clocks()
    async with redis_state(redis_server.url) as state:
        a, b = replica(state, clocks, failures=1), replica(state, clocks, failures=1)
        await fail(a, endpoint, 1)
        clocks.advance(6.0)
        probe = await b.admit(endpoint)
        assert probe.probe
        assert not await b.record(endpoint, probe, "failure")
        clocks.advance(1.0)
        assert await a.admit(endpoint) == Admission(retry_after=4)
        assert await b.admit(endpoint) == Admission(retry_after=4)


async def test_an_abandoned_probe_frees_the_lease_for_another_replica(
    redis_server: RedisServer, endpoint: str
) -> None:
    clocks = Clocks()
    async with redis_state(redis_server.url) as state:
        a, b = replica(state, clocks, failures=1), replica(state, clocks, failures=1)
        await fail(a, endpoint, 1)
        clocks.advance(5.0)
        probe = await a.admit(endpoint)
        assert not await a.record(endpoint, probe, "abandoned")
        assert await b.admit(endpoint) == Admission(probe=True)


async def test_attempts_admitted_before_it_opened_do_not_close_it(
    redis_server: RedisServer, endpoint: str
) -> None:
    clocks = Clocks()
    async with redis_state(redis_server.url) as state:
        a = replica(state, clocks, failures=1)
        early = await a.admit(endpoint)
        await fail(a, endpoint, 1)
        assert not await a.record(endpoint, early, "success")
        assert (await a.admit(endpoint)).retry_after == 5


async def test_the_shared_records_expire_and_carry_the_key_prefix(
    redis_server: RedisServer, endpoint: str
) -> None:
    clocks = Clocks()
    async with redis_state(redis_server.url) as state:
        await fail(replica(state, clocks, failures=2), endpoint, 2)
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        failures_ttl = await client.pttl(f"{KEY_PREFIX}:breakers:{endpoint}:failures")
        open_ttl = await client.pttl(f"{KEY_PREFIX}:breakers:{endpoint}:open")
        opened = await client.get(f"{KEY_PREFIX}:breakers:{endpoint}:open")
    finally:
        await client.aclose()
    assert 59_000 < failures_ttl <= 60_000
    assert 304_000 < open_ttl <= 305_000  # the cool-down and 300 s more
    assert opened == repr(clocks.wall).encode()


async def test_an_open_circuit_is_refused_from_the_mirror_while_redis_does_not_answer(
    private_redis: RedisServer, endpoint: str
) -> None:
    async with redis_state(private_redis.url, redis_timeout=2.0) as state:
        breakers = SharedCircuitBreakers(state, failures=1, cooldown=60.0)
        await fail(breakers, endpoint, 1)
        os.kill(private_redis.pid, signal.SIGSTOP)  # any Redis call would now take 2 s
        try:
            started = time.monotonic()
            for _ in range(100):
                assert (await breakers.admit(endpoint)).retry_after == 60
            elapsed = time.monotonic() - started
        finally:
            os.kill(private_redis.pid, signal.SIGCONT)
    assert elapsed < 0.01 * 100  # each well under 10 ms: no Redis round trip


async def test_a_killed_redis_falls_back_to_the_local_breaker_then_back_to_shared(
    private_redis: RedisServer, endpoint: str
) -> None:
    clocks = Clocks()
    async with redis_state(private_redis.url) as state:
        a = replica(state, clocks, failures=2)
        await fail(a, endpoint, 1)  # shared: 1
        private_redis.stop()
        admission = await a.admit(endpoint)  # the mirror is stale (failures known): local
        assert admission.retry_after is None
        assert await a.record(endpoint, admission, "failure")  # local: 1
        assert not await a.record(endpoint, await a.admit(endpoint), "failure")  # local: 2
        assert a.local.state(endpoint) == "open"
        assert a.state(endpoint) == "open"  # what /metrics reads: the local breaker's view
        assert (await a.admit(endpoint)).retry_after == 5
        private_redis.start()  # empty: the shared circuit is closed
        clocks.advance(RETRY_STATE_AFTER_S)
        assert await a.admit(endpoint) == Admission()


def test_the_app_shares_breakers_only_with_redis(redis_server: RedisServer) -> None:
    alone = Settings(_env_file=None)  # type: ignore[call-arg]
    assert isinstance(circuit_breakers(alone, state=None), LocalCircuitBreakers)  # type: ignore[arg-type]
    shared = Settings(_env_file=None, redis_url=redis_server.url)  # type: ignore[call-arg,arg-type]
    state = RedisState(redis_server.url, timeout=1.0, max_connections=1)
    assert isinstance(circuit_breakers(shared, state), SharedCircuitBreakers)


# --- two UcdClients on one Redis, a failing UCD over sockets ---------------------------------


@contextlib.asynccontextmanager
async def replica_client(ucd: LoopbackUcd, state: StateStore) -> AsyncIterator[UcdClient]:
    settings = Settings(_env_file=None, request_timeout=15)  # type: ignore[call-arg]
    async with build_http_client(settings, base_url=ucd.url) as http:
        yield UcdClient(
            http,
            partner="acme",
            token="s3cret-token-value",  # the loopback UCD takes any
            max_retries=2,
            backoff_base=0.001,
            breakers=SharedCircuitBreakers(state, failures=5, cooldown=0.3),
        )


async def test_two_replicas_pay_five_failures_together_then_one_probe_closes_both(
    private_redis: RedisServer,  # its own: the real endpoint's circuit opens in it
) -> None:
    async with (
        loopback_ucd(profile="500") as ucd,
        redis_state(private_redis.url) as state_a,
        redis_state(private_redis.url) as state_b,
        replica_client(ucd, state_a) as a,
        replica_client(ucd, state_b) as b,
    ):
        with pytest.raises(UpstreamError):
            await a.profile(PROFILE)  # 3 attempts: the first and 2 retries
        with pytest.raises(UpstreamError):
            await b.profile(PROFILE)  # the 5th attempt in all opens it: no 3rd
        assert ucd.seen[PROFILE_PATH] == 5
        for client in (a, b, a, b):
            with pytest.raises(UpstreamUnavailable) as refused:
                await client.profile(PROFILE)
            assert refused.value.extensions["code"] == "UPSTREAM_UNAVAILABLE"
        assert ucd.seen[PROFILE_PATH] == 5  # A opened too, without a failure of its own
        ucd.behaviours[PROFILE_PATH] = "ok"
        await asyncio.sleep(0.4)  # the cool-down is over: half-open
        assert await a.profile(PROFILE) is not None  # the probe, whose success closes it
        assert await b.profile(PROFILE) is not None
        assert ucd.seen[PROFILE_PATH] == 7


async def test_attempts_during_a_slow_refresh_go_on_the_mirror_without_reading_again() -> None:
    class SlowState:
        """Answers every read after ``release``: a Redis that is slow, not down."""

        def __init__(self) -> None:
            self.reads = 0
            self.release = asyncio.Event()

        async def get(self, namespace: object, key: str) -> bytes | None:
            self.reads += 1
            await self.release.wait()
            return None

    state = SlowState()
    breakers = SharedCircuitBreakers(state, refresh=0.5)  # type: ignore[arg-type]
    first = asyncio.ensure_future(breakers.admit("/p"))  # the mirror was never read
    await asyncio.sleep(0)
    others = [await breakers.admit("/p") for _ in range(10)]
    assert others == [Admission()] * 10
    assert state.reads == 1
    state.release.set()
    assert await first == Admission()
    assert state.reads == 2  # the open record, then the failure count
