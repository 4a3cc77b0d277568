"""Shedding on the event loop's lag (gateway/loop_lag.py, gateway/load_shedding.py): while
the loop runs more than UCD_GATEWAY_MAX_LOOP_LAG_MS behind and requests are in flight, a
new GraphQL request is refused at once with 503 OVERLOADED and no UCD call; once the
loop is on time again, requests are admitted; 0 turns it off.

No timing is asserted beyond lower bounds that a blocked loop guarantees: the loop is
blocked with ``time.sleep`` (nothing else runs meanwhile, timers included), twice in a
row, since one late timer alone is not "behind" (a process the kernel paused once); and
after the blocks the monitor's period is lengthened, so the reading holds while the
refused request crosses the app (in process, no I/O to wait for).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from gateway.app import admission_of
from gateway.load_shedding import LAG_LOG_EVERY_S, Admission, ShedLoad
from gateway.loop_lag import PERIOD_S, LoopLag
from gateway.settings import Settings
from tests.gateway.conftest import CallLog
from tests.gateway.test_load_shedding import HeldWire, held_gateway, refusal, user_query

#: How long the tests block the loop, and the limit they set: far apart, so a machine
#: that stalls the test process now and then cannot blur the two.
BLOCK_S = 0.5
LIMIT_MS = 100
#: The monitor's period right after a block: the late timer's reading holds this long.
HOLD_S = 0.3


def block_the_loop() -> None:
    """Run nothing else for ``BLOCK_S``: called from a coroutine, it blocks its loop."""
    time.sleep(BLOCK_S)


async def keep_the_loop_behind(lag: LoopLag) -> None:
    """Block the running loop for ``BLOCK_S`` twice in a row (the caller's steps are loop
    callbacks), so that two timers are late; the reading then holds for ``HOLD_S``."""
    block_the_loop()
    lag.period_s = HOLD_S
    # The timer that was due during the block fires late now, before this sleep ends.
    await asyncio.sleep(0.01)
    block_the_loop()  # the next timer, due HOLD_S after the first, is late too


async def caught_up(lag: LoopLag) -> None:
    """Return once the monitor reads the loop as on time again (within 10 s)."""
    lag.period_s = PERIOD_S
    async with asyncio.timeout(10):
        while lag.behind_s() * 1000 > LIMIT_MS:  # noqa: ASYNC110  # a reading, no event
            await asyncio.sleep(0.01)


# --- the monitor ---------------------------------------------------------------------------


async def test_the_monitor_measures_a_blocked_loop_and_reads_on_time_once_it_catches_up() -> None:
    lag = LoopLag()
    assert lag.behind_s() == 0  # not started
    lag.start()
    try:
        await asyncio.sleep(0.05)  # a few timers
        block_the_loop()
        lag.period_s = HOLD_S
        # One late timer is not "behind": the process may just have been paused once.
        assert lag.behind_s() < BLOCK_S - PERIOD_S
        await asyncio.sleep(0.01)  # the late timer fires
        assert lag.behind_s() < BLOCK_S - PERIOD_S
        # Late again, at once: the next timer was due HOLD_S after the first fired.
        block_the_loop()
        behind = BLOCK_S - HOLD_S
        assert lag.behind_s() >= behind
        await asyncio.sleep(0.01)  # the second late timer fires, the reading holds
        assert lag.behind_s() >= behind
        await caught_up(lag)
        assert lag.behind_s() * 1000 <= LIMIT_MS
    finally:
        lag.stop()
    assert not lag.running
    assert lag.behind_s() == 0


async def test_the_busy_share_tells_a_loop_at_work_from_one_that_waits() -> None:
    """``busy_share``: the loop thread's CPU time over the last periods' wall time. A
    turn that waits (a sleep) is late but idle; one that computes is late and busy."""
    lag = LoopLag()
    assert lag.busy_share() == 0  # nothing measured yet
    lag.start()
    try:
        for _ in range(5):
            await asyncio.sleep(0.015)
            time.sleep(0.03)  # noqa: ASYNC251  # late, idle
        assert lag.busy_share() < 0.5
        for _ in range(12):
            await asyncio.sleep(0)  # the due timer runs
            end = time.perf_counter() + 0.03
            while time.perf_counter() < end:  # late, at work
                pass
        # Not 1: the suite shares the CPUs, and the thread may lose its CPU meanwhile.
        assert lag.busy_share() > 0.5
    finally:
        lag.stop()


async def test_a_stopped_monitor_can_start_again() -> None:
    lag = LoopLag()
    lag.start()
    lag.start()  # once only
    lag.stop()
    lag.stop()
    lag.start()
    assert lag.running
    lag.stop()


# --- the admission rule ----------------------------------------------------------------------


class Behind(LoopLag):
    """A monitor that reads a fixed lag: the rule, apart from the loop's real timing."""

    def __init__(self, behind_s: float) -> None:
        super().__init__()
        self.fixed = behind_s

    def behind_s(self) -> float:
        return self.fixed


def admission_behind(behind_s: float, *, limit_ms: float = 50) -> Admission:
    admission = Admission(max_in_flight=10, max_loop_lag_ms=limit_ms)
    admission.loop_lag = Behind(behind_s)
    return admission


def test_behind_counts_only_over_the_limit_and_with_requests_in_flight() -> None:
    admission = admission_behind(0.2)
    assert admission.behind_ms() == 0  # nothing in flight: the next request is admitted
    admission.enter()
    assert admission.behind_ms() == pytest.approx(200)
    on_time = admission_behind(0.05)  # at the limit, not over it
    on_time.enter()
    assert on_time.behind_ms() == 0


def test_a_limit_of_zero_watches_nothing() -> None:
    admission = Admission(max_in_flight=10, max_loop_lag_ms=0)
    assert admission.loop_lag is None
    admission.enter()
    assert admission.behind_ms() == 0
    with admission.watching_the_loop():
        assert admission.loop_lag is None


async def test_a_refusal_for_lag_reads_no_body_and_the_next_on_time_request_is_admitted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    admission = admission_behind(0.2)
    admission.enter()  # one request in flight
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def never_called(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("a refused request reached the app")

    async def no_body() -> Message:
        raise AssertionError("a refused request's body was read")

    scope: Scope = {"type": "http", "method": "POST", "path": "/graphql", "headers": []}
    for _ in range(2):
        await ShedLoad(never_called, admission=admission)(scope, no_body, send)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [503, 503]
    (error,) = orjson.loads(sent[1]["body"])["errors"]
    assert error == {
        "message": "the gateway is behind by 200 ms, over its limit of 50 ms "
        "(UCD_GATEWAY_MAX_LOOP_LAG_MS); retry after 1 s",
        "extensions": {"code": "OVERLOADED", "retryAfter": 1},
    }
    assert admission.in_flight == 1

    reached: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(admission.in_flight)

    assert isinstance(admission.loop_lag, Behind)
    admission.loop_lag.fixed = 0.01
    await ShedLoad(app, admission=admission)(scope, no_body, send)
    assert reached == [2]
    # One line for the first refusal, then at most one per LAG_LOG_EVERY_S with a count.
    messages = [r.getMessage() for r in caplog.records if r.name == "gateway.load_shedding"]
    assert messages == [
        "shedding load: the event loop is 200 ms behind (UCD_GATEWAY_MAX_LOOP_LAG_MS 50) "
        "with 1 GraphQL requests in flight; 1 refused for it since the last line",
    ]
    assert admission.refused_behind == 1
    admission.logged_behind_at -= LAG_LOG_EVERY_S
    admission.loop_lag.fixed = 0.3
    await ShedLoad(never_called, admission=admission)(scope, no_body, send)
    assert (
        caplog.records[-1]
        .getMessage()
        .endswith("with 1 GraphQL requests in flight; 2 refused for it since the last line")
    )


# --- over HTTP, against the local UCD --------------------------------------------------------


async def admitted_after_catching_up(lag: LoopLag, gateway: Any, wire: HeldWire) -> None:
    """A request sent once the loop is on time again reaches the UCD (held there)."""
    # Tried a few times: a machine that stalls this process over the limit while the
    # request crosses the app refuses it as it should, and the next one is tried.
    for _ in range(10):
        await caught_up(lag)
        request = asyncio.create_task(gateway.client.post("/graphql", json=user_query("u-3")))
        arrived = asyncio.create_task(wire.wait_held(2))
        done, _ = await asyncio.wait(
            {request, arrived}, timeout=10, return_when=asyncio.FIRST_COMPLETED
        )
        if arrived in done:
            wire.release.set()
            answer = await asyncio.wait_for(request, 10)
            assert answer.status_code == 200, answer.text
            return
        arrived.cancel()
        refusal(request.result())
    raise AssertionError("no request was admitted after the loop caught up")


async def test_while_the_loop_is_behind_a_new_request_is_refused_and_makes_no_ucd_call(
    local_ucd: Any, ucd_calls: CallLog, settings: Settings
) -> None:
    async with held_gateway(local_ucd, ucd_calls, settings, max_loop_lag_ms=LIMIT_MS) as (
        gateway,
        wire,
    ):
        admission = admission_of(gateway.app)
        lag = admission.loop_lag
        assert lag is not None
        assert lag.running  # started by the app's lifespan
        client = gateway.client
        held = asyncio.create_task(client.post("/graphql", json=user_query("u-1")))
        await asyncio.wait_for(wire.wait_held(1), 10)
        assert admission.in_flight == 1

        await keep_the_loop_behind(lag)
        refused = await client.post("/graphql", json=user_query("u-2"))

        message = refusal(refused)["message"]
        found = re.fullmatch(
            r"the gateway is behind by (\d+) ms, over its limit of 100 ms "
            r"\(UCD_GATEWAY_MAX_LOOP_LAG_MS\); retry after 1 s",
            message,
        )
        assert found is not None, message
        assert int(found[1]) >= (BLOCK_S - HOLD_S) * 1000
        assert "connection" not in refused.headers  # kept alive, as for the in-flight limit
        assert len(ucd_calls.profiles) == 1  # the held request's only
        assert admission.in_flight == 1
        assert (await client.get("/healthz")).status_code == 200  # probes are never shed

        await admitted_after_catching_up(lag, gateway, wire)
        assert (await asyncio.wait_for(held, 10)).status_code == 200
        assert len(ucd_calls.profiles) == 2
    assert not lag.running  # stopped with the lifespan


async def test_with_a_limit_of_zero_a_late_loop_refuses_nothing(
    local_ucd: Any, ucd_calls: CallLog, settings: Settings
) -> None:
    async with held_gateway(local_ucd, ucd_calls, settings, max_loop_lag_ms=0) as (gateway, wire):
        admission = admission_of(gateway.app)
        assert admission.loop_lag is None
        client = gateway.client
        held = asyncio.create_task(client.post("/graphql", json=user_query("u-1")))
        await asyncio.wait_for(wire.wait_held(1), 10)
        await keep_the_loop_behind(LoopLag())  # the app has none: this one is unwatched
        second = asyncio.create_task(client.post("/graphql", json=user_query("u-2")))
        await asyncio.wait_for(wire.wait_held(2), 10)  # admitted: it reached the UCD
        wire.release.set()
        for answer in await asyncio.gather(held, second):
            assert answer.status_code == 200, answer.text


def test_the_default_limit_is_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UCD_GATEWAY_MAX_LOOP_LAG_MS")
    assert Settings(_env_file=None).max_loop_lag_ms == 50  # type: ignore[call-arg]
