"""Overload: the gateway at about twice the load it can serve, with and without shedding.

The local UCD and each gateway run under uvicorn in their own processes on loopback (as
in ``gateway_overhead``). The load comes from ``bench/_loadgen.py``: raw HTTP/1.1 on
uvloop from ``GENERATORS`` processes, an open loop on a schedule, so the generator's own
queueing stays out of the figures (it reports how late it sent against its schedule).
With two CPUs or more, the gateway gets a CPU of its own (``os.sched_setaffinity``); the
local UCD, the generators and this process share the others.

1. **Saturation.** A closed loop of ``SATURATION_CONNECTIONS`` connections sends the
   selective read of ``gateway_overhead`` for ``SATURATION_S`` seconds to a gateway with
   default settings: its accepted requests/s is the saturation rate ``S``.
2. **Overload**, for each gateway row of ``ROWS`` (a fresh process each: the defaults,
   with the in-flight limit lowered while the loop is late; the same with a fixed limit
   of 256, the default before that existed; the fixed limit alone at 256 and at 64; and
   no shedding at all): an open loop offers
   ``2 × S`` requests/s for ``LOAD_S`` seconds, each request with a ``CLIENT_TIMEOUT_S``
   timeout, bounded at ``MAX_OUTSTANDING`` requests in flight on as many connections (a
   request due while the bound is reached is not sent and is counted as "not sent").
   Answers are *accepted* (200 without errors), *rejected* (503 OVERLOADED) or *failed*
   (anything else: the operation's deadline, client timeouts, other errors). Latencies
   are reported twice: as the generator saw them (request written to answer read), and
   as the gateway saw them (its ASGI app called to its answer sent; ``_Timed``, a thin
   wrapper this bench puts around the app, outermost); the refusals' p99 at the client
   also without the first ``RAMP_S`` of the load (the ramp from idle to ~1,000
   connections).
3. **Recovery.** As soon as the load stops, one probe at a time until a probe is answered
   200: the recovery time. Then, 5 s after the load stopped, 100 requests (10 at a time)
   and how many of them succeed.
4. **Memory.** The gateway's RSS before the load, its peak during it (``VmHWM``), and after.
5. **The cost of a refusal**: a gateway with ``max_in_flight=1`` under a closed loop of
   ``SATURATION_CONNECTIONS`` connections for ``SATURATION_S``, so nearly every request
   is refused: latencies of the refusals, and the gateway's CPU time per request
   (``/proc``), against an accepted read's.
6. **A UCD far away, below saturation**: a second local UCD answering profile reads
   ``FAR_LATENCY_MS`` late (its fault injection), ``FAR_SHARE`` × ``S`` offered for
   ``FAR_S`` seconds, to the defaults and to a fixed limit of 256 (``FAR_ROWS``). The
   gateway has CPU to spare and ~150 reads in flight: the limit that follows the loop
   must refuse no more than the fixed one (gateway/in_flight_limit.py).

``run()`` returns the figures and prints markdown tables. ``python -m bench overload``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any, Final, NamedTuple

import aiohttp
import orjson
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench import _loadgen as loadgen
from bench.gateway_overhead import QUERY, USER_UUID, _cpu_seconds, _wait_ready
from bench.local_ucd_scale import (
    HEADERS,
    PARTNER,
    TOKEN,
    _listen,
    _serve_local_ucd,
    _status_kib,
)

SATURATION_CONNECTIONS = 64
SATURATION_S = 5.0
LOAD_S = 20.0
OVERLOAD_FACTOR = 2.0
CLIENT_TIMEOUT_S = 15.0
MAX_OUTSTANDING = 1024
AFTER_S = 5.0
#: The first second of the load: the gateway goes from idle to ~1,000 new connections
#: at once. The refusals' p99 is also given without it (the steady state).
RAMP_S = 1.0
AFTER_REQUESTS = 100
#: Load generator processes; they share the CPUs the gateway does not have.
GENERATORS = 2


class Limits(NamedTuple):
    """A gateway's shedding settings (``UCD_GATEWAY_`` + the name in capitals)."""

    max_in_flight: int
    max_loop_lag_ms: float = 0.0
    target_loop_lag_ms: float = 0.0


#: The gateways compared. A limit no load reaches stands for the gateway before shedding
#: existed; lag 0 for the one before shedding on the event loop's lag; target 0 for a
#: fixed in-flight limit.
ROWS: dict[str, Limits] = {
    "defaults (in-flight limit follows the loop: target lag 10 ms)": Limits(256, 50.0, 10.0),
    "fixed in-flight 256, lag shedding 50 ms (the defaults before)": Limits(256, 50.0),
    "in-flight only (max_in_flight 256, lag off)": Limits(256),
    "in-flight only, max_in_flight 64": Limits(64),
    "no shedding": Limits(10**9),
}
#: The saturation run's gateway: nothing refused, so ``S`` is what it can serve.
SATURATION_ROW: Final = Limits(256)

#: Step 6: how late the far UCD answers a profile read, the load as a share of ``S``,
#: how long, and the gateways compared.
FAR_LATENCY_MS = 100.0
FAR_SHARE = 0.45
FAR_S = 10.0
FAR_ROWS: dict[str, Limits] = {
    "defaults (in-flight limit follows the loop)": ROWS[next(iter(ROWS))],
    "fixed in-flight 256": Limits(256, 50.0),
}

GRAPHQL = orjson.dumps({"query": QUERY, "variables": {"u": USER_UUID}})
JSON_HEADERS = {"Content-Type": "application/json"}
#: The path of ``_Timed``'s figures on the benched gateway (not a route of the gateway).
TIMINGS_PATH: Final = "/_bench/timings"


# --- CPUs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cpus:
    """Which CPUs the gateway runs on, and which everything else (None: not pinned)."""

    gateway: frozenset[int] | None
    others: frozenset[int] | None

    @classmethod
    def split(cls) -> Cpus:
        available = sorted(os.sched_getaffinity(0))
        if len(available) < 2:
            return cls(None, None)
        return cls(frozenset(available[-1:]), frozenset(available[:-1]))

    def describe(self) -> str:
        if self.gateway is None or self.others is None:
            return "not pinned (one CPU)"
        return (
            f"gateway on CPU {', '.join(map(str, sorted(self.gateway)))}; local UCD, "
            f"load generators and bench on CPU {', '.join(map(str, sorted(self.others)))}"
        )


def _pin(cpus: frozenset[int] | None) -> None:
    if cpus is not None:
        os.sched_setaffinity(0, cpus)


# --- the servers ----------------------------------------------------------------------------


#: How often ``_Timed`` samples the gateway's event loop lag.
_LAG_PERIOD_S: Final = 0.01
#: ``_Timed``'s outcome codes, and their names.
_OUTCOMES: Final = ("accepted", "rejected", "other")


class _Timed:
    """Times every /graphql request from the ASGI call to its last body message.

    Bench only, outermost around the gateway's app: what the gateway itself takes,
    without the time a request waits in the kernel or for the event loop to read it.
    ``GET /_bench/timings?from=…&to=…`` (``time.monotonic()``, the same clock in every
    process of a Linux host) answers the samples of the requests that started in that
    window (and the loop lag sampled in it). 17 bytes a
    request, in arrays, so the RSS figures of the gateway barely include them.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._started = array("d")
        self._latencies = array("d")
        self._outcomes = array("B")
        # The event loop's lag: how late a 10 ms timer fires, sampled all along.
        self._lag_at = array("d")
        self._lag = array("d")
        self._sampler: asyncio.Task[None] | None = None

    async def _sample_lag(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(_LAG_PERIOD_S)
            now = time.monotonic()
            self._lag_at.append(now)
            self._lag.append(now - before - _LAG_PERIOD_S)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/graphql":
            if scope["type"] == "http" and scope["path"] == TIMINGS_PATH:
                await self._answer_timings(scope, send)
                return
            await self.app(scope, receive, send)
            return
        if self._sampler is None:
            self._sampler = asyncio.get_running_loop().create_task(self._sample_lag())
        start = time.monotonic()
        status = 0
        errors = False

        async def timed_send(message: Message) -> None:
            nonlocal status, errors
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                errors = errors or b'"errors"' in message.get("body", b"")
            await send(message)

        await self.app(scope, receive, timed_send)
        self._started.append(start)
        self._latencies.append(time.monotonic() - start)
        if status == 200 and not errors:
            self._outcomes.append(0)
        elif status == 503 and errors:
            self._outcomes.append(1)
        else:
            self._outcomes.append(2)

    async def _answer_timings(self, scope: Scope, send: Send) -> None:
        query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if p)
        low, high = float(query.get("from", "-inf")), float(query.get("to", "inf"))
        chosen = [i for i, at in enumerate(self._started) if low <= at <= high]
        body = orjson.dumps(
            {
                "outcomes": [_OUTCOMES[self._outcomes[i]] for i in chosen],
                "latencies": [self._latencies[i] for i in chosen],
                "lag": [
                    lag
                    for at, lag in zip(self._lag_at, self._lag, strict=True)
                    if low <= at <= high
                ],
            }
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _serve_gateway(
    ucd_url: str,
    limits: Limits,
    cpus: frozenset[int] | None,
    ready: Queue[int],
) -> None:
    """The gateway as ``ucd-gateway serve`` runs it (``cli._run_gateway``: the CLI's loop,
    lifespan, gc frozen after start-up, the draining uvicorn server), with ``_Timed``
    outermost and logs at WARNING (the shedding lines, not a line per request)."""
    from gateway import cli
    from gateway.app import create_app
    from gateway.settings import Settings

    _pin(cpus)
    sock = _listen()
    port = sock.getsockname()[1]
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        ucd_base_url=ucd_url,
        partner=PARTNER,
        token=SecretStr(TOKEN),
        port=port,
        max_in_flight=limits.max_in_flight,
        max_loop_lag_ms=limits.max_loop_lag_ms,
        target_loop_lag_ms=limits.target_loop_lag_ms,
        log_level="warning",
    )
    cli._configure_logging(settings)
    app = create_app(settings)
    server = cli._draining_server(app, settings)
    server.config.app = _Timed(app)
    cli._run_gateway(app, sock, settings, server=server, announce=lambda: ready.put(port))


def _serve_pinned_local_ucd(data_dir: str, cpus: frozenset[int] | None, ready: Queue[int]) -> None:
    _pin(cpus)
    _serve_local_ucd(data_dir, ready)


def _serve_far_local_ucd(data_dir: str, cpus: frozenset[int] | None, ready: Queue[int]) -> None:
    """A local UCD whose profile reads answer ``FAR_LATENCY_MS`` late (step 6)."""
    _pin(cpus)
    _serve_local_ucd(data_dir, ready, profile_latency_ms=FAR_LATENCY_MS)


# --- probes from this process -----------------------------------------------------------------


async def _send(session: aiohttp.ClientSession, url: str, limit_s: float) -> str:
    """One GraphQL request: ``accepted``, ``rejected`` or what failed."""
    try:
        async with session.post(
            url, data=GRAPHQL, headers=JSON_HEADERS, timeout=aiohttp.ClientTimeout(total=limit_s)
        ) as response:
            return loadgen.classify(response.status, await response.read())
    except (TimeoutError, aiohttp.ClientError) as exc:
        return type(exc).__name__


async def _warm_up(port: int) -> None:
    async with aiohttp.ClientSession() as session:
        await _wait_ready(session, f"http://127.0.0.1:{port}/healthz")
        url = f"http://127.0.0.1:{port}/graphql"
        for _ in range(200):  # caches, connections
            await _send(session, url, CLIENT_TIMEOUT_S)


async def _recovery(port: int, load_end: float) -> float:
    """Seconds from ``load_end`` (``time.time()``) until a probe, one at a time, is
    answered 200; probing starts at ``load_end``."""
    url = f"http://127.0.0.1:{port}/graphql"
    await asyncio.sleep(max(0.0, load_end - time.time()))
    async with aiohttp.ClientSession() as session:
        while True:
            if await _send(session, url, 10.0) == "accepted":
                return time.time() - load_end
            if time.time() - load_end > 60:
                return float("inf")
            await asyncio.sleep(0.05)


async def _after(port: int) -> int:
    """Of ``AFTER_REQUESTS`` requests, 10 at a time, how many were accepted."""
    url = f"http://127.0.0.1:{port}/graphql"
    gate = asyncio.Semaphore(10)
    async with aiohttp.ClientSession() as session:

        async def one() -> bool:
            async with gate:
                return await _send(session, url, 10.0) == "accepted"

        return sum(await asyncio.gather(*(one() for _ in range(AFTER_REQUESTS))))


async def _gateway_timings(port: int, low: float, high: float) -> dict[str, list[float]]:
    """The gateway's own latencies of the requests that started between ``low`` and
    ``high`` (``time.monotonic()``), per outcome, and its event loop's lag (``"lag"``)."""
    url = f"http://127.0.0.1:{port}{TIMINGS_PATH}?from={low}&to={high}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        figures = orjson.loads(await response.read())
    per_outcome: dict[str, list[float]] = {"lag": figures["lag"]}
    for outcome, latency in zip(figures["outcomes"], figures["latencies"], strict=True):
        per_outcome.setdefault(outcome, []).append(latency)
    return per_outcome


def _run_delay_s(pid: int) -> float | None:
    """Seconds process ``pid``'s main thread was runnable but waited for a CPU, so far."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def _share(after: float | None, before: float | None, wall: float) -> float | None:
    return None if after is None or before is None else (after - before) / wall


def _ms(latencies: list[float], quantile: float) -> float | None:
    if not latencies:
        return None
    ordered = sorted(latencies)
    if quantile == 0.5:
        return statistics.median(ordered) * 1000
    return ordered[min(len(ordered) - 1, int(len(ordered) * quantile))] * 1000


def _plan(port: int, *, rate: float, connections: int, seconds: float, cpus: Cpus) -> loadgen.Plan:
    return loadgen.Plan(
        host="127.0.0.1",
        port=port,
        request=loadgen.post_request("127.0.0.1", port, "/graphql", GRAPHQL),
        duration_s=seconds,
        rate=rate,
        max_outstanding=connections,
        timeout_s=CLIENT_TIMEOUT_S,
        processes=GENERATORS,
        cpus=cpus.others,
    )


# --- the runs -------------------------------------------------------------------------------


def _saturation(port: int, cpus: Cpus) -> float:
    """Accepted requests/s of a closed loop of ``SATURATION_CONNECTIONS`` for ``SATURATION_S``."""
    plan = _plan(port, rate=0, connections=SATURATION_CONNECTIONS, seconds=SATURATION_S, cpus=cpus)
    tally = loadgen.run(plan)
    if tally.failures or tally.rejected:
        raise RuntimeError(f"saturation run: not every request succeeded: {dict(tally.failures)}")
    return len(tally.accepted) / tally.wall_s


def _overload_row(port: int, pid: int, rate: float, cpus: Cpus) -> dict[str, Any]:
    asyncio.run(_warm_up(port))
    rss_before = _status_kib(pid, "VmRSS") / 1024
    load = loadgen.Load(
        _plan(port, rate=rate, connections=MAX_OUTSTANDING, seconds=LOAD_S, cpus=cpus)
    )
    # time.time() of the load's start and end, as time.monotonic() for the gateway's clock.
    offset = time.monotonic() - time.time()
    time.sleep(max(0.0, load.start_at - time.time()))
    cpu_before, waited_before = _cpu_seconds(pid), _run_delay_s(pid)
    recovery = asyncio.run(_recovery(port, load.end_at))
    # _recovery returns once the load is over (and a probe was answered).
    cpu_share = _share(_cpu_seconds(pid), cpu_before, time.time() - load.start_at)
    waited_share = _share(_run_delay_s(pid), waited_before, time.time() - load.start_at)
    tally = load.result()
    gateway = asyncio.run(_gateway_timings(port, load.start_at + offset, load.end_at + offset))
    time.sleep(max(0.0, load.end_at + AFTER_S - time.time()))
    after_ok = asyncio.run(_after(port))
    gateway_failed = sum(
        len(v) for k, v in gateway.items() if k not in ("accepted", "rejected", "lag")
    )
    return {
        "offered_rps": (tally.sent + tally.not_sent) / LOAD_S,
        "sent": tally.sent,
        "not_sent": tally.not_sent,
        "accepted": len(tally.accepted),
        "rejected": len(tally.rejected),
        "failed": sum(tally.failures.values()),
        "failures": dict(tally.failures),
        "generator_lag_p99_ms": _ms(tally.lag, 0.99),
        "generator_cpu_share": tally.cpu_s / tally.wall_s if tally.wall_s else None,
        "accepted_p50_ms": _ms(tally.accepted, 0.5),
        "accepted_p99_ms": _ms(tally.accepted, 0.99),
        "rejected_p50_ms": _ms(tally.rejected, 0.5),
        "rejected_p99_ms": _ms(tally.rejected, 0.99),
        # Once the ramp from idle to ~1,000 connections is over.
        "rejected_steady_p99_ms": _ms(
            [x for x, at in zip(tally.rejected, tally.rejected_at, strict=True) if at >= RAMP_S],
            0.99,
        ),
        "gateway_accepted_p50_ms": _ms(gateway.get("accepted", []), 0.5),
        "gateway_accepted_p99_ms": _ms(gateway.get("accepted", []), 0.99),
        "gateway_rejected_p50_ms": _ms(gateway.get("rejected", []), 0.5),
        "gateway_rejected_p99_ms": _ms(gateway.get("rejected", []), 0.99),
        "gateway_failed": gateway_failed,
        "gateway_loop_lag_p50_ms": _ms(gateway["lag"], 0.5),
        "gateway_loop_lag_p99_ms": _ms(gateway["lag"], 0.99),
        "gateway_cpu_share": cpu_share,
        "gateway_cpu_wait_share": waited_share,
        "rss_before_mib": rss_before,
        "rss_peak_mib": _status_kib(pid, "VmHWM") / 1024,
        "rss_after_mib": _status_kib(pid, "VmRSS") / 1024,
        "recovery_s": recovery,
        "after_ok": after_ok,
    }


def _far_row(port: int, pid: int, rate: float, cpus: Cpus) -> dict[str, Any]:
    """Step 6: ``rate`` offered for ``FAR_S`` to a gateway whose UCD is far away."""
    asyncio.run(_warm_up(port))
    cpu_before, started = _cpu_seconds(pid), time.time()
    tally = loadgen.run(
        _plan(port, rate=rate, connections=MAX_OUTSTANDING, seconds=FAR_S, cpus=cpus)
    )
    return {
        "offered_rps": (tally.sent + tally.not_sent) / FAR_S,
        "accepted": len(tally.accepted),
        "rejected": len(tally.rejected),
        "failed": sum(tally.failures.values()) + tally.not_sent,
        "accepted_p50_ms": _ms(tally.accepted, 0.5),
        "accepted_p99_ms": _ms(tally.accepted, 0.99),
        "gateway_cpu_share": _share(_cpu_seconds(pid), cpu_before, time.time() - started),
    }


def _refusal_cost(port: int, pid: int, cpus: Cpus) -> dict[str, Any]:
    """Closed loop on a gateway that takes one request at a time: refusals' cost."""
    asyncio.run(_warm_up(port))
    plan = _plan(port, rate=0, connections=SATURATION_CONNECTIONS, seconds=SATURATION_S, cpus=cpus)
    cpu_before = _cpu_seconds(pid)
    tally = loadgen.run(plan)
    cpu_after = _cpu_seconds(pid)
    if tally.failures:
        raise RuntimeError(f"refusal run: requests failed: {dict(tally.failures)}")
    cpu = None
    if cpu_before is not None and cpu_after is not None and tally.sent:
        # The warm-up is over before cpu_before; the generators' start-up costs the gateway
        # nothing, so the CPU between the two readings is the closed loop's.
        cpu = (cpu_after - cpu_before) / tally.sent * 1e6
    return {
        "rejected": len(tally.rejected),
        "accepted": len(tally.accepted),
        "rejected_p50_ms": _ms(tally.rejected, 0.5),
        "rejected_p99_ms": _ms(tally.rejected, 0.99),
        "cpu_us_per_request": cpu,
    }


async def _seed(ucd_port: int) -> None:
    async with aiohttp.ClientSession() as session:
        ucd = f"http://127.0.0.1:{ucd_port}"
        await _wait_ready(session, f"{ucd}/healthz")
        seed = {"users": [{"identifiers": {"uuid": USER_UUID}, "attributes": {"name": "Bench"}}]}
        async with session.post(
            f"{ucd}/api/user/v1/upsert", data=orjson.dumps(seed), headers=HEADERS
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"seeding failed: {response.status} {await response.text()}")


def run() -> dict[str, Any]:
    """Start the servers, saturate, overload each gateway; print and return the figures."""
    cpus = Cpus.split()
    context = multiprocessing.get_context("spawn")
    ready: Queue[int] = context.Queue()
    processes: list[multiprocessing.process.BaseProcess] = []
    own_cpus = os.sched_getaffinity(0)

    def start(target: Callable[..., None], *args: Any) -> tuple[int, int]:
        proc = context.Process(target=target, args=(*args, ready), daemon=True)
        proc.start()
        processes.append(proc)
        assert proc.pid is not None
        return ready.get(timeout=30), proc.pid

    def stop(proc: multiprocessing.process.BaseProcess) -> None:
        proc.terminate()
        proc.join(timeout=20)

    rows: dict[str, dict[str, Any]] = {}
    far: dict[str, dict[str, Any]] = {}
    saturation: float | None = None
    with tempfile.TemporaryDirectory(prefix="bench-overload-") as data_dir:
        try:
            # This process probes and reads figures: off the gateway's CPU too.
            _pin(cpus.others)
            ucd_port, _ = start(_serve_pinned_local_ucd, data_dir, cpus.others)
            asyncio.run(_seed(ucd_port))
            ucd_url = f"http://127.0.0.1:{ucd_port}"
            for name, limits in ROWS.items():
                if saturation is None:
                    port, _ = start(_serve_gateway, ucd_url, SATURATION_ROW, cpus.gateway)
                    asyncio.run(_warm_up(port))
                    _saturation(port, cpus)  # warm-up
                    saturation = _saturation(port, cpus)
                    stop(processes.pop())
                port, pid = start(_serve_gateway, ucd_url, limits, cpus.gateway)
                rows[name] = _overload_row(port, pid, saturation * OVERLOAD_FACTOR, cpus)
                stop(processes.pop())
            port, pid = start(_serve_gateway, ucd_url, Limits(1), cpus.gateway)
            refusals = _refusal_cost(port, pid, cpus)
            stop(processes.pop())
            stop(processes.pop())  # the local UCD; the far one has data of its own
            assert saturation is not None
            far_port, _ = start(_serve_far_local_ucd, f"{data_dir}/far", cpus.others)
            asyncio.run(_seed(far_port))
            for name, limits in FAR_ROWS.items():
                port, pid = start(
                    _serve_gateway, f"http://127.0.0.1:{far_port}", limits, cpus.gateway
                )
                far[name] = _far_row(port, pid, saturation * FAR_SHARE, cpus)
                stop(processes.pop())
        finally:
            for proc in processes:
                stop(proc)
            os.sched_setaffinity(0, own_cpus)
    report = {
        "cpus": cpus.describe(),
        "saturation_rps": saturation,
        "load_s": LOAD_S,
        "rows": rows,
        "refusals": refusals,
        "far": far,
    }
    print(_table(report))
    return report


def _fmt(value: float | None, spec: str = ",.1f") -> str:
    return "n/a" if value is None else format(value, spec)


def _pair(r: dict[str, Any], key: str) -> str:
    return f"{_fmt(r[key + '_p50_ms'])} / {_fmt(r[key + '_p99_ms'])}"


def _table(report: dict[str, Any]) -> str:
    saturation = report["saturation_rps"]
    lines = [
        f"CPUs: {report['cpus']}. Saturation (closed loop, {SATURATION_CONNECTIONS} "
        f"connections): {saturation:,.0f} requests/s. Overload: {OVERLOAD_FACTOR:g} × that "
        f"offered for {report['load_s']:g} s, open loop from {GENERATORS} generator "
        f"processes, at most {MAX_OUTSTANDING} requests out.",
        "",
        "| gateway | offered/s | sent | not sent | accepted | rejected 503 | failed "
        "| RSS before / peak / after MiB "
        f"| recovery s | ok of {AFTER_REQUESTS}, {AFTER_S:g} s after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["rows"].items():
        lines.append(
            f"| {name} | {r['offered_rps']:,.0f} | {r['sent']:,} | {r['not_sent']:,} "
            f"| {r['accepted']:,} | {r['rejected']:,} | {r['failed']:,} "
            f"| {r['rss_before_mib']:.0f} / {r['rss_peak_mib']:.0f} / {r['rss_after_mib']:.0f} "
            f"| {_fmt(r['recovery_s'], '.2f')} | {r['after_ok']} |"
        )
    lines += [
        "",
        "Latencies, p50 / p99 ms: as the load generator saw them (request written to answer "
        "read), and as the gateway did (ASGI call to last byte sent); how late the gateway's "
        "event loop ran a 10 ms timer; the share of one CPU the gateway used during the load, "
        "and the share of the time it was ready to run but waited for a CPU (other processes); "
        "the generator's lag behind its schedule, and the CPU it used.",
        "",
        "| gateway | rejected, client | rejected p99 after the first "
        f"{RAMP_S:g} s, client | rejected, gateway | accepted, client "
        "| accepted, gateway | gateway loop lag | gateway CPU used / waited for "
        "| generator lag p99 ms | generator CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["rows"].items():
        lines.append(
            f"| {name} | {_pair(r, 'rejected')} | {_fmt(r['rejected_steady_p99_ms'])} "
            f"| {_pair(r, 'gateway_rejected')} "
            f"| {_pair(r, 'accepted')} | {_pair(r, 'gateway_accepted')} "
            f"| {_pair(r, 'gateway_loop_lag')} "
            f"| {_fmt(r['gateway_cpu_share'], '.0%')} / {_fmt(r['gateway_cpu_wait_share'], '.0%')} "
            f"| {_fmt(r['generator_lag_p99_ms'])} | {_fmt(r['generator_cpu_share'], '.0%')} |"
        )
    for name, r in report["rows"].items():
        if r["failures"]:
            kinds = ", ".join(f"{kind} × {n:,}" for kind, n in sorted(r["failures"].items()))
            lines.append(f"\nFailed, {name}: {kinds}.")
    f = report["refusals"]
    lines += [
        "",
        f"The cost of a refusal: max_in_flight 1, closed loop of {SATURATION_CONNECTIONS} "
        f"connections for {SATURATION_S:g} s.",
        "",
        "| refused | accepted | refused p50 / p99 ms | gateway CPU µs/request |",
        "|---:|---:|---:|---:|",
        f"| {f['rejected']:,} | {f['accepted']:,} "
        f"| {_fmt(f['rejected_p50_ms'], '.2f')} / {_fmt(f['rejected_p99_ms'], '.2f')} "
        f"| {_fmt(f['cpu_us_per_request'], ',.0f')} |",
        "",
        f"A UCD {FAR_LATENCY_MS:g} ms away (profile reads), {FAR_SHARE:g} × saturation "
        f"offered for {FAR_S:g} s: CPU to spare, ~150 reads in flight.",
        "",
        "| gateway | offered/s | accepted | rejected 503 | failed or not sent "
        "| accepted p50 / p99 ms | gateway CPU used |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["far"].items():
        share = r["gateway_cpu_share"]
        lines.append(
            f"| {name} | {r['offered_rps']:,.0f} | {r['accepted']:,} | {r['rejected']:,} "
            f"| {r['failed']:,} | {_pair(r, 'accepted')} "
            f"| {'n/a' if share is None else format(share, '.0%')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    run()
