"""The gateway against a generic peer, GraphQL Mesh, over the same local UCD (issue 8).

Every server is started the way users start it, in its own process:

* the local UCD: ``ucd-gateway local-ucd`` on a fresh data folder, seeded with
  ``ucd-gateway seed --users 2000``, plus one user with 100 purchase events;
* the gateway: ``ucd-gateway serve`` against that UCD;
* GraphQL Mesh (``@graphql-mesh/cli`` with ``@graphql-mesh/openapi``, the versions pinned
  in ``bench/peers/package.json`` and its lock file, installed with ``npm ci``) built from
  the local UCD's ``/openapi.json`` and run with ``mesh start``. Without ``npm`` and
  ``node`` the bench says so and measures the gateway and the direct calls only.

Cases (each against the gateway, Mesh, and the same UCD call sent directly):

* ``read``: ``query($u: String!) { user(key: {uuid: $u}) { name email } }``, a different
  user each request (Mesh: its ``profile`` field with the same body);
* ``new document``: the same with the uuid written into the query text, so every
  request is a document the server has never seen;
* ``100 events``: one user's 100 purchase events, 6 fields each;
* ``upsert``: a single-user ``upsertUsers`` (Mesh: its ``upsert`` mutation), a different
  user each request.

The local UCD's data folder is on ``/dev/shm`` when there is one: its fsyncs are the same
for every target, and on a shared disk they are most of an upsert's time, and its noise.

The load generator is ``wrk`` (one thread, a Lua script that writes each request's body)
when it is installed, else a separate Python process (aiohttp, closed loop), so it never
shares a GIL with a server. Cases and targets are interleaved, round after round
(``BENCH_ROUNDS``, default 3, of ``BENCH_SECONDS``, default 5, per row). For each row:
requests/s, p50 and p99 latency, and the CPU time the *serving* process (and its
children) spent per request, from ``/proc/<pid>/stat``: the gateway's and Mesh's own
CPU, without the UCD's. Then the medians over the rounds and the ratios of issue 8's goals.

``python -m bench peers``; ``make bench`` runs it with the others.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import httpx

PEERS_DIR = Path(__file__).resolve().parent / "peers"
BIN = Path(sys.executable).parent
PARTNER = "local"
TOKEN = "bench-peers-token"  # the throwaway local UCD's own
USERS = 2000
#: The uuids ``ucd-gateway seed`` gives its users (seed 42): demo-42-0000000 ...
READ_UUID = "demo-42-%07d"
#: Users the upsert case writes: never a demo user, so reads see what was seeded.
WRITE_UUID = "bench-w-%07d"
EVENTS_UUID = "bench-events"
EVENT_COUNT = 100
PLACEHOLDER = "@UUID@"
UCD_HEADERS = {"X-PARTNER-NAME": PARTNER, "X-REQUEST-TOKEN": TOKEN}

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
WARMUP_SECONDS = 1.0


# --- the requests -------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One target's request of a case: ``@UUID@`` in ``body`` becomes each request's user."""

    path: str
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    #: A Python format with one integer (``READ_UUID``...), or None: the same body each time.
    uuids: str | None = None

    def nth(self, n: int) -> str:
        if self.uuids is None:
            return self.body
        return self.body.replace(PLACEHOLDER, self.uuids % (n % USERS))


def _graphql(query: str, variables: dict[str, Any] | None = None) -> str:
    return json.dumps({"query": query, "variables": variables or {}})


def _event_window() -> tuple[str, int, int]:
    """The events' window: the gateway's ``from`` (RFC 3339) and the UCD's epoch seconds."""
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=29)
    return start.isoformat().replace("+00:00", "Z"), int(start.timestamp()), int(now.timestamp())


EVENT_PARAMS = ["product_id", "currency", "unit_sale_price", "quantity", "event_group_id"]


def _cases() -> dict[str, dict[str, Request]]:
    """Case -> target (``direct``, ``gateway``, ``mesh``) -> its request."""
    since, start, end = _event_window()
    read_direct = json.dumps(
        {"identifiers": {"uuid": PLACEHOLDER}, "attributes": ["name", "email"]}
    )
    mesh_read = (
        "query($u: String!) { profile(input: {identifiers: {uuid: $u}, "
        'attributes: ["name", "email"]}) { ... on profile_200_response '
        "{ attributes { name email } } } }"
    )
    events_body = {
        "identifiers": {"uuid": EVENTS_UUID},
        "attributes": ["name"],
        "events": {
            "start_date": start,
            "end_date": end,
            "wanted": [{"event_name": "purchase", "params": EVENT_PARAMS}],
        },
    }
    mesh_events = (
        "query($input: profile_request_Input) { profile(input: $input) { "
        "... on profile_200_response { attributes { name } events { purchase { "
        "created_date product_id currency unit_sale_price quantity event_group_id } } } } }"
    )
    gateway_events = (
        f'{{ user(key: {{uuid: "{EVENTS_UUID}"}}) {{ name events(names: ["purchase"], '
        f'from: "{since}") {{ timestamp productId currency unitSalePrice quantity '
        "eventGroupId } } }"
    )
    upsert_user = {"identifiers": {"uuid": PLACEHOLDER}, "attributes": {"age": 30}}
    gateway_upsert = (
        "mutation($u: String!) { upsertUsers(input: {users: [{key: {uuid: $u}, "
        "attributes: {age: 30}}]}) { successCount failureCount } }"
    )
    mesh_upsert = (
        "mutation($u: String!) { upsert(input: {users: [{identifiers: {uuid: $u}, "
        "attributes: {age: 30}}]}) { ... on DataEnvelope { data { successful { count } } } } }"
    )
    gateway_read = "query($u: String!) { user(key: {uuid: $u}) { name email } }"
    # The uuid in the text: every request a document the server has not seen.
    gateway_new = f'{{ user(key: {{uuid: "{PLACEHOLDER}"}}) {{ name email }} }}'
    mesh_new = (
        f'{{ profile(input: {{identifiers: {{uuid: "{PLACEHOLDER}"}}, '
        'attributes: ["name", "email"]}) { ... on profile_200_response '
        "{ attributes { name email } } } }"
    )
    return {
        "read": {
            "direct": Request("/api/user/v1/profile", read_direct, UCD_HEADERS, READ_UUID),
            "gateway": Request(
                "/graphql", _graphql(gateway_read, {"u": PLACEHOLDER}), {}, READ_UUID
            ),
            "mesh": Request("/graphql", _graphql(mesh_read, {"u": PLACEHOLDER}), {}, READ_UUID),
        },
        "new document": {
            "direct": Request("/api/user/v1/profile", read_direct, UCD_HEADERS, READ_UUID),
            "gateway": Request("/graphql", _graphql(gateway_new), {}, READ_UUID),
            "mesh": Request("/graphql", _graphql(mesh_new), {}, READ_UUID),
        },
        "100 events": {
            "direct": Request("/api/user/v1/profile", json.dumps(events_body), UCD_HEADERS),
            "gateway": Request("/graphql", _graphql(gateway_events)),
            "mesh": Request("/graphql", _graphql(mesh_events, {"input": events_body})),
        },
        "upsert": {
            "direct": Request(
                "/api/user/v1/upsert", json.dumps({"users": [upsert_user]}), UCD_HEADERS, WRITE_UUID
            ),
            "gateway": Request(
                "/graphql", _graphql(gateway_upsert, {"u": PLACEHOLDER}), {}, WRITE_UUID
            ),
            "mesh": Request("/graphql", _graphql(mesh_upsert, {"u": PLACEHOLDER}), {}, WRITE_UUID),
        },
    }


#: Which (case, connections) rows run; 1 connection for the latency goals.
ROWS: list[tuple[str, int]] = [
    ("read", 8),
    ("new document", 8),
    ("100 events", 8),
    ("upsert", 8),
    ("read", 1),
    ("upsert", 1),
]


def _expected(case: str, target: str, answer: Any) -> bool:
    """Whether one answer is what the case asks for (checked before the load)."""
    if target == "direct":
        if case == "upsert":
            return bool(answer["data"]["successful"] == {"count": 1})
        if case == "100 events":
            return len(answer["events"]["purchase"]) == EVENT_COUNT
        return bool(answer["attributes"].get("name"))
    if "errors" in answer:
        return False
    data = answer["data"]
    if target == "gateway":
        if case == "upsert":
            return bool(data["upsertUsers"]["successCount"] == 1)
        if case == "100 events":
            return len(data["user"]["events"]) == EVENT_COUNT
        return bool(data["user"]["name"] and data["user"]["email"])
    if case == "upsert":
        return bool(data["upsert"]["data"]["successful"]["count"] == 1)
    if case == "100 events":
        return len(data["profile"]["events"]["purchase"]) == EVENT_COUNT
    return bool(data["profile"]["attributes"]["name"] and data["profile"]["attributes"]["email"])


# --- the servers --------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str

    @property
    def pid(self) -> int:
        return self.process.pid


def _wait_for_line(log: Path, pattern: str, process: subprocess.Popen[bytes], what: str) -> str:
    """The first match of ``pattern`` in the log ``process`` writes, within 120 s."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found.group(1)
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start: {log.read_text(errors='replace')[-2000:]}")


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("UCD_GATEWAY_")}
    return {**base, "UCD_GATEWAY_PARTNER": PARTNER, "UCD_GATEWAY_TOKEN": TOKEN, **extra}


def _start(name: str, command: list[str], log: Path, pattern: str, **env: str) -> Server:
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603  # our own commands
            command, stdout=out, stderr=subprocess.STDOUT, env=_env(**env), cwd=log.parent
        )
    base_url = _wait_for_line(log, pattern, process, name)
    return Server(name, process, base_url.rstrip("/"))


def _start_local_ucd(work: Path) -> Server:
    return _start(
        "local UCD",
        [str(BIN / "ucd-gateway"), "local-ucd", "--port", "0", "--data", str(work / "ucd")],
        work / "local-ucd.log",
        r"local UCD on (\S+)",
    )


def _seed(ucd: Server) -> None:
    subprocess.run(  # noqa: S603  # our own command
        [
            str(BIN / "ucd-gateway"),
            "seed",
            "--users",
            str(USERS),
            "--ucd-url",
            ucd.base_url,
            "--no-progress",
        ],
        check=True,
        env=_env(),
        capture_output=True,
    )
    now = datetime.now(UTC)
    events = [
        {
            "event_name": "purchase",
            "timestamp": (now - timedelta(minutes=10 * i + 1)).isoformat().replace("+00:00", "Z"),
            "event_params": {
                "product_id": f"P-{i:04d}",
                "name": f"Product {i}",
                "taxonomy": ["bench"],
                "currency": "EUR",
                "unit_price": 12.5,
                "unit_sale_price": 10.0 + i,
                "quantity": 1 + i % 3,
                "event_group_id": f"order-{i:04d}",
            },
        }
        for i in range(EVENT_COUNT)
    ]
    user = {
        "identifiers": {"uuid": EVENTS_UUID},
        "attributes": {"name": "Events"},
        "events": events,
    }
    answer = httpx.post(
        f"{ucd.base_url}/api/user/v1/upsert",
        json={"users": [user]},
        headers=UCD_HEADERS,
        timeout=30,
    )
    answer.raise_for_status()


def _start_gateway(work: Path, ucd: Server) -> Server:
    return _start(
        "gateway",
        [str(BIN / "ucd-gateway"), "serve", "--port", "0"],
        work / "gateway.log",
        r"GraphiQL on (\S+)/graphql",
        UCD_GATEWAY_UCD_BASE_URL=ucd.base_url,
        UCD_GATEWAY_PUBLIC_URL="http://127.0.0.1:9",
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _mesh_installed() -> Path | None:
    """``npm ci`` in bench/peers (once); the mesh binary, or None (and why, printed)."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        print("npm/node not found: GraphQL Mesh is skipped (install Node.js 20+ to compare).")
        return None
    mesh = PEERS_DIR / "node_modules" / ".bin" / "mesh"
    lock = PEERS_DIR / "package-lock.json"
    installed = PEERS_DIR / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        print("npm ci in bench/peers (GraphQL Mesh, pinned versions)...", flush=True)
        subprocess.run(  # noqa: S603  # npm, on our own lock file
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=PEERS_DIR,
            check=True,
            capture_output=True,
        )
    return mesh


MESHRC = """\
sources:
  - name: UCD
    handler:
      openapi:
        source: {ucd}/openapi.json
        endpoint: {ucd}
        operationHeaders:
          X-PARTNER-NAME: {partner}
          X-REQUEST-TOKEN: {token}
        selectQueryOrMutationField:
          - type: Query
            fieldName: profile
serve:
  hostname: 127.0.0.1
  port: {port}
  fork: 0
  playground: false
"""


def _start_mesh(work: Path, ucd: Server, mesh: Path) -> Server:
    home = work / "mesh"
    home.mkdir()
    (home / "node_modules").symlink_to(PEERS_DIR / "node_modules")
    port = _free_port()
    (home / ".meshrc.yaml").write_text(
        MESHRC.format(ucd=ucd.base_url, partner=PARTNER, token=TOKEN, port=port)
    )
    subprocess.run(  # noqa: S603  # the pinned mesh
        [str(mesh), "build"], cwd=home, check=True, capture_output=True, env=_env()
    )
    server = _start(
        "GraphQL Mesh", [str(mesh), "start"], home / "mesh.log", r"Serving GraphQL Mesh: (\S+)"
    )
    server.base_url = f"http://127.0.0.1:{port}"
    # Mesh prints its address before it listens, and builds its schema on first use.
    deadline = time.monotonic() + 120
    while True:
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.post(
                f"{server.base_url}/graphql", json={"query": "{ __typename }"}, timeout=30
            )
            if answer.status_code == 200:
                return server
        if time.monotonic() > deadline or server.process.poll() is not None:
            raise RuntimeError(f"GraphQL Mesh did not start: {(home / 'mesh.log').read_text()}")
        time.sleep(0.2)


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


# --- measuring ----------------------------------------------------------------------------


def _tree_cpu_seconds(root: int) -> float:
    """User + system CPU of ``root`` and its descendants so far (Linux ``/proc``)."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        # proc(5) fields 14, 15 (utime, stime), counted after the ")" of the name.
        cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += cpu.get(pid, 0.0)
        stack.extend(children.get(pid, ()))
    return total


@dataclass(frozen=True)
class Figures:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failures: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


WRK_SCRIPT = """\
local counter = 0
local body = [==[{body}]==]
local fmt = {fmt}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{headers}
request = function()
  counter = counter + 1
  local b = body
  if fmt then
    b = string.gsub(body, "@UUID@", string.format(fmt, counter % {users}))
  end
  return wrk.format(nil, "{path}", nil, b)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def _wrk(wrk: str, base_url: str, request: Request, connections: int, seconds: float) -> Figures:
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in request.headers.items())
    fmt = "nil" if request.uuids is None else f'"{request.uuids}"'
    script = WRK_SCRIPT.format(
        body=request.body, fmt=fmt, headers=headers, users=USERS, path=request.path
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    try:
        out = subprocess.run(  # noqa: S603  # wrk on our own script
            [
                wrk,
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "-s",
                file.name,
                base_url,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        os.unlink(file.name)
    found = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+)", out)
    if found is None:
        raise RuntimeError(f"wrk printed no result: {out}")
    requests, duration_us, p50_us, p99_us, failures = (int(g) for g in found.groups())
    return Figures(requests, duration_us / 1e6, p50_us / 1000, p99_us / 1000, failures)


def _python_load(
    url: str, request: Request, connections: int, seconds: float, out: Queue[Figures]
) -> None:
    """The fallback load generator, in its own process: a closed loop over aiohttp."""
    import asyncio

    import aiohttp

    async def main() -> Figures:
        latencies: list[float] = []
        failures = 0
        counter = 0
        headers = {"Content-Type": "application/json", **request.headers}
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector) as session:
            stop = time.perf_counter() + seconds

            async def worker() -> None:
                nonlocal counter, failures
                while time.perf_counter() < stop:
                    counter += 1
                    began = time.perf_counter()
                    body = request.nth(counter)
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        if response.status >= 400:
                            failures += 1
                    latencies.append(time.perf_counter() - began)

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(connections)))
            wall = time.perf_counter() - began
        ordered = sorted(latencies)
        return Figures(
            len(ordered),
            wall,
            statistics.median(ordered) * 1000,
            ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
            failures,
        )

    out.put(asyncio.run(main()))


def _load(base_url: str, request: Request, connections: int, seconds: float) -> Figures:
    wrk = shutil.which("wrk")
    if wrk is not None:
        return _wrk(wrk, base_url, request, connections, seconds)
    context = multiprocessing.get_context("spawn")
    out: Queue[Figures] = context.Queue()
    process = context.Process(
        target=_python_load, args=(base_url + request.path, request, connections, seconds, out)
    )
    process.start()
    figures = out.get(timeout=seconds + 60)
    process.join()
    return figures


def _check(case: str, target: str, server: Server, request: Request) -> None:
    """Two requests of the case, answered as expected, before any load."""
    for n in (1, 2):
        answer = httpx.post(
            server.base_url + request.path,
            content=request.nth(n),
            headers={"Content-Type": "application/json", **request.headers},
            timeout=30,
        )
        if answer.status_code != 200 or not _expected(case, target, answer.json()):
            raise RuntimeError(f"{target} / {case}: unexpected answer {answer.text[:300]}")


@dataclass(frozen=True)
class Sample:
    case: str
    connections: int
    target: str
    round: int
    figures: Figures
    cpu_us: float


def _measure(servers: dict[str, Server], cases: dict[str, dict[str, Request]]) -> list[Sample]:
    samples: list[Sample] = []
    for case, targets in cases.items():
        for target, server in servers.items():
            _check(case, target, server, targets[target])
    for round_ in range(1, ROUNDS + 1):
        for case, connections in ROWS:
            for target, server in servers.items():
                request = cases[case][target]
                _load(server.base_url, request, connections, WARMUP_SECONDS)
                before = _tree_cpu_seconds(server.pid)
                figures = _load(server.base_url, request, connections, SECONDS)
                cpu = _tree_cpu_seconds(server.pid) - before
                per_request = cpu / figures.requests * 1e6 if figures.requests else 0.0
                samples.append(Sample(case, connections, target, round_, figures, per_request))
                print(
                    f"  round {round_}  {case:<12} c={connections}  {target:<7} "
                    f"{figures.rps:8,.0f} rps  p50 {figures.p50_ms:6.2f}  "
                    f"p99 {figures.p99_ms:6.2f} ms  {per_request:6,.0f} µs CPU/request"
                    + (f"  {figures.failures} failed" if figures.failures else ""),
                    flush=True,
                )
    return samples


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _report(samples: list[Sample], targets: list[str]) -> dict[str, Any]:
    print(f"\nMedians over {ROUNDS} rounds of {SECONDS:g} s per row ({_generator()}).\n")
    print("| case | connections | target | requests/s | p50 ms | p99 ms | CPU µs/request |")
    print("|---|---:|---|---:|---:|---:|---:|")
    medians: dict[tuple[str, int, str], dict[str, float]] = {}
    for case, connections in ROWS:
        for target in targets:
            rows = [
                s
                for s in samples
                if (s.case, s.connections, s.target) == (case, connections, target)
            ]
            figures = {
                "rps": _median([s.figures.rps for s in rows]),
                "p50_ms": _median([s.figures.p50_ms for s in rows]),
                "p99_ms": _median([s.figures.p99_ms for s in rows]),
                "cpu_us": _median([s.cpu_us for s in rows]),
                "failures": float(sum(s.figures.failures for s in rows)),
            }
            medians[(case, connections, target)] = figures
            print(
                f"| {case} | {connections} | {target} | {figures['rps']:,.0f} | "
                f"{figures['p50_ms']:.2f} | {figures['p99_ms']:.2f} | {figures['cpu_us']:,.0f} |"
            )
    ratios: dict[str, float] = {}
    if "mesh" in targets:
        print("\n| case (8 connections) | gateway / Mesh requests/s | gateway / Mesh CPU µs |")
        print("|---|---:|---:|")
        for case, connections in ROWS:
            if connections != 8:
                continue
            gateway, mesh = medians[(case, 8, "gateway")], medians[(case, 8, "mesh")]
            rps = gateway["rps"] / mesh["rps"] if mesh["rps"] else float("nan")
            cpu = gateway["cpu_us"] / mesh["cpu_us"] if mesh["cpu_us"] else float("nan")
            ratios[f"{case} rps"], ratios[f"{case} cpu"] = rps, cpu
            print(f"| {case} | {rps:.2f} | {cpu:.2f} |")
    print("\n| goal | figure |")
    print("|---|---:|")
    for case in ("read", "upsert"):
        direct = medians.get((case, 1, "direct"))
        for target in targets:
            if target == "direct" or direct is None:
                continue
            over = medians[(case, 1, target)]["p50_ms"] - direct["p50_ms"]
            ratios[f"{case} p50 over direct, {target}"] = over
            print(f"| {case}, 1 connection: {target} p50 − direct p50 | {over:+.2f} ms |")
    read = medians[("read", 8, "gateway")]
    ratios["read p99 / p50, gateway"] = read["p99_ms"] / read["p50_ms"]
    print(f"| read, 8 connections: gateway p99 / p50 | {ratios['read p99 / p50, gateway']:.1f} |")
    return {"medians": {" / ".join(map(str, k)): v for k, v in medians.items()}, "ratios": ratios}


def _generator() -> str:
    return "wrk, 1 thread" if shutil.which("wrk") else "a separate Python process (aiohttp)"


@contextlib.contextmanager
def _servers(work: Path) -> Iterator[dict[str, Server]]:
    started: list[Server] = []
    try:
        ucd = _start_local_ucd(work)
        started.append(ucd)
        _seed(ucd)
        gateway = _start_gateway(work, ucd)
        started.append(gateway)
        servers = {"direct": ucd, "gateway": gateway}
        mesh = _mesh_installed()
        if mesh is not None:
            servers["mesh"] = _start_mesh(work, ucd, mesh)
            started.append(servers["mesh"])
        yield servers
    finally:
        for server in reversed(started):
            _stop(server)


def run() -> dict[str, Any]:
    print(f"Load generator: {_generator()}; {ROUNDS} rounds, {SECONDS:g} s per row.")
    # On tmpfs where there is one: the UCD's fsyncs (synchronous=FULL) are the same for
    # every target, and on a shared disk they are most of an upsert's time and noise.
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108  # tmpfs, ours
    with (
        tempfile.TemporaryDirectory(prefix="bench-peers-", dir=shm) as tmp,
        _servers(Path(tmp)) as servers,
    ):
        cases = _cases()
        samples = _measure(servers, cases)
        return _report(samples, list(servers))


if __name__ == "__main__":
    run()
