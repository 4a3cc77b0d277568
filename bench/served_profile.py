"""Where a served gateway's CPU goes per selective read: cProfile shares by component.

``bench/callgrind_reads.py`` counts instructions with the app reached through httpx's
ASGITransport: no uvicorn, no sockets, and logging as the test process configures it.
This bench sees the rest: the local UCD (``ucd-gateway local-ucd``) and the gateway
(``ucd-gateway serve`` through ``bench/_profiled_serve.py``: default settings, so uvicorn,
its access line and the gateway's operation line at the CLI's log level) each in its own
process, as ``bench/peers.py`` starts them, the gateway profiled (CPU time) only while the
measured requests run; 2,000 seeded users; the selective read
(``query($u: String!) { user(key: {uuid: $u}) { name email } }``, a different user each
request) at 8 connections for ``BENCH_SECONDS`` (default 10). The profile's own time
(``tottime``) is summed by the component the function's file belongs to, and printed as
shares of the whole: what a read costs outside GraphQL execution is the uvicorn, logging,
starlette, strawberry and front-door rows.

cProfile slows Python calls unevenly (a deep call chain costs more under it than it
would without), so read the shares as where to look, and callgrind_reads for the
per-request figures. ``python -m bench served_profile``.
"""

from __future__ import annotations

import os
import pstats
import signal
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.peers import (
    Server,
    _cases,
    _load,
    _seed,
    _start,
    _start_local_ucd,
    _stop,
)

PROFILED = Path(__file__).with_name("_profiled_serve.py")
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = 8

#: (component, what a function's file path contains), first match wins.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("uvicorn", ("/uvicorn/", "/httptools/", "/h11/")),
    ("logging", ("/logging/", "gateway/logs.py")),
    ("starlette", ("/starlette/",)),
    ("strawberry", ("/strawberry/", "/cross_web/")),
    ("graphql-core", ("/graphql/",)),
    ("compiled path", ("gateway/compiled/",)),
    ("UCD client", ("gateway/ucd/", "/httpx/", "/httpcore/", "/aiohttp/", "/anyio/")),
    ("GraphQL API", ("gateway/api/", "gateway/reads/", "gateway/persisted/")),
    (
        "front door",
        (
            "gateway/app.py",
            "gateway/operations.py",
            "gateway/metrics.py",
            "gateway/request_context.py",
            "gateway/graphql_over_http.py",
            "gateway/request_bodies.py",
            "gateway/load_shedding.py",
            "gateway/loop_lag.py",
            "gateway/limits.py",
            "gateway/auth/",
            "gateway/error_pipeline.py",
            "/prometheus_client/",
        ),
    ),
    ("local UCD (in-process runs)", ("gateway/local_ucd/", "/aiosqlite/", "/sqlite3/")),
    ("gateway, other", ("gateway/",)),
    ("asyncio, uvloop", ("/asyncio/", "/uvloop/", "selectors.py")),
    ("contextlib, contextvars, other", ("",)),
)


def component_of(path: str) -> str:
    for name, marks in COMPONENTS:
        if any(mark in path for mark in marks):
            return name
    return COMPONENTS[-1][0]


def seconds_by_component(profile: Path) -> dict[str, float]:
    """Each component's own CPU seconds in the profile."""
    # (file, line, name) -> (cc, nc, tt, ct, callers); typeshed leaves the attribute out.
    stats: Any = getattr(pstats.Stats(str(profile)), "stats")  # noqa: B009
    totals: dict[str, float] = defaultdict(float)
    for (path, _line, _name), (_cc, _nc, tottime, _ct, callers) in stats.items():
        if path != "~" or not callers:
            totals[component_of(path)] += tottime
            continue
        # A built-in (orjson.dumps, a dict method) is charged to its callers, each with
        # the time of its own calls.
        for (caller_path, _, _), (_, _, caller_tt, _) in callers.items():
            totals[component_of(caller_path)] += caller_tt
    return dict(totals)


def _start_profiled_gateway(work: Path, ucd: Server, out: Path) -> Server:
    return _start(
        "gateway",
        [sys.executable, str(PROFILED), str(out), "serve", "--port", "0"],
        work / "gateway.log",
        r"GraphiQL on (\S+)/graphql",
        UCD_GATEWAY_UCD_BASE_URL=ucd.base_url,
        UCD_GATEWAY_PUBLIC_URL="http://127.0.0.1:9",
    )


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 60
    while not path.exists() or path.stat().st_size == 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the gateway wrote no profile to {path}")
        time.sleep(0.2)
    time.sleep(0.5)  # dump_stats writes in one go; let it finish


def run() -> dict[str, Any]:
    request = _cases()["read"]["gateway"]
    with tempfile.TemporaryDirectory(prefix="bench-served-") as tmp:
        work = Path(tmp)
        # BENCH_PROFILE_OUT keeps the profile (for pstats or snakeviz) after the run.
        out = Path(os.environ.get("BENCH_PROFILE_OUT", work / "gateway.prof"))
        ucd = _start_local_ucd(work)
        try:
            _seed(ucd)
            gateway = _start_profiled_gateway(work, ucd, out)
            try:
                _load(gateway.base_url, request, CONNECTIONS, 1.0)  # warm-up
                gateway.process.send_signal(signal.SIGUSR1)
                figures = _load(gateway.base_url, request, CONNECTIONS, SECONDS)
                gateway.process.send_signal(signal.SIGUSR2)
                _wait_for(out)
            finally:
                _stop(gateway)
        finally:
            _stop(ucd)
        table = seconds_by_component(out)
    whole = sum(table.values()) or 1.0
    requests = max(figures.requests, 1)
    print(
        f"cProfile of `ucd-gateway serve`, selective read, {CONNECTIONS} connections, "
        f"{figures.requests} requests in {figures.seconds:.0f} s ({figures.failures} failed); "
        f"{whole / requests * 1e6:,.0f} µs of CPU per request under the profiler."
    )
    print()
    print("| component | share of the gateway's CPU | µs per request (profiled) |")
    print("|---|---:|---:|")
    for name, seconds in sorted(table.items(), key=lambda item: -item[1]):
        print(f"| {name} | {seconds / whole:.1%} | {seconds / requests * 1e6:,.0f} |")
    return {"requests": figures.requests, "seconds": table}


if __name__ == "__main__":
    run()
