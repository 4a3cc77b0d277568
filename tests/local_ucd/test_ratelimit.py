"""Rate limits (§2.6): sliding windows, Retry-After, the export day, and E2's quota."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from gateway.local_ucd.config import LocalUcdConfig
from gateway.local_ucd.http import TOO_MANY_REQUESTS, ApiError
from gateway.local_ucd.ratelimit import POOL_LIMITS, RateLimiter
from tests.local_ucd.conftest import PARTNER, TOKEN, FakeClock, serve


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def limiter(clock: FakeClock, *, strict: bool = True) -> RateLimiter:
    return RateLimiter(strict, clock=clock, wall=clock.now)


def refused(rl: RateLimiter, partner: str, pool: str, cost: float = 1) -> int:
    """Admit expecting a 429; return its Retry-After."""
    with pytest.raises(ApiError) as caught:
        rl.admit(partner, pool, cost)
    assert caught.value.status == 429
    assert caught.value.body == TOO_MANY_REQUESTS
    return int(caught.value.headers["Retry-After"])


@pytest.mark.parametrize(
    ("pool", "limit"),
    [
        pytest.param("upsert", 25_000, id="upsert"),
        pytest.param("identity_update", 2_000, id="identity_update"),
        pytest.param("identity_delete", 1_000, id="identity_delete"),
        pytest.param("anonymize", 500, id="anonymize"),
        pytest.param("delete", 10_000, id="delete"),
        pytest.param("profile", 1_000, id="profile"),
    ],
)
def test_each_pool_admits_exactly_its_limit_in_one_window(
    clock: FakeClock, pool: str, limit: int
) -> None:
    rl = limiter(clock)
    for _ in range(limit):
        rl.admit("acme", pool)
    assert refused(rl, "acme", pool) == 60
    assert POOL_LIMITS[pool] == limit


def test_retry_after_is_time_until_the_oldest_needed_entry_leaves(clock: FakeClock) -> None:
    rl = limiter(clock)
    for _ in range(250):
        rl.admit("acme", "anonymize")
    clock.advance(10)
    for _ in range(250):
        rl.admit("acme", "anonymize")
    clock.advance(20.5)
    # The first 250 leave the window at t0+60, i.e. 29.5 s from now -> rounded up to 30.
    assert refused(rl, "acme", "anonymize") == 30
    clock.advance(29.4)
    assert refused(rl, "acme", "anonymize") == 1  # 0.1 s left, minimum 1
    clock.advance(0.1)
    rl.admit("acme", "anonymize")  # exactly 60 s after: the old entries have left


def test_sliding_window_frees_capacity_gradually(clock: FakeClock) -> None:
    rl = limiter(clock)
    for _ in range(499):
        rl.admit("acme", "anonymize")
        clock.advance(0.1)
    rl.admit("acme", "anonymize")
    clock.advance(10.2)  # 60 s after the first entry, not yet after the second
    rl.admit("acme", "anonymize")  # the first entry left, one slot free
    assert refused(rl, "acme", "anonymize") == 1


def test_refused_requests_are_not_counted(clock: FakeClock) -> None:
    rl = limiter(clock)
    for _ in range(500):
        rl.admit("acme", "anonymize")
    for _ in range(100):
        refused(rl, "acme", "anonymize")
    clock.advance(60)
    for _ in range(500):  # a full window again: the 100 refusals took nothing
        rl.admit("acme", "anonymize")


def test_pools_and_partners_are_counted_apart(clock: FakeClock) -> None:
    rl = limiter(clock)
    for _ in range(500):
        rl.admit("acme", "anonymize")
    refused(rl, "acme", "anonymize")
    rl.admit("other", "anonymize")
    rl.admit("acme", "delete")
    rl.admit("acme", "identity_delete")


def test_profile_cost_counts_units(clock: FakeClock) -> None:
    rl = limiter(clock)
    rl.admit("acme", "profile", 600)
    clock.advance(15)
    rl.admit("acme", "profile", 399)
    assert rl.profile_used("acme") == 999
    rl.admit("acme", "profile", 1)  # 999 + 1 <= 1000
    clock.advance(5)
    # Cost 3 needs 3 units free: only the 600 from t=0 frees them, 40 s from now.
    assert refused(rl, "acme", "profile", 3) == 40
    assert rl.profile_used("acme") == 1000


def test_profile_retry_after_waits_for_enough_units(clock: FakeClock) -> None:
    rl = limiter(clock)
    rl.admit("acme", "profile", 2)
    clock.advance(1)
    rl.admit("acme", "profile", 2)
    clock.advance(1)
    rl.admit("acme", "profile", 996)
    # Cost 4 needs the first two entries gone: the second leaves at t=61 -> 59 s from t=2.
    assert refused(rl, "acme", "profile", 4) == 59
    # Cost 2 needs only the first one gone: 58 s.
    assert refused(rl, "acme", "profile", 2) == 58


def test_profile_request_over_the_whole_quota_never_fits(clock: FakeClock) -> None:
    rl = limiter(clock)
    assert refused(rl, "acme", "profile", 1001) == 60
    rl.admit("acme", "profile", 10)
    clock.advance(12)
    assert refused(rl, "acme", "profile", 1001) == 48


def test_profile_usage_is_tracked_when_not_strict(clock: FakeClock) -> None:
    rl = limiter(clock, strict=False)
    for _ in range(400):
        rl.admit("acme", "profile", 3)  # 1,200 units: over the quota, still admitted
    assert rl.profile_used("acme") == 1200
    assert rl.profile_used("other") == 0
    clock.advance(60)
    assert rl.profile_used("acme") == 0


def test_nothing_is_refused_when_not_strict(clock: FakeClock) -> None:
    rl = limiter(clock, strict=False)
    for _ in range(600):
        rl.admit("acme", "anonymize")
    rl.check_export("acme")
    rl.record_export("acme")
    rl.check_export("acme")


def test_unknown_pool_is_a_programming_error(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="unknown rate-limit pool"):
        limiter(clock).admit("acme", "export")


def test_export_allows_one_per_utc_day_and_retries_at_midnight(clock: FakeClock) -> None:
    rl = limiter(clock)
    clock.wall = datetime(2026, 3, 14, 23, 59, 58, 500_000, tzinfo=UTC)
    rl.check_export("acme")
    rl.check_export("acme")  # checking alone takes nothing (failed exports are not counted)
    rl.record_export("acme")
    with pytest.raises(ApiError) as caught:
        rl.check_export("acme")
    assert caught.value.status == 429
    assert caught.value.headers == {"Retry-After": "2"}  # 1.5 s to midnight, rounded up
    rl.check_export("other")
    clock.wall = datetime(2026, 3, 15, 0, 0, 0, tzinfo=UTC)
    rl.check_export("acme")


def test_export_day_is_the_utc_day_whatever_the_wall_clock_zone(clock: FakeClock) -> None:
    rl = limiter(clock)
    istanbul = timezone(timedelta(hours=3))
    clock.wall = datetime(2026, 3, 15, 1, 0, 0, tzinfo=istanbul)  # 2026-03-14 22:00 UTC
    rl.record_export("acme")
    with pytest.raises(ApiError) as caught:
        rl.check_export("acme")
    assert caught.value.headers["Retry-After"] == str(2 * 3600)


async def test_strict_profile_quota_over_http(tmp_path: Path) -> None:
    """E2 is refused with 429 + Retry-After once 1 + wanted names would pass 1,000 units."""
    config = LocalUcdConfig(
        data_dir=tmp_path / "ucd", partners={PARTNER: (TOKEN,)}, strict_rate_limits=True
    )
    async with serve(config) as (app, client):
        clock = FakeClock()
        app.state.services.limiter._clock = clock  # move time without sleeping a minute
        await _ensure_profile_works(client)
        clock.advance(60)  # the probe's unit leaves the window
        body = {
            "identifiers": {"email": "ada@example.com"},
            "attributes": ["name"],
            "events": {
                "start_date": 0,
                "end_date": 2_000_000_000,
                "wanted": [
                    {"event_name": "purchase", "params": []},
                    {"event_name": "email_click", "params": []},
                    {"event_name": "purchase", "params": ["name"]},  # repeated: not counted
                ],
            },
            "quota": True,
        }
        for i in range(333):  # cost 3 each: 999 units
            response = await client.post("/api/user/v1/profile", json=body)
            assert response.status_code == 200, response.text
            quota = response.json()["quota"]
            assert quota == {"cost": 3, "used": 3 * (i + 1), "total": 1000}
            assert isinstance(quota["used"], int)  # `3`, not `3.0`
        clock.advance(7)
        response = await client.post("/api/user/v1/profile", json=body)
        assert response.status_code == 429
        assert response.json() == TOO_MANY_REQUESTS
        assert response.headers["Retry-After"] == "53"
        # Cost 1 still fits the last unit.
        light = {"identifiers": {"email": "ada@example.com"}, "attributes": ["name"], "quota": True}
        response = await client.post("/api/user/v1/profile", json=light)
        assert response.status_code == 200
        assert response.json()["quota"] == {"cost": 1, "used": 1000, "total": 1000}


async def test_quota_used_is_tracked_when_not_strict(ucd_config: LocalUcdConfig) -> None:
    async with serve(ucd_config) as (app, ucd):
        clock = FakeClock()
        app.state.services.limiter._clock = clock
        await _ensure_profile_works(ucd)
        clock.advance(60)
        await _read_profile_600_times(ucd)


async def _read_profile_600_times(ucd: httpx.AsyncClient) -> None:
    body = {
        "identifiers": {"email": "ada@example.com"},
        "events": {
            "start_date": 0,
            "end_date": 2_000_000_000,
            "wanted": [{"event_name": "purchase", "params": []}],
        },
        "quota": True,
    }
    used = []
    for _ in range(600):  # 1,200 units: over the quota, never refused without strict mode
        response = await ucd.post("/api/user/v1/profile", json=body)
        assert response.status_code == 200, response.text
        used.append(response.json()["quota"]["used"])
    assert used == list(range(2, 1201, 2))


async def _ensure_profile_works(client: httpx.AsyncClient) -> None:
    """Create the user the profile tests read (E1) and check E2 finds it."""
    response = await client.post(
        "/api/user/v1/upsert",
        json={
            "users": [{"identifiers": {"email": "ada@example.com"}, "attributes": {"name": "Ada"}}]
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"successful": {"count": 1}, "fail": {}}}
    probe = await client.post(
        "/api/user/v1/profile",
        json={"identifiers": {"email": "ada@example.com"}, "attributes": ["name"]},
    )
    assert probe.status_code == 200, probe.text
    assert probe.json()["attributes"]["name"] == "Ada"
