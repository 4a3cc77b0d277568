"""Spans leave ``ucd-gateway serve`` (a child process, configured only by the standard
OTEL_* variables) over OTLP/HTTP and arrive at a real receiver.

The receiver (tests/gateway/otlp_receiver.py) is a small Starlette app on a free
loopback port, served by uvicorn in a thread for the whole session: it takes
``POST /v1/traces`` in protobuf, as a collector does, and decodes each body with
opentelemetry-proto.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from gateway.ucd.paths import PROFILE_PATH, UPSERT_PATH
from tests.gateway.otlp_receiver import OtlpReceiver, serve_otlp, strings

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """A real OTLP/HTTP receiver on a free loopback port, once per session."""
    with serve_otlp() as receiver:
        yield receiver


def _wait_for(receiver: OtlpReceiver, names: set[str], timeout: float) -> list[Span]:
    deadline = time.monotonic() + timeout
    while True:
        ours = [s for _, s in receiver.spans() if s.trace_id.hex() == TRACE_ID]
        if names <= {s.name for s in ours} or time.monotonic() > deadline:
            return ours
        time.sleep(0.1)


def test_spans_of_the_served_gateway_arrive_at_an_otlp_receiver(
    otlp_receiver: OtlpReceiver, tmp_path: Path
) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.upper().startswith(("UCD_GATEWAY_", "OTEL_"))
    }
    env.update(
        UCD_GATEWAY_PORT="0",
        UCD_GATEWAY_LOCAL_UCD_PORT="0",
        UCD_GATEWAY_LOCAL_UCD_DATA_DIR=str(tmp_path / "ucd"),
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.url,
        # The SDK's own variable: export every 100 ms rather than every 5 s.
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    command = [sys.executable, "-m", "gateway", "serve"]
    with subprocess.Popen(  # noqa: S603  # our own interpreter and module
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    ) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            graphql = banner.split(" on ", 1)[1].strip()
            headers = {"traceparent": TRACEPARENT}
            write = (
                'mutation Save { upsertUsers(input: {users: [{key: {email: "ada@example.com"}, '
                'attributes: {name: "Ada"}}]}) { successCount } }'
            )
            read = 'query GetUser { user(key: {email: "ada@example.com"}) { name } }'
            for query in (write, read):
                answer = httpx.post(graphql, json={"query": query}, headers=headers, timeout=10)
                assert answer.status_code == 200
                assert "errors" not in answer.json(), answer.text
            assert answer.json()["data"] == {"user": {"name": "Ada"}}

            # While the gateway runs: its batches leave on the SDK's schedule.
            wanted = {
                "POST /graphql",
                "mutation Save",
                f"POST {UPSERT_PATH}",
                "query GetUser",
                f"POST {PROFILE_PATH}",
            }
            spans = _wait_for(otlp_receiver, wanted, timeout=15)
            assert wanted <= {s.name for s in spans}
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
            _, errors = process.communicate(timeout=10)
    assert "Traceback" not in errors
    assert set(otlp_receiver.content_types) == {"application/x-protobuf"}
    resources = [r for r, s in otlp_receiver.spans() if s.trace_id.hex() == TRACE_ID]
    assert {r.get("service.name") for r in resources} == {"ucd-gateway"}
    by_name = {s.name: s for s in spans}
    operation, call = by_name["query GetUser"], by_name[f"POST {PROFILE_PATH}"]
    assert call.parent_span_id == operation.span_id
    assert by_name["POST /graphql"].parent_span_id.hex() == "b7ad6b7169203331"
    assert strings(list(operation.attributes)) == {
        "graphql.operation.type": "query",
        "graphql.operation.name": "GetUser",
    }
    assert "ada@example.com" not in str([s for _, s in otlp_receiver.spans()])
