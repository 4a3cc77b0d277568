"""The audit log: JSON lines appended to a file (or stderr), durable before an answer.

``UCD_GATEWAY_AUDIT_LOG`` names a file, or ``-`` for stderr. Every ``write`` appends its
lines with one ``os.write`` on a descriptor opened with ``O_APPEND`` (so the lines of
two replicas writing one file never interleave within a line), then, for a regular
file, ``fsync``: when ``write`` returns, the lines are on the disk. A failure of any of
it (the directory is read-only, the disk is full, ``/dev/full``) raises
``AuditUnavailable``, and the caller refuses what it was about to do.

The appends run on one dedicated thread, so an fsync (a millisecond to tens of them on a
real disk) never blocks the event loop. Writes are group-committed: while one append and
its fsync are on the disk, the lines of every request that arrives meanwhile wait and
then go in one append with one fsync, so the trail keeps up with concurrent mutations
(an fsync each would cap them at one disk flush per line). A file that cannot be opened
is tried again at the next write, so fixing the directory's permissions heals a running
gateway.

What goes in a line is the caller's business (gateway/api/audit_trail.py); this module
only makes sure it is written.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import orjson

__all__ = ["STDERR", "AuditLog", "AuditUnavailable"]

#: The setting's value that means stderr.
STDERR: Final = "-"


class AuditUnavailable(Exception):
    """The lines could not be written; the message names the errno, never a line."""


class AuditLog:
    """Appends JSON lines to ``target`` (a path, or ``-`` for stderr)."""

    def __init__(self, target: str) -> None:
        self._target = target
        self._fd: int | None = None
        self._sync = False
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-log")
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def write(self, lines: Sequence[Mapping[str, Any]]) -> None:
        """Append ``lines`` durably, or raise ``AuditUnavailable``."""
        if not lines:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((b"".join(orjson.dumps(line) + b"\n" for line in lines), done))
        if self._flushing is None:
            self._flushing = loop.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        """Group commit: the writes that arrive while one is on the disk go together in the
        next, one write and one fsync for all of them (each request's lines stay together).
        """
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                data = b"".join(chunk for chunk, _ in batch)
                try:
                    await loop.run_in_executor(self._writer, self._append, data)
                except Exception as exc:  # AuditUnavailable, or a writer shut down
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(AuditUnavailable(str(exc)))
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._flushing = None

    def _append(self, data: bytes) -> None:
        """The blocking append, on the one writer thread (so one at a time)."""
        try:
            fd = self._open()
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if self._sync:
                os.fsync(fd)
        except OSError as exc:
            self._close()  # opened again at the next write
            raise AuditUnavailable(
                f"the audit log cannot be written: {exc.strerror or type(exc).__name__}"
            ) from None

    def _open(self) -> int:
        if self._fd is None:
            if self._target == STDERR:
                self._fd = sys.stderr.fileno()
                self._sync = False  # a pipe or terminal: flushed by the write itself
            else:
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
                self._fd = os.open(self._target, flags, 0o600)
                self._sync = stat.S_ISREG(os.fstat(self._fd).st_mode)
        return self._fd

    def _close(self) -> None:
        if self._fd is not None and self._target != STDERR:
            os.close(self._fd)
        self._fd = None

    async def aclose(self) -> None:
        self._writer.shutdown(wait=True)  # no append runs after this
        self._close()
