"""The UCD HTTP client's cost per call, per transport (``UCD_GATEWAY_HTTP_TRANSPORT``).

A local UCD served by uvicorn in its own process (``ucd-gateway local-ucd``, as users run
it) holds one user; ``bench/_ucd_client_worker.py`` runs ``UcdClient`` on
``build_http_client`` in another process and makes N E2 profile calls (``name``,
``email``), one after another (``seq``) and 8 at a time (``conc``), through each
transport; ``lean-httpx`` is the lean pool reached through httpx's objects (what a
client with event hooks, cookies or a tracing span gets). Two figures per row, both of
the client process alone:

* **instructions per call** (callgrind): the worker under ``valgrind --tool=callgrind``
  once with N calls and once with 0 (same warm-up); the difference over N. Valid on a
  loaded machine; skipped with a note without valgrind.
* **CPU µs per call** (getrusage of the worker around the N calls, run natively): moves
  with the machine's load.

Then what it changes for a gateway read: ``ucd-gateway serve`` once per transport (lean,
aiohttp, httpx) over the same local UCD, seeded as ``bench/peers.py`` seeds it, under
``wrk`` (or its Python fallback) with 8 connections, issue 8's selective read with a
different user each request, rounds interleaved (``BENCH_ROUNDS``, default 3, of
``BENCH_SECONDS``, default 5): requests/s, p50 and the gateway process's CPU per read.

``python -m bench ucd_client`` (``BENCH_UCD_CLIENT_N``, default 2,000 natively and
``BENCH_CALLGRIND_N``, default 300, under callgrind).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench import _callgrind as callgrind
from bench import peers
from bench.peers import UCD_HEADERS, _start_local_ucd, _stop

TRANSPORTS = ("lean", "lean-httpx", "aiohttp", "httpx")
MODES = ("seq", "conc")
WORKER = Path(__file__).with_name("_ucd_client_worker.py")
UUID = "bench-ucd-client"


def _env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("UCD_GATEWAY_")}
    # The worker runs as a file; it imports the gateway from the repository.
    return {**base, "PYTHONHASHSEED": "0", "PYTHONPATH": str(WORKER.parent.parent)}


def _native(transport: str, mode: str, count: int, base_url: str) -> float:
    """CPU µs per call of the worker, run natively."""
    done = subprocess.run(  # noqa: S603  # our own worker, fixed arguments
        [sys.executable, str(WORKER), transport, mode, str(count), base_url],
        check=True,
        capture_output=True,
        text=True,
        env=_env(),
    )
    found = re.search(r"cpu_us=(\d+)", done.stdout)
    assert found is not None, done.stdout
    return int(found.group(1)) / count


def _instructions(transport: str, mode: str, count: int, base_url: str, out_dir: Path) -> int:
    out = out_dir / f"{transport}-{mode}-{count}.out"
    return callgrind.instructions([str(WORKER), transport, mode, str(count), base_url], out, _env())


def _seed(base_url: str) -> None:
    user = {"identifiers": {"uuid": UUID}, "attributes": {"name": "Bench", "email": "b@x.io"}}
    answer = httpx.post(
        f"{base_url}/api/user/v1/upsert", json={"users": [user]}, headers=UCD_HEADERS, timeout=30
    )
    answer.raise_for_status()


def _gateways(ucd: peers.Server, work: Path) -> list[dict[str, Any]]:
    """The gateway's CPU per selective read, one served gateway per transport."""
    peers._seed(ucd)
    servers: dict[str, peers.Server] = {}
    try:
        for transport in ("lean", "aiohttp", "httpx"):
            servers[transport] = peers._start(
                f"gateway ({transport})",
                [str(peers.BIN / "ucd-gateway"), "serve", "--port", "0"],
                work / f"gateway-{transport}.log",
                r"GraphiQL on (\S+)/graphql",
                UCD_GATEWAY_UCD_BASE_URL=ucd.base_url,
                UCD_GATEWAY_PUBLIC_URL="http://127.0.0.1:9",
                UCD_GATEWAY_HTTP_TRANSPORT=transport,
            )
        request = peers._cases()["read"]["gateway"]
        for server in servers.values():
            peers._check("read", "gateway", server, request)
        samples: dict[str, list[tuple[peers.Figures, float]]] = {t: [] for t in servers}
        for _ in range(peers.ROUNDS):
            for transport, server in servers.items():
                peers._load(server.base_url, request, 8, peers.WARMUP_SECONDS)
                before = peers._tree_cpu_seconds(server.pid)
                figures = peers._load(server.base_url, request, 8, peers.SECONDS)
                cpu = peers._tree_cpu_seconds(server.pid) - before
                samples[transport].append((figures, cpu / max(1, figures.requests) * 1e6))
    finally:
        for server in servers.values():
            _stop(server)
    return [
        {
            "transport": transport,
            "rps": statistics.median(f.rps for f, _ in rows),
            "p50_ms": statistics.median(f.p50_ms for f, _ in rows),
            "cpu_us": statistics.median(cpu for _, cpu in rows),
        }
        for transport, rows in samples.items()
    ]


def run() -> dict[str, Any]:
    native_n = int(os.environ.get("BENCH_UCD_CLIENT_N", "2000"))
    callgrind_n = int(os.environ.get("BENCH_CALLGRIND_N", "300"))
    with_valgrind = shutil.which("valgrind") is not None
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ucd-client-") as work:
        ucd = _start_local_ucd(Path(work))
        try:
            _seed(ucd.base_url)
            for mode in MODES:
                for transport in TRANSPORTS:
                    row: dict[str, Any] = {"transport": transport, "mode": mode}
                    row["cpu_us"] = _native(transport, mode, native_n, ucd.base_url)
                    if with_valgrind:
                        many, none = (
                            _instructions(transport, mode, n, ucd.base_url, Path(work))
                            for n in (callgrind_n, 0)
                        )
                        row["instructions"] = (many - none) / callgrind_n
                    rows.append(row)
            gateway_rows = _gateways(ucd, Path(work))
        finally:
            _stop(ucd)
    if not with_valgrind:
        print("valgrind is not installed: no instruction counts (apt-get install valgrind).\n")
    print(
        f"One E2 call from UcdClient to a local UCD in another process (uvicorn), client "
        f"process only; CPU over {native_n} calls on a loaded machine, instructions "
        f"(callgrind) over {callgrind_n}."
    )
    print()
    print("| calls | transport | instructions per call | CPU µs per call (loaded machine) |")
    print("|---|---|---:|---:|")
    for row in rows:
        counted = row.get("instructions")
        shown = f"{counted / 1e3:,.0f} k" if counted is not None else "—"
        mode = "sequential" if row["mode"] == "seq" else "8 concurrent"
        print(f"| {mode} | {row['transport']} | {shown} | {row['cpu_us']:.0f} |")
    print()
    print(
        f"The gateway served by the CLI per transport, selective read with a different user "
        f"each request, 8 connections, medians of {peers.ROUNDS} interleaved rounds of "
        f"{peers.SECONDS:.0f} s (loaded machine)."
    )
    print()
    print("| transport | requests/s | p50 ms | gateway CPU µs per read |")
    print("|---|---:|---:|---:|")
    for row in gateway_rows:
        print(
            f"| {row['transport']} | {row['rps']:,.0f} | {row['p50_ms']:.2f} "
            f"| {row['cpu_us']:.0f} |"
        )
    return {"rows": rows, "gateways": gateway_rows}


if __name__ == "__main__":
    run()
