"""``serve --workers N``: N gateway processes on one port, for machines with more cores.

One Python process runs one event loop on one core; N worker processes use N. The
supervisor (the process ``serve`` started as) holds the port (``listening.reserved_port``)
and forks the workers before any event loop, thread or connection exists. Each worker
makes its own listening socket on the port with SO_REUSEPORT (``listening.py``, so
TCP_NODELAY holds as for one process) and runs the app exactly as a single ``serve``
does: uvloop, ``gc.freeze()`` after start-up, the drain on SIGTERM. The kernel spreads
new connections over the workers' sockets.

The app is built once, by the supervisor, before the fork: settings checked once, the
schema and the API keys file read once and inherited. Whatever has a thread, a loop, a
socket or a clock of its own is made by the app's lifespan, so in each worker: the UCD
client and the Redis pool, the loop-lag watcher, the tracer provider and its exporting
thread, and (on a worker's first JWT) its fetch of the JWT key set.

What the workers must agree on goes through Redis (``UCD_GATEWAY_REDIS_URL``: export
jobs, APQ documents, circuit breakers, rate limits, the UCD quota, the profile cache),
which the command line requires for N > 1; their metrics go through files
(gateway/metrics.py), so any worker's ``/metrics`` answers for all of them, and the
supervisor reports a dead worker (``on_exit``) so its live values stop counting.
Without a UCD URL the embedded local UCD runs once, in a ``Companion`` process the
supervisor starts before the workers (who get its URL) and stops after them, so their
last coalesced writes still reach it.

Signals: each worker is in its own process group, so a terminal's Ctrl-C reaches only
the supervisor; the supervisor's first SIGTERM or SIGINT is sent on once, as SIGTERM, to
every worker, which drains (gateway/drain.py) and exits within its bound; the
supervisor waits for them (killing any left after ``exit_within`` seconds) and exits. A
worker that dies on its own is started again (at most once a second), so the port keeps
N processes behind it. On Linux a worker also gets SIGTERM when the supervisor dies,
even by SIGKILL, so none is left serving alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, Final

__all__ = ["RESTART_AFTER_S", "START_TIMEOUT_S", "Companion", "WorkerFailed", "supervise"]

logger = logging.getLogger("gateway.workers")

#: A worker that has not started serving by then fails the start.
START_TIMEOUT_S: Final = 60.0
#: A worker that dies on its own is started again no sooner than this after its last start.
RESTART_AFTER_S: Final = 1.0

#: prctl's option: the signal a process gets when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG: Final = 1

#: What runs in each worker: serve until told to stop, calling the argument once the app
#: is started; returns the process's exit code.
Worker = Callable[[Callable[[], None]], int]


class WorkerFailed(Exception):
    """A worker could not start (it said why on stderr); ``code`` is its exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"a worker exited with code {code} while starting")
        self.code = code


def _end_with_the_supervisor() -> None:
    """Linux: SIGTERM this worker when the supervisor dies, even by SIGKILL (prctl
    PR_SET_PDEATHSIG), so no worker is left serving alone; it then drains as usual."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _detach(supervisor: int) -> None:
    """The start of every child: it ends with the supervisor, in a group of its own."""
    _end_with_the_supervisor()
    if os.getppid() != supervisor:  # it died before prctl: nothing would tell us
        sys.exit(1)
    # Its own process group: a terminal's Ctrl-C goes to the supervisor alone, which
    # sends one SIGTERM; a second signal would make uvicorn stop without draining.
    os.setpgid(0, 0)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)  # the supervisor's handlers are not ours


def _run_child(run: Callable[[], int], supervisor: int) -> None:
    """A child's whole life: detached, ``run``, its output flushed, its exit code."""
    _detach(supervisor)
    code = run()
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


def _spawn(
    context: multiprocessing.context.ForkContext, child: Callable[[Connection], None]
) -> tuple[BaseProcess, Connection]:
    """Fork a process running ``child`` with the writing end of a new pipe; the
    reading end."""
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(target=child, args=(writer,), daemon=False)
    process.start()
    writer.close()
    return process, reader


def _worker_child(worker: Worker, supervisor: int, ready: Connection) -> None:
    def started() -> None:
        # A worker started again after a crash has no one listening: nothing to tell.
        with contextlib.suppress(OSError):
            ready.send(os.getpid())
        ready.close()

    _run_child(lambda: worker(started), supervisor)


class _Supervisor:
    def __init__(
        self,
        count: int,
        worker: Worker,
        exit_within: float,
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        self._count = count
        self._worker = worker
        self._exit_within = exit_within
        self._on_exit = on_exit
        self._context = multiprocessing.get_context("fork")
        self._workers: list[BaseProcess] = []
        self._started_at: dict[int, float] = {}
        self._stopping = False

    def _fork(self) -> tuple[BaseProcess, Connection]:
        child = functools.partial(_worker_child, self._worker, os.getpid())
        process, reader = _spawn(self._context, child)
        self._workers.append(process)
        assert process.pid is not None
        self._started_at[process.pid] = time.monotonic()
        return process, reader

    def start(self) -> None:
        """Fork every worker and wait until each serves; ``WorkerFailed`` if one cannot."""
        waiting = dict(self._fork() for _ in range(self._count))
        deadline = time.monotonic() + START_TIMEOUT_S
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0 or self._stopping:
                raise WorkerFailed(1)
            # A worker's pipe says it serves; its sentinel, that it exited first.
            owners: dict[Any, BaseProcess] = {reader: p for p, reader in waiting.items()}
            owners |= {p.sentinel: p for p in waiting}
            for done in wait(list(owners), timeout=left):
                process = owners[done]
                if process not in waiting:
                    continue
                if isinstance(done, Connection) and _answered(done):
                    waiting.pop(process).close()
                    continue
                process.join()
                raise WorkerFailed(process.exitcode or 1)

    def run(self) -> None:
        """Until a signal: start again any worker that dies."""
        while not self._stopping:
            sentinels: dict[Any, BaseProcess] = {p.sentinel: p for p in self._workers}
            for done in wait(list(sentinels), timeout=0.5):
                process = sentinels[done]
                process.join()
                if self._stopping:
                    break
                self._workers.remove(process)
                assert process.pid is not None
                logger.error(
                    "worker %d exited with code %s; starting another", process.pid, process.exitcode
                )
                if self._on_exit is not None:
                    self._on_exit(process.pid)
                since = time.monotonic() - self._started_at.pop(process.pid, 0.0)
                if since < RESTART_AFTER_S:
                    time.sleep(RESTART_AFTER_S - since)
                _, reader = self._fork()
                reader.close()

    def handle_signal(self, sig: int, frame: FrameType | None) -> None:
        if self._stopping:
            return
        self._stopping = True
        for process in self._workers:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM every worker still running (once) and wait for all, within the bound."""
        self.handle_signal(signal.SIGTERM, None)
        deadline = time.monotonic() + self._exit_within
        for process in self._workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                logger.error("worker %d did not stop in time; killed", process.pid)
                process.kill()
                process.join()


#: What runs in the companion process: serve until SIGTERM, calling the argument with
#: what the workers need to know (a URL) once started; returns the exit code.
CompanionTarget = Callable[[Callable[[str], None]], int]


def _companion_child(target: CompanionTarget, supervisor: int, ready: Connection) -> None:
    def started(message: str) -> None:
        ready.send(message)
        ready.close()

    _run_child(lambda: target(started), supervisor)


class Companion:
    """A process the workers need, started before them and stopped after them: the
    embedded local UCD, which must run once, not once per worker. ``message`` is what
    it said once started (its URL)."""

    def __init__(self, target: CompanionTarget) -> None:
        child = functools.partial(_companion_child, target, os.getpid())
        self._process, reader = _spawn(multiprocessing.get_context("fork"), child)
        message: str | None = None
        try:
            if reader.poll(START_TIMEOUT_S):
                message = reader.recv()
        except EOFError:  # it exited without a word; it said why on stderr
            pass
        finally:
            reader.close()
        if message is None:
            self.stop(within=5.0)
            raise WorkerFailed(self._process.exitcode or 1)
        self.message = message

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def stop(self, *, within: float) -> None:
        """SIGTERM it and wait up to ``within`` seconds, then kill it."""
        if self._process.exitcode is None and self._process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGTERM)
        self._process.join(within)
        if self._process.exitcode is None:
            self._process.kill()
            self._process.join()


def _answered(reader: Connection) -> bool:
    try:
        reader.recv()
    except EOFError:  # the worker closed its end without a word: it is exiting
        return False
    return True


def supervise(
    count: int,
    worker: Worker,
    *,
    exit_within: float,
    on_started: Callable[[], None],
    on_exit: Callable[[int], None] | None = None,
) -> None:
    """Run ``count`` processes of ``worker`` until SIGTERM or SIGINT; ``on_started`` once
    all of them serve, ``on_exit(pid)`` when one dies on its own (before another takes
    its place). Raises ``WorkerFailed`` when one cannot start (the others are stopped
    first)."""
    supervisor = _Supervisor(count, worker, exit_within, on_exit)
    previous = {
        sig: signal.signal(sig, supervisor.handle_signal) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        supervisor.start()
        on_started()
        supervisor.run()
    finally:
        supervisor.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
