"""Instructions per selective read, counted by callgrind: what tracing costs, off and on.

Wall-clock time moves with the machine's other load; instruction counts do not. Each
figure is ``valgrind --tool=callgrind`` over this module's ``--reads N`` mode (the gateway
and the local UCD in one process, 50 users seeded through the gateway, then N sequential
selective reads ``{ user(key: {uuid: $u}) { name email } }``), as
(instructions at N=400 - instructions at N=0) / 400, so start-up and seeding cancel out
(``PYTHONHASHSEED=0`` in both, so the two runs hash alike).

Rows: tracing off (no OTEL_* variable: the default), and on with every span sampled into
an exporter that drops them (the SDK's cost, not a collector's). To compare with the
code before tracing existed, run the off row with ``PYTHONPATH`` at a checkout of it::

    git archive <commit> gateway | tar -x -C /tmp/before && cp -r bench /tmp/before/
    cd /tmp/before && $OLDPWD/.venv/bin/python -m bench tracing_overhead

(run from the checkout: ``-m`` puts the current folder first on ``sys.path``).

``python -m bench tracing_overhead`` (about 4 minutes: valgrind runs Python ~50x slower).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

import gateway
from gateway.app import create_app
from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import LocalUcdConfig
from gateway.local_ucd.transport import LocalUcdTransport
from gateway.settings import Settings

#: BENCH_READS: fewer for a quicker, noisier figure.
READS = int(os.environ.get("BENCH_READS", "400"))
USERS = 50
PARTNER = "bench"
TOKEN = "bench-token"
READ = "query($u: String!) { user(key: {uuid: $u}) { name email } }"
UPSERT = "mutation($input: UpsertUsersInput!) { upsertUsers(input: $input) { successCount } }"


# --- the measured process --------------------------------------------------------------


def _enable_dropping_spans() -> None:
    """Tracing on, every span recorded and handed to an exporter that drops it."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    from gateway import tracing

    class Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Drop()))
    tracing.enable(provider)


async def _reads(count: int) -> None:
    with tempfile.TemporaryDirectory() as data:
        config = LocalUcdConfig(data_dir=Path(data), partners={PARTNER: (TOKEN,)})
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, partner=PARTNER, token=SecretStr(TOKEN), ucd_base_url="http://ucd"
        )
        ucd_app = create_local_ucd_app(config)
        async with (
            LifespanManager(ucd_app, startup_timeout=None, shutdown_timeout=None),
            httpx.AsyncClient(transport=LocalUcdTransport(ucd_app), base_url="http://ucd") as ucd,
        ):
            app = create_app(settings, http_client=ucd)
            async with LifespanManager(app, startup_timeout=None, shutdown_timeout=None) as manager:
                transport = httpx.ASGITransport(manager.app)
                async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                    users = [
                        {"key": {"uuid": f"u-{i}"}, "attributes": {"name": f"N{i}"}}
                        for i in range(USERS)
                    ]
                    seeded = await client.post(
                        "/graphql", json={"query": UPSERT, "variables": {"input": {"users": users}}}
                    )
                    assert seeded.json()["data"]["upsertUsers"]["successCount"] == USERS
                    for i in range(count):
                        answer = await client.post(
                            "/graphql", json={"query": READ, "variables": {"u": f"u-{i % USERS}"}}
                        )
                        assert answer.json()["data"]["user"]["name"] == f"N{i % USERS}"


def _measured(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, required=True)
    parser.add_argument("--tracing", choices=("off", "on"), default="off")
    args = parser.parse_args(argv)
    if args.tracing == "on":
        _enable_dropping_spans()
    asyncio.run(_reads(args.reads))


# --- the driver --------------------------------------------------------------------------


def _instructions(valgrind: str, reads: int, tracing: str) -> int:
    with tempfile.TemporaryDirectory() as out:
        target = Path(out) / "callgrind.out"
        subprocess.run(  # noqa: S603  # valgrind over our own interpreter and module
            [
                valgrind,
                "--tool=callgrind",
                f"--callgrind-out-file={target}",
                sys.executable,
                "-m",
                "bench.tracing_overhead",
                "--reads",
                str(reads),
                "--tracing",
                tracing,
            ],
            check=True,
            capture_output=True,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
                "PYTHONHASHSEED": "0",
            },
        )
        match = re.search(r"^(?:summary|totals): (\d+)", target.read_text(), re.MULTILINE)
        assert match is not None, "no instruction total in callgrind's output"
        return int(match.group(1))


def run() -> dict[str, Any]:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("valgrind is not installed (apt-get install valgrind): nothing measured")
        return {}
    where = Path(gateway.__file__).parent
    print(f"gateway package: {where}\n")
    print("| tracing | instructions per selective read |")
    print("|---|---:|")
    figures: dict[str, Any] = {}
    # A checkout from before tracing existed has only the "off" row.
    has_tracing = (where / "tracing.py").exists()
    for tracing in ("off", "on") if has_tracing else ("off",):
        base = _instructions(valgrind, 0, tracing)
        loaded = _instructions(valgrind, READS, tracing)
        per_read = (loaded - base) / READS
        figures[tracing] = per_read
        label = "off (default)" if tracing == "off" else "on, spans dropped by the exporter"
        print(f"| {label} | {per_read / 1e6:.3f} M |", flush=True)
    return figures


if __name__ == "__main__":
    _measured(sys.argv[1:])
