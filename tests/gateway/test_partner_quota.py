"""The partner's UCD quota shared by replicas: never more than the share of a pool's limit
in any sliding minute, leases instead of a shared-state call per UCD call, refusals
before the UCD, a Redis outage failing open; over HTTP, two apps on one real Redis."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from gateway.errors import RateLimited, StateUnavailable
from gateway.partner_quota import WINDOW, PartnerQuota
from gateway.settings import Settings
from gateway.state.memory import MemoryState
from gateway.state.protocol import Namespace
from gateway.state.redis import RedisState
from gateway.ucd.client import UcdClient
from gateway.ucd.quota import ANONYMIZE, PROFILE, UPSERT, pool_of, units_of
from gateway.ucd.requests import ProfileRequest, UserRef
from tests.gateway.conftest import (
    GATEWAY_BASE,
    TOKEN,
    CallLog,
    HookRelay,
    free_port_url,
    put_users,
    serve_gateway,
)
from tests.gateway.redis_server import RedisServer


class Clock:
    """Wall-clock seconds that only move when told (a replica's ``time.time``)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class CountingState(MemoryState):
    """The in-process store, counting the increments a quota asks of it."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.increments = 0

    async def increment(self, namespace: Namespace, key: str, amount: int, *, ttl: float) -> int:
        self.increments += 1
        await asyncio.sleep(0)  # a round trip: other tasks run meanwhile
        return await super().increment(namespace, key, amount, ttl=ttl)


# --- pools and costs ----------------------------------------------------------------------


def test_each_ucd_call_spends_from_its_pool() -> None:
    assert pool_of("POST", "/api/user/v1/upsert") is UPSERT
    assert pool_of("POST", "/api/user/v1/attribute/delete") is UPSERT
    assert pool_of("POST", "/api/user/v1/profile") is PROFILE
    assert pool_of("POST", "/api/contact/v1/anonymize") is ANONYMIZE
    assert pool_of("POST", "/api/user/v1/anonymize") is ANONYMIZE
    assert pool_of("PATCH", "/api/user/v1/identity") != pool_of("DELETE", "/api/user/v1/identity")
    assert pool_of("POST", "/api/raw/v1/export") is None
    assert pool_of("POST", "/api/user/v3/metadata/columns") is None


def test_a_profile_read_costs_one_plus_its_distinct_wanted_events() -> None:
    wanted: list[dict[str, object]] = [
        {"event_name": n, "params": []} for n in ("view", "buy", "view")
    ]
    body = {"insider_id": "x", "events": {"start_date": 0, "end_date": 1, "wanted": wanted}}
    assert units_of(PROFILE, body) == 3
    assert units_of(PROFILE, {"insider_id": "x", "attributes": ["name"]}) == 1
    assert units_of(UPSERT, {"users": [{}] * 500}) == 1


# --- the budget ---------------------------------------------------------------------------


def test_a_window_allows_a_seventh_of_the_shared_minute() -> None:
    quota = PartnerQuota(MemoryState(), "p", 1.0)
    assert quota.allowance(PROFILE) == 142  # 7 windows of 10 s touch any minute: 994
    assert quota.allowance(UPSERT) == 3571
    assert PartnerQuota(MemoryState(), "p", 0.5).allowance(ANONYMIZE) == 35


async def test_two_replicas_spend_exactly_one_allowance_per_window() -> None:
    clock = Clock()
    clock.now = WINDOW * 100_000 + 1  # the start of a window
    state = MemoryState(clock=clock)
    replicas = [PartnerQuota(state, "p", 1.0, clock=clock) for _ in range(2)]
    granted = 0
    for _ in range(400):
        for replica in replicas:
            if await replica.take(PROFILE, 1) is None:
                granted += 1
    assert granted == 142
    wait = await replicas[0].take(PROFILE, 1)
    assert wait == pytest.approx(WINDOW - 1)
    clock.now += WINDOW
    assert await replicas[1].take(PROFILE, 1) is None  # a new window, a new allowance


async def test_no_sliding_minute_holds_more_than_the_share_whatever_the_timing() -> None:
    rng = random.Random(8)
    clock = Clock()
    state = MemoryState(clock=clock)
    replicas = [PartnerQuota(state, "p", 0.5, clock=clock) for _ in range(3)]
    spent: list[tuple[float, int]] = []
    for _ in range(20_000):  # about six minutes of bursts and lulls
        clock.now += rng.expovariate(60.0 if rng.random() < 0.8 else 2.0)
        units = rng.choice((1, 1, 1, 2, 4))
        if await rng.choice(replicas).take(PROFILE, units) is None:
            spent.append((clock.now, units))
    assert sum(units for _, units in spent) > 2_000  # the budget was used, not just refused
    start = 0
    in_minute = 0
    for end, (at, units) in enumerate(spent):
        in_minute += units
        while spent[start][0] <= at - 60.0:
            in_minute -= spent[start][1]
            start += 1
        assert in_minute <= 500, f"{in_minute} units in the minute ending at {at} ({end})"


async def test_most_calls_are_answered_from_the_lease_without_the_shared_state() -> None:
    clock = Clock()
    clock.now = WINDOW * 100_000
    state = CountingState(clock)
    quota = PartnerQuota(state, "p", 1.0, clock=clock)
    answers = await asyncio.gather(*(quota.take(UPSERT, 1) for _ in range(1_000)))
    assert all(answer is None for answer in answers)
    # 1,000 calls in leases of 224 (a sixteenth of 3,571): 5 refills, one at a time.
    assert state.increments == 5


async def test_a_call_dearer_than_a_window_takes_the_whole_window() -> None:
    clock = Clock()
    clock.now = WINDOW * 100_000
    quota = PartnerQuota(MemoryState(clock=clock), "p", 0.07, clock=clock)  # 10 a window
    assert await quota.take(PROFILE, 50) is None
    assert await quota.take(PROFILE, 1) == pytest.approx(WINDOW)


async def test_partners_on_one_store_have_their_own_budgets() -> None:
    clock = Clock()
    state = MemoryState(clock=clock)
    one = PartnerQuota(state, "one", 0.07, clock=clock)
    two = PartnerQuota(state, "two", 0.07, clock=clock)
    assert await one.take(PROFILE, 10) is None
    assert await one.take(PROFILE, 1) is not None
    assert await two.take(PROFILE, 10) is None


async def test_a_redis_outage_fails_open_to_this_processes_counters() -> None:
    clock = Clock()
    clock.now = WINDOW * 100_000
    state = RedisState(
        free_port_url().replace("http://", "redis://"), timeout=0.5, max_connections=2
    )
    quota = PartnerQuota(state, "p", 0.07, clock=clock)
    with pytest.raises(StateUnavailable):
        await state.increment(Namespace.UCD_QUOTA, "k", 1, ttl=1)
    answers = [await quota.take(PROFILE, 1) for _ in range(11)]
    assert answers[:10] == [None] * 10  # counted here: the share still holds per process
    assert answers[10] is not None
    await state.aclose()


async def test_replicas_on_a_real_redis_share_one_allowance(redis_server: RedisServer) -> None:
    partner = f"partner-{uuid.uuid4().hex[:8]}"  # the session's Redis is shared
    clock = Clock()
    clock.now = WINDOW * 100_000
    states = [RedisState(redis_server.url, timeout=2.0, max_connections=2) for _ in range(3)]
    replicas = [PartnerQuota(state, partner, 0.07, clock=clock) for state in states]
    granted = 0
    for _ in range(10):
        for replica in replicas:
            granted += await replica.take(PROFILE, 1) is None
    assert granted == 10
    for state in states:
        await state.aclose()


# --- the UCD client's use of it --------------------------------------------------------------


async def test_the_client_waits_for_the_next_window_when_it_fits_its_retries(
    ucd_http: httpx.AsyncClient, ucd_calls: CallLog
) -> None:
    clock = Clock()
    clock.now = WINDOW * 100_000 + 9.5  # half a second left in the window
    quota = PartnerQuota(MemoryState(clock=clock), "local", 0.007, clock=clock)  # 1 a window
    client = UcdClient(ucd_http, partner="local", token=TOKEN, quota=quota, sleep=clock.sleep)
    request = ProfileRequest(UserRef(uuid="nobody"), attributes=("name",))
    assert await client.profile(request) is None
    assert await client.profile(request) is None  # waited 0.5 s (on the clock) for room
    assert clock.now == pytest.approx(WINDOW * 100_001)
    assert len(ucd_calls.profiles) == 2
    with pytest.raises(RateLimited) as refused:
        await UcdClient(ucd_http, partner="local", token=TOKEN, quota=quota, max_retries=0).profile(
            request
        )
    assert refused.value.retry_after == 10
    assert "profile quota" in str(refused.value)
    assert len(ucd_calls.profiles) == 2  # refused before the wire


# --- over HTTP ----------------------------------------------------------------------------


def test_the_share_is_a_fraction_of_the_limits() -> None:
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None, ucd_quota_share=2)  # type: ignore[call-arg]
    assert error.value.errors()[0]["loc"] == ("ucd_quota_share",)


async def test_replicas_on_one_redis_spend_one_budget_and_refuse_before_the_ucd(
    tmp_path: Path,
    private_redis: RedisServer,
    ucd: UcdClient,
    ucd_http: httpx.AsyncClient,
    hooks: HookRelay,
    ucd_calls: CallLog,
) -> None:
    for n in range(12):
        await put_users(ucd, {"identifiers": {"uuid": f"q-{n}"}, "attributes": {"city": f"c{n}"}})
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        public_url=GATEWAY_BASE,
        redis_url=private_redis.url,  # type: ignore[arg-type]
        ucd_quota_share=0.07,  # E2: 1,000 units a minute -> 10 a 10 s window
        max_retry_after=0,  # refuse at once rather than wait for the next window
    )
    # The 11 reads below must fall in one window: start early in one.
    if time.time() % WINDOW > WINDOW - 4:
        await asyncio.sleep(WINDOW - time.time() % WINDOW + 0.05)
    async with (
        serve_gateway(settings, ucd_http, hooks) as one,
        serve_gateway(settings, ucd_http, HookRelay()) as two,
    ):
        ucd_calls.clear()
        for n in range(10):
            replica = (one, two)[n % 2]
            data = await replica.ok(f'{{ user(key: {{uuid: "q-{n}"}}) {{ city }} }}')
            assert data == {"user": {"city": f"c{n}"}}
        assert len(ucd_calls.profiles) == 10
        error = await two.error('{ user(key: {uuid: "q-10"}) { city } }')
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert 1 <= error["extensions"]["retryAfter"] <= WINDOW
        assert "quota" in error["message"]
        assert len(ucd_calls.profiles) == 10
        # Writes spend from their own pool, untouched by the reads.
        written = await one.ok(
            'mutation { upsertUsers(input: {users: [{key: {uuid: "q-11"}, '
            'attributes: {city: "Oslo"}}]}) { successCount } }'
        )
        assert written == {"upsertUsers": {"successCount": 1}}
