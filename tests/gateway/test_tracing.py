"""OpenTelemetry traces (gateway/tracing.py), into an in-memory exporter.

The gateway runs as ``create_app`` with its own production HTTP client (the aiohttp
transport) against the real local UCD served over a loopback socket, behind a wrapper
that keeps the headers of every request the local UCD received: the ``traceparent``
asserted on is the one that crossed the wire. The export over OTLP/HTTP to a real
receiver is in test_tracing_otlp.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import tracing
from gateway.app import create_app
from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import LocalUcdConfig
from gateway.settings import Settings
from gateway.ucd.paths import PROFILE_PATH, UPSERT_PATH

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"

GET_USER = "query GetUser($key: UserKey!) { user(key: $key) { name email } }"
UPSERT = """mutation Save($input: UpsertUsersInput!) {
  upsertUsers(input: $input) { successCount failureCount }
}"""


# --- the local UCD over a socket, with the headers it received -------------------------------


@dataclass
class RecordHeaders:
    """An ASGI wrapper keeping the path and headers of every request the app receives."""

    app: ASGIApp
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    #: The next this many requests are answered 503 here, as an overloaded UCD would.
    fail_next: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            self.seen.append((scope["path"], headers))
            if self.fail_next:
                self.fail_next -= 1
                unavailable = JSONResponse({"success": False}, status_code=503)
                await unavailable(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def traceparents(self, path: str) -> list[str | None]:
        return [headers.get("traceparent") for seen, headers in self.seen if seen == path]


class _QuietServer(uvicorn.Server):
    """Leaves the test process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def local_ucd_on_a_socket(data_dir: Path) -> AsyncIterator[tuple[str, RecordHeaders]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = LocalUcdConfig(data_dir=data_dir, host="127.0.0.1", port=port)
    local = create_local_ucd_app(config)
    recorder = RecordHeaders(local)
    server = _QuietServer(uvicorn.Config(recorder, lifespan="off", log_config=None))
    async with local.router.lifespan_context(local):
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:  # uvicorn offers a flag, not an event
            assert not serving.done(), "the local UCD did not start"
            await asyncio.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}", recorder
        finally:
            server.should_exit = True
            await serving
            sock.close()


@dataclass
class Traced:
    client: httpx.AsyncClient
    app: Starlette
    ucd: RecordHeaders
    exporter: InMemorySpanExporter

    async def post(
        self, query: str, headers: dict[str, str] | None = None, **variables: Any
    ) -> Any:
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
        assert response.status_code == 200, response.text
        return orjson.loads(response.content)

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans() if span.name == name]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Tracing on, into memory, for the apps built while it is (create_app reads it)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.enable(provider)
    yield memory
    tracing.shut_down(provider)


@contextlib.asynccontextmanager
async def gateway_over_http(tmp_path: Path, **overrides: Any) -> AsyncIterator[Traced]:
    async with local_ucd_on_a_socket(tmp_path / "ucd") as (url, recorder):
        values: dict[str, Any] = {"ucd_base_url": url, "max_retries": 0, **overrides}
        settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        app = create_app(settings)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                yield Traced(client, app, recorder, InMemorySpanExporter())


@pytest.fixture
async def traced(exporter: InMemorySpanExporter, tmp_path: Path) -> AsyncIterator[Traced]:
    async with gateway_over_http(tmp_path) as served:
        served.exporter = exporter
        yield served


def _hex_span(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.span_id, "016x")


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _id(span: ReadableSpan) -> int:
    assert span.context is not None
    span_id: int = span.context.span_id
    return span_id


# --- one trace, from the caller to the UCD ------------------------------------------------------


async def test_a_callers_trace_continues_through_the_operation_to_the_ucd(
    traced: Traced,
) -> None:
    body = await traced.post(
        GET_USER, headers={"traceparent": TRACEPARENT}, key={"email": "ada@example.com"}
    )
    assert body["data"] == {"user": None}

    (server,) = traced.named("POST /graphql")
    (operation,) = traced.named("query GetUser")
    (call,) = traced.named(f"POST {PROFILE_PATH}")
    assert {format(s.context.trace_id, "032x") for s in traced.spans() if s.context} == {TRACE_ID}
    assert server.kind is SpanKind.SERVER
    assert server.parent is not None
    assert server.parent.is_remote
    assert format(server.parent.span_id, "016x") == CALLER_SPAN
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200
    assert _parent(operation) == _id(server)
    assert operation.attributes == {
        "graphql.operation.type": "query",
        "graphql.operation.name": "GetUser",
    }
    assert _parent(call) == _id(operation)
    assert call.kind is SpanKind.CLIENT
    assert call.attributes is not None
    assert call.attributes["url.template"] == PROFILE_PATH
    assert call.attributes["http.response.status_code"] == 404  # no such user: "no data"
    assert call.attributes["ucd.batch.users"] == 1
    # What the local UCD received: the caller's trace, with the UCD call's span as parent.
    assert traced.ucd.traceparents(PROFILE_PATH) == [f"00-{TRACE_ID}-{_hex_span(call)}-01"]


async def test_without_a_traceparent_the_gateway_starts_the_trace(traced: Traced) -> None:
    await traced.post('{ user(key: {uuid: "u-1"}) { name } }')
    (server,) = traced.named("POST /graphql")
    (operation,) = traced.named("query")  # anonymous: the type alone names it
    (call,) = traced.named(f"POST {PROFILE_PATH}")
    assert server.parent is None
    assert server.context is not None
    trace_id = format(server.context.trace_id, "032x")
    assert operation.attributes == {"graphql.operation.type": "query"}
    (sent,) = traced.ucd.traceparents(PROFILE_PATH)
    assert sent is not None
    version, sent_trace, sent_parent, flags = sent.split("-")
    assert (version, sent_trace, sent_parent) == ("00", trace_id, _hex_span(call))
    assert int(flags, 16) & 1  # sampled (W3C level 2 adds a "random" bit)


async def test_every_attempt_is_a_span_and_carries_its_own_traceparent(
    exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    async with gateway_over_http(tmp_path, max_retries=1) as served:
        served.exporter = exporter
        served.ucd.fail_next = 1
        await served.post(GET_USER, headers={"traceparent": TRACEPARENT}, key={"uuid": "u-1"})
        (operation,) = served.named("query GetUser")
        failed, answered = sorted(
            served.named(f"POST {PROFILE_PATH}"), key=lambda span: span.start_time or 0
        )
        sent = served.ucd.traceparents(PROFILE_PATH)
    assert [_parent(failed), _parent(answered)] == [_id(operation)] * 2
    assert failed.attributes is not None
    assert answered.attributes is not None
    assert failed.attributes["http.response.status_code"] == 503
    assert failed.attributes["error.type"] == "503"
    assert failed.status.status_code is StatusCode.ERROR
    assert answered.attributes["http.response.status_code"] == 404
    assert sent == [f"00-{TRACE_ID}-{_hex_span(span)}-01" for span in (failed, answered)]


async def test_an_unsampled_caller_is_followed_and_nothing_is_recorded(traced: Traced) -> None:
    unsampled = f"00-{TRACE_ID}-{CALLER_SPAN}-00"
    await traced.post(GET_USER, headers={"traceparent": unsampled}, key={"uuid": "u-1"})
    assert traced.spans() == []
    (sent,) = traced.ucd.traceparents(PROFILE_PATH)
    assert sent is not None
    assert sent.startswith(f"00-{TRACE_ID}-")
    assert sent.endswith("-00")


async def test_a_mutation_and_its_batch_are_one_trace(traced: Traced) -> None:
    users = [{"key": {"uuid": f"u-{i}"}, "attributes": {"name": f"N{i}"}} for i in range(3)]
    body = await traced.post(UPSERT, input={"users": users})
    assert body["data"]["upsertUsers"] == {"successCount": 3, "failureCount": 0}
    (operation,) = traced.named("mutation Save")
    (call,) = traced.named(f"POST {UPSERT_PATH}")
    assert _parent(call) == _id(operation)
    assert call.attributes is not None
    assert call.attributes["ucd.batch.users"] == 3
    assert call.attributes["http.response.status_code"] == 200
    assert call.status.status_code is StatusCode.UNSET


# --- the compiled path (gateway/compiled/): the same spans as graphql-core's --------------------


def _shape(spans: list[ReadableSpan]) -> list[tuple[Any, ...]]:
    """Each span's name, kind, attributes, status and its parent's name: the trace as
    a reader sees it, without ids, times and the local UCD's port."""
    names = {_id(span): span.name for span in spans}
    return sorted(
        (
            span.name,
            span.kind.name,
            sorted((k, v) for k, v in (span.attributes or {}).items() if k != "server.port"),
            span.status.status_code.name,
            names.get(_parent(span) or 0),
        )
        for span in spans
    )


@pytest.mark.parametrize("fail", [False, True], ids=["answered", "ucd-fails"])
async def test_the_compiled_path_makes_the_spans_graphql_core_makes(
    exporter: InMemorySpanExporter, tmp_path: Path, fail: bool
) -> None:
    """Answered on the compiled path, or handed to graphql-core after its read failed
    (then one operation span still, in error, with the one call under it)."""
    shapes = []
    for compiled in (True, False):
        async with gateway_over_http(tmp_path / str(compiled), compiled_execution=compiled) as gw:
            gw.exporter = exporter
            await gw.post(UPSERT, input={"users": [{"key": {"uuid": "u-1"}, "attributes": {}}]})
            exporter.clear()
            gw.ucd.fail_next = int(fail)
            body = await gw.post(
                GET_USER, headers={"traceparent": TRACEPARENT}, key={"uuid": "u-1"}
            )
            answered = gw.app.routes[0].endpoint._compiled.answered  # type: ignore[attr-defined]
            assert ("errors" in body) is fail
            assert answered == int(compiled and not fail)
            shapes.append(_shape(gw.spans()))
    assert shapes[0] == shapes[1]
    (operation,) = [shape for shape in shapes[0] if shape[0] == "query GetUser"]
    assert operation[3] == ("ERROR" if fail else "UNSET")
    assert [shape[4] for shape in shapes[0] if shape[0] == f"POST {PROFILE_PATH}"] == [
        "query GetUser"
    ]


# --- coalesced calls: children of the operation that sent them -------------------------------


async def test_a_shared_profile_call_is_a_child_of_the_operation_that_sent_it(
    traced: Traced,
) -> None:
    await traced.post(
        UPSERT, input={"users": [{"key": {"uuid": "u-9"}, "attributes": {"name": "N"}}]}
    )
    traced.exporter.clear()
    traced.ucd.seen.clear()
    query = "query Read($key: UserKey!) { user(key: $key) { name } }"
    await asyncio.gather(*(traced.post(query, key={"uuid": "u-9"}) for _ in range(4)))
    operations = traced.named("query Read")
    calls = traced.named(f"POST {PROFILE_PATH}")
    assert len(operations) == 4
    # However many calls the four shared, each is the child of one of the operations,
    # in that operation's trace, and the UCD received that call's own traceparent.
    assert 1 <= len(calls) < 4
    by_id = {_id(op): op for op in operations}
    for call in calls:
        parent = by_id[_parent(call) or 0]
        assert parent.context is not None
        assert call.context is not None
        assert parent.context.trace_id == call.context.trace_id
    assert sorted((p or "")[:52] for p in traced.ucd.traceparents(PROFILE_PATH)) == sorted(
        f"00-{format(c.context.trace_id, '032x')}-{_hex_span(c)}" for c in calls if c.context
    )


async def test_coalesced_upserts_are_one_call_under_the_first_operation(
    exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    async with gateway_over_http(tmp_path, upsert_window_ms=200.0) as served:
        served.exporter = exporter
        one = UPSERT.replace("Save", "One")
        first = asyncio.ensure_future(
            served.post(one, input={"users": [{"key": {"uuid": "a"}, "attributes": {"name": "A"}}]})
        )
        await asyncio.sleep(0.05)  # the first opens the window; the second joins it
        await served.post(
            one, input={"users": [{"key": {"uuid": "b"}, "attributes": {"name": "B"}}]}
        )
        await first
        operations = served.named("mutation One")
        (call,) = served.named(f"POST {UPSERT_PATH}")
    assert len(operations) == 2
    earliest = min(operations, key=lambda span: span.start_time or 0)
    assert _parent(call) == _id(earliest)
    assert call.attributes is not None
    assert call.attributes["ucd.batch.users"] == 2


# --- what spans never hold ------------------------------------------------------------------

SEEDED = {
    "emails": ["grace.hopper@example.com", "linus@example.org"],
    "phones": ["+905551112233", "+14155550123"],
    "names": ["Grace", "Torvalds"],
}


def _every_text(span: ReadableSpan) -> Iterator[str]:
    yield span.name
    yield from (str(value) for value in (span.attributes or {}).values())
    yield from (str(key) for key in (span.attributes or {}))
    for event in span.events:
        yield event.name
        yield from (str(value) for value in (event.attributes or {}).values())
    yield span.status.description or ""
    yield from (str(value) for value in span.resource.attributes.values())


async def test_no_span_holds_personal_data_or_variable_values(traced: Traced) -> None:
    (email_a, email_b), (phone_a, phone_b) = SEEDED["emails"], SEEDED["phones"]
    users = [
        {"key": {"email": email_a}, "attributes": {"name": "Grace", "phoneNumber": phone_a}},
        {"key": {"email": email_b}, "attributes": {"surname": "Torvalds", "phoneNumber": phone_b}},
    ]
    await traced.post(UPSERT, input={"users": users})
    await traced.post(GET_USER, key={"email": email_a})
    await traced.post(GET_USER, key={"phoneNumber": phone_b})
    # Literals in the document, a GET carrying them in its query string, and an input
    # the gateway refuses with a message that names the bad value.
    await traced.post(f'{{ user(key: {{email: "{email_b}"}}) {{ name }} }}')
    literal = f'{{ user(key: {{phoneNumber: "{phone_a}"}}) {{ name }} }}'
    assert (await traced.client.get("/graphql", params={"query": literal})).status_code == 200
    refused = await traced.post(GET_USER, key={"email": f"not-an-email-{phone_b}"})
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"

    spans = traced.spans()
    assert len(traced.named(f"POST {PROFILE_PATH}")) >= 4
    texts = [text for span in spans for text in _every_text(span)]
    secrets = [value for values in SEEDED.values() for value in values]
    assert [t for t in texts for s in secrets if s in t] == []
    assert not any(span.events for span in spans)  # no exception with its message
    assert not any("local-dev-token" in text for text in texts)


async def test_an_operation_name_the_document_does_not_define_is_not_recorded(
    traced: Traced,
) -> None:
    response = await traced.client.post(
        "/graphql",
        json={"query": "query A { __typename }", "operationName": "ada@example.com"},
    )
    assert response.status_code == 400  # strawberry refuses it before execution
    (operation,) = traced.named("GraphQL operation")
    assert operation.attributes == {"error.type": "CannotGetOperationTypeError"}
    assert operation.status.status_code is StatusCode.ERROR


async def test_a_document_that_does_not_parse_is_an_operation_span_in_error(
    traced: Traced,
) -> None:
    body = await traced.post("{ user(key: ")
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    (operation,) = traced.named("GraphQL operation")
    assert operation.status.status_code is StatusCode.ERROR
    assert operation.status.description is None
    assert operation.attributes == {"error.type": "GraphQLSyntaxError"}


# --- what is not traced ----------------------------------------------------------------


async def test_probes_start_no_trace_and_send_no_traceparent(traced: Traced) -> None:
    assert (await traced.client.get("/readyz")).status_code == 200
    assert (await traced.client.get("/healthz")).status_code == 200
    assert traced.spans() == []
    assert [headers.get("traceparent") for _, headers in traced.ucd.seen] == [None]


async def test_off_the_app_has_no_tracing_layer_and_the_ucd_sees_no_traceparent(
    tmp_path: Path,
) -> None:
    assert not tracing.enabled()
    async with gateway_over_http(tmp_path) as served:
        layers: list[object] = [m.cls for m in served.app.user_middleware]
        assert tracing.TraceRequests not in layers
        await served.post(GET_USER, headers={"traceparent": TRACEPARENT}, key={"uuid": "u-1"})
        assert served.ucd.traceparents(PROFILE_PATH) == [None]


def test_off_the_ucd_seam_is_one_shared_object() -> None:
    request = httpx.Request("POST", "http://ucd.test/x")
    assert tracing.ucd_call(request, "/x", None, lambda _: None) is tracing.ucd_call(
        request, "/y", None, lambda _: None
    )
    assert "traceparent" not in request.headers


def test_outside_a_trace_a_ucd_call_starts_none(exporter: InMemorySpanExporter) -> None:
    request = httpx.Request("POST", "http://ucd.test/x")
    with tracing.ucd_call(request, "/x", None, lambda _: None) as call:
        call.answered(200)
    assert exporter.get_finished_spans() == ()
    assert "traceparent" not in request.headers


# --- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "exporters", "url"),
    [
        pytest.param({}, (), "http://localhost:4318/v1/traces", id="off"),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"},
            ("otlp",),
            "http://collector:4318/v1/traces",
            id="endpoint",
        ),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom"},
            ("otlp",),
            "http://c:4318/custom",
            id="traces-endpoint",
        ),
        pytest.param({"OTEL_TRACES_EXPORTER": "console"}, ("console",), None, id="console"),
        pytest.param(
            {"OTEL_TRACES_EXPORTER": "otlp, Console"}, ("otlp", "console"), None, id="two"
        ),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"},
            (),
            None,
            id="none-wins",
        ),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"},
            (),
            None,
            id="sdk-disabled",
        ),
    ],
)
def test_the_standard_variables_turn_tracing_on(
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    exporters: tuple[str, ...],
    url: str | None,
) -> None:
    for name in os.environ:
        if name.startswith("OTEL_"):  # a developer's own set-up
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.traces_exporters() == exporters
    if url is not None:
        assert settings.otlp_traces_url() == url


def test_an_unknown_exporter_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UCD_GATEWAY_", "OTEL_"))}
    result = subprocess.run(  # our own interpreter and module
        [sys.executable, "-m", "gateway", "serve"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**env, "OTEL_TRACES_EXPORTER": "otlp,jaeger"},
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "ucd-gateway serve: invalid setting OTEL_TRACES_EXPORTER: "
        "unknown exporter jaeger; the gateway has console, none, otlp"
    ]


def test_the_console_exporter_builds_a_provider() -> None:
    provider = tracing.provider_for(("console",), None, service_name="svc")
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "svc"
    provider.shutdown()
    assert tracing.provider_for((), None, service_name="svc") is None
