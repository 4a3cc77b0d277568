"""OpenTelemetry traces: a span per GraphQL request, per operation and per UCD call.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_TRACES_EXPORTER`` is set (read by
``gateway.settings``, handed in by ``create_app``, whose lifespan makes the provider: one
per serving process, so ``serve --workers`` forks no exporter thread). Off, nothing of
this module is on a request's path: the app adds neither the middleware nor the
operation extension, and the one seam in ``UcdClient._send`` reads the module's
``tracer`` and finds None.

What a trace holds, and what it never holds:

* ``TraceRequests`` (ASGI, ``/graphql`` only): a SERVER span ``POST /graphql`` that
  continues the caller's W3C ``traceparent`` (and ``tracestate``). Method, route and
  status only: no query string (a GET carries the query and its variables), no client
  address, no user agent.
* ``OperationSpans`` (strawberry): one span per operation, named
  ``{graphql.operation.type} {graphql.operation.name}`` (OpenTelemetry's GraphQL
  conventions). Never the document (``graphql.document`` would carry its literals, an
  email in ``user(key: {email: ...})``) nor a variable value. The compiled path
  (gateway/compiled/), which skips strawberry's hooks, opens the same span with
  ``operation_span``.
* ``ucd_call``: a CLIENT span per request put on the wire to the UCD (retries are
  requests of their own), ``{method} {path}`` with the path template, the status and
  the users in the batch; and the ``traceparent`` of that span on the request, so the
  UCD's own traces join the caller's. Never a body, an identifier or a header value.

No span records an exception: their messages may echo the caller's input (a rejected
email), so spans carry the error's type, never its text.

Coalesced calls. A profile call shared by several operations (``ProfileReads``) and an
E1 call carrying several operations' upserts (``UpsertCoalescer``) are children of the
operation that started them: both run in a task or timer made while that operation ran,
which inherits its context, the same rule by which ``extensions.cost`` charges the call
to that operation (``gateway/ucd/call_count.py``). Links to the operations that joined
later would need the coalescers to carry span contexts for every waiter, work on the
hot path whether tracing is on or not; a joining operation's span shows the wait.

UCD calls outside any traced request (``/readyz`` probes, the coalescer's flush at
shutdown) start no trace: a probe every few seconds would bury the traces people read.

This module imports nothing of the gateway: ``gateway/ucd`` (a lower layer) holds its
one seam, and ``create_app`` passes the settings in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final

import httpx
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context as OtelContext
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

if TYPE_CHECKING:
    # The SDK and the OTLP exporter (with protobuf) are imported only when tracing is
    # configured: ~7,000 more objects in the heap made every full garbage collection,
    # and so every read, dearer with tracing off (bench/tracing_overhead.py).
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

__all__ = [
    "OperationSpan",
    "OperationSpans",
    "TraceRequests",
    "disable",
    "enable",
    "enabled",
    "exports_to",
    "operation_span",
    "provider_for",
    "shut_down",
    "ucd_call",
]

#: GraphQL operation names are caller-chosen; a bound keeps a span name small.
_MAX_NAME: Final = 100

#: The one piece of state the hot path reads: None while tracing is off. ``UcdClient``
#: checks it before its seam, so an untraced call costs one attribute load.
tracer: Tracer | None = None
_propagator: Final = TraceContextTextMapPropagator()
#: True inside ``operation_span``: the operation has its span, ``OperationSpans`` adds none.
_operation_open: ContextVar[bool] = ContextVar("gateway_operation_span", default=False)


# --- on and off --------------------------------------------------------------------------


def exports_to(exporters: Sequence[str]) -> bool:
    """True when ``exporters`` (``Settings.traces_exporters()``) name one this module has."""
    return any(name in ("otlp", "console") for name in exporters)


def provider_for(
    exporters: Sequence[str], otlp_endpoint: str | None, *, service_name: str
) -> TracerProvider | None:
    """A tracer provider exporting to ``exporters`` (``otlp``: OTLP over HTTP/protobuf;
    ``console``: one JSON object per span on stdout, for a quick look), or None
    when there is nothing to export to. ``otlp_endpoint``: the full URL of the
    collector's traces path (``.../v1/traces``).

    Spans leave in batches on the SDK's own thread (``BatchSpanProcessor``), so a
    collector that is slow or down never delays an answer; the console exporter writes
    each span as it ends.
    """
    if not exports_to(exporters):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    processors: list[SpanProcessor] = []
    for name in exporters:
        if name == "otlp":
            processors.append(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
        elif name == "console":
            processors.append(SimpleSpanProcessor(ConsoleSpanExporter()))
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def enable(provider: TracerProvider) -> None:
    """Trace from now on, into ``provider``. Process-wide, like OpenTelemetry's own
    global provider, which is left alone: it can be set only once per process."""
    global tracer
    tracer = provider.get_tracer("ucd-gateway")


def disable() -> None:
    global tracer
    tracer = None


def shut_down(provider: TracerProvider) -> None:
    """Stop tracing and send the spans still queued (the SDK waits up to 30 s)."""
    disable()
    provider.shutdown()


def enabled() -> bool:
    return tracer is not None


# --- the GraphQL request -------------------------------------------------------------


class TraceRequests:
    """A SERVER span around each ``/graphql`` request, in the caller's trace if it sent a
    ``traceparent``. Added by ``create_app`` only while tracing is on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        active = tracer
        if active is None or scope["type"] != "http" or scope["path"] != "/graphql":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        parent = _propagator.extract(_header_carrier(scope["headers"]))
        span = active.start_span(
            f"{method} /graphql",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "http.route": "/graphql",
                "url.path": "/graphql",
                "url.scheme": scope.get("scheme", "http"),
            },
        )

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
                    span.set_attribute("error.type", str(status))
            await send(message)

        with _current(span, parent):
            await self.app(scope, receive, send_status)


def _header_carrier(headers: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    """The W3C headers of an ASGI request, as the propagator reads them."""
    carrier: dict[str, str] = {}
    for name, value in headers:
        if name in (b"traceparent", b"tracestate"):
            carrier[name.decode("latin-1")] = value.decode("latin-1")
    return carrier


# --- the GraphQL operation -----------------------------------------------------------


class OperationSpans(SchemaExtension):
    """One span per GraphQL operation, from parse to result; the parent of its UCD calls.

    Its name and type are set once the document is parsed (they come from it); a
    document that does not parse keeps the name ``GraphQL operation``.
    """

    def on_operation(self) -> Iterator[None]:
        active = tracer
        # Off since the app was built, or inside ``operation_span``: the compiled path
        # handed this operation to graphql-core, and its span is already open.
        if active is None or _operation_open.get():
            yield
            return
        # An exception through the hooks is a refusal before execution: a syntax error
        # (the parser cache raises it), an unknown operation name.
        with _operation(active) as span:
            try:
                yield
                result = self.execution_context.result
                if self.execution_context.pre_execution_errors or (result and result.errors):
                    span.set_status(StatusCode.ERROR)
            finally:
                _name_operation(span, self.execution_context)


def _operation(active: Tracer) -> contextlib.AbstractContextManager[Span]:
    """An operation's span (both ``OperationSpans`` and ``operation_span``), current
    while the block runs."""
    return _current(active.start_span("GraphQL operation", kind=SpanKind.INTERNAL))


@contextlib.contextmanager
def _current(span: Span, parent: OtelContext | None = None) -> Iterator[Span]:
    """``span`` the current span while the block runs (in ``parent``'s trace, else the
    current one's), failed by an exception out of it, ended after it."""
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    try:
        yield span
    except BaseException as exc:
        _failed(span, exc)
        raise
    finally:
        otel_context.detach(token)
        span.end()


def _name_operation(span: Span, context: Any) -> None:
    """``graphql.operation.type`` and ``.name`` from the parsed document, if it parsed."""
    if context.graphql_document is None:
        return
    try:
        kind = context.operation_type.value
    except RuntimeError:  # no operation of that name in the document
        return
    _set_names(span, kind, context.operation_name)


def _set_names(span: Span, kind: str, name: str | None) -> None:
    span.set_attribute("graphql.operation.type", kind)
    if name:
        name = name[:_MAX_NAME]
        span.set_attribute("graphql.operation.name", name)
        span.update_name(f"{kind} {name}")
    else:
        span.update_name(kind)


class OperationSpan:
    """The span ``operation_span`` opened; ``answered`` marks it as ``OperationSpans``
    marks an operation whose result has errors."""

    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span

    def answered(self, *, errors: bool) -> None:
        if errors:
            self.span.set_status(StatusCode.ERROR)


@contextlib.contextmanager
def operation_span(kind: str, name: str | None) -> Iterator[OperationSpan]:
    """The span ``OperationSpans`` makes, for an operation executed outside strawberry's
    hooks (the compiled path, gateway/compiled/): the same name, attributes, parent and
    status, and the current span of the UCD calls made inside. ``kind`` and ``name`` are
    what strawberry's ``operation_type`` and ``operation_name`` would be (the request's
    operation name, else the document's). Should the operation be handed to graphql-core
    inside, ``OperationSpans`` opens no second span for it. Only while tracing is on
    (the caller checks ``enabled()``, so an untraced request costs no context manager).
    """
    assert tracer is not None, "operation_span while tracing is off"
    with _operation(tracer) as span:
        opened = _operation_open.set(True)
        try:
            yield OperationSpan(span)
        finally:
            _operation_open.reset(opened)
            _set_names(span, kind, name)


# --- a UCD call ------------------------------------------------------------------------


class _Call:
    """What the seam in ``UcdClient._send`` reports about one request: its status."""

    __slots__ = ("span",)

    def __init__(self, span: Span | None) -> None:
        self.span = span

    def answered(self, status: int) -> None:
        if self.span is None:
            return
        self.span.set_attribute("http.response.status_code", status)
        if status >= 400:
            self.span.set_status(StatusCode.ERROR)
            self.span.set_attribute("error.type", str(status))


#: Off, or outside a trace: one object for every call, nothing allocated.
_UNTRACED: Final = contextlib.nullcontext(_Call(None))


@contextlib.contextmanager
def _traced_call(
    active: Tracer,
    request: httpx.Request,
    path: str,
    body: Mapping[str, Any] | None,
    users_of: Callable[[Mapping[str, Any] | None], int | None],
) -> Iterator[_Call]:
    method = request.method
    url = request.url
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "url.template": path,
        "server.address": url.host,
    }
    if url.port is not None:
        attributes["server.port"] = url.port
    users = users_of(body)
    if users is not None:
        attributes["ucd.batch.users"] = users
    span = active.start_span(f"{method} {path}", kind=SpanKind.CLIENT, attributes=attributes)
    _propagator.inject(request.headers, context=trace.set_span_in_context(span))
    try:
        yield _Call(span)
    except BaseException as exc:
        _failed(span, exc)
        raise
    finally:
        span.end()


def ucd_call(
    request: httpx.Request,
    path: str,
    body: Mapping[str, Any] | None,
    users_of: Callable[[Mapping[str, Any] | None], int | None],
) -> contextlib.AbstractContextManager[_Call]:
    """The seam around one request to the UCD; ``path`` is its template (the UCD's paths
    have no parameters), ``users_of(body)`` the users it carries (None: not a per-user
    endpoint), asked only while tracing.

    A span only inside a trace (see the module docstring), with the request's
    ``traceparent`` set from it. Off, or outside a trace: a shared object that does
    nothing.
    """
    active = tracer
    if active is None or not trace.get_current_span().get_span_context().is_valid:
        return _UNTRACED
    return _traced_call(active, request, path, body, users_of)


def _failed(span: Span, exc: BaseException) -> None:
    """An error on ``span`` by its type only: its message may echo the caller's input."""
    span.set_status(StatusCode.ERROR)
    span.set_attribute("error.type", type(exc).__qualname__)
