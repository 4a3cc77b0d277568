"""A load generator cheap enough that its own queueing does not become the measurement.

The first overload bench sent its load with aiohttp from the bench's own process, on the
two cores the gateway and the local UCD also ran on: at twice the gateway's saturation
the client's event loop lagged by seconds, and the latencies it reported (a refusal's
p99 of 7 s) were mostly its own. This generator is what replaces it:

* **Raw HTTP/1.1 on asyncio protocols, on uvloop**: the request is one prepared byte
  string, an answer is found by its ``Content-Length``; no client library's per-request
  machinery (headers objects, cookie jars, timeouts per phase).
* **Several processes** (``run``), each offering its share of the rate, started at one
  instant, and pinned (``os.sched_setaffinity``) to CPUs the caller chooses: the overload
  bench keeps them off the gateway's CPU.
* **An open loop with a schedule**: request ``k`` of a process is due at
  ``start + k / rate``, whether earlier ones were answered or not. How late the
  generator sent its requests against that schedule is measured too (``lag``): if it
  is small, the latencies are the server's and the network's, not the generator's.

Latency is from just before the request is written (or its connection opened) to the
last byte of the answer. At most ``max_outstanding`` requests of a process are out at
once, each on its own keep-alive connection; a request due while that many are out is
not sent (``not_sent``), so a server that stops answering cannot make the generator
grow without bound either.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import queue
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Final, cast

__all__ = ["Load", "Plan", "Tally", "classify", "post_request", "run"]

#: The scheduler wakes at least this often to send what has become due.
_TICK_S: Final = 0.001


@dataclass(frozen=True)
class Plan:
    """What one ``run`` offers, in total over its processes."""

    host: str
    port: int
    #: The whole HTTP/1.1 request, keep-alive (``post_request``).
    request: bytes
    duration_s: float
    #: Requests/s offered, open loop; 0 for a closed loop of ``max_outstanding``
    #: connections, each sending its next request when the last is answered.
    rate: float
    max_outstanding: int
    timeout_s: float
    processes: int = 2
    #: CPUs the generator processes may run on; None: wherever the kernel likes.
    cpus: frozenset[int] | None = None


@dataclass
class Tally:
    """Outcomes and latencies (seconds) of the requests of one or more processes."""

    accepted: list[float] = field(default_factory=list)
    rejected: list[float] = field(default_factory=list)
    #: When each rejected request was sent, seconds after the load's first request was
    #: due (the same order as ``rejected``): the ramp from idle shows apart.
    rejected_at: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    not_sent: int = 0
    #: Per request, how much later than its schedule it was sent (open loop only).
    lag: list[float] = field(default_factory=list)
    #: Seconds of CPU the generator processes used, and the wall time they ran.
    cpu_s: float = 0.0
    wall_s: float = 0.0

    @property
    def sent(self) -> int:
        return len(self.accepted) + len(self.rejected) + sum(self.failures.values())

    def merge(self, other: Tally) -> None:
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.rejected_at += other.rejected_at
        self.failures.update(other.failures)
        self.not_sent += other.not_sent
        self.lag += other.lag
        self.cpu_s += other.cpu_s
        self.wall_s = max(self.wall_s, other.wall_s)


def post_request(host: str, port: int, path: str, body: bytes) -> bytes:
    """A keep-alive HTTP/1.1 POST of a JSON ``body``, as bytes ready to write."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def classify(status: int, body: bytes) -> str:
    """``accepted`` (200 without errors), ``rejected`` (503 OVERLOADED) or ``HTTP <status>``."""
    if status == 200 and b'"errors"' not in body:
        return "accepted"
    if status == 503 and b'"OVERLOADED"' in body:
        return "rejected"
    return f"HTTP {status}"


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request on it at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end]).lower()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                waiter.set_exception(RuntimeError("chunked answers are not expected here"))
                return
        total = end + 4 + length
        if len(self._buffer) < total:
            return
        body = bytes(self._buffer[end + 4 : total])
        del self._buffer[:total]
        keep_alive = b"\r\nconnection: close" not in head
        waiter.set_result((int(head[9:12]), body, keep_alive))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionResetError("the server closed the connection"))

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        assert self.transport is not None
        if self.transport.is_closing():
            raise ConnectionResetError("the server closed the connection")
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._waiter

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class _Client:
    """Requests of one plan on a pool of keep-alive connections, tallied."""

    def __init__(self, plan: Plan, tally: Tally, start_at: float) -> None:
        self.plan = plan
        self.tally = tally
        #: When the load's first request was due (``time.time()``).
        self.start_at = start_at
        self._idle: list[_Connection] = []
        self.out = 0

    async def one(self) -> None:
        """Send the plan's request once; count and time its outcome."""
        plan, tally = self.plan, self.tally
        self.out += 1
        sent_at = time.time() - self.start_at
        start = time.perf_counter()
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(plan.timeout_s):
                # The server may have closed an idle connection (uvicorn: after 5 s).
                while self._idle and self._idle[-1].closed:
                    self._idle.pop()
                if self._idle:
                    connection = self._idle.pop()
                else:
                    loop = asyncio.get_running_loop()
                    _, connection = await loop.create_connection(_Connection, plan.host, plan.port)
                status, body, keep_alive = await connection.exchange(plan.request)
        except TimeoutError:
            tally.failures["client timeout"] += 1
            if connection is not None:
                connection.abort()
            return
        except OSError as exc:
            tally.failures[type(exc).__name__] += 1
            if connection is not None:
                connection.abort()
            return
        finally:
            self.out -= 1
        latency = time.perf_counter() - start
        outcome = classify(status, body)
        if outcome == "accepted":
            tally.accepted.append(latency)
        elif outcome == "rejected":
            tally.rejected.append(latency)
            tally.rejected_at.append(sent_at)
        else:
            tally.failures[outcome] += 1
        if keep_alive and not connection.closed:
            self._idle.append(connection)
        else:
            connection.abort()

    def close(self) -> None:
        for connection in self._idle:
            connection.abort()
        self._idle.clear()


async def _open_loop(plan: Plan, share: float, start_at: float, tally: Tally) -> None:
    client = _Client(plan, tally, start_at)
    limit = max(1, plan.max_outstanding // plan.processes)
    tasks: set[asyncio.Task[None]] = set()
    await asyncio.sleep(max(0.0, start_at - time.time()))
    began = time.perf_counter()
    issued = 0
    while (now := time.perf_counter()) - began < plan.duration_s:
        due = int((now - began) * share)
        while issued < due:
            # Request ``issued`` was due at began + issued / share.
            tally.lag.append(now - (began + issued / share))
            issued += 1
            if client.out >= limit:
                tally.not_sent += 1
                continue
            task = asyncio.create_task(client.one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.sleep(_TICK_S)
    if tasks:
        await asyncio.wait(tasks)
    client.close()


async def _closed_loop(plan: Plan, start_at: float, tally: Tally) -> None:
    client = _Client(plan, tally, start_at)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    stop = time.perf_counter() + plan.duration_s

    async def worker() -> None:
        while time.perf_counter() < stop:
            await client.one()

    await asyncio.gather(*(worker() for _ in range(max(1, plan.max_outstanding // plan.processes))))
    client.close()


def _process(plan: Plan, start_at: float, results: multiprocessing.Queue[Tally]) -> None:
    if plan.cpus is not None:
        os.sched_setaffinity(0, plan.cpus)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    tally = Tally()
    cpu_before = time.process_time()
    if plan.rate > 0:
        asyncio.run(_open_loop(plan, plan.rate / plan.processes, start_at, tally))
    else:
        asyncio.run(_closed_loop(plan, start_at, tally))
    tally.cpu_s = time.process_time() - cpu_before
    tally.wall_s = time.time() - start_at
    results.put(tally)


#: Seconds between starting the processes and their first request: they all start then.
_START_DELAY_S: Final = 1.0


class Load:
    """``plan`` offered from ``plan.processes`` processes at once, started on creation."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        context = multiprocessing.get_context("spawn")
        self._results: multiprocessing.Queue[Tally] = context.Queue()
        #: When the first requests are due (``time.time()``), and the last.
        self.start_at = time.time() + _START_DELAY_S + 0.3 * plan.processes
        self.end_at = self.start_at + plan.duration_s
        self._processes = [
            context.Process(target=_process, args=(plan, self.start_at, self._results), daemon=True)
            for _ in range(plan.processes)
        ]
        for process in self._processes:
            process.start()

    def result(self) -> Tally:
        """Wait for every process (and its last answers); their outcomes merged."""
        total = Tally()
        give_up = self.end_at + self.plan.timeout_s + 60
        received = 0
        try:
            while received < len(self._processes):
                try:
                    total.merge(self._results.get(timeout=1))
                    received += 1
                except queue.Empty:
                    if any(p.exitcode not in (None, 0) for p in self._processes):
                        raise RuntimeError("a load generator process failed") from None
                    if time.time() > give_up:
                        raise RuntimeError("the load generators did not finish") from None
        finally:
            for process in self._processes:
                process.join(timeout=10)
                if process.is_alive():
                    process.kill()
        return total


def run(plan: Plan) -> Tally:
    """Offer ``plan`` and wait for its outcomes."""
    return Load(plan).result()
