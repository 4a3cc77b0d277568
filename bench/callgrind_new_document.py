"""Instructions per new document, stage by stage (callgrind).

Issue 8's ``new document`` case (the uuid written into the query text, so every request
is a document the gateway has not seen) costs far more than the same read with
variables: this bench says where, in instructions, which the neighbours' load does
not move. ``bench/_callgrind_stages.py`` takes N new documents through the first k
stages of what the gateway does with a document before executing it (text check,
parse, validation through the app's cache, the compiled plan); the count at k minus
the count at k - 1, divided by N, is stage k's cost per document. The whole request
(``callgrind_reads.py``'s ``new`` case) is the figure to compare them with.

``python -m bench callgrind_new_document`` (``BENCH_CALLGRIND_N``, default 400); skipped
with a note when valgrind is not installed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import _callgrind as callgrind

WORKER = Path(__file__).with_name("_callgrind_stages.py")
STAGES = ("text", "parse", "validation", "plan")


def instructions(stages: int, count: int, out_dir: Path) -> int:
    """The instructions of one worker run under callgrind (its ``summary:`` line)."""
    out = out_dir / f"stages-{stages}-{count}.out"
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(WORKER.parent.parent)}
    return callgrind.instructions(
        [str(WORKER), str(stages), str(count)], out, env, options=["--dump-instr=no"]
    )


def run() -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        print(
            "valgrind is not installed: callgrind_new_document skipped (apt-get install valgrind)."
        )
        return {"skipped": "no valgrind"}
    count = int(os.environ.get("BENCH_CALLGRIND_N", "400"))
    with (
        tempfile.TemporaryDirectory(prefix="bench-callgrind-") as out_dir,
        ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool,
    ):
        counts = list(
            pool.map(lambda k: instructions(k, count, Path(out_dir)), range(len(STAGES) + 1))
        )
    per_stage = {stage: (counts[k + 1] - counts[k]) / count for k, stage in enumerate(STAGES)}
    print(f"Instructions per new document, by stage (callgrind, N={count}).")
    print()
    print("| stage | instructions per document |")
    print("|---|---:|")
    for stage, per in per_stage.items():
        print(f"| {stage} | {per / 1e3:,.0f} k |")
    print(f"| all four | {sum(per_stage.values()) / 1e3:,.0f} k |")
    return {"stages": per_stage}


if __name__ == "__main__":
    run()
