"""Instructions per read, compiled execution path on and off (callgrind).

Instruction counts do not move with the neighbours' load, so this bench is valid on a
shared machine. Method (issue 8's): ``bench/_callgrind_worker.py`` runs the gateway and
the local UCD in one process, seeds 50 users (the first with 100 purchase events of 6
fields) and sends N requests of one case after a warm-up; under
``valgrind --tool=callgrind`` once with N and once with 0, the difference divided by N is
what one request costs, gateway and local UCD together. Cases:

* ``read``: ``query($u: String!) { user(key: {uuid: $u}) { name email } }``, a
  different user each request;
* ``events``: one user's 100 events × 6 fields;
* ``new``: the uuid written into the text, a new document each request.

Each case as two callers: ``anonymous`` (no authentication configured) and ``api-key``
(authentication on, a key with ``profile:read`` and ``pii:read`` on every request:
the production caller, whose scopes the compiled path checks per request).

``python -m bench callgrind_reads`` (``BENCH_CALLGRIND_N``, default 400); skipped with a
note when valgrind is not installed. Each run takes minutes under callgrind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import _callgrind as callgrind

CASES = ("read", "events", "new")
CALLERS = ("anonymous", "api-key")
WORKER = Path(__file__).with_name("_callgrind_worker.py")


def instructions(case: str, count: int, *, compiled: bool, caller: str, out_dir: Path) -> int:
    """The instructions of one worker run under callgrind (its ``summary:`` line)."""
    out = out_dir / f"{case}-{count}-{compiled}-{caller}.out"
    env = {
        **os.environ,
        "UCD_GATEWAY_COMPILED_EXECUTION": "true" if compiled else "false",
        "BENCH_CALLER": caller,
        # The same hashes in every run, so the two counts of a row differ by N requests.
        "PYTHONHASHSEED": "0",
        # The worker runs as a file; it imports this package from the repository.
        "PYTHONPATH": str(WORKER.parent.parent),
    }
    return callgrind.instructions([str(WORKER), case, str(count)], out, env)


def run() -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: callgrind_reads skipped (apt-get install valgrind).")
        return {"skipped": "no valgrind"}
    count = int(os.environ.get("BENCH_CALLGRIND_N", "400"))
    runs = [
        (case, n, compiled, caller)
        for case in CASES
        for caller in CALLERS
        for compiled in (False, True)
        for n in (0, count)
    ]
    with (
        tempfile.TemporaryDirectory(prefix="bench-callgrind-") as out_dir,
        ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool,
    ):
        counts = dict(
            zip(
                runs,
                pool.map(
                    lambda r: instructions(
                        r[0], r[1], compiled=r[2], caller=r[3], out_dir=Path(out_dir)
                    ),
                    runs,
                ),
                strict=True,
            )
        )
    rows: list[dict[str, Any]] = []
    for case in CASES:
        for caller in CALLERS:
            per = {
                compiled: (
                    counts[(case, count, compiled, caller)] - counts[(case, 0, compiled, caller)]
                )
                / count
                for compiled in (False, True)
            }
            rows.append(
                {"case": case, "caller": caller, "graphql_core": per[False], "compiled": per[True]}
            )
    print(f"Instructions per request (callgrind, gateway and local UCD in one process, N={count}).")
    print()
    print("| case | caller | graphql-core path | compiled path | change |")
    print("|---|---|---:|---:|---:|")
    for row in rows:
        change = row["compiled"] / row["graphql_core"] - 1
        print(
            f"| {row['case']} | {row['caller']} | {row['graphql_core'] / 1e6:.3f} M "
            f"| {row['compiled'] / 1e6:.3f} M | {change:+.0%} |"
        )
    return {"rows": rows}


if __name__ == "__main__":
    run()
