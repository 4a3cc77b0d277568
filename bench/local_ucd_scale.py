"""Local UCD at scale: bulk load, profile read latency, export memory, query plans.

The local UCD runs under uvicorn in its own process (as ``ucd-gateway`` runs it), and this
process drives it over loopback HTTP with aiohttp, so every figure includes the real
request pipeline (routing, auth, body checks, JSON, one SQLite transaction per request).

1. Load ``BENCH_USERS`` users (default 100,000), each with 2 identifiers, 9 attributes
   and 10 events (1,000,000 events at the default), through E1 in calls of 1,000 users;
   users/s and events/s per stage.
2. After each quarter/half/full stage, export the "All users" segment (segment 1: every
   attribute, three event types over 90 days) as CSV: wall time from the request to the
   webhook, file size, rows, and the server's peak RSS during the export (VmHWM, reset
   through /proc/<pid>/clear_refs just before; VmRSS sampling where that is refused).
   Flat RSS across the stages shows the export streams instead of loading the segment.
3. E2 latency at full size: one user, 10 attributes, 3 event types over 90 days;
   sequential requests on one connection, p50/p99.
4. EXPLAIN QUERY PLAN of the statements the code really runs for a profile lookup by
   identifier and by insider_id, the attribute read, the event window (E2 and E3 order)
   and the segment scan (captured with sqlite3's trace callback on the bench database).

``python -m bench.local_ucd_scale`` (or ``make bench``); ``BENCH_USERS=4000`` for a quick run.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from gateway.listening import listening_socket

PARTNER = "bench"
TOKEN = "bench-token"
HEADERS = {"X-PARTNER-NAME": PARTNER, "X-REQUEST-TOKEN": TOKEN, "Content-Type": "application/json"}

BATCH = 1_000
EVENTS_PER_USER = 10
LOAD_CONNECTIONS = 2  # one request parses while the other's transaction commits
PROFILE_READS = 2_000
PROFILE_WARMUP = 200
EVENT_TYPES = ("purchase", "page_view", "add_to_cart")
PROFILE_ATTRIBUTES = [
    "email", "uuid", "name", "surname", "age", "city", "country",
    "email_optin", "c_tier", "c_score",
]  # fmt: skip
PROFILE_PARAMS = {
    "purchase": ["product_id", "unit_sale_price", "currency"],
    "page_view": ["url"],
    "add_to_cart": ["product_id", "quantity"],
}
CITIES = ("Istanbul", "Izmir", "Ankara", "Berlin", "Lisbon", "Austin", "Osaka")


def bench_users() -> int:
    """Scale of the run: ``BENCH_USERS`` (a multiple of 4,000 keeps the stages whole)."""
    return int(os.environ.get("BENCH_USERS", "100000"))


# --- the server process -------------------------------------------------------------------


#: The event loop the CLI's servers run on (gateway/tuning.py): uvloop, accepting every
#: waiting connection per turn (gateway/accepting.py), as uvicorn's import string.
CLI_LOOP = "gateway.accepting:new_event_loop"


def _listen() -> socket.socket:
    """A loopback socket on a free port, listening before the server starts, made the way
    the CLI's servers make theirs (gateway/listening.py: TCP_NODELAY on what it accepts),
    so the benches measure what users run."""
    # Connections wait in the backlog until uvicorn accepts them.
    return listening_socket("127.0.0.1", 0, backlog=1024)


def _serve_local_ucd(data_dir: str, ready: Queue[int], *, profile_latency_ms: float = 0.0) -> None:
    """Serve a local UCD of partner ``bench`` under uvicorn; put its port on ``ready``.
    ``profile_latency_ms``: its profile reads answer that late (a UCD far away)."""
    import uvicorn

    from gateway.local_ucd.app import create_local_ucd_app
    from gateway.local_ucd.config import FaultConfig, LocalUcdConfig

    sock = _listen()
    port = sock.getsockname()[1]
    faults = (
        FaultConfig.from_json({"endpoints": {"profile": {"latency_ms": profile_latency_ms}}})
        if profile_latency_ms
        else None
    )
    config = LocalUcdConfig(
        port=port, data_dir=Path(data_dir), partners={PARTNER: (TOKEN,)}, faults=faults
    )
    app = create_local_ucd_app(config)
    ready.put(port)
    uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", loop=CLI_LOOP)
    ).run(sockets=[sock])


# --- memory of the server process ---------------------------------------------------------


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


class PeakRss:
    """Peak resident memory of a process over a stretch of time, in MiB.

    Writing ``5`` to ``/proc/<pid>/clear_refs`` resets the kernel's high-water mark
    (VmHWM), which is then exact. Where that is not allowed, VmRSS is sampled every 20 ms.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._samples: list[int] = []
        self._task: asyncio.Task[None] | None = None
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            self.method = "VmHWM after clear_refs"
        except OSError:
            self.method = "VmRSS sampled every 20 ms"

    async def __aenter__(self) -> PeakRss:
        self.before = _status_kib(self.pid, "VmRSS") / 1024
        if self.method.startswith("VmRSS"):
            self._task = asyncio.create_task(self._sample())
        return self

    async def _sample(self) -> None:
        while True:
            self._samples.append(_status_kib(self.pid, "VmRSS"))
            await asyncio.sleep(0.02)

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            self.peak = max(self._samples, default=0) / 1024
        else:
            self.peak = _status_kib(self.pid, "VmHWM") / 1024


# --- generated data -----------------------------------------------------------------------


def _user(i: int, now: datetime) -> dict[str, Any]:
    """User ``i``: 10 attributes (2 identifiers among them) and 10 distinct events."""
    events = []
    for k in range(EVENTS_PER_USER):
        name = EVENT_TYPES[k % 3]
        # Spread over the last ~80 days: inside every retention period (90 days at least).
        at = now - timedelta(days=(i * 7 + k * 8) % 80, seconds=k * 61 + i % 3600)
        params: dict[str, Any] = {"product_id": f"p{(i + k) % 5000}", "source": "web"}
        if name == "purchase":
            params |= {"event_group_id": f"o{i}-{k}", "currency": "EUR", "unit_sale_price": 9.5}
        elif name == "add_to_cart":
            params |= {"quantity": 1 + k % 3}
        else:
            params = {"url": f"https://shop.example/p/{(i + k) % 5000}", "source": "web"}
        events.append(
            {
                "event_name": name,
                "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "event_params": params,
            }
        )
    return {
        "identifiers": {"uuid": f"u-{i}", "email": f"user{i}@bench.example"},
        "attributes": {
            "name": f"Name{i}",
            "surname": f"Surname{i}",
            "age": 18 + i % 60,
            "city": CITIES[i % len(CITIES)],
            "country": "TR",
            "email_optin": i % 2 == 0,
            "gdpr_optin": True,
            "custom": {"tier": ("gold", "silver", "bronze")[i % 3], "score": i % 1000},
        },
        "events": events,
    }


# --- the phases ---------------------------------------------------------------------------


async def _post(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with session.post(url, data=orjson.dumps(body), headers=HEADERS) as response:
        return response.status, await response.json(loads=orjson.loads)


async def _load(
    session: aiohttp.ClientSession, base: str, start: int, stop: int, now: datetime
) -> dict[str, Any]:
    """Upsert users ``start`` to ``stop - 1`` in calls of 1,000; return the throughput."""
    batches = iter(range(start, stop, BATCH))
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        for first in batches:
            users = [_user(i, now) for i in range(first, min(first + BATCH, stop))]
            status, body = await _post(session, f"{base}/api/user/v1/upsert", {"users": users})
            if status != 200 or body["data"]["fail"]:
                raise RuntimeError(f"upsert failed: {status} {str(body)[:300]}")
            accepted += body["data"]["successful"]["count"]

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(LOAD_CONNECTIONS)))
    seconds = time.perf_counter() - started
    users = stop - start
    assert accepted == users, (accepted, users)
    return {
        "users": users,
        "seconds": seconds,
        "users_per_s": users / seconds,
        "events_per_s": users * EVENTS_PER_USER / seconds,
    }


def _window(now: datetime) -> dict[str, int]:
    end = int(now.timestamp()) + 3600
    return {"start_date": end - 90 * 86_400 - 3600, "end_date": end}


async def _export(
    session: aiohttp.ClientSession, base: str, pid: int, now: datetime
) -> dict[str, Any]:
    """Export segment 1 as CSV; time it until the webhook arrives, and watch the memory."""
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def hook(request: web.Request) -> web.Response:
        if not ready.done():
            ready.set_result((await request.json())["url"])
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/ready", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_port = runner.addresses[0][1]
    body = {
        "segment": {"segment_id": 1},
        "attributes": "*",
        "events": {
            **_window(now),
            "wanted": [{"event_name": n, "params": PROFILE_PARAMS[n]} for n in EVENT_TYPES],
        },
        "format": "csv",
        "hook": f"http://127.0.0.1:{hook_port}/ready",
    }
    try:
        async with PeakRss(pid) as memory:
            started = time.perf_counter()
            status, answer = await _post(session, f"{base}/api/raw/v1/export", body)
            if status != 200:
                raise RuntimeError(f"export refused: {status} {answer}")
            url = await asyncio.wait_for(ready, timeout=3600)
            seconds = time.perf_counter() - started
    finally:
        await runner.cleanup()
    size = rows = 0
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(1 << 20):
            size += len(chunk)
            rows += chunk.count(b"\n")  # CRLF line ends; no value here holds a newline
    return {
        "seconds": seconds,
        "file_mib": size / 2**20,
        "rows": rows - 1,  # header
        "rss_before_mib": memory.before,
        "rss_peak_mib": memory.peak,
        "rss_method": memory.method,
    }


async def _profile_latency(
    session: aiohttp.ClientSession, base: str, users: int, now: datetime
) -> dict[str, Any]:
    url = f"{base}/api/user/v1/profile"
    events = {
        **_window(now),
        "wanted": [{"event_name": n, "params": PROFILE_PARAMS[n]} for n in EVENT_TYPES],
    }
    timings: list[float] = []
    returned = 0
    for n in range(PROFILE_WARMUP + PROFILE_READS):
        i = (n * 7919) % users  # spread over the table, deterministic
        body = {
            "identifiers": {"uuid": f"u-{i}"},
            "attributes": PROFILE_ATTRIBUTES,
            "events": events,
        }
        payload = orjson.dumps(body)
        started = time.perf_counter()
        async with session.post(url, data=payload, headers=HEADERS) as response:
            raw = await response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"profile failed: {response.status} {raw[:300]!r}")
        if n >= PROFILE_WARMUP:
            timings.append(elapsed)
            answer = orjson.loads(raw)
            returned += sum(len(v) for v in answer["events"].values())
    timings.sort()
    return {
        "requests": len(timings),
        "p50_ms": statistics.median(timings) * 1000,
        "p99_ms": timings[int(len(timings) * 0.99) - 1] * 1000,
        "mean_events_returned": returned / len(timings),
        "requests_per_s": len(timings) / sum(timings),
    }


def _query_plans(database: Path, now: datetime) -> list[tuple[str, str, list[str]]]:
    """(what, SQL, plan lines) of the statements the code runs, captured by tracing."""
    from gateway.local_ucd.attributes.views import load_attributes
    from gateway.local_ucd.events.query import WantedItem, select_events
    from gateway.local_ucd.exports.segments import segment_profile_pks
    from gateway.local_ucd.identity.identifiers import Identifier, lookup_profile

    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    captured: list[str] = []
    conn.set_trace_callback(captured.append)

    def trace(what: str, call: Callable[[], object]) -> list[tuple[str, str]]:
        captured.clear()
        call()
        return [(what, sql) for sql in captured if sql.lstrip().upper().startswith("SELECT")]

    window = _window(now)
    pk = lookup_profile(conn, PARTNER, None, [Identifier("uuid", "", "u-1")])
    assert pk is not None
    insider_id = conn.execute("SELECT insider_id FROM profiles WHERE pk = ?", (pk,)).fetchone()[0]
    item = WantedItem("purchase", ("product_id",))
    statements = [
        *trace(
            "profile lookup by identifier (E2 §4.3)",
            lambda: lookup_profile(
                conn, PARTNER, None, [Identifier("email", "", "user1@bench.example")]
            ),
        ),
        *trace(
            "identity lookup by insider_id (E2 §4.3)",
            lambda: lookup_profile(conn, PARTNER, insider_id, []),
        ),
        *trace("profile attributes (E2)", lambda: load_attributes(conn, pk)),
        *trace(
            "event window, newest first (E2)",
            lambda: select_events(
                conn, pk, item, window["start_date"], window["end_date"], newest_first=True
            ),
        ),
        *trace(
            "event window, oldest first (E3)",
            lambda: select_events(
                conn, pk, item, window["start_date"], window["end_date"], newest_first=False
            ),
        ),
        *trace(
            "segment 1 members (E3)",
            lambda: list(segment_profile_pks(conn, PARTNER, 1) or []),
        ),
    ]
    plans: list[tuple[str, str, list[str]]] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for what, sql in statements:
        plan = [str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
        if (what, tuple(plan)) in seen:
            continue  # e.g. the next chunk of the same segment scan
        seen.add((what, tuple(plan)))
        plans.append((what, " ".join(sql.split()), plan))
    conn.close()
    return plans


async def _measure(port: int, pid: int, total: int, data_dir: Path) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    now = datetime.now(UTC)
    stages = [total // 4, total // 2, total]
    loads: list[dict[str, Any]] = []
    exports: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(limit=LOAD_CONNECTIONS + 1)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        loaded = 0
        for stage in stages:
            loads.append(await _load(session, base, loaded, stage, now))
            loaded = stage
            export = await _export(session, base, pid, now)
            exports.append({"users": stage, **export})
            print(f"  {stage:>7} users loaded; export {export['seconds']:.1f} s", flush=True)
        profile = await _profile_latency(session, base, total, now)
    load_seconds = sum(s["seconds"] for s in loads)
    return {
        "users": total,
        "events": total * EVENTS_PER_USER,
        "load": {
            "seconds": load_seconds,
            "users_per_s": total / load_seconds,
            "events_per_s": total * EVENTS_PER_USER / load_seconds,
            "stages": loads,
        },
        "exports": exports,
        "profile": profile,
        "database_mib": _database_mib(data_dir),
        "server_peak_rss_mib": _status_kib(pid, "VmHWM") / 1024,
        "now": now,
    }


def _database_mib(data_dir: Path) -> float:
    files = [f for f in data_dir.iterdir() if f.name.startswith("ucd.sqlite3")]
    return sum(f.stat().st_size for f in files) / 2**20


def _print_report(report: dict[str, Any]) -> None:
    load = report["load"]
    print(f"\n### Local UCD at scale: {report['users']:,} users, {report['events']:,} events\n")
    print("| load stage | users | seconds | users/s | events/s |")
    print("|---|---:|---:|---:|---:|")
    done = 0
    for stage in load["stages"]:
        print(
            f"| {done:,} → {done + stage['users']:,} | {stage['users']:,} | {stage['seconds']:.1f}"
            f" | {stage['users_per_s']:,.0f} | {stage['events_per_s']:,.0f} |"
        )
        done += stage["users"]
    print(
        f"| **total** | {report['users']:,} | {load['seconds']:.1f} | {load['users_per_s']:,.0f}"
        f" | {load['events_per_s']:,.0f} |"
    )
    print(f"\nDatabase size after the load: {report['database_mib']:,.0f} MiB.\n")
    print("| export of segment 1 (CSV) | rows | file MiB | wall s | server RSS before | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|")
    for export in report["exports"]:
        print(
            f"| {export['users']:,} users | {export['rows']:,} | {export['file_mib']:,.1f}"
            f" | {export['seconds']:.1f} | {export['rss_before_mib']:.0f} MiB"
            f" | {export['rss_peak_mib']:.0f} MiB |"
        )
    print(f"\nPeak RSS measured as {report['exports'][0]['rss_method']}.\n")
    profile = report["profile"]
    print("| E2 profile read (1 user, 10 attributes, 3 event types, 90 days) | value |")
    print("|---|---:|")
    print(f"| requests (sequential, 1 connection) | {profile['requests']:,} |")
    print(f"| p50 | {profile['p50_ms']:.2f} ms |")
    print(f"| p99 | {profile['p99_ms']:.2f} ms |")
    print(f"| events per answer (mean) | {profile['mean_events_returned']:.1f} |")
    print("\n#### EXPLAIN QUERY PLAN\n")
    for what, sql, plan in report["plans"]:
        print(f"- **{what}**: `{sql}`")
        for line in plan:
            print(f"  - `{line}`")


def run() -> dict[str, Any]:
    """Start a local UCD under uvicorn, run every phase, stop it; print and return figures."""
    total = bench_users()
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench-local-ucd-") as tmp:
        data_dir = Path(tmp)
        ready: Queue[int] = context.Queue()
        server = context.Process(target=_serve_local_ucd, args=(tmp, ready), daemon=True)
        server.start()
        try:
            port = ready.get(timeout=60)
            assert server.pid is not None
            report = asyncio.run(_measure(port, server.pid, total, data_dir))
        finally:
            server.terminate()
            server.join(timeout=30)
        report["plans"] = _query_plans(data_dir / "ucd.sqlite3", report.pop("now"))
    _print_report(report)
    return report


if __name__ == "__main__":
    run()
