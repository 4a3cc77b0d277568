"""Shared state in this process, kept in a SQLite file so a restart does not forget it.

The default backend, for one process (``make run``): records live in a dict, and every
write also goes to ``<UCD_GATEWAY_LOCAL_UCD_DATA_DIR>/gateway-state.sqlite3``, which is
read back at start-up. Writes are rare (an export job is written two or three times in
its life) and one row each, so they run inline: SQLite in WAL mode with
``synchronous=NORMAL`` commits a row without an fsync, well under a millisecond.

Each namespace keeps at most ``max_entries`` records, the least recently written leaving
first, so a stream of jobs cannot fill the memory before their TTL passes. The profile
cache's namespace is the exception (``Namespace.kept_on_disk`` is False for it): never
written to the file, since it holds personal data, and not limited by count, since its
marks must outlive what they invalidate; its expired records are swept whenever it has
doubled in size since the last sweep.

``stamp`` and ``put_unless_stamped`` are atomic here for free: they never await.
"""

from __future__ import annotations

import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final, NamedTuple

from gateway.state.protocol import Namespace, highest_mark

__all__ = ["FILE_NAME", "MemoryState"]

#: The file in the local data folder (next to the local UCD's own ``ucd.sqlite3``).
FILE_NAME: Final = "gateway-state.sqlite3"

#: A stamped record longer than this is replaced by a ``*`` mark (as in Redis's script).
MAX_MARKS_BYTES: Final = 4096

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS records (
    namespace TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     BLOB NOT NULL,
    expires   REAL NOT NULL,
    PRIMARY KEY (namespace, key)
)
"""


class _Entry(NamedTuple):
    value: bytes
    expires: float  # wall-clock seconds (time.time()): it must mean the same after a restart


class MemoryState:
    """A ``StateStore`` in this process; ``path`` None keeps nothing on disk (tests)."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._records: dict[Namespace, OrderedDict[str, _Entry]] = {
            namespace: OrderedDict() for namespace in Namespace
        }
        self._swept_at = 1024  # the cache's size at which to sweep its expired records next
        self._counters: dict[tuple[Namespace, str], tuple[int, float]] = {}
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = self._open(path)

    def _open(self, path: Path) -> sqlite3.Connection:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SCHEMA)
        db.execute("DELETE FROM records WHERE expires <= ?", (self._clock(),))
        known = {namespace.value: namespace for namespace in Namespace}
        # In the order they were written (the same TTL per namespace), so the oldest
        # leave first when a namespace is full, as before the restart.
        rows = db.execute("SELECT namespace, key, value, expires FROM records ORDER BY expires")
        for namespace, key, value, expires in rows:
            if namespace in known:  # a namespace of a later version stays in the file
                self._records[known[namespace]][key] = _Entry(bytes(value), expires)
        return db

    async def get(self, namespace: Namespace, key: str) -> bytes | None:
        entry = self._records[namespace].get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            self._forget(namespace, key)
            return None
        return entry.value

    async def put(self, namespace: Namespace, key: str, value: bytes, *, ttl: float) -> None:
        self._put(namespace, key, value, self._clock() + ttl)

    def _put(self, namespace: Namespace, key: str, value: bytes, expires: float) -> None:
        records = self._records[namespace]
        records[key] = _Entry(value, expires)
        records.move_to_end(key)
        if not namespace.kept_on_disk:
            if len(records) >= self._swept_at:
                self._sweep(namespace)
            return
        if self._db is not None:
            self._db.execute(
                "INSERT OR REPLACE INTO records (namespace, key, value, expires)"
                " VALUES (?, ?, ?, ?)",
                (namespace.value, key, value, expires),
            )
        while len(records) > self._max_entries:
            self._forget(namespace, next(iter(records)))

    async def incr(self, namespace: Namespace, key: str, *, ttl: float) -> int:
        current = await self.get(namespace, key)
        value = int(current) + 1 if current is not None else 1
        await self.put(namespace, key, str(value).encode(), ttl=ttl)
        return value

    async def put_if_absent(
        self, namespace: Namespace, key: str, value: bytes, *, ttl: float
    ) -> bool:
        # No await between the check and the write: on one event loop this is atomic.
        if await self.get(namespace, key) is not None:
            return False
        await self.put(namespace, key, value, ttl=ttl)
        return True

    def _sweep(self, namespace: Namespace) -> None:
        now = self._clock()
        records = self._records[namespace]
        for key in [key for key, entry in records.items() if entry.expires <= now]:
            del records[key]
        self._swept_at = max(1024, 2 * len(records))

    async def get_many(self, namespace: Namespace, keys: Sequence[str]) -> list[bytes | None]:
        return [await self.get(namespace, key) for key in keys]

    async def delete_many(self, namespace: Namespace, keys: Sequence[str]) -> None:
        for key in keys:
            if key in self._records[namespace]:
                self._forget(namespace, key)

    async def stamp(
        self, namespace: Namespace, counter: str, marks: Mapping[str, Sequence[str]], *, ttl: float
    ) -> int:
        current = await self.get(namespace, counter)
        stamp = int(current or 0) + 1
        self._put(namespace, counter, str(stamp).encode(), float("inf"))
        expires = self._clock() + ttl
        for key, fields in marks.items():
            added = b"".join(f"{field}={stamp};".encode() for field in fields)
            before = await self.get(namespace, key) or b""
            if "*" in fields or len(before) + len(added) > MAX_MARKS_BYTES:
                value = f"*={stamp};".encode()
            else:
                value = before + added
            self._put(namespace, key, value, expires)
        return stamp

    async def put_unless_stamped(
        self,
        namespace: Namespace,
        items: Mapping[str, bytes],
        *,
        guards: Sequence[str],
        since: int,
        ttl: float,
    ) -> bool:
        for guard in guards:
            if highest_mark(await self.get(namespace, guard)) > since:
                return False
        expires = self._clock() + ttl
        for key, value in items.items():
            self._put(namespace, key, value, expires)
        return True

    def _forget(self, namespace: Namespace, key: str) -> None:
        del self._records[namespace][key]
        if self._db is not None and namespace.kept_on_disk:
            self._db.execute(
                "DELETE FROM records WHERE namespace = ? AND key = ?", (namespace.value, key)
            )

    def records(self, namespace: Namespace) -> dict[str, bytes]:
        """Every record of a namespace, expired or not (what this process's memory holds:
        the erasure tests look for an email's bytes in it)."""
        return {key: entry.value for key, entry in self._records[namespace].items()}

    # --- counters (rate limits): memory only; a window's count need not survive a
    # restart, and a write to SQLite on every operation would cost more than the check.

    async def increment(self, namespace: Namespace, key: str, amount: int, *, ttl: float) -> int:
        counters = self._counters
        now = self._clock()
        value, expires = counters.get((namespace, key), (0, 0.0))
        if expires <= now:
            value, expires = 0, now + ttl
            if len(counters) >= self._max_entries:
                self._drop_expired_counters(now)
            while len(counters) >= self._max_entries:  # all current: the oldest leaves
                del counters[next(iter(counters))]
        counters[(namespace, key)] = (value + amount, expires)
        return value + amount

    def _drop_expired_counters(self, now: float) -> None:
        for counter, (_, expires) in list(self._counters.items()):
            if expires <= now:
                del self._counters[counter]

    async def aclose(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
