"""UcdClient against a UCD that misbehaves: deadlines, Retry-After dates, honest outcomes.

Hangs, trickles and resets come from a real loopback server (``loopback_ucd``), through
both production transports, so the test sees what httpx and aiohttp really raise.
Timing bounds are generous (a shared two-core machine): the deadline plus 0.5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Literal

import httpx
import pytest

from gateway.errors import GatewayError, RateLimited, UpstreamError, UpstreamUnavailable
from gateway.reads.inflight import ProfileReads
from gateway.reads.need import ProfileNeed
from gateway.settings import Settings
from gateway.ucd.answers import ProfileAnswer
from gateway.ucd.client import UcdClient
from gateway.ucd.deadline import operation_deadline
from gateway.ucd.requests import DeleteUserRequest, ProfileRequest, UpsertUser, UserRef
from gateway.ucd.transport import build_http_client
from gateway.upserts import UpsertCoalescer
from tests.gateway.conftest import UPSERT, CallLog, GatewayHttp, free_port_url, serve_gateway
from tests.gateway.loopback_ucd import Behaviour, loopback_ucd
from tests.gateway.test_client import Script, Sleeps, make_client, ucd_json

TOKEN = "s3cret-token-value"
PROFILE = ProfileRequest(UserRef(email="ada@example.com"), attributes=("name",))
#: How far past its deadline an operation may end (event loop, two shared cores).
SLACK = 0.5


Transport = Literal["lean", "aiohttp", "httpx"]


def production_settings(transport: Transport, **values: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, http_transport=transport, request_timeout=15, **values
    )


TRANSPORTS = [
    pytest.param("lean", id="lean"),
    pytest.param("aiohttp", id="aiohttp"),
    pytest.param("httpx", id="httpx"),
]


# --- what happened, in words, through both transports ----------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_body_that_does_not_decode_is_an_upstream_error_sent_once(
    transport: Transport,
) -> None:
    """``Content-Encoding: gzip`` on a body that is not gzip: UPSTREAM_ERROR, not httpx's
    DecodingError, and not retried (the UCD answered)."""
    async with contextlib.AsyncExitStack() as stack:
        ucd = await stack.enter_async_context(loopback_ucd(every="bad-gzip"))
        http = build_http_client(production_settings(transport), base_url=ucd.url)
        stack.push_async_callback(http.aclose)
        client = UcdClient(http, partner="acme", token=TOKEN, max_retries=2, backoff_base=0.01)
        with pytest.raises(UpstreamError) as info:
            await client.profile(PROFILE)
    assert (
        info.value.message == "the UCD sent a body that does not decode (POST /api/user/v1/profile)"
    )
    assert info.value.extensions == {"code": "UPSTREAM_ERROR"}
    assert ucd.requests == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("behaviour", "words"),
    [
        pytest.param("reset", "reset the connection", id="reset"),
        pytest.param("hang", "did not answer in time", id="hang"),
        pytest.param("trickle", "did not finish its answer in time", id="trickle"),
    ],
)
async def test_each_failure_says_what_happened_within_the_deadline(
    transport: Transport, behaviour: Behaviour, words: str
) -> None:
    """The request timeout is 15 s and retries are allowed: the 1 s deadline decides."""
    async with contextlib.AsyncExitStack() as stack:
        ucd = await stack.enter_async_context(loopback_ucd(every=behaviour))
        http = build_http_client(production_settings(transport), base_url=ucd.url)
        stack.push_async_callback(http.aclose)
        client = UcdClient(http, partner="acme", token=TOKEN, max_retries=2, backoff_base=0.01)
        started = time.monotonic()
        with operation_deadline(1.0), pytest.raises(UpstreamUnavailable) as info:
            await client.profile(PROFILE)
        elapsed = time.monotonic() - started
    assert info.value.message == f"the UCD {words} (POST /api/user/v1/profile)"
    assert elapsed < 1.0 + SLACK
    if behaviour == "reset":
        assert ucd.requests == 3  # a read is retried; a reset costs no time
    else:
        assert ucd.requests == 1  # the one attempt used the whole deadline
        assert elapsed >= 0.9


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_refused_connection_says_so_through_both_transports(transport: Transport) -> None:
    http = build_http_client(production_settings(transport), base_url=free_port_url())
    async with http:
        client = UcdClient(http, partner="acme", token=TOKEN, max_retries=0)
        with pytest.raises(UpstreamUnavailable) as info:
            await client.profile(PROFILE)
    assert info.value.message == "the UCD refused the connection (POST /api/user/v1/profile)"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_reset_delete_is_not_repeated_and_its_outcome_unknown(transport: Transport) -> None:
    async with contextlib.AsyncExitStack() as stack:
        ucd = await stack.enter_async_context(loopback_ucd(every="reset"))
        http = build_http_client(production_settings(transport), base_url=ucd.url)
        stack.push_async_callback(http.aclose)
        client = UcdClient(http, partner="acme", token=TOKEN, max_retries=2)
        with pytest.raises(GatewayError) as info:
            await client.delete_user(DeleteUserRequest(UserRef(uuid="a")))
    assert info.value.extensions == {"code": "UPSTREAM_OUTCOME_UNKNOWN"}
    assert info.value.message == (
        "the UCD may or may not have applied POST /api/user/v1/delete: "
        "its answer was lost (connection reset)"
    )
    assert ucd.requests == 1


async def test_outside_an_operation_a_trickle_is_cut_at_the_request_timeout() -> None:
    """/readyz and seeding have no deadline; the request timeout bounds each attempt whole."""
    async with loopback_ucd(every="trickle") as ucd:
        settings = Settings(_env_file=None, request_timeout=0.5)  # type: ignore[call-arg]
        async with build_http_client(settings, base_url=ucd.url) as http:
            client = UcdClient(http, partner="acme", token=TOKEN, max_retries=0)
            started = time.monotonic()
            with pytest.raises(UpstreamUnavailable, match="did not finish its answer in time"):
                await client.profile(PROFILE)
            assert time.monotonic() - started < 0.5 + SLACK
    assert ucd.requests == 1


# --- the deadline over GraphQL -------------------------------------------------------------


@pytest.mark.parametrize("behaviour", ["hang", "trickle"])
async def test_a_graphql_operation_ends_within_its_deadline(behaviour: Behaviour) -> None:
    async with loopback_ucd(every=behaviour) as ucd:
        settings = production_settings("aiohttp", operation_timeout=1.0, ucd_base_url=ucd.url)
        calls = CallLog()
        http = build_http_client(settings)
        http.event_hooks["request"].append(calls.record)
        async with http, serve_gateway(settings, http) as gw:
            started = time.monotonic()
            error = await gw.error('{ user(key: {uuid: "u"}) { name } }')
            elapsed = time.monotonic() - started
    assert error["extensions"] == {"code": "UPSTREAM_UNAVAILABLE"}
    assert elapsed < 1.0 + SLACK
    assert len(calls.profiles) == 1 == ucd.requests


@pytest.mark.parametrize(
    "ucd_faults",
    [{"endpoints": {"delete_user": {"drop_after_commit_rate": 1}}}],
    indirect=True,
)
async def test_a_delete_whose_answer_was_dropped_is_outcome_unknown_and_sent_once(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    user = {"key": {"uuid": "gone"}, "attributes": {"name": "Ada"}}
    await gateway_http.ok(UPSERT, {"input": {"users": [user]}})
    ucd_calls.clear()
    error = await gateway_http.error('mutation { deleteUser(key: {uuid: "gone"}) { ok } }')
    assert error["extensions"] == {"code": "UPSTREAM_OUTCOME_UNKNOWN"}
    assert error["message"] == (
        "the UCD may or may not have applied POST /api/user/v1/delete: "
        "its answer was lost (connection dropped)"
    )
    assert ucd_calls.paths == ["/api/user/v1/delete"]
    # And it was applied: the local UCD committed before dropping the answer.
    data = await gateway_http.ok('{ user(key: {uuid: "gone"}) { name } }')
    assert data == {"user": None}


# --- retries and waits inside the deadline ---------------------------------------------------


def _busy(retry_after: str) -> httpx.Response:
    return ucd_json(429, {"error": "rejected: too many requests"}, {"Retry-After": retry_after})


def _http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_from_now), usegmt=True)


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        pytest.param("7", 7, 7, id="seconds"),
        # Written when the test runs (not when it is collected): 30 s from then.
        pytest.param("in 30 s", 28, 30, id="http-date-ahead"),
        pytest.param("Wed, 21 Oct 2015 07:28:00 GMT", 1, 1, id="http-date-past"),
        pytest.param("soon", 1, 1, id="unparseable"),
    ],
)
async def test_retry_after_is_read_as_seconds_or_an_http_date(
    header: str, low: int, high: int
) -> None:
    if header == "in 30 s":
        header = _http_date(30)
    client, _ = make_client(Script(_busy(header)), max_retries=0)
    with pytest.raises(RateLimited) as info:
        await client.profile(PROFILE)
    assert low <= info.value.retry_after <= high
    assert info.value.extensions == {"code": "RATE_LIMITED", "retryAfter": info.value.retry_after}


async def test_an_http_date_retry_after_is_waited_out_then_retried() -> None:
    sleeps = Sleeps()
    script = Script(_busy(_http_date(3)), ucd_json(200, {"attributes": {}}))
    client, seen = make_client(script, sleeps)
    assert await client.profile(PROFILE) == ProfileAnswer({}, {})
    assert len(sleeps.delays) == 1
    assert 2 <= sleeps.delays[0] <= 3
    assert len(seen) == 2


async def test_a_retry_after_past_the_deadline_is_not_waited() -> None:
    sleeps = Sleeps()
    client, seen = make_client(Script(_busy("3")), sleeps, max_retries=2)
    with operation_deadline(1.0), pytest.raises(RateLimited) as info:
        await client.profile(PROFILE)
    assert info.value.retry_after == 3
    assert sleeps.delays == []
    assert len(seen) == 1


async def test_a_5xx_burst_is_retried_while_the_deadline_allows() -> None:
    failed = ucd_json(500, {"success": False, "message": "unknown error"})
    sleeps = Sleeps()
    script = Script(failed, failed, ucd_json(200, {"attributes": {}}))
    client, seen = make_client(script, sleeps, max_retries=2)
    with operation_deadline(5.0):
        assert await client.profile(PROFILE) == ProfileAnswer({}, {})
    assert len(seen) == 3
    # A backoff that would end past the deadline is not started: the 500 is the answer.
    slow = Sleeps()
    client, seen = make_client(Script(failed), slow, max_retries=2, backoff_base=100.0)
    with operation_deadline(0.5), pytest.raises(UpstreamError) as info:
        await client.profile(PROFILE)
    assert info.value.extensions == {"code": "UPSTREAM_ERROR", "status": 500}
    # Jittered (0..100 s): whatever was drawn, no wait that would end past it was started.
    assert all(d < 0.5 for d in slow.delays)
    assert len(seen) == len(slow.delays) + 1


async def test_a_call_made_after_the_deadline_is_not_sent() -> None:
    client, seen = make_client(Script(ucd_json(200, {"attributes": {}})))
    with operation_deadline(-1.0), pytest.raises(UpstreamUnavailable) as info:
        await client.profile(PROFILE)
    assert "deadline had passed" in info.value.message
    assert seen == []


# --- calls shared between operations with different deadlines --------------------------------


def _slow_ucd(seconds: float, body: Any) -> tuple[UcdClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        await asyncio.sleep(seconds)
        return ucd_json(200, body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://ucd.test")
    return UcdClient(http, partner="acme", token=TOKEN), seen


async def test_a_shared_read_waiter_stops_at_its_own_deadline_while_the_call_goes_on() -> None:
    ucd, seen = _slow_ucd(1.0, {"attributes": {"name": "Ada"}})
    reads = ProfileReads(ucd)
    ref = UserRef(uuid="a")
    need = ProfileNeed(attributes=frozenset({"name"}))
    patient = asyncio.create_task(reads.fetch(ref, need))  # no deadline: waits it out
    await asyncio.sleep(0.05)

    async def hurried() -> ProfileAnswer | None:
        with operation_deadline(0.2):
            return await reads.fetch(ref, need)

    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable, match="within the operation's deadline"):
        await hurried()
    assert time.monotonic() - started < 0.2 + SLACK
    answer = await patient
    assert answer is not None
    assert answer.attributes == {"name": "Ada"}
    assert len(seen) == 1
    assert reads.shared == 1


async def test_a_coalesced_upsert_runs_until_the_latest_deadline_of_its_callers() -> None:
    ucd, seen = _slow_ucd(1.0, {"data": {"successful": {"count": 2}, "fail": {}}})
    coalescer = UpsertCoalescer(ucd, window_ms=20)

    async def submit(uuid: str, seconds: float) -> Any:
        with operation_deadline(seconds):
            return await coalescer.submit(UpsertUser(UserRef(uuid=uuid), {"name": uuid}))

    hurried = asyncio.create_task(submit("a", 0.3))
    patient = asyncio.create_task(submit("b", 5.0))
    with pytest.raises(UpstreamUnavailable):
        await hurried
    outcome = await patient
    assert outcome.ok
    assert len(seen) == 1
    await coalescer.aclose()
