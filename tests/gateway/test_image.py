"""The Dockerfile, read as text (no Docker engine runs here): what it installs, what its
build context carries, and its HEALTHCHECK command, run as written against the real
gateway process."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from gateway.graphiql.assets import STATIC_ROOT
from tests.gateway.conftest import free_port_url
from tests.gateway.served_gateway import ServedGateway

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text("utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def healthcheck_command() -> list[str]:
    (rest,) = [rest for keyword, rest in instructions() if keyword == "HEALTHCHECK"]
    _options, _, command = rest.partition("CMD ")
    argv: list[str] = json.loads(command)
    return argv


def run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    """The HEALTHCHECK's exec-form command as the image runs it: its ``python`` is this
    interpreter, and UCD_GATEWAY_PORT is what the image's ENV sets (here: ``port``)."""
    argv = healthcheck_command()
    assert argv[0] == "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("UCD_GATEWAY_")}
    env["UCD_GATEWAY_PORT"] = str(port)
    return subprocess.run(  # noqa: S603  # the Dockerfile's own command
        [sys.executable, *argv[1:]], env=env, capture_output=True, text=True, timeout=30
    )


def test_the_image_installs_the_parquet_extra_and_the_extra_is_pyarrow() -> None:
    runs = [rest for keyword, rest in instructions() if keyword == "RUN"]
    assert any(rest.startswith('pip install ".[parquet]"') for rest in runs), runs
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    extra = pyproject["project"]["optional-dependencies"]["parquet"]
    assert [re.split(r"[<>=!~ ]", dep)[0] for dep in extra] == ["pyarrow"]


def test_the_healthcheck_passes_against_a_running_gateway(served_gateway: ServedGateway) -> None:
    result = run_healthcheck(served_gateway.port)
    assert (result.returncode, result.stderr) == (0, "")


def test_the_healthcheck_fails_when_nothing_answers() -> None:
    port = int(free_port_url().rsplit(":", 1)[1])
    result = run_healthcheck(port)
    assert result.returncode != 0
    assert "Connection refused" in result.stderr


def test_the_healthcheck_asks_the_port_the_image_serves_on() -> None:
    env = dict(
        pair.split("=", 1)
        for keyword, rest in instructions()
        if keyword == "ENV"
        for pair in rest.split()
    )
    assert env["UCD_GATEWAY_PORT"] == "8000"
    assert ("EXPOSE", "8000") in instructions()
    assert "UCD_GATEWAY_PORT" in " ".join(healthcheck_command())


def test_the_build_context_carries_graphiqls_files() -> None:
    """.dockerignore must not leave out what the page needs (it is package data)."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    files = [p.relative_to(ROOT).as_posix() for p in STATIC_ROOT.rglob("*") if p.is_file()]
    assert files
    ignored = [
        f
        for f in files
        for pattern in patterns
        if fnmatch.fnmatchcase(f, pattern) or fnmatch.fnmatchcase(f, pattern + "/*")
    ]
    assert ignored == []
    assert ("COPY", "gateway ./gateway") in instructions()
