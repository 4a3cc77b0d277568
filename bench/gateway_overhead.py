"""Gateway overhead: a selective profile query through the gateway vs the same call sent
straight to the local UCD, in the same run.

Each server runs under uvicorn in its own process (one worker each) on loopback, so the
load generator and the servers do not share a GIL. The load generator (aiohttp, in this
process) keeps a few connections busy for a fixed number of requests per target:

* ``local UCD direct``: POST /api/user/v1/profile asking for two attributes;
* ``gateway (lean transport)``: ``{ user(key: {uuid}) { name email } }``, which the
  gateway turns into that same profile call, on its own pool (the default);
* ``gateway (aiohttp transport)``: the same, over httpx-aiohttp;
* ``gateway (httpx transport)``: the same, with httpx's default transport underneath,
  to keep the transport choice of gateway/ucd/transport.py measured.

Besides latency and requests/s, each row reports the CPU time the *serving* process
spent per request (Linux: ``/proc/<pid>/stat``): for the gateway rows, the gateway's
own CPU, without the UCD's. On a shared machine wall-clock figures move with the
neighbours' load; CPU per request moves much less.

``run()`` returns the figures and prints a markdown table. ``python -m bench.gateway_overhead``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any, Literal, cast

import aiohttp
import orjson
from pydantic import SecretStr

from bench.local_ucd_scale import CLI_LOOP, HEADERS, PARTNER, TOKEN, _listen, _serve_local_ucd

USER_UUID = "bench-user-1"
PROFILE_BODY = {"identifiers": {"uuid": USER_UUID}, "attributes": ["name", "email"]}
QUERY = "query($u: String!) { user(key: {uuid: $u}) { name email } }"

CONNECTIONS = 8
REQUESTS = 3000
WARMUP = 300


# --- servers (each in its own process) ----------------------------------------------------


def _serve_gateway(ucd_url: str, transport: str, ready: Queue[int]) -> None:
    import uvicorn

    from gateway.app import create_app
    from gateway.settings import Settings

    sock = _listen()
    port = sock.getsockname()[1]
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        ucd_base_url=ucd_url,
        partner=PARTNER,
        token=SecretStr(TOKEN),
        port=port,
        http_transport=cast(Literal["lean", "aiohttp", "httpx"], transport),
    )
    ready.put(port)
    uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            log_level="warning",
            access_log=False,
            lifespan="on",
            loop=CLI_LOOP,
        )
    ).run(sockets=[sock])


# --- load ---------------------------------------------------------------------------------


async def _wait_ready(session: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not become ready")


async def _load(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], total: int
) -> tuple[list[float], float]:
    """``total`` POSTs over ``CONNECTIONS`` workers; latencies (s) and wall time (s)."""
    latencies: list[float] = []
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                payload = await response.read()
                if response.status != 200 or b'"errors"' in payload:
                    raise RuntimeError(f"{url} answered {response.status}: {payload[:200]!r}")
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return latencies, time.perf_counter() - began


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` so far; None where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # Fields 14 and 15 of proc(5) (utime, stime), counted after the ")" of the name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _figures(latencies: list[float], wall: float, cpu: float | None) -> dict[str, float]:
    ordered = sorted(latencies)
    figures = {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "rps": len(ordered) / wall,
    }
    if cpu is not None:
        figures["cpu_us"] = cpu / len(ordered) * 1e6
    return figures


async def _measure(
    local_ucd: tuple[int, int], gateways: dict[str, tuple[int, int]]
) -> dict[str, dict[str, float]]:
    """Load every target; ``local_ucd`` and each gateway are ``(port, pid)``."""
    ucd_port, ucd_pid = local_ucd
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        ucd = f"http://127.0.0.1:{ucd_port}"
        await _wait_ready(session, f"{ucd}/healthz")
        for port, _ in gateways.values():
            await _wait_ready(session, f"http://127.0.0.1:{port}/healthz")
        seed = {
            "users": [
                {
                    "identifiers": {"uuid": USER_UUID, "email": "bench@example.com"},
                    "attributes": {"name": "Bench"},
                }
            ]
        }
        async with session.post(
            f"{ucd}/api/user/v1/upsert", data=orjson.dumps(seed), headers=HEADERS
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"seeding failed: {response.status} {await response.text()}")

        targets: dict[str, tuple[str, bytes, dict[str, str], int]] = {
            "local UCD direct (profile call)": (
                f"{ucd}/api/user/v1/profile",
                orjson.dumps(PROFILE_BODY),
                HEADERS,
                ucd_pid,
            ),
        }
        graphql = orjson.dumps({"query": QUERY, "variables": {"u": USER_UUID}})
        for name, (port, pid) in gateways.items():
            targets[f"gateway, {name} transport (GraphQL)"] = (
                f"http://127.0.0.1:{port}/graphql",
                graphql,
                {"Content-Type": "application/json"},
                pid,
            )
        results: dict[str, dict[str, float]] = {}
        for name, (url, body, headers, pid) in targets.items():
            await _load(session, url, body, headers, WARMUP)
            before = _cpu_seconds(pid)
            latencies, wall = await _load(session, url, body, headers, REQUESTS)
            after = _cpu_seconds(pid)
            cpu = after - before if after is not None and before is not None else None
            results[name] = _figures(latencies, wall, cpu)
        return results


def run() -> dict[str, Any]:
    """Start the servers, measure every target, stop them; print and return the figures."""
    context = multiprocessing.get_context("spawn")
    processes: list[multiprocessing.process.BaseProcess] = []
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as data_dir:
        try:
            ready: Queue[int] = context.Queue()
            ucd_proc: multiprocessing.process.BaseProcess = context.Process(
                target=_serve_local_ucd, args=(data_dir, ready), daemon=True
            )
            ucd_proc.start()
            processes.append(ucd_proc)
            ucd_port = ready.get(timeout=30)
            assert ucd_proc.pid is not None
            gateways: dict[str, tuple[int, int]] = {}
            for transport in ("lean", "aiohttp", "httpx"):
                proc: multiprocessing.process.BaseProcess = context.Process(
                    target=_serve_gateway,
                    args=(f"http://127.0.0.1:{ucd_port}", transport, ready),
                    daemon=True,
                )
                proc.start()
                processes.append(proc)
                assert proc.pid is not None
                gateways[transport] = (ready.get(timeout=30), proc.pid)
            results = asyncio.run(_measure((ucd_port, ucd_proc.pid), gateways))
        finally:
            for proc in processes:
                proc.terminate()
            for proc in processes:
                proc.join(timeout=10)
    report = {
        "connections": CONNECTIONS,
        "requests": REQUESTS,
        "results": results,
    }
    print(_table(report))
    return report


def _table(report: dict[str, Any]) -> str:
    lines = [
        f"Gateway overhead: {report['requests']} requests per row after a warm-up, "
        f"{report['connections']} connections, one uvicorn worker per server, loopback.",
        "",
        "| target | p50 ms | p99 ms | requests/s | server CPU µs/request |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, fig in report["results"].items():
        cpu = f"{fig['cpu_us']:,.0f}" if "cpu_us" in fig else "n/a"
        lines.append(
            f"| {name} | {fig['p50_ms']:.2f} | {fig['p99_ms']:.2f} | {fig['rps']:,.0f} | {cpu} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    run()
