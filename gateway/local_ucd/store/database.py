"""The local UCD's SQLite store: the schema, durability settings and transactions (§4.10).

Concurrency model::

    write(fn)  -- one writer thread, one connection, BEGIN IMMEDIATE ... COMMIT
    read(fn)   -- a pool of reader threads/connections, one read transaction (a snapshot)
    erase(fn)  -- a write that then runs wal_checkpoint(TRUNCATE) while no reader is active

``fn`` is a plain synchronous function of a :class:`sqlite3.Connection`; it runs in a worker
thread so the event loop never blocks on disk. A coroutine gets the result only after COMMIT
returned, so a 2xx answer always follows a durable commit (``synchronous=FULL`` in WAL mode).

Erasure (§4.9) needs the WAL emptied of erased values, which TRUNCATE can only do while no
reader holds an older snapshot. Readers therefore take a shared lock and erasures an exclusive
one (writer-preferring, so a stream of readers cannot starve an erasure).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

__all__ = ["SCHEMA", "Store", "StoreClosedError"]

T = TypeVar("T")

#: Version of :data:`SCHEMA`; stored in ``PRAGMA user_version``.
SCHEMA_VERSION = 1

# Every table is per partner (§2.3): partner-scoped rows carry ``partner`` or hang off a
# profile, which does. Timestamps are integer microseconds since the epoch (UTC).
SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    pk          INTEGER PRIMARY KEY,
    partner     TEXT    NOT NULL,
    insider_id  TEXT    NOT NULL,
    created_us  INTEGER NOT NULL,
    updated_us  INTEGER NOT NULL,
    UNIQUE (partner, insider_id)
);

-- A merged-away profile's insider_id -> its survivor (§4.5 step 4).
CREATE TABLE IF NOT EXISTS aliases (
    partner     TEXT    NOT NULL,
    insider_id  TEXT    NOT NULL,
    profile_pk  INTEGER NOT NULL REFERENCES profiles(pk) ON DELETE CASCADE,
    PRIMARY KEY (partner, insider_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS aliases_by_profile ON aliases(profile_pk);

-- kind: 'email' | 'phone_number' | 'uuid' | 'custom'; name: '' for the default kinds.
-- One profile per value (the primary key) and one value per kind/name per profile (§4.2).
CREATE TABLE IF NOT EXISTS identifiers (
    partner     TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    profile_pk  INTEGER NOT NULL REFERENCES profiles(pk) ON DELETE CASCADE,
    PRIMARY KEY (partner, kind, name, value)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS identifiers_by_profile ON identifiers(profile_pk, kind, name);

-- Attribute values as JSON text. Identifier views (email, phone_number, uuid, custom
-- identifiers) are never stored here: they are read from ``identifiers`` (§4.7.4).
-- custom: 0 = default attribute under its canonical write name, 1 = custom (no c_ prefix).
CREATE TABLE IF NOT EXISTS attributes (
    profile_pk  INTEGER NOT NULL REFERENCES profiles(pk) ON DELETE CASCADE,
    custom      INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    PRIMARY KEY (profile_pk, custom, name)
) WITHOUT ROWID;

-- params: JSON object of default parameters; custom: JSON object of custom parameters.
-- dedupe: digest of the canonical JSON of §4.8.3 (name, instant and parameters).
CREATE TABLE IF NOT EXISTS events (
    pk          INTEGER PRIMARY KEY,
    profile_pk  INTEGER NOT NULL REFERENCES profiles(pk) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    ts_us       INTEGER NOT NULL,
    source      TEXT    NOT NULL,
    params      TEXT    NOT NULL,
    custom      TEXT    NOT NULL,
    dedupe      BLOB    NOT NULL,
    UNIQUE (profile_pk, dedupe)
);
CREATE INDEX IF NOT EXISTS events_by_profile_name_ts ON events(profile_pk, name, ts_us);

-- One namespace of custom names per partner (§4.7.3). is_identifier = 1: a custom
-- identifier (type NULL); else a custom attribute whose type is fixed by its first value
-- or declaration (NULL while only [] was seen).
CREATE TABLE IF NOT EXISTS custom_names (
    partner       TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    is_identifier INTEGER NOT NULL,
    type          TEXT,
    PRIMARY KEY (partner, name)
) WITHOUT ROWID;

-- Every event name and parameter key ever accepted (§3.9); param '' records the name alone.
CREATE TABLE IF NOT EXISTS event_catalog (
    partner     TEXT NOT NULL,
    event_name  TEXT NOT NULL,
    param       TEXT NOT NULL,
    PRIMARY KEY (partner, event_name, param)
) WITHOUT ROWID;

-- Dynamic segments (§5.5); segment 1 "All users" is implicit and never stored.
CREATE TABLE IF NOT EXISTS segments (
    partner     TEXT    NOT NULL,
    segment_id  INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    conditions  TEXT    NOT NULL,
    PRIMARY KEY (partner, segment_id)
) WITHOUT ROWID;

-- Per-partner counters that must never go back (segment ids are never reused).
CREATE TABLE IF NOT EXISTS partner_counters (
    partner     TEXT    NOT NULL,
    counter     TEXT    NOT NULL,
    value       INTEGER NOT NULL,
    PRIMARY KEY (partner, counter)
) WITHOUT ROWID;

-- Export jobs (§3.3.3): status 'queued' | 'ready' | 'failed'; hook_state 'pending' | 'delivered'
-- | 'gave_up'. request is the validated E3 body as JSON.
CREATE TABLE IF NOT EXISTS export_jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    partner     TEXT    NOT NULL,
    request     TEXT    NOT NULL,
    hook        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    file_name   TEXT,
    created_us  INTEGER NOT NULL,
    ready_us    INTEGER,
    hook_state  TEXT    NOT NULL DEFAULT 'pending',
    error       TEXT
);
CREATE INDEX IF NOT EXISTS export_jobs_by_status ON export_jobs(status, id);
CREATE UNIQUE INDEX IF NOT EXISTS export_jobs_by_file ON export_jobs(partner, file_name);

-- Which profiles (by insider_id at snapshot time) have rows in a published export file, so
-- an erasure can withdraw exactly the files that hold the user (§4.9 step 3).
CREATE TABLE IF NOT EXISTS export_members (
    job_id      INTEGER NOT NULL REFERENCES export_jobs(id) ON DELETE CASCADE,
    insider_id  TEXT    NOT NULL,
    PRIMARY KEY (insider_id, job_id)
) WITHOUT ROWID;
"""


class StoreClosedError(RuntimeError):
    """The store was used before :meth:`Store.open` or after :meth:`Store.close`."""


def connect(path: Path) -> sqlite3.Connection:
    """Open one connection with the durability settings of §4.10."""
    conn = sqlite3.connect(
        path,
        isolation_level=None,  # we issue BEGIN/COMMIT ourselves
        check_same_thread=False,  # each connection is used by one thread at a time
        timeout=30.0,
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    # The WAL is checkpointed by erasures (TRUNCATE) and by SQLite's own auto-checkpoint.
    return conn


class _ReadersWriterLock:
    """Many readers or one exclusive holder; a waiting exclusive holder blocks new readers."""

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._readers = 0
        self._exclusive = False
        self._waiting_exclusive = 0

    @property
    def exclusive_waiting(self) -> bool:
        return self._waiting_exclusive > 0

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(lambda: not self._exclusive and not self._waiting_exclusive)
            self._readers += 1
        try:
            yield
        finally:
            async with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._cond:
            self._waiting_exclusive += 1
            try:
                await self._cond.wait_for(lambda: not self._exclusive and self._readers == 0)
            finally:
                self._waiting_exclusive -= 1
            self._exclusive = True
        try:
            yield
        finally:
            async with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class Store:
    """The SQLite database of one local UCD (``<data_dir>/ucd.sqlite3``)."""

    def __init__(self, path: Path, *, readers: int = 4) -> None:
        self.path = path
        self._reader_count = readers
        self._writer: sqlite3.Connection | None = None
        self._write_executor: ThreadPoolExecutor | None = None
        self._read_executor: ThreadPoolExecutor | None = None
        self._read_conns: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all_read_conns: list[sqlite3.Connection] = []
        self._write_lock = asyncio.Lock()
        self._rw = _ReadersWriterLock()

    # -- life cycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Create the folder, the file and the schema; open the connections."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_executor = ThreadPoolExecutor(1, thread_name_prefix="ucd-writer")
        self._read_executor = ThreadPoolExecutor(
            self._reader_count, thread_name_prefix="ucd-reader"
        )
        loop = asyncio.get_running_loop()
        self._writer = await loop.run_in_executor(self._write_executor, self._open_writer)
        for _ in range(self._reader_count):
            conn = await loop.run_in_executor(self._read_executor, connect, self.path)
            self._all_read_conns.append(conn)
            self._read_conns.put(conn)

    def _open_writer(self) -> sqlite3.Connection:
        conn = connect(self.path)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            conn.close()
            raise RuntimeError(
                f"{self.path} was written by a newer local UCD "
                f"(schema {version} > {SCHEMA_VERSION})"
            )
        conn.executescript(
            "BEGIN IMMEDIATE;" + SCHEMA + f"PRAGMA user_version={SCHEMA_VERSION};COMMIT;"
        )
        return conn

    async def close(self) -> None:
        """Wait for work still running in the threads, then close every connection.

        A cancelled request does not stop its worker thread, so the executors are shut
        down (waiting) *before* any connection is closed: closing a connection another
        thread is still using can crash the interpreter.
        """
        write_executor, read_executor = self._write_executor, self._read_executor
        self._write_executor = self._read_executor = None
        for executor in (write_executor, read_executor):
            if executor is not None:
                await asyncio.to_thread(executor.shutdown, wait=True)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for conn in self._all_read_conns:
            conn.close()
        self._all_read_conns.clear()
        self._read_conns = queue.SimpleQueue()

    # -- transactions -----------------------------------------------------------------

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction; return its result after COMMIT."""
        async with self._write_lock:
            return await self._run_write(fn)

    async def erase(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Like :meth:`write`, then empty the WAL (§4.9) before returning.

        Serialised against every other database access: no reader holds a snapshot while
        the checkpoint runs, so TRUNCATE always completes.
        """
        async with self._write_lock, self._rw.exclusive():
            result = await self._run_write(fn)
            await self._run_on_writer(_checkpoint_truncate)
            return result

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one read transaction (a consistent snapshot)."""
        async with self._rw.shared():
            executor = self._require(self._read_executor)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(executor, self._read_in_thread, fn)

    @property
    def erasure_waiting(self) -> bool:
        """True while an erasure waits for readers: long readers should yield and retry."""
        return self._rw.exclusive_waiting

    @contextlib.asynccontextmanager
    async def long_read(self) -> AsyncIterator[sqlite3.Connection]:
        """A dedicated connection inside a shared lock, for a long snapshot (exports).

        The caller runs its work in threads of its own (``asyncio.to_thread``) and should
        check :attr:`erasure_waiting` to give the snapshot up when an erasure waits.
        """
        async with self._rw.shared():
            conn = await asyncio.to_thread(connect, self.path)
            try:
                await asyncio.to_thread(conn.execute, "BEGIN")
                yield conn
            finally:
                await asyncio.to_thread(_rollback_and_close, conn)

    # -- internals --------------------------------------------------------------------

    def _require(self, executor: ThreadPoolExecutor | None) -> ThreadPoolExecutor:
        if executor is None:
            raise StoreClosedError("the store is not open")
        return executor

    async def _run_on_writer(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        executor = self._require(self._write_executor)
        writer = self._writer
        if writer is None:
            raise StoreClosedError("the store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, fn, writer)

    async def _run_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run_on_writer(lambda conn: _in_write_transaction(conn, fn))

    def _read_in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._read_conns.get()
        try:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("ROLLBACK")
        finally:
            self._read_conns.put(conn)


def _in_write_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _checkpoint_truncate(conn: sqlite3.Connection) -> None:
    busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        # Cannot happen while we hold the exclusive lock, unless another process has the
        # file open; an erasure must not be acknowledged with erased values in the WAL.
        raise RuntimeError("the WAL checkpoint after an erasure did not complete")


def _rollback_and_close(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")
    conn.close()
