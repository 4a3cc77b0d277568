"""The export worker (§3.3.3): writes the files of queued E3 jobs in the background.

    ExportWorker, one job at a time, oldest first:
      long_read snapshot -> rows streamed to <exports_dir>/<partner>/.tmp-* (exports/files.py)
      publish (one write transaction): members recorded, erasure re-check, rename, status ready
      hook: POST {"url": ...} with hooks.post_with_retries -> hook_state delivered | gave_up
    expiry: 24 h after ready the row and the file go (lazily on download, and by a sweep)

Erasures and exports (§3.3.3, §4.9) — how a file never publishes an erased user:

* While the snapshot is open the store's shared lock is held, so no erasure can commit
  during it; if an erasure *waits* for that lock (``store.erasure_waiting``) the snapshot is
  given up between chunks and rebuilt after the erasure, so erasures are not blocked long.
* An erasure committed between the snapshot and the publishing transaction is caught by an
  in-memory erasure log: :meth:`ExportWorker.withdraw_for` (inside the erasure transaction)
  and :meth:`ExportWorker.note_erasure` (after its commit) append the erased ``insider_id``s
  with a sequence number. The job remembers the sequence number before its snapshot; the
  publishing transaction (serialised with erasure transactions by the single writer) looks
  for any later entry whose ids are among the file's members, and if there is one the file
  is thrown away and rebuilt from a new snapshot. Entries are kept only while a job runs
  (the log is in memory: after a restart the job reruns from a fresh snapshot anyway).
* After publishing, an erasure withdraws the file itself: ``withdraw_for`` deletes the job
  rows whose ``export_members`` hold any of the ids and returns the paths to unlink.

Recovery at start: expired files are swept, temporary and never-committed files removed,
pending webhooks sent again, and queued jobs run from a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import httpx

from gateway.local_ucd.config import LocalUcdConfig
from gateway.local_ucd.events.query import Selection, parse_selection
from gateway.local_ucd.exports import segments
from gateway.local_ucd.exports.files import FORMATS, ExportFormat, SnapshotAbandoned, write_export
from gateway.local_ucd.exports.jobs import (
    EXPIRY_US,
    ExportJob,
    delete_job,
    export_url,
    load_job,
    oldest_queued,
    pending_deliveries,
    published_files,
)
from gateway.local_ucd.hooks import DELAYS_S, post_with_retries
from gateway.local_ucd.store.database import Store
from gateway.local_ucd.timefmt import to_us

__all__ = ["ExportContext", "ExportWorker"]

# The logger of the whole export feature (the endpoint and this worker).
logger = logging.getLogger("gateway.local_ucd.export")

#: How often the worker deletes expired files when idle.
SWEEP_INTERVAL_S = 60.0
#: How long a stop waits for the running step (a snapshot gives up between chunks).
STOP_TIMEOUT_S = 30.0

_TEMP_PREFIX = ".tmp-"
# SQLite's bound-parameter limit is 32766; stay well below it.
_CHUNK = 500


class _ErasedMeanwhile(Exception):
    """A user of the file was erased after the snapshot: rebuild (§3.3.3)."""


class _JobGone(Exception):
    """The job is no longer queued (someone else ran it)."""


class _Stopping(Exception):
    """The worker stops: the job stays queued and runs again at the next start."""


class ExportContext(Protocol):
    """What the worker uses of the local UCD's services: four of the parts of ``Services``.

    :class:`gateway.local_ucd.services.Services` builds the worker and satisfies this; the
    worker imports neither it nor the endpoints, so dependencies point one way.
    """

    @property
    def config(self) -> LocalUcdConfig: ...

    @property
    def store(self) -> Store: ...

    @property
    def hook_client(self) -> httpx.AsyncClient: ...

    #: The server's UTC clock, read at each use (tests replace it to move time).
    @property
    def now(self) -> Callable[[], datetime]: ...


@dataclass
class _Built:
    temp: Path
    ids: Path
    final_name: str


class ExportWorker:
    """Runs export jobs in the background, one at a time, oldest first (§3.3.3)."""

    def __init__(
        self,
        services: ExportContext,
        *,
        hook_delays: Sequence[float] = DELAYS_S,
        sweep_interval_s: float = SWEEP_INTERVAL_S,
    ) -> None:
        self.services = services
        #: Waits between webhook attempts; tests shorten them.
        self.hook_delays: Sequence[float] = hook_delays
        self.sweep_interval_s = sweep_interval_s
        #: Held by E3 around check -> commit -> record (see handle_export).
        self.accepting = asyncio.Lock()
        self._job_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._closing = threading.Event()
        # The erasure log (module docstring). Written from the writer thread
        # (withdraw_for) and the event loop (note_erasure), hence the lock.
        self._log_lock = threading.Lock()
        self._seq = 0
        self._job_running = False
        self._erasures: list[tuple[int, str, frozenset[str]]] = []

    # -- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Recover after a restart, then start the loop (queued jobs run again)."""
        self.services.config.exports_dir.mkdir(parents=True, exist_ok=True)
        await self.sweep_expired()
        await self._remove_strays()
        for job in await self.services.store.read(pending_deliveries):
            assert job.file_name is not None
            url = export_url(self.services.config.base_url, job.partner, job.file_name)
            self._spawn_delivery(job.id, job.hook, url)
        self._task = asyncio.create_task(self._loop(), name="ucd-export-worker")

    async def aclose(self) -> None:
        """Stop: a running snapshot is given up (its job stays queued for the next start).

        The loop is asked to stop rather than cancelled: a cancelled coroutine would leave
        its database call running in a thread while the store closes the connection.
        Pending webhooks are cancelled; they stay ``pending`` and are retried at the next start.
        """
        self._closing.set()
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT_S)
            except TimeoutError:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        deliveries = list(self._deliveries)
        for task in deliveries:
            task.cancel()
        for task in deliveries:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def wake(self) -> None:
        """A job was queued."""
        self._wake.set()

    async def _loop(self) -> None:
        next_sweep = time.monotonic() + self.sweep_interval_s
        while not self._closing.is_set():
            self._wake.clear()
            try:
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.sweep_interval_s
                    await self.sweep_expired()
                job_id = await self.services.store.read(oldest_queued)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.error("export worker: %s while looking for jobs", type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                continue
            if job_id is not None:
                try:
                    await self.run_job(job_id)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the job stays queued; the loop must live on
                    logger.error("export worker: %s running job %d", type(exc).__name__, job_id)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), 1.0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_sweep - time.monotonic()))

    # -- one job -----------------------------------------------------------------------

    async def run_job(self, job_id: int) -> Path | None:
        """Run one queued job to the end; return the published file, ``None`` if it failed.

        A failed job (any exception: bad stored request, disk full …) is marked ``failed``
        and leaves no file and no hook call. The hook is delivered in the background.
        """
        services = self.services
        async with self._job_lock:
            job = await services.store.read(lambda conn: load_job(conn, job_id))
            if job is None or job.status != "queued":
                return None
            try:
                path = await self._produce(job)
            except asyncio.CancelledError:
                raise
            except (_JobGone, _Stopping):
                return None
            except Exception as exc:
                # The type only: messages may quote data (PII).
                logger.error("export job %d failed: %s", job.id, type(exc).__name__)
                await self._mark_failed(job.id, type(exc).__name__)
                return None
        url = export_url(services.config.base_url, job.partner, path.name)
        self._spawn_delivery(job.id, job.hook, url)
        return path

    async def _produce(self, job: ExportJob) -> Path:
        selection = parse_selection(job.request)
        fmt = FORMATS[job.request["format"]]
        segment_id = int(job.request["segment_id"])
        folder = self.services.config.exports_dir / job.partner
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        while True:
            seq = self._begin_job()
            try:
                built = await self._build(job, fmt, selection, segment_id, folder)
                if built is None:
                    if self._closing.is_set():
                        raise _Stopping
                    continue  # an erasure waited: our re-acquired snapshot queues behind it
                publish = functools.partial(
                    self._publish, job=job, built=built, seq=seq, now_us=to_us(self.services.now())
                )
                try:
                    return await self.services.store.write(publish)
                except _ErasedMeanwhile:
                    built.temp.unlink(missing_ok=True)
                    continue
                except Exception:
                    # Not committed (the rename may have happened): no file without a row.
                    # (Not on cancellation: the write may still commit in its thread.)
                    built.temp.unlink(missing_ok=True)
                    built.temp.with_name(built.final_name).unlink(missing_ok=True)
                    raise
                finally:
                    built.ids.unlink(missing_ok=True)
            finally:
                self._end_job()

    async def _build(
        self,
        job: ExportJob,
        fmt: ExportFormat,
        selection: Selection,
        segment_id: int,
        folder: Path,
    ) -> _Built | None:
        """Write the file from one snapshot; ``None`` when the snapshot was given up."""
        store = self.services.store
        token = secrets.token_hex(16)
        built = _Built(
            temp=folder / f"{_TEMP_PREFIX}{token}.{fmt.extension}",
            ids=folder / f"{_TEMP_PREFIX}{token}.ids",
            final_name=f"{token}.{fmt.extension}",
        )
        abort = threading.Event()

        def should_stop() -> bool:
            return abort.is_set() or self._closing.is_set() or store.erasure_waiting

        async with store.long_read() as conn:

            def work() -> int:
                profile_pks = segments.segment_profile_pks(conn, job.partner, segment_id)
                if profile_pks is None:
                    raise LookupError("the segment no longer exists")
                return write_export(
                    conn,
                    job.partner,
                    fmt,
                    selection.attributes,
                    selection.events,
                    profile_pks,
                    built.temp,
                    built.ids,
                    should_stop=should_stop,
                )

            # The thread owns the snapshot's connection until it returns: on cancellation
            # tell it to stop and wait, so the connection is not closed under its feet.
            task = asyncio.ensure_future(asyncio.to_thread(work))
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                abort.set()
                with contextlib.suppress(BaseException):
                    await task
                raise
            except SnapshotAbandoned:
                return None
        return built

    def _publish(
        self, conn: sqlite3.Connection, job: ExportJob, built: _Built, seq: int, now_us: int
    ) -> Path:
        """The publishing transaction: members, erasure re-check, rename, ``ready``."""
        row = conn.execute("SELECT status FROM export_jobs WHERE id = ?", (job.id,)).fetchone()
        if row is None or row[0] != "queued":
            built.temp.unlink(missing_ok=True)
            raise _JobGone
        with open(built.ids, encoding="utf-8") as ids:
            conn.executemany(
                "INSERT OR IGNORE INTO export_members (job_id, insider_id) VALUES (?, ?)",
                ((job.id, line.rstrip("\n")) for line in ids),
            )
        erased = self._erased_since(seq, job.partner)
        for start in range(0, len(erased), _CHUNK):
            chunk = erased[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            query = (
                "SELECT 1 FROM export_members"  # noqa: S608 (marks are placeholders)
                f" WHERE job_id = ? AND insider_id IN ({marks}) LIMIT 1"
            )
            hit = conn.execute(query, (job.id, *chunk)).fetchone()
            if hit is not None:
                raise _ErasedMeanwhile  # rolls the members back
        final = built.temp.with_name(built.final_name)
        # Renamed inside the transaction: if the commit then fails, the file is an orphan
        # that the next start removes; a committed row never points to a missing file.
        os.replace(built.temp, final)
        conn.execute(
            "UPDATE export_jobs SET status = 'ready', file_name = ?, ready_us = ?,"
            " hook_state = 'pending', error = NULL WHERE id = ?",
            (built.final_name, now_us, job.id),
        )
        return final

    async def _mark_failed(self, job_id: int, error: str) -> None:
        def mark(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE export_jobs SET status = 'failed', error = ?"
                " WHERE id = ? AND status = 'queued'",
                (error, job_id),
            )

        try:
            await self.services.store.write(mark)
        except Exception as exc:
            logger.error(
                "export job %d: could not record the failure: %s", job_id, type(exc).__name__
            )

    # -- webhooks ----------------------------------------------------------------------

    def _spawn_delivery(self, job_id: int, hook: str, url: str) -> None:
        if self._closing.is_set():
            return  # stays pending: the next start delivers it
        task = asyncio.create_task(self._deliver(job_id, hook, url))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, job_id: int, hook: str, url: str) -> None:
        delivered = await post_with_retries(
            self.services.hook_client, hook, {"url": url}, delays=self.hook_delays
        )
        state = "delivered" if delivered else "gave_up"

        def record(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE export_jobs SET hook_state = ? WHERE id = ? AND hook_state = 'pending'",
                (state, job_id),
            )

        try:
            await self.services.store.write(record)
        except Exception as exc:
            logger.error("export job %d: hook state not saved: %s", job_id, type(exc).__name__)

    # -- erasure (§4.9 step 3) ---------------------------------------------------------

    def withdraw_for(
        self, conn: sqlite3.Connection, partner: str, insider_ids: Iterable[str]
    ) -> list[Path]:
        """Inside an erasure transaction: drop every file of ``partner`` holding the ids.

        Deletes those jobs' rows (their URLs answer 404 once this commits) and returns the
        files to unlink after the commit. Also notes the erasure for a job being built.
        """
        ids = sorted(set(insider_ids))
        self.note_erasure(partner, ids)
        jobs: dict[int, str] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            query = (
                "SELECT DISTINCT j.id, j.file_name FROM export_members m"  # noqa: S608 (placeholders)
                " JOIN export_jobs j ON j.id = m.job_id"
                f" WHERE j.partner = ? AND m.insider_id IN ({marks})"
            )
            for job_id, file_name in conn.execute(query, (partner, *chunk)):
                jobs[job_id] = file_name
        folder = self.services.config.exports_dir / partner
        for job_id in jobs:
            delete_job(conn, job_id)
        return [folder / name for name in jobs.values() if name]

    def note_erasure(self, partner: str, insider_ids: Iterable[str]) -> None:
        """After an erasure's commit: a job building a file with these users rebuilds it.

        Safe to call from any thread; cheap when no job runs (nothing is kept).
        """
        ids = frozenset(insider_ids)
        with self._log_lock:
            self._seq += 1
            if self._job_running:
                self._erasures.append((self._seq, partner, ids))

    def _begin_job(self) -> int:
        with self._log_lock:
            self._job_running = True
            self._erasures.clear()  # older entries cannot concern a snapshot taken from now on
            return self._seq

    def _end_job(self) -> None:
        with self._log_lock:
            self._job_running = False
            self._erasures.clear()

    def _erased_since(self, seq: int, partner: str) -> list[str]:
        with self._log_lock:
            found: set[str] = set()
            for entry_seq, entry_partner, ids in self._erasures:
                if entry_seq > seq and entry_partner == partner:
                    found |= ids
        return sorted(found)

    # -- expiry and clean-up -----------------------------------------------------------

    async def sweep_expired(self) -> int:
        """Delete every file (and row) 24 h past ready; return how many went."""
        limit = to_us(self.services.now()) - EXPIRY_US
        folder = self.services.config.exports_dir

        def expire(conn: sqlite3.Connection) -> list[Path]:
            rows = conn.execute(
                "SELECT id, partner, file_name FROM export_jobs"
                " WHERE status = 'ready' AND ready_us <= ?",
                (limit,),
            ).fetchall()
            for job_id, _partner, _name in rows:
                delete_job(conn, job_id)
            return [folder / partner / name for _id, partner, name in rows]

        paths = await self.services.store.write(expire)
        for path in paths:
            path.unlink(missing_ok=True)
        return len(paths)

    async def _remove_strays(self) -> None:
        """Temporary files of interrupted jobs, and files renamed but never committed."""
        published = await self.services.store.read(published_files)
        root = self.services.config.exports_dir

        def remove() -> None:
            for folder in root.iterdir():
                if not folder.is_dir():
                    continue
                for path in folder.iterdir():
                    if path.is_file() and (folder.name, path.name) not in published:
                        path.unlink(missing_ok=True)

        await asyncio.to_thread(remove)
