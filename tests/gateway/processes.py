"""Gateways and local UCDs as separate processes: the real command line, as deployed.

``started(...)`` runs ``python -m gateway <args>`` with only the ``UCD_GATEWAY_*``
variables given (none of the developer's), waits for its banner's first line on stdout
and yields the URL it names; logs go to a file in the test's folder. On the way out the
process gets SIGTERM and, if it lingers, SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

import pytest

#: The banner lines of ``serve`` and ``local-ucd`` that carry the URL they listen on.
_URL = re.compile(r"(http://127\.0\.0\.1:\d+)")


#: Given unless a test says otherwise: the test machine is loaded by the suite itself, and
#: a replica that shed a request on loop lag would fail a test about something else
#: (shedding on lag has tests of its own, tests/gateway/test_loop_lag.py, and so has the
#: in-flight limit that follows it, test_in_flight_limit.py).
_DEFAULTS: Final = {"UCD_GATEWAY_MAX_LOOP_LAG_MS": "0", "UCD_GATEWAY_TARGET_LOOP_LAG_MS": "0"}


def _environment(settings: Mapping[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("UCD_GATEWAY_")}
    return clean | _DEFAULTS | dict(settings)


@contextlib.contextmanager
def started(args: list[str], settings: Mapping[str, str], log: Path) -> Iterator[str]:
    """Run the command until the block ends; the URL its banner names."""
    with running(args, settings, log) as (url, _):
        yield url


def local_ucd(folder: Path) -> contextlib.AbstractContextManager[str]:
    """``ucd-gateway local-ucd`` on a free port with its data in ``folder``/ucd: its URL."""
    return started(
        ["local-ucd", "--port", "0", "--data", str(folder / "ucd")], {}, folder / "ucd.log"
    )


@contextlib.contextmanager
def running(
    args: list[str], settings: Mapping[str, str], log: Path
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``started``, with the process too (its pid, its exit)."""
    with log.open("w") as log_file:
        process = subprocess.Popen(  # noqa: S603  # our own interpreter and module
            [sys.executable, "-m", "gateway", *args],
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            env=_environment(settings),
            cwd=log.parent,
        )
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], 60)
            line = process.stdout.readline() if ready else ""
            found = _URL.search(line)
            if found is None:
                pytest.fail(f"{args[0]} did not start: {line!r}; see {log}", pytrace=False)
            yield found[1], process
        finally:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()  # type: ignore[union-attr]
