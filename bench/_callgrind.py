"""One process under callgrind, and the instructions it ran: the shared step of the
benches that count instructions (``callgrind_reads``, ``callgrind_new_document``,
``ucd_client``), which stay valid on a loaded machine where wall-clock time does not."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["instructions"]


def instructions(
    arguments: Sequence[str],
    out: Path,
    env: Mapping[str, str],
    *,
    options: Sequence[str] = (),
) -> int:
    """Run ``python arguments...`` under ``valgrind --tool=callgrind`` (with ``options``)
    and return the instructions of its ``summary:`` line, written to ``out``."""
    valgrind = shutil.which("valgrind")
    assert valgrind is not None, "valgrind is not installed"
    subprocess.run(  # noqa: S603  # our own workers, fixed arguments
        [
            valgrind,
            "--tool=callgrind",
            *options,
            f"--callgrind-out-file={out}",
            sys.executable,
            *arguments,
        ],
        check=True,
        capture_output=True,
        env=dict(env),
    )
    for line in out.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary in {out}")
