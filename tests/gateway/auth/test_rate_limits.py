"""Per-principal rate limits over HTTP: counted in planned UCD calls, refused with 429
before the UCD, per principal, per key, and shared by two apps on one real Redis."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from gateway.auth.api_keys import sha256_hex
from gateway.errors import StateUnavailable
from gateway.rate_limits import RateLimit, RateLimiter
from gateway.settings import Settings
from gateway.state.memory import MemoryState
from gateway.state.protocol import Namespace
from gateway.state.redis import RedisState
from gateway.ucd.client import UcdClient
from tests.gateway.auth.conftest import auth_settings, authed_gateway, body, call, key_of
from tests.gateway.conftest import CallLog, HookRelay, free_port_url, put_users
from tests.gateway.redis_server import RedisServer

USER = '{ user(key: {uuid: "u-1"}) { city } }'
THREE_USERS = '{ users(keys: [{uuid: "u-1"}, {uuid: "u-2"}, {uuid: "u-3"}]) { city } }'


@pytest.fixture
async def ada(ucd: UcdClient) -> None:
    await put_users(ucd, {"identifiers": {"uuid": "u-1"}, "attributes": {"city": "London"}})


@pytest.mark.usefixtures("ada")
async def test_the_601st_operation_of_a_window_is_refused_before_the_ucd(
    keys_file: Path, ucd_http: httpx.AsyncClient, hooks: HookRelay, ucd_calls: CallLog
) -> None:
    settings = auth_settings(keys_file, None, rate_limit="600/hour")
    async with authed_gateway(settings, ucd_http, hooks) as gw:
        for _ in range(600):  # an operation without UCD calls costs 1
            response = await call(gw, "{ __typename }", persona="reader")
            assert response.status_code == 200
        ucd_calls.clear()
        refused = await call(gw, USER, persona="reader")
        assert refused.status_code == 429
        assert body(refused)["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert 1 <= int(refused.headers["retry-after"]) <= 3600
        assert ucd_calls.calls == []
        # Another principal has its own budget.
        other = await call(gw, USER, persona="pii-reader")
        assert other.status_code == 200
        assert body(other)["data"] == {"user": {"city": "London"}}
        assert len(ucd_calls.calls) == 1


async def test_the_unit_is_the_planned_ucd_call(
    keys_file: Path, ucd_http: httpx.AsyncClient, hooks: HookRelay, ucd_calls: CallLog
) -> None:
    """Three users are three UCD calls: a budget of 5 allows one such read, not two."""
    settings = auth_settings(keys_file, None, rate_limit="5/hour")
    async with authed_gateway(settings, ucd_http, hooks) as gw:
        assert (await call(gw, THREE_USERS, persona="reader")).status_code == 200
        ucd_calls.clear()
        assert (await call(gw, THREE_USERS, persona="reader")).status_code == 429
        assert ucd_calls.calls == []


async def test_a_keys_own_rate_limit_overrides_the_default(
    tmp_path: Path, ucd_http: httpx.AsyncClient, hooks: HookRelay
) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text(
        f'[[keys]]\nid = "slow"\nsha256 = "{sha256_hex(key_of("slow"))}"\n'
        'scopes = ["profile:read"]\nrate_limit = "2/hour"\n'
        f'[[keys]]\nid = "fast"\nsha256 = "{sha256_hex(key_of("fast"))}"\n'
        'scopes = ["profile:read"]\n'
    )
    settings = auth_settings(keys, None, rate_limit="100/hour")
    async with authed_gateway(settings, ucd_http, hooks) as gw:
        statuses = [(await call(gw, "{ __typename }", persona="slow")).status_code for _ in "abc"]
        assert statuses == [200, 200, 429]
        fast = [(await call(gw, "{ __typename }", persona="fast")).status_code for _ in "abc"]
        assert fast == [200, 200, 200]


async def test_without_a_limit_nobody_is_limited(
    keys_file: Path, ucd_http: httpx.AsyncClient, hooks: HookRelay
) -> None:
    async with authed_gateway(auth_settings(keys_file, None), ucd_http, hooks) as gw:
        for _ in range(20):
            assert (await call(gw, "{ __typename }", persona="reader")).status_code == 200


async def test_two_apps_on_one_redis_share_the_limit(
    tmp_path: Path,
    redis_server: RedisServer,
    ucd_http: httpx.AsyncClient,
    hooks: HookRelay,
    ucd_calls: CallLog,
) -> None:
    caller = f"replicated-{uuid.uuid4().hex[:8]}"  # the session's Redis is shared: own id
    keys = tmp_path / "keys.toml"
    keys.write_text(
        f'[[keys]]\nid = "{caller}"\nsha256 = "{sha256_hex(key_of(caller))}"\n'
        'scopes = ["profile:read"]\n'
    )
    settings = auth_settings(keys, None, rate_limit="3/hour", redis_url=redis_server.url)
    async with (
        authed_gateway(settings, ucd_http, hooks) as one,
        authed_gateway(settings, ucd_http, HookRelay()) as two,
    ):
        assert (await call(one, "{ __typename }", persona=caller)).status_code == 200
        assert (await call(two, "{ __typename }", persona=caller)).status_code == 200
        assert (await call(one, "{ __typename }", persona=caller)).status_code == 200
        ucd_calls.clear()
        assert (await call(two, USER, persona=caller)).status_code == 429
        assert ucd_calls.calls == []


async def test_a_redis_outage_fails_open_to_this_processes_counters() -> None:
    url = free_port_url().replace("http://", "redis://")
    state = RedisState(url, timeout=0.5, max_connections=2)
    wall = [1_000.0]
    limiter = RateLimiter(state, "2/minute", clock=lambda: wall[0])
    with pytest.raises(StateUnavailable):
        await state.increment(Namespace.RATE_LIMITS, "k", 1, ttl=60)
    decisions = [await limiter.take("api-key:a", None, 1) for _ in range(3)]
    assert [d.retry_after if d else "none" for d in decisions] == [None, None, 20]
    await state.aclose()


async def test_counters_expire_with_their_window() -> None:
    wall = [120.0]
    limiter = RateLimiter(MemoryState(clock=lambda: wall[0]), "1/minute", clock=lambda: wall[0])
    first = await limiter.take("p", None, 1)
    assert first is not None
    assert first.retry_after is None
    refused = await limiter.take("p", None, 1)
    assert refused is not None
    assert refused.retry_after == 60
    wall[0] += 60  # the next window
    again = await limiter.take("p", None, 1)
    assert again is not None
    assert again.retry_after is None
    assert RateLimit.parse("10/day") == RateLimit(10, 86_400, "10/day")


async def test_redis_counters_add_up_and_expire(redis_server: RedisServer) -> None:
    state = RedisState(redis_server.url, timeout=1.0, max_connections=2)
    key = uuid.uuid4().hex
    assert await state.increment(Namespace.RATE_LIMITS, key, 2, ttl=0.2) == 2
    assert await state.increment(Namespace.RATE_LIMITS, key, 3, ttl=0.2) == 5
    await asyncio.sleep(0.3)  # the first increment's expiry, not moved by the second
    assert await state.increment(Namespace.RATE_LIMITS, key, 1, ttl=0.2) == 1
    await state.aclose()


async def test_the_in_process_counters_stay_bounded() -> None:
    state = MemoryState(max_entries=3)
    for n in range(10):
        await state.increment(Namespace.RATE_LIMITS, str(n), 1, ttl=60)
    assert await state.increment(Namespace.RATE_LIMITS, "9", 1, ttl=60) == 2
    assert await state.increment(Namespace.RATE_LIMITS, "0", 1, ttl=60) == 1  # evicted


def test_a_malformed_rate_limit_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValidationError, match="rate_limit"):
        Settings(_env_file=None, rate_limit="600/fortnight")  # type: ignore[call-arg]
