"""Overload: the gateway at about twice the load it can serve, with and without shedding.

The local UCD and each gateway run under uvicorn in their own processes on loopback (as
in ``gateway_overhead``); the load generator is aiohttp in this process.

1. **Saturation.** A closed loop of ``SATURATION_CONNECTIONS`` connections sends the
   selective read of ``gateway_overhead`` for ``SATURATION_S`` seconds to a gateway with
   default settings: its requests/s is the saturation rate ``S``.
2. **Overload**, for each gateway row (a fresh process each): an open loop offers
   ``2 × S`` requests/s for ``LOAD_S`` seconds, each request with a ``CLIENT_TIMEOUT_S``
   timeout, bounded at ``MAX_OUTSTANDING`` requests in flight on as many connections (a
   request due while the bound is reached is not sent and is counted as "not sent").
   Answers are *accepted* (200 without errors), *rejected* (503 OVERLOADED) or *failed*
   (anything else: the operation's deadline, client timeouts, other errors).
3. **Recovery.** As soon as the load stops, one probe at a time until a probe is answered
   200: the recovery time. Then, 5 s after the load stopped, 100 requests (10 at a time)
   and how many of them succeed.
4. **Memory.** The gateway's RSS before the load, its peak during it (``VmHWM``), and after.
5. **The cost of a refusal**, apart from the load generator's own queueing (which, on a
   small machine, dominates the latencies of step 2): a gateway with
   ``max_in_flight=1`` under a closed loop of ``SATURATION_CONNECTIONS`` connections for
   ``SATURATION_S``, so nearly every request is refused: latencies of the refusals, and
   the gateway's CPU time per request (``/proc``), against an accepted read's.

``run()`` returns the figures and prints a markdown table. ``python -m bench.overload``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from typing import Any

import aiohttp
import orjson
from pydantic import SecretStr

from bench.gateway_overhead import QUERY, USER_UUID, _cpu_seconds, _wait_ready
from bench.local_ucd_scale import HEADERS, PARTNER, TOKEN, _listen, _serve_local_ucd, _status_kib

SATURATION_CONNECTIONS = 64
SATURATION_S = 5.0
LOAD_S = 20.0
OVERLOAD_FACTOR = 2.0
CLIENT_TIMEOUT_S = 15.0
MAX_OUTSTANDING = 1024
AFTER_S = 5.0
AFTER_REQUESTS = 100

#: The gateways compared: a name and UCD_GATEWAY_MAX_IN_FLIGHT. A limit no load reaches
#: stands for the gateway before shedding existed.
ROWS: dict[str, int] = {"shedding (max_in_flight 256, default)": 256, "no shedding": 10**9}

GRAPHQL = orjson.dumps({"query": QUERY, "variables": {"u": USER_UUID}})
JSON_HEADERS = {"Content-Type": "application/json"}


def _serve_gateway(ucd_url: str, max_in_flight: int, ready: Queue[int]) -> None:
    import uvicorn

    from gateway.app import create_app
    from gateway.settings import Settings

    sock = _listen()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        ucd_base_url=ucd_url,
        partner=PARTNER,
        token=SecretStr(TOKEN),
        port=sock.getsockname()[1],
        max_in_flight=max_in_flight,
    )
    ready.put(sock.getsockname()[1])
    uvicorn.Server(
        uvicorn.Config(create_app(settings), log_level="warning", access_log=False, lifespan="on")
    ).run(sockets=[sock])


# --- load ---------------------------------------------------------------------------------


@dataclass
class Tally:
    accepted: list[float] = field(default_factory=list)
    rejected: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    not_sent: int = 0


async def _send(session: aiohttp.ClientSession, url: str, limit_s: float) -> tuple[str, float]:
    """One GraphQL request: ``accepted``, ``rejected`` or ``failed``, and its latency (s)."""
    start = time.perf_counter()
    try:
        async with session.post(
            url,
            data=GRAPHQL,
            headers=JSON_HEADERS,
            timeout=aiohttp.ClientTimeout(total=limit_s),
        ) as response:
            payload = await response.read()
            status = response.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        return f"failed: {type(exc).__name__}", time.perf_counter() - start
    latency = time.perf_counter() - start
    if status == 200 and b'"errors"' not in payload:
        return "accepted", latency
    if status == 503 and b'"OVERLOADED"' in payload:
        return "rejected", latency
    return f"failed: HTTP {status}", latency


async def _saturation(session: aiohttp.ClientSession, url: str) -> float:
    """Requests/s of a closed loop of ``SATURATION_CONNECTIONS`` for ``SATURATION_S``."""
    done = 0
    stop = time.perf_counter() + SATURATION_S

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            outcome, _ = await _send(session, url, CLIENT_TIMEOUT_S)
            if outcome != "accepted":
                raise RuntimeError(f"saturation run: a request {outcome}")
            done += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(SATURATION_CONNECTIONS)))
    return done / (time.perf_counter() - began)


async def _open_loop(
    session: aiohttp.ClientSession, url: str, rate: float
) -> tuple[Tally, set[asyncio.Task[None]], float]:
    """Offer ``rate`` requests/s for ``LOAD_S``; the tally, the requests still out, the end."""
    tally = Tally()
    outstanding: set[asyncio.Task[None]] = set()

    async def one() -> None:
        outcome, latency = await _send(session, url, CLIENT_TIMEOUT_S)
        if outcome == "accepted":
            tally.accepted.append(latency)
        elif outcome == "rejected":
            tally.rejected.append(latency)
        else:
            tally.failures[outcome.removeprefix("failed: ")] += 1

    began = time.perf_counter()
    issued = 0
    while (elapsed := time.perf_counter() - began) < LOAD_S:
        for _ in range(int(elapsed * rate) - issued):
            issued += 1
            if len(outstanding) >= MAX_OUTSTANDING:
                tally.not_sent += 1
                continue
            task = asyncio.create_task(one())
            outstanding.add(task)
            task.add_done_callback(outstanding.discard)
        await asyncio.sleep(0.002)
    return tally, outstanding, time.perf_counter()


async def _recovery(session: aiohttp.ClientSession, url: str, load_end: float) -> float:
    """Seconds from ``load_end`` until a probe, one at a time, is answered 200."""
    while True:
        outcome, _ = await _send(session, url, 10.0)
        if outcome == "accepted":
            return time.perf_counter() - load_end
        if time.perf_counter() - load_end > 60:
            return float("inf")
        await asyncio.sleep(0.05)


async def _after(session: aiohttp.ClientSession, url: str) -> int:
    """Of ``AFTER_REQUESTS`` requests, 10 at a time, how many were accepted."""
    gate = asyncio.Semaphore(10)

    async def one() -> bool:
        async with gate:
            outcome, _ = await _send(session, url, 10.0)
            return outcome == "accepted"

    return sum(await asyncio.gather(*(one() for _ in range(AFTER_REQUESTS))))


def _ms(latencies: list[float], quantile: float) -> float | None:
    if not latencies:
        return None
    ordered = sorted(latencies)
    if quantile == 0.5:
        return statistics.median(ordered) * 1000
    return ordered[min(len(ordered) - 1, int(len(ordered) * quantile))] * 1000


async def _overload_row(port: int, pid: int, rate: float) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/graphql"
    connector = aiohttp.TCPConnector(limit=MAX_OUTSTANDING + 20)
    async with aiohttp.ClientSession(connector=connector) as session:
        await _wait_ready(session, f"http://127.0.0.1:{port}/healthz")
        for _ in range(200):  # warm-up: caches, connections
            await _send(session, url, CLIENT_TIMEOUT_S)
        rss_before = _status_kib(pid, "VmRSS") / 1024
        tally, outstanding, load_end = await _open_loop(session, url, rate)
        recovery = await _recovery(session, url, load_end)
        if outstanding:
            await asyncio.wait(outstanding)
        await asyncio.sleep(max(0.0, load_end + AFTER_S - time.perf_counter()))
    # A fresh pool: uvicorn closes connections idle for 5 s, and a request on one of
    # those would count as a failure of the gateway's rather than of the client's pool.
    async with aiohttp.ClientSession() as session:
        after_ok = await _after(session, url)
    failed = sum(tally.failures.values())
    sent = len(tally.accepted) + len(tally.rejected) + failed
    return {
        "offered_rps": (sent + tally.not_sent) / LOAD_S,
        "sent": sent,
        "not_sent": tally.not_sent,
        "accepted": len(tally.accepted),
        "rejected": len(tally.rejected),
        "failed": failed,
        "failures": dict(tally.failures),
        "accepted_p50_ms": _ms(tally.accepted, 0.5),
        "accepted_p99_ms": _ms(tally.accepted, 0.99),
        "rejected_p50_ms": _ms(tally.rejected, 0.5),
        "rejected_p99_ms": _ms(tally.rejected, 0.99),
        "rss_before_mib": rss_before,
        "rss_peak_mib": _status_kib(pid, "VmHWM") / 1024,
        "rss_after_mib": _status_kib(pid, "VmRSS") / 1024,
        "recovery_s": recovery,
        "after_ok": after_ok,
    }


async def _refusal_cost(port: int, pid: int) -> dict[str, Any]:
    """Closed loop on a gateway that takes one request at a time: refusals' cost."""
    url = f"http://127.0.0.1:{port}/graphql"
    rejected: list[float] = []
    accepted = 0
    connector = aiohttp.TCPConnector(limit=SATURATION_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        await _wait_ready(session, f"http://127.0.0.1:{port}/healthz")
        stop = time.perf_counter() + SATURATION_S
        cpu_before = _cpu_seconds(pid)

        async def worker() -> None:
            nonlocal accepted
            while time.perf_counter() < stop:
                outcome, latency = await _send(session, url, CLIENT_TIMEOUT_S)
                if outcome == "rejected":
                    rejected.append(latency)
                elif outcome == "accepted":
                    accepted += 1
                else:
                    raise RuntimeError("refusal run: a request failed")

        await asyncio.gather(*(worker() for _ in range(SATURATION_CONNECTIONS)))
        cpu_after = _cpu_seconds(pid)
    cpu = None
    if cpu_before is not None and cpu_after is not None:
        cpu = (cpu_after - cpu_before) / (len(rejected) + accepted) * 1e6
    return {
        "rejected": len(rejected),
        "accepted": accepted,
        "rejected_p50_ms": _ms(rejected, 0.5),
        "rejected_p99_ms": _ms(rejected, 0.99),
        "cpu_us_per_request": cpu,
    }


async def _seed_and_saturate(ucd_port: int, gateway_port: int) -> float:
    connector = aiohttp.TCPConnector(limit=SATURATION_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        ucd = f"http://127.0.0.1:{ucd_port}"
        await _wait_ready(session, f"{ucd}/healthz")
        await _wait_ready(session, f"http://127.0.0.1:{gateway_port}/healthz")
        seed = {"users": [{"identifiers": {"uuid": USER_UUID}, "attributes": {"name": "Bench"}}]}
        async with session.post(
            f"{ucd}/api/user/v1/upsert", data=orjson.dumps(seed), headers=HEADERS
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"seeding failed: {response.status} {await response.text()}")
        url = f"http://127.0.0.1:{gateway_port}/graphql"
        await _saturation(session, url)  # warm-up
        return await _saturation(session, url)


def run() -> dict[str, Any]:
    """Start the servers, saturate, overload each gateway; print and return the figures."""
    context = multiprocessing.get_context("spawn")
    ready: Queue[int] = context.Queue()
    processes: list[multiprocessing.process.BaseProcess] = []

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
    with tempfile.TemporaryDirectory(prefix="bench-overload-") as data_dir:
        try:
            ucd_port, _ = start(_serve_local_ucd, data_dir)
            ucd_url = f"http://127.0.0.1:{ucd_port}"
            saturation: float | None = None
            for name, limit in ROWS.items():
                port, pid = start(_serve_gateway, ucd_url, limit)
                if saturation is None:
                    saturation = asyncio.run(_seed_and_saturate(ucd_port, port))
                    stop(processes.pop())
                    port, pid = start(_serve_gateway, ucd_url, limit)
                rows[name] = asyncio.run(_overload_row(port, pid, saturation * OVERLOAD_FACTOR))
                stop(processes.pop())
            port, pid = start(_serve_gateway, ucd_url, 1)
            refusals = asyncio.run(_refusal_cost(port, pid))
            stop(processes.pop())
        finally:
            for proc in processes:
                stop(proc)
    report = {
        "saturation_rps": saturation,
        "load_s": LOAD_S,
        "rows": rows,
        "refusals": refusals,
    }
    print(_table(report))
    return report


def _fmt(value: float | None, spec: str = ",.1f") -> str:
    return "n/a" if value is None else format(value, spec)


def _table(report: dict[str, Any]) -> str:
    saturation = report["saturation_rps"]
    lines = [
        f"Saturation (closed loop, {SATURATION_CONNECTIONS} connections): "
        f"{saturation:,.0f} requests/s. Overload: {OVERLOAD_FACTOR:g} × that offered for "
        f"{report['load_s']:g} s, open loop, at most {MAX_OUTSTANDING} requests out.",
        "",
        "| gateway | offered/s | sent | not sent | accepted | rejected 503 | failed "
        "| rejected p50 / p99 ms | accepted p50 / p99 ms | RSS before / peak / after MiB "
        f"| recovery s | ok of {AFTER_REQUESTS}, {AFTER_S:g} s after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["rows"].items():
        lines.append(
            f"| {name} | {r['offered_rps']:,.0f} | {r['sent']:,} | {r['not_sent']:,} "
            f"| {r['accepted']:,} | {r['rejected']:,} | {r['failed']:,} "
            f"| {_fmt(r['rejected_p50_ms'])} / {_fmt(r['rejected_p99_ms'])} "
            f"| {_fmt(r['accepted_p50_ms'])} / {_fmt(r['accepted_p99_ms'])} "
            f"| {r['rss_before_mib']:.0f} / {r['rss_peak_mib']:.0f} / {r['rss_after_mib']:.0f} "
            f"| {_fmt(r['recovery_s'], '.2f')} | {r['after_ok']} |"
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
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    run()
