"""The in-flight limit follows the event loop (gateway/in_flight_limit.py): lowered while
the loop's timer is later than UCD_GATEWAY_TARGET_LOOP_LAG_MS with its thread never idle
and requests in flight, raised by one per other timer, between a floor and
UCD_GATEWAY_MAX_IN_FLIGHT; a request over the limit in force is refused like one over
the maximum, naming both."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gateway.app import admission_of
from gateway.in_flight_limit import DECREASE, DEEPEST, FLOOR, SATURATED, InFlightLimit
from gateway.load_shedding import Admission
from gateway.settings import Settings
from tests.gateway.conftest import CallLog, GatewayHttp
from tests.gateway.test_load_shedding import held_gateway, refusal, user_query
from tests.gateway.test_metrics import sample, scrape

LATE = 0.05  # seconds: over the 10 ms target
ON_TIME = 0.001
BUSY = 1.0  # the loop's thread never idle


def test_a_late_timer_lowers_the_limit_below_the_requests_in_flight() -> None:
    limit = InFlightLimit(256, target_lag_ms=10)
    assert limit.current == 256
    limit.observe(0.0111, BUSY, in_flight=120)
    # From the 120 that made the loop late, not from 256; 11.1 ms late: a tenth off.
    assert limit.current == int(120 * DECREASE) == 108
    limit.observe(0.0125, BUSY, in_flight=108)
    assert limit.current == int(108 * 0.8)  # 12.5 ms late: the target's share
    limit.observe(LATE, BUSY, in_flight=86)
    assert limit.current == int(86 * DEEPEST)  # 50 ms late: half, not a fifth
    for _ in range(100):
        limit.observe(LATE, BUSY, in_flight=limit.current)
    assert limit.current == FLOOR


def test_timers_on_time_raise_it_by_one_up_to_the_maximum() -> None:
    limit = InFlightLimit(256, target_lag_ms=10)
    limit.observe(0.011, BUSY, in_flight=40)
    assert limit.current == 36
    limit.observe(ON_TIME, BUSY, in_flight=36)
    limit.observe(0.01, BUSY, in_flight=36)  # at the target, not over it: on time
    assert limit.current == 38
    for _ in range(1000):
        limit.observe(ON_TIME, BUSY, in_flight=0)
    assert limit.current == 256


def test_few_requests_in_flight_never_lower_it() -> None:
    """A loop late with fewer than FLOOR requests in flight is late for another reason
    (a neighbour took the CPU): refusing the few would not help."""
    limit = InFlightLimit(256, target_lag_ms=10)
    limit.observe(1.0, BUSY, in_flight=FLOOR - 1)
    assert limit.current == 256


def test_a_late_timer_of_a_loop_with_idle_moments_raises_it() -> None:
    """Late, but the thread idled and the limit is not reached: answers that arrived
    together, not work beyond the CPU (a UCD far away): nothing to refuse for."""
    limit = InFlightLimit(256, target_lag_ms=10)
    limit.observe(LATE, SATURATED - 0.01, in_flight=200)
    assert limit.current == 256
    limit.observe(LATE, BUSY, in_flight=200)
    lowered = limit.current
    limit.observe(LATE, SATURATED - 0.01, in_flight=lowered - 1)
    assert limit.current == lowered + 1


def test_a_late_timer_at_the_limit_lowers_it_before_the_busy_share_shows() -> None:
    """The start of an overload: the limit reached within 0.1 s, the busy share still
    counting the idle time before; a late timer then cuts at once."""
    limit = InFlightLimit(256, target_lag_ms=10)
    limit.observe(0.024, 0.89, in_flight=256)
    assert limit.current == int(256 * DEEPEST)


def test_a_target_of_zero_keeps_the_maximum() -> None:
    limit = InFlightLimit(256, target_lag_ms=0)
    assert not limit.adaptive
    limit.observe(1.0, BUSY, in_flight=200)
    assert limit.current == 256


def test_a_maximum_below_the_floor_is_its_own_floor() -> None:
    limit = InFlightLimit(4, target_lag_ms=10)
    limit.observe(LATE, BUSY, in_flight=4)
    assert limit.current == 4


def test_the_defaults_follow_the_loop() -> None:
    settings = Settings(_env_file=None, target_loop_lag_ms=10)  # type: ignore[call-arg]
    assert Settings.model_fields["target_loop_lag_ms"].default == 10
    admission = Admission(settings.max_in_flight, target_loop_lag_ms=settings.target_loop_lag_ms)
    # The loop is watched for the limit even with shedding on the lag itself off.
    assert admission.loop_lag is not None
    assert admission.in_flight_limit == 256


async def test_a_loop_held_late_lowers_the_limit_and_on_time_raises_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real monitor on the running loop: turns of work with 32 requests in flight.
    The suite shares the CPUs, so the thread may be taken off one mid-spin: "busy" is
    lowered to half here, where the gateway asks for 0.99."""
    monkeypatch.setattr("gateway.in_flight_limit.SATURATED", 0.5)
    admission = Admission(64, target_loop_lag_ms=10)
    for _ in range(32):
        admission.enter()
    with admission.watching_the_loop():
        for _ in range(5):
            await asyncio.sleep(0)  # a turn: the timer, once due, runs
            spin(0.06)  # the turn that makes it late, on the CPU
        lowered = admission.in_flight_limit
        assert lowered < 32
        deadline = time.monotonic() + 10
        while admission.in_flight_limit <= lowered and time.monotonic() < deadline:  # noqa: ASYNC110  # no event to wait for: the limit is a number
            await asyncio.sleep(0.02)
        assert admission.in_flight_limit > lowered


async def test_a_request_over_the_lowered_limit_is_refused_naming_it(
    local_ucd: Any, ucd_calls: CallLog, settings: Settings
) -> None:
    async with held_gateway(
        local_ucd, ucd_calls, settings, max_in_flight=256, target_loop_lag_ms=10
    ) as (gateway, wire):
        admission = admission_of(gateway.app)
        # As the loop's timers would have left it; held there (target 0), since the
        # suite's own load must not move it during the test.
        admission.limit = InFlightLimit(256, target_lag_ms=0)
        admission.limit.current = 2
        client = gateway.client
        held = [
            asyncio.create_task(client.post("/graphql", json=user_query(uuid)))
            for uuid in ("u-1", "u-2")
        ]
        await asyncio.wait_for(wire.wait_held(2), 10)
        refused = await asyncio.wait_for(client.post("/graphql", json=user_query("u-3")), 5)
        error = refusal(refused)
        assert error["message"] == (
            "the gateway is at its limit of 2 GraphQL requests in flight "
            "(UCD_GATEWAY_MAX_IN_FLIGHT 256, lowered while the event loop runs late); "
            "retry after 1 s"
        )
        assert len(ucd_calls.profiles) == 2
        metrics = await scrape(client)
        assert sample(metrics, "ucd_gateway_in_flight_limit") == 2
        assert sample(metrics, "ucd_gateway_in_flight_requests") == 2
        wire.release.set()
        for answer in await asyncio.gather(*held):
            assert answer.status_code == 200


async def test_the_limit_in_force_is_a_metric(gateway_http: GatewayHttp) -> None:
    metrics = await scrape(gateway_http.client)
    assert sample(metrics, "ucd_gateway_in_flight_limit") == 256


async def test_a_loop_late_for_want_of_nothing_to_do_keeps_it() -> None:
    """A turn blocked without using the CPU (here a sleep; in life a neighbour's
    process or a page fault) is late, but the thread idled: the limit stays."""
    admission = Admission(64, target_loop_lag_ms=10)
    for _ in range(32):
        admission.enter()
    with admission.watching_the_loop():
        for _ in range(5):
            await asyncio.sleep(0.015)
            time.sleep(0.06)  # noqa: ASYNC251  # late, but idle
        assert admission.in_flight_limit == 64


def spin(seconds: float) -> None:
    """Keep the thread on the CPU for ``seconds`` (what a turn of real work does)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@pytest.mark.parametrize("value", ["-1", "x"])
def test_a_bad_target_names_the_setting(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("UCD_GATEWAY_TARGET_LOOP_LAG_MS", value)
    with pytest.raises(ValueError, match="target_loop_lag_ms"):
        Settings(_env_file=None)  # type: ignore[call-arg]
