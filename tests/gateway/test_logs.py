"""Logs: request ids, JSON lines without personal data, and no line printed twice.

The last tests run the real command in a child process and read what it prints, as an
operator's log shipper would.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.logs import (
    TEXT_FORMAT,
    JsonFormatter,
    LocalUcdLines,
    RequestFields,
    TextFormatter,
    configure_logging,
    embedded_server_context,
    install_local_ucd_lines,
)
from gateway.request_context import ACCEPTED_ID
from tests.gateway.cli_process import serving
from tests.gateway.conftest import UPSERT, app_gateway

EMAIL, PHONE, NAME = "zelda.quintrell@example.com", "+905321234567", "Quintrell"
PII = (EMAIL, PHONE, NAME)

GET_USER = "query GetUser($key: UserKey!) { user(key: $key) { insiderId name } }"
UPSERT_PII = {
    "input": {
        "users": [{"key": {"email": EMAIL, "phoneNumber": PHONE}, "attributes": {"surname": NAME}}]
    }
}
#: A refused document whose variables hold PII: the refusal must not log them.
BAD_VARIABLES = "query Bad($key: UserKey!) { user(key: $key) { name } }"


# --- request ids -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        pytest.param("3f6c1a9e-7b2d-4c1e-9a0f-2b8d5e6c7a10", True, id="uuid"),
        pytest.param("lb.42:abc/def=+_-", True, id="load-balancer"),
        pytest.param(EMAIL, False, id="email"),
        pytest.param("x" * 129, False, id="too-long"),
        pytest.param("two words", False, id="space"),
        pytest.param(None, False, id="absent"),
    ],
)
async def test_a_well_formed_caller_id_is_kept_and_any_other_is_replaced(
    given: str | None, kept: bool
) -> None:
    headers = {"X-Request-Id": given} if given is not None else {}
    async with app_gateway() as (client, _):
        response = await client.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
    answered = response.headers["x-request-id"]
    if kept:
        assert answered == given
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", answered)
    assert ACCEPTED_ID.fullmatch(answered)


async def test_every_path_answers_with_a_request_id() -> None:
    async with app_gateway() as (client, _):
        for path in ("/healthz", "/metrics", "/nope"):
            response = await client.get(path, headers={"X-Request-Id": "probe-1"})
            assert response.headers["x-request-id"] == "probe-1"


# --- JSON lines, in process ----------------------------------------------------------------


@contextlib.contextmanager
def json_lines(level: int = logging.INFO) -> Iterator[list[dict[str, Any]]]:
    """Every record logged meanwhile, as the JSON handler of ``configure_logging`` writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestFields())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        lines.extend(orjson.loads(line) for line in stream.getvalue().splitlines())


async def test_lines_of_a_request_carry_its_id_and_operation_and_no_personal_data() -> None:
    with json_lines() as lines:
        async with app_gateway() as (client, _):
            headers = {"X-Request-Id": "req-upsert"}
            body = {"query": UPSERT, "variables": UPSERT_PII}
            assert (await client.post("/graphql", json=body, headers=headers)).status_code == 200
            headers = {"X-Request-Id": "req-read"}
            body = {"query": GET_USER, "variables": {"key": {"email": EMAIL}}}
            assert (await client.post("/graphql", json=body, headers=headers)).status_code == 200
            headers = {"X-Request-Id": "req-bad"}
            body = {"query": BAD_VARIABLES, "variables": {"key": {"email": 42, "phone": PHONE}}}
            await client.post("/graphql", json=body, headers=headers)
    by_id = {
        rid: [line for line in lines if line["request_id"] == rid]
        for rid in ("req-upsert", "req-read", "req-bad")
    }
    operations = {
        rid: [x for x in found if x["logger"] == "gateway.operations"]
        for rid, found in by_id.items()
    }
    (upsert,) = operations["req-upsert"]
    assert re.fullmatch(r"mutation Upsert: OK in [0-9.]+ ms", upsert["message"])
    read = operations["req-read"][0]
    assert (read["operation"], read["operation_type"], read["outcome"]) == (
        "GetUser",
        "query",
        "OK",
    )
    assert isinstance(read["duration_ms"], float)
    assert operations["req-bad"][0]["outcome"] == "BAD_USER_INPUT"
    for line in lines:
        assert set(line) >= {"time", "level", "logger", "message", "request_id"}
        for value in PII:
            assert value not in orjson.dumps(line).decode()


async def test_a_masked_error_is_logged_with_the_request_id_as_one_json_line() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError(f"boom for {EMAIL}")

    with json_lines() as lines:
        async with app_gateway(broken) as (client, _):
            await client.post(
                "/graphql",
                json={"query": GET_USER, "variables": {"key": {"email": EMAIL}}},
                headers={"X-Request-Id": "req-boom"},
            )
    errors = [x for x in lines if x["level"] == "ERROR" and x["request_id"] == "req-boom"]
    assert errors
    # The operation's outcome is the code the caller got: the masked error's.
    (operation,) = [x for x in lines if x["logger"] == "gateway.operations"]
    assert operation["outcome"] == "INTERNAL_SERVER_ERROR"
    assert all(EMAIL not in orjson.dumps(x).decode() for x in lines)


def test_an_exception_is_one_field_of_one_line() -> None:
    with json_lines() as lines:
        try:
            raise ValueError("bad")
        except ValueError:
            logging.getLogger("gateway.test").exception("it failed")
    (line,) = lines
    assert line["message"] == "it failed"
    assert line["request_id"] is None
    assert "ValueError: bad" in line["exception"]


@pytest.fixture
def restored_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    uvicorn_loggers = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
    }
    # configure_logging turns off the lookups its formats do not show (process-wide).
    lookups = (logging._srcfile, logging.logThreads, logging.logProcesses)
    multiprocessing = logging.logMultiprocessing
    yield
    logging._srcfile, logging.logThreads, logging.logProcesses = lookups
    logging.logMultiprocessing = multiprocessing
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (old, propagate) in uvicorn_loggers.items():
        logging.getLogger(name).handlers[:] = old
        logging.getLogger(name).propagate = propagate


@pytest.mark.usefixtures("restored_root")
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_configure_logging_leaves_one_handler_at_the_level_given(log_format: str) -> None:
    logging.getLogger("uvicorn").addHandler(logging.StreamHandler(io.StringIO()))
    configure_logging("warning", log_format)
    root = logging.getLogger()
    assert len(root.handlers) == 1
    assert root.level == logging.WARNING
    formatter = root.handlers[0].formatter
    assert isinstance(formatter, JsonFormatter) == (log_format == "json")
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        assert logging.getLogger(name).handlers == []
        assert logging.getLogger(name).propagate


# --- the real command ------------------------------------------------------------------------


def traffic(base: str) -> None:
    """Requests carrying personal data, each with a request id of its own."""
    with httpx.Client(base_url=base, timeout=10) as client:
        requests: list[tuple[str, dict[str, Any]]] = [
            ("r-upsert", {"query": UPSERT, "variables": UPSERT_PII}),
            ("r-read", {"query": GET_USER, "variables": {"key": {"email": EMAIL}}}),
            ("r-bad", {"query": BAD_VARIABLES, "variables": {"key": {"email": 7, "x": PHONE}}}),
            ("r-syntax", {"query": f'{{ user(key: {{email: "{EMAIL}"}}) {{'}),
        ]
        for request_id, body in requests:
            response = client.post("/graphql", json=body, headers={"X-Request-Id": request_id})
            assert response.headers["x-request-id"] == request_id
        get = client.get(
            "/graphql",
            params={"query": GET_USER, "variables": f'{{"key": {{"phoneNumber": "{PHONE}"}}}}'},
            headers={"X-Request-Id": "r-get", "Accept": "application/json"},
        )
        assert get.status_code == 200


def test_json_lines_of_the_real_server_parse_carry_request_ids_and_no_personal_data(
    tmp_path: Path,
) -> None:
    with serving(tmp_path, UCD_GATEWAY_LOG_FORMAT="json") as (base, stderr):
        traffic(base)
    lines = [orjson.loads(line) for line in stderr]
    for line in lines:
        assert set(line) >= {"time", "level", "logger", "message", "request_id"}, line
        text = orjson.dumps(line).decode()
        for value in PII:
            assert value not in text, line
    for request_id in ("r-upsert", "r-read", "r-bad", "r-syntax", "r-get"):
        loggers = {x["logger"] for x in lines if x["request_id"] == request_id}
        assert loggers >= {"gateway.operations", "uvicorn.access"}, (request_id, loggers)
    outcomes = {x["request_id"]: x.get("outcome") for x in lines if x["logger"] == "uvicorn.access"}
    assert outcomes["r-read"] == "OK"
    assert outcomes["r-syntax"] == "GRAPHQL_PARSE_FAILED"
    # The embedded local UCD's access lines under their own name, never as the gateway's.
    assert any(x["logger"] == "local_ucd.access" for x in lines)
    assert all("/api/user" not in x["message"] for x in lines if x["logger"] == "uvicorn.access")
    messages = [x["message"] for x in lines]
    assert any(m.startswith("gateway ready; UCD at http://127.0.0.1:") for m in messages)
    assert (
        Counter(
            x["message"]
            for x in lines
            if x["request_id"] is None and not x["logger"].endswith(".access")
        ).most_common(1)[0][1]
        == 1
    )


def test_start_and_stop_lines_print_once(tmp_path: Path) -> None:
    with serving(tmp_path, UCD_GATEWAY_LOG_LEVEL="DEBUG") as (base, stderr):
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    # "2026-01-01 10:00:00,123 INFO logger -: message": the same line twice, time aside.
    untimed = [line.split(" ", 2)[2] for line in stderr if not line.startswith(" ")]
    repeated = [line for line, count in Counter(untimed).items() if count > 1]
    assert repeated == []
    joined = "\n".join(untimed)
    for once in ("Started server process", "Shutting down", "Finished server process"):
        assert joined.count(once) == 1, joined
    assert "embedded local UCD on http://127.0.0.1:" in joined


def test_the_embedded_servers_lines_go_under_the_local_ucds_names() -> None:
    install_local_ucd_lines()
    install_local_ucd_lines()  # once per process, however often asked
    assert (
        sum(isinstance(f, LocalUcdLines) for f in logging.getLogger("uvicorn.access").filters) == 1
    )

    def log_as_uvicorn() -> None:
        logging.getLogger("uvicorn.access").info("GET /x")
        logging.getLogger("uvicorn.error").info("Started server process [1]")
        logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")

    # As configure_logging leaves them, whatever uvicorn's own set-up in an earlier test
    # of this process did (its handlers, no propagation).
    loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.access", "uvicorn.error")]
    saved = [(x.level, x.handlers[:], x.propagate, x.disabled) for x in loggers]
    with json_lines(logging.DEBUG) as lines:
        for target in loggers:
            target.setLevel(logging.NOTSET)
            target.handlers.clear()
            target.propagate, target.disabled = True, False
        try:
            embedded_server_context().run(log_as_uvicorn)
            log_as_uvicorn()
        finally:
            for target, (level, handlers, propagate, disabled) in zip(loggers, saved, strict=True):
                target.setLevel(level)
                target.handlers[:] = handlers
                target.propagate, target.disabled = propagate, disabled
    assert [(x["logger"], x["message"]) for x in lines] == [
        ("local_ucd.access", "GET /x"),
        ("local_ucd.server", "Invalid HTTP request received."),
        ("uvicorn.access", "GET /x"),
        ("uvicorn.error", "Started server process [1]"),
        ("uvicorn.error", "Invalid HTTP request received."),
    ]


# --- what a line costs -------------------------------------------------------------------------

#: Instants across second boundaries, and two lines in the same second.
INSTANTS = (
    1_767_607_200.123456,
    1_767_607_200.987,
    1_767_607_200.9999996,
    1_767_607_201.0004,
    1_767_657_599.5,
)


def record_at(created: float, *, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("bad")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("gateway.test", logging.INFO, __file__, 1, "n=%d", (7,), exc_info)
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    record.request_id = "r-1"
    return record


@pytest.mark.parametrize("exc", [False, True], ids=["plain", "exception"])
def test_a_text_line_reads_as_the_standard_formatter_writes_it(exc: bool) -> None:
    """TextFormatter formats each second once, and writes what logging's own did."""
    ours, standard = TextFormatter(), logging.Formatter(TEXT_FORMAT)
    for created in INSTANTS:
        assert ours.format(record_at(created, exc=exc)) == standard.format(
            record_at(created, exc=exc)
        )


def test_a_json_lines_time_is_its_utc_instant_to_the_millisecond() -> None:
    formatter = JsonFormatter()
    for created in INSTANTS:
        line = orjson.loads(formatter.format(record_at(created)))
        expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        assert line["time"] == expected
        assert line["message"] == "n=7"


@pytest.mark.usefixtures("restored_root")
def test_configured_lines_skip_the_lookups_no_format_shows() -> None:
    """No frame walk, thread or process lookup per line: neither format shows them."""
    configure_logging("info", "json")
    record = logging.getLogger("gateway.test").makeRecord(
        "gateway.test", logging.INFO, "(unknown file)", 0, "x", (), None
    )
    assert (record.threadName, record.processName, record.process) == (None, None, None)
    assert logging._srcfile is None
