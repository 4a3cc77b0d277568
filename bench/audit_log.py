"""What an audit line costs, and whether the event loop notices.

Three rows, each ``LINES`` lines through ``gateway.audit.AuditLog`` to a file in a
temporary folder (on the same disk as the working directory, so the fsync is real):

1. one line a write, one after another (a lone mutation's attempt line);
2. ``CONCURRENT`` writers at once (concurrent mutations: the lines queue on the one
   writer thread, each write its own fsync);
3. ``/dev/null`` (the cost without a disk: JSON, the thread hop, the write).

Meanwhile a task counts event-loop turns: the loop keeps turning while the fsyncs run on
the writer thread. ``python -m bench audit_log``.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from gateway.audit import AuditLog

LINES: Final = 200
CONCURRENT: Final = 20

_LINE: Final = {
    "time": "2026-12-07T06:58:19.412345Z",
    "requestId": "0b9e0c55-1a3f-4a43-9d87-7c1f0f5b8b61",
    "principal": "crm-sync",
    "operation": "Forget",
    "field": "deletePii",
    "phase": "attempt",
    "insiderIds": ["hmac:4f1c0d0e9b7a6c5d4e3f2a1b0c9d8e7f"],
    "outcome": "attempted",
    "code": None,
}


async def _measure(target: str, writers: int) -> dict[str, Any]:
    log = AuditLog(target)
    turns = 0
    stop = asyncio.Event()

    async def spin() -> None:
        nonlocal turns
        while not stop.is_set():
            turns += 1
            await asyncio.sleep(0)

    async def writer(count: int) -> None:
        for _ in range(count):
            await log.write([_LINE])

    spinner = asyncio.create_task(spin())
    started = time.perf_counter()
    await asyncio.gather(*(writer(LINES // writers) for _ in range(writers)))
    elapsed = time.perf_counter() - started
    stop.set()
    await spinner
    await log.aclose()
    return {
        "us_per_line": elapsed / LINES * 1e6,
        "lines_per_s": LINES / elapsed,
        "loop_turns": turns,
    }


async def _all() -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as folder:
        path = str(Path(folder) / "audit.jsonl")
        rows.append({"case": "file, one writer", **await _measure(path, 1)})
        rows.append({"case": f"file, {CONCURRENT} writers", **await _measure(path, CONCURRENT)})
    rows.append({"case": "/dev/null, one writer", **await _measure("/dev/null", 1)})
    return rows


def run() -> dict[str, Any]:
    rows = asyncio.run(_all())
    print(f"Audit lines, {LINES} each row (write + fsync for a file):\n")
    print("| case | µs a line | lines/s | event-loop turns meanwhile |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['case']} | {row['us_per_line']:.0f} | {row['lines_per_s']:.0f} | "
            f"{row['loop_turns']:,} |"
        )
    return {"rows": rows}


if __name__ == "__main__":
    run()
