"""The circuit breaker per UCD endpoint: its states, and UcdClient through it over sockets.

UCD requests are counted on the wire (``LoopbackUcd.seen``); the one timing bound (an open
circuit answers at once) is generous for a shared two-core machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.errors import BadUserInput, RateLimited, UpstreamError, UpstreamUnavailable
from gateway.settings import Settings
from gateway.ucd.breaker import Admission, LocalCircuitBreakers
from gateway.ucd.client import UcdClient
from gateway.ucd.paths import PROFILE_PATH, UPSERT_PATH
from gateway.ucd.requests import ProfileRequest, UpsertRequest, UpsertUser, UserRef
from gateway.ucd.transport import build_http_client
from tests.gateway.conftest import CallLog, GatewayHttp, serve_gateway
from tests.gateway.loopback_ucd import LoopbackUcd, loopback_ucd

TOKEN = "s3cret-token-value"
PROFILE = ProfileRequest(UserRef(email="ada@example.com"), attributes=("name",))
UPSERT = UpsertRequest((UpsertUser(UserRef(uuid="a"), {"name": "Ada"}),))


# --- the states, on a clock the test moves -------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def fail(breakers: LocalCircuitBreakers, endpoint: str, times: int) -> list[bool]:
    closed = []
    for _ in range(times):
        admission = await breakers.admit(endpoint)
        closed.append(await breakers.record(endpoint, admission, "failure"))
    return closed


async def test_the_fifth_consecutive_failure_opens_the_circuit() -> None:
    clock = Clock()
    breakers = LocalCircuitBreakers(failures=5, cooldown=5.0, clock=clock)
    assert await fail(breakers, "/p", 5) == [True, True, True, True, False]
    assert breakers.state("/p") == "open"
    clock.now += 1.2
    assert await breakers.admit("/p") == Admission(retry_after=4)  # 3.8 s, in whole seconds


async def test_a_success_resets_the_count_of_consecutive_failures() -> None:
    breakers = LocalCircuitBreakers(failures=3)
    await fail(breakers, "/p", 2)
    await breakers.record("/p", await breakers.admit("/p"), "success")
    assert await fail(breakers, "/p", 2) == [True, True]
    assert breakers.state("/p") == "closed"


async def test_abandoned_attempts_do_not_count() -> None:
    breakers = LocalCircuitBreakers(failures=2)
    for _ in range(5):
        await breakers.record("/p", await breakers.admit("/p"), "abandoned")
    assert breakers.state("/p") == "closed"


async def test_after_the_cooldown_exactly_one_probe_goes() -> None:
    clock = Clock()
    breakers = LocalCircuitBreakers(failures=1, cooldown=5.0, clock=clock)
    await fail(breakers, "/p", 1)
    clock.now += 5.0
    assert breakers.state("/p") == "half-open"
    probe = await breakers.admit("/p")
    assert probe == Admission(probe=True)
    assert await breakers.admit("/p") == Admission(retry_after=1)  # the probe is out
    assert await breakers.record("/p", probe, "success")
    assert breakers.state("/p") == "closed"
    assert await breakers.admit("/p") == Admission()


async def test_a_failed_probe_opens_the_circuit_for_another_cooldown() -> None:
    clock = Clock()
    breakers = LocalCircuitBreakers(failures=1, cooldown=5.0, clock=clock)
    await fail(breakers, "/p", 1)
    clock.now += 6.0
    probe = await breakers.admit("/p")
    assert not await breakers.record("/p", probe, "failure")
    assert await breakers.admit("/p") == Admission(retry_after=5)


async def test_an_abandoned_probe_is_handed_to_the_next_caller() -> None:
    clock = Clock()
    breakers = LocalCircuitBreakers(failures=1, cooldown=5.0, clock=clock)
    await fail(breakers, "/p", 1)
    clock.now += 5.0
    await breakers.record("/p", await breakers.admit("/p"), "abandoned")
    assert await breakers.admit("/p") == Admission(probe=True)


async def test_attempts_admitted_before_it_opened_do_not_close_it() -> None:
    breakers = LocalCircuitBreakers(failures=1, cooldown=5.0, clock=Clock())
    early = await breakers.admit("/p")
    await fail(breakers, "/p", 1)
    assert not await breakers.record("/p", early, "success")
    assert breakers.state("/p") == "open"


# --- UcdClient through the breaker, over sockets -------------------------------------------


@contextlib.asynccontextmanager
async def client_of(
    ucd: LoopbackUcd, *, cooldown: float = 60.0, max_retries: int = 2
) -> AsyncIterator[UcdClient]:
    settings = Settings(_env_file=None, request_timeout=15)  # type: ignore[call-arg]
    async with build_http_client(settings, base_url=ucd.url) as http:
        breakers = LocalCircuitBreakers(failures=5, cooldown=cooldown)
        yield UcdClient(
            http,
            partner="acme",
            token=TOKEN,
            max_retries=max_retries,
            backoff_base=0.001,
            breakers=breakers,
        )


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [pytest.param("500", UpstreamError, id="5xx"), pytest.param("reset", UpstreamUnavailable)],
)
async def test_five_consecutive_failures_open_the_circuit_then_nothing_is_sent(
    behaviour: Any, error: type[Exception]
) -> None:
    async with loopback_ucd(profile=behaviour) as ucd, client_of(ucd) as client:
        with pytest.raises(error):
            await client.profile(PROFILE)  # 3 attempts: the first and 2 retries
        assert ucd.seen[PROFILE_PATH] == 3
        with pytest.raises(error):
            await client.profile(PROFILE)  # the 5th attempt opens it: no 3rd retry
        assert ucd.seen[PROFILE_PATH] == 5
        started = time.monotonic()
        for _ in range(100):
            with pytest.raises(UpstreamUnavailable) as info:
                await client.profile(PROFILE)
        elapsed = time.monotonic() - started
    assert ucd.seen[PROFILE_PATH] == 5
    assert info.value.extensions == {"code": "UPSTREAM_UNAVAILABLE", "retryAfter": 60}
    assert info.value.message == (
        "the UCD is not called: POST /api/user/v1/profile kept failing; "
        "the gateway tries it again in 60 s"
    )
    assert elapsed < 0.5  # 100 refusals; each takes microseconds


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [pytest.param("400", BadUserInput, id="400"), pytest.param("429", RateLimited, id="429")],
)
async def test_refusals_and_rate_limits_are_answers_not_failures(
    behaviour: Any, error: type[Exception]
) -> None:
    async with loopback_ucd(profile=behaviour) as ucd, client_of(ucd, max_retries=0) as client:
        for _ in range(8):
            with pytest.raises(error):
                await client.profile(PROFILE)
    assert ucd.seen[PROFILE_PATH] == 8


async def test_the_probe_closes_the_circuit_when_it_succeeds() -> None:
    async with loopback_ucd(profile="500") as ucd, client_of(ucd, cooldown=0.2) as client:
        for _ in range(2):
            with pytest.raises(UpstreamError):
                await client.profile(PROFILE)
        assert ucd.seen[PROFILE_PATH] == 5
        ucd.behaviours[PROFILE_PATH] = "ok"
        await asyncio.sleep(0.3)
        answer = await client.profile(PROFILE)
        assert answer is not None
        assert answer.attributes == {"name": "Ada"}
        assert ucd.seen[PROFILE_PATH] == 6
        await client.profile(PROFILE)
    assert ucd.seen[PROFILE_PATH] == 7


async def test_the_probe_reopens_the_circuit_when_it_fails() -> None:
    async with loopback_ucd(profile="500") as ucd, client_of(ucd, cooldown=0.2) as client:
        for _ in range(2):
            with pytest.raises(UpstreamError):
                await client.profile(PROFILE)
        await asyncio.sleep(0.3)
        with pytest.raises(UpstreamError):
            await client.profile(PROFILE)  # the probe, and no retry after it failed
        assert ucd.seen[PROFILE_PATH] == 6
        with pytest.raises(UpstreamUnavailable) as info:
            await client.profile(PROFILE)
    assert info.value.retry_after == 1
    assert ucd.seen[PROFILE_PATH] == 6


async def test_endpoints_have_circuits_of_their_own() -> None:
    async with loopback_ucd(profile="500") as ucd, client_of(ucd) as client:
        for _ in range(2):
            with pytest.raises(UpstreamError):
                await client.profile(PROFILE)
        with pytest.raises(UpstreamUnavailable):
            await client.profile(PROFILE)
        envelope = await client.upsert(UPSERT)
    assert envelope.successful_count == 1
    assert ucd.seen == {PROFILE_PATH: 5, UPSERT_PATH: 1}


# --- over GraphQL, against the local UCD's fault injection ---------------------------------


@pytest.mark.parametrize(
    "ucd_faults", [{"endpoints": {"profile": {"error_500_rate": 1}}}], indirect=True
)
async def test_an_open_circuit_answers_upstream_unavailable_with_retry_after(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    query = '{ user(key: {uuid: "u"}) { name } }'
    for _ in range(2):
        error = await gateway_http.error(query)
        assert error["extensions"] == {"code": "UPSTREAM_ERROR", "status": 500}
    assert len(ucd_calls.profiles) == 5
    error = await gateway_http.error(query)
    assert error["extensions"] == {"code": "UPSTREAM_UNAVAILABLE", "retryAfter": 5}
    assert len(ucd_calls.profiles) == 5


async def test_settings_choose_the_threshold_and_cooldown() -> None:
    async with loopback_ucd(profile="500") as ucd:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            ucd_base_url=ucd.url,
            max_retries=0,
            breaker_failures=2,
            breaker_cooldown=30,
        )
        async with build_http_client(settings) as http, serve_gateway(settings, http) as gw:
            for _ in range(2):
                await gw.error('{ user(key: {uuid: "u"}) { name } }')
            error = await gw.error('{ user(key: {uuid: "u"}) { name } }')
    assert error["extensions"] == {"code": "UPSTREAM_UNAVAILABLE", "retryAfter": 30}
    assert ucd.seen[PROFILE_PATH] == 2
