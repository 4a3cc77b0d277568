"""The real ``ucd-gateway serve`` in a child process, for tests that read what it prints."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def serving(tmp_path: Path, **env: str) -> Iterator[tuple[str, list[str]]]:
    """``python -m gateway serve`` on free ports; its base URL, and (after the block, once
    it stopped on SIGTERM) every line it wrote to stderr."""
    variables = {k: v for k, v in os.environ.items() if not k.upper().startswith("UCD_GATEWAY_")}
    variables.update(
        UCD_GATEWAY_PORT="0",
        UCD_GATEWAY_LOCAL_UCD_PORT="0",
        UCD_GATEWAY_LOCAL_UCD_DATA_DIR=str(tmp_path / "ucd"),
        **env,
    )
    stderr: list[str] = []
    with subprocess.Popen(  # our own interpreter and module
        [sys.executable, "-m", "gateway", "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=variables,
        cwd=tmp_path,
    ) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            assert "GraphiQL on " in banner, process.stderr.read() if process.stderr else ""
            yield banner.split(" on ", 1)[1].strip().removesuffix("/graphql"), stderr
        finally:
            process.send_signal(signal.SIGTERM)
            _, errors = process.communicate(timeout=30)
            stderr.extend(errors.splitlines())
