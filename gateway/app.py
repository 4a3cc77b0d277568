"""The gateway's ASGI application: GraphQL at /graphql, health probes and the export webhook.

``create_app(settings, *, http_client=None)`` is the one place that builds things.
Its lifespan owns, in opening order (closed in reverse):

1. the embedded local UCD (``gateway.embedded``), when no UCD URL is configured and no
   client is given: a sibling uvicorn server on 127.0.0.1 in this process and event
   loop, so the gateway reaches it over real HTTP exactly as it reaches Insider's host;
2. one pooled ``httpx.AsyncClient`` (only when none is given: close only what we open);
3. the shared state (``gateway.state``: Redis when ``UCD_GATEWAY_REDIS_URL`` is set,
   else in process; with Redis the APQ documents and the circuit breakers are shared
   through it too), the ``UcdClient`` (its partner-wide UCD quota budget,
   ``gateway.partner_quota``, is kept in the state) and the export jobs kept in it,
   the in-flight sharing of profile reads (``ProfileReads``), the profile cache on the
   shared state (``ProfileCache``, when ``UCD_GATEWAY_PROFILE_CACHE_TTL`` is set), the
   catalogue cache (``CatalogCache``) and the upsert coalescer
   (flushed on shutdown, so no accepted write is lost), the audit log (``gateway.audit``,
   when ``UCD_GATEWAY_AUDIT_LOG`` is set) and the rate limiter (``gateway.rate_limits``).

Limits are on by default (``gateway.limits``), each with its own clear answer
(``gateway.error_pipeline``): a body over ``max_body_bytes`` gets HTTP 413 before
anything parses it; query depth, aliases and tokens are GraphQL errors from strawberry's
limiter extensions. In front of everything, ``gateway.load_shedding`` refuses GraphQL
requests over the in-flight limit (``max_in_flight``, lowered while the event loop runs
late: ``gateway.in_flight_limit``) or while the process drains (503, OVERLOADED); its
``Admission`` is ``admission_of(app)``, which the command line's server drains on SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import strawberry
from cross_web import AsyncHTTPRequestAdapter
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

from gateway import tracing
from gateway.api.context import build_context
from gateway.api.schema import build_schema
from gateway.api.strawberry_internals import ERROR_LOGGER_NAME, RequestRefused
from gateway.audit import AuditLog
from gateway.auth.authenticator import build_authenticator
from gateway.auth.middleware import Authenticate, principal_of
from gateway.catalog import CatalogCache
from gateway.compiled import compiled_execution
from gateway.cors import cors_options
from gateway.embedded import run_local_ucd
from gateway.error_pipeline import code_request_errors, drop_suggestions, readiness_refusal
from gateway.errors import GatewayError, StateUnavailable
from gateway.exports import ExportJobs
from gateway.graphiql.page import graphiql_page, graphiql_routes
from gateway.graphql_over_http import current_exchange, exchanging
from gateway.limits import BodySizeLimit, schema_extensions
from gateway.load_shedding import Admission, ShedLoad
from gateway.metrics import GatewayMetrics, metrics_endpoint
from gateway.operations import observe_operations
from gateway.partner_quota import PartnerQuota
from gateway.persisted import names_a_document, persisted_documents, share_documents
from gateway.persisted.documents import PersistedDocuments
from gateway.rate_limits import RateLimiter
from gateway.reads.cache import ProfileCache, open_profile_cache
from gateway.reads.inflight import ProfileReads
from gateway.request_bodies import (
    JSON_MEDIA_TYPE,
    graphql_requests,
    media_type,
    refusal_response,
    unsupported,
)
from gateway.request_context import RequestIds
from gateway.settings import Settings
from gateway.shared_breakers import circuit_breakers
from gateway.state.backend import open_state
from gateway.ucd.answers import ExportHook
from gateway.ucd.bulkheads import Bulkheads
from gateway.ucd.client import UcdClient
from gateway.ucd.deadline import operation_deadline, time_left
from gateway.ucd.transport import build_http_client
from gateway.upserts import UpsertCoalescer

logger = logging.getLogger("gateway.app")


class JSONResponse(Response):
    """Starlette's JSONResponse with orjson: faster, and the same bytes for the same data."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# --- the runtime the lifespan builds -------------------------------------------------


@dataclass
class Runtime:
    """What the lifespan opened; the routes and the GraphQL context read it."""

    settings: Settings
    ucd: UcdClient
    exports: ExportJobs
    upserts: UpsertCoalescer
    reads: ProfileReads
    ucd_base_url: str
    catalog: CatalogCache
    cache: ProfileCache | None = None
    audit: AuditLog | None = None
    rate_limiter: RateLimiter | None = None


class _RuntimeSlot:
    """Holds the Runtime between lifespan start and stop; a clear error outside of it."""

    def __init__(self) -> None:
        self.value: Runtime | None = None

    def get(self) -> Runtime:
        if self.value is None:
            raise RuntimeError("the gateway app is used outside of its lifespan")
        return self.value


# --- log filters -------------------------------------------------------------------


class _DropStrawberryErrorLogs(logging.Filter):
    """Strawberry logs every GraphQL error with its message, and messages may echo the
    caller's input (emails, phone numbers). The gateway logs what it needs itself:
    unexpected errors with an error id, UCD failures by status and path."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


class _RedactAccessPaths(logging.Filter):
    """Access log lines without secrets or personal data in their paths.

    * The export webhook's path carries its capability token: it gets a stand-in.
    * A query string is replaced whole: ``GET /graphql?query=...&variables=...`` carries
      the caller's query and variables (``user(key: {email: ...})``), and no route of
      the gateway needs its query string in a log.

    uvicorn's access record args are (client, method, path, http_version, status).
    """

    _token = re.compile(r"(/hooks/exports/[^/?]+/)[^/?]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3:
            path = record.args[2]
            # Most paths (/graphql) have neither: no regex and no new args tuple for them.
            if isinstance(path, str) and ("?" in path or "/hooks/exports/" in path):
                redacted, query_mark, _ = path.partition("?")
                redacted = self._token.sub(r"\1<token>", redacted)
                if query_mark:
                    redacted += "?<redacted>"
                record.args = (*record.args[:2], redacted, *record.args[3:])
        return True


def _install_log_filters() -> None:
    """Process-wide, installed once: see the two filter classes for why."""
    for name, kind in (
        (ERROR_LOGGER_NAME, _DropStrawberryErrorLogs),
        ("uvicorn.access", _RedactAccessPaths),
    ):
        target = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in target.filters):
            target.addFilter(kind())


# --- GraphQL -------------------------------------------------------------------------


class GatewayGraphQL(GraphQL[Any, None]):
    """Strawberry's ASGI view with a per-request context, orjson bodies, and every refused
    request answered in the GraphQL error shape (gateway/request_bodies.py)."""

    def __init__(
        self,
        schema: strawberry.Schema,
        slot: _RuntimeSlot,
        settings: Settings,
        documents: PersistedDocuments,
    ) -> None:
        # Without an IDE strawberry answers a browser's GET with 404 (UCD_GATEWAY_GRAPHIQL).
        super().__init__(schema, graphql_ide="graphiql" if settings.graphiql else None)
        self._slot = slot
        self._hide_suggestions = not settings.introspection
        self._documents = documents
        self._max_batch = settings.max_batch
        self._cache_control = settings.persisted_cache_control
        self._compiled = compiled_execution(schema, settings)  # gateway/compiled/

    async def render_graphql_ide(self, request: Request) -> Response:
        return graphiql_page(request)  # the gateway's own page, no CDN (gateway/graphiql/)

    async def run(  # type: ignore[override]  # HTTP only: the route takes no websockets
        self, request: Request | WebSocket, context: Any = UNSET, root_value: Any = UNSET
    ) -> Response:
        assert isinstance(request, Request)  # the route takes no websockets
        # Media type, status and caching of the answer: gateway/graphql_over_http.py.
        with exchanging(request) as exchange:
            try:
                response = await super().run(request, context, root_value)
            except RequestRefused as refused:
                return refusal_response(refused)
            assert isinstance(response, Response)  # an HTTP request gets an HTTP response
            return exchange.finish(response, cache_control=self._cache_control)

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET naming a persisted document has no `query` either, but is not a browser.
        return super().should_render_graphql_ide(request) and not names_a_document(
            request.query_params
        )

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        if request.method == "POST" and media_type(request.content_type) != JSON_MEDIA_TYPE:
            raise unsupported(request.content_type)
        if request.method == "POST":
            data = self.parse_json(await request.get_body())
        else:
            data = self.parse_query_params(request.query_params)
        parsed = graphql_requests(data, max_batch=self._max_batch)
        current_exchange().batch = isinstance(parsed, list)
        return parsed  # type: ignore[return-value]  # a list of the subclass: invariance

    async def execute_single(  # type: ignore[override]  # strawberry's names, keywords only
        self, *, request_data: GraphQLRequestData, **kwargs: Any
    ) -> ExecutionResult:
        # The operation's document, from its hash or id (gateway/persisted/); the
        # operations of a batch come here one by one, sharing one context (dataloaders).
        resolved = await self._documents.resolve(
            request_data.query,
            request_data.extensions,
            getattr(request_data, "document_id", None),
        )
        if resolved.refusal is not None:
            return ExecutionResult(data=None, errors=[resolved.refusal])
        request_data.query = resolved.text
        current_exchange().persisted += resolved.persisted
        return await self._compiled.execute(  # or graphql-core's, when it cannot compile
            request_data.query,
            request_data.operation_name,
            request_data.variables,
            kwargs["context"],
            lambda: super(GatewayGraphQL, self).execute_single(request_data=request_data, **kwargs),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # One deadline per operation: every UCD call it makes, retries and waits included,
        # ends by then (UCD_GATEWAY_OPERATION_TIMEOUT, gateway/ucd/deadline.py).
        with operation_deadline(self._slot.get().settings.operation_timeout):
            await super().__call__(scope, receive, send)

    async def get_context(self, request: Any, response: Any) -> Any:
        # Per request: dataloaders bind the running loop and must not leak data
        # between callers (style.md #6).
        runtime = self._slot.get()
        return await build_context(
            ucd=runtime.ucd,
            exports=runtime.exports,
            upserts=runtime.upserts,
            settings=runtime.settings,
            reads=runtime.reads,
            catalog=runtime.catalog,
            principal=principal_of(request),
            cache=runtime.cache,
            audit=runtime.audit,
            rate_limiter=runtime.rate_limiter,
        )

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        # The last point every error passes: syntax errors and refused variables get
        # their codes only here (gateway/error_pipeline.py, step 5).
        if result.errors:
            code_request_errors(result.errors)
            if self._hide_suggestions:
                drop_suggestions(result.errors)
        return current_exchange().shape(result, await super().process_result(request, result))

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)


# --- routes ----------------------------------------------------------------------------


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _readyz(slot: _RuntimeSlot, admission: Admission) -> Callable[[Request], Any]:
    async def readyz(request: Request) -> Response:
        if admission.draining:
            # At once and without a UCD call: the load balancer should stop sending
            # requests here while the ones in flight finish (gateway/drain.py).
            return JSONResponse({"status": "draining"}, status_code=503)
        try:
            await slot.get().ucd.check_ready()
        except GatewayError as exc:
            return JSONResponse(readiness_refusal(exc), status_code=503)
        return JSONResponse({"status": "ready"})

    return readyz


def _export_hook(slot: _RuntimeSlot) -> Callable[[Request], Any]:
    async def export_hook(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return JSONResponse({"error": "body must be JSON"}, status_code=400)
        hook = ExportHook.from_wire(body)
        if hook is None:
            return JSONResponse({"error": 'body must be {"url": <http(s) URL>}'}, status_code=400)
        job_id = request.path_params["job_id"]
        try:
            ready = await slot.get().exports.mark_ready(
                job_id, request.path_params["token"], hook.url
            )
        except StateUnavailable:
            # 503: the UCD tries the webhook again (§3.3.3), by when Redis may be back.
            return JSONResponse({"error": "state unavailable"}, status_code=503)
        if not ready:
            # Unknown job and wrong token look the same, so the route reveals nothing.
            return JSONResponse({"error": "not found"}, status_code=404)
        logger.info("export job %s is ready", job_id)
        return JSONResponse({})

    return export_hook


# --- the app ---------------------------------------------------------------------------


def create_app(settings: Settings, *, http_client: httpx.AsyncClient | None = None) -> Starlette:
    """The gateway as an ASGI app; ``http_client`` (with the UCD as base_url) is used as is."""
    _install_log_filters()
    # Raises AuthSetupError on a non-loopback host without credentials (gateway/auth/).
    authenticator = build_authenticator(settings)
    slot = _RuntimeSlot()
    admission = Admission(
        settings.max_in_flight,
        max_loop_lag_ms=settings.max_loop_lag_ms,
        target_loop_lag_ms=settings.target_loop_lag_ms,
    )
    schema = build_schema()
    # The limits depend on settings, so they are added to the schema built by the API
    # layer rather than fixed inside it.
    metrics = GatewayMetrics(admission)  # /metrics (gateway/metrics.py)
    schema.extensions = (
        observe_operations(metrics),  # first: it sees the errors as answered
        *schema.extensions,
        *schema_extensions(settings),
    )
    documents = persisted_documents(settings)
    # Tracing (gateway/tracing.py): on with OTEL_EXPORTER_OTLP_ENDPOINT/OTEL_TRACES_EXPORTER.
    # Its provider (and the exporter's thread) is made by the lifespan, in the process that
    # serves: with serve --workers, one per worker, none in the supervisor that forks them.
    traced = tracing.enabled() or tracing.exports_to(settings.traces_exporters())
    if traced:
        schema.extensions = (*schema.extensions, tracing.OperationSpans)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(authenticator.aclose)
            stack.enter_context(admission.watching_the_loop())  # gateway/loop_lag.py
            spans = tracing.provider_for(
                settings.traces_exporters(),
                settings.otlp_traces_url(),
                service_name=settings.otel_service_name,
            )
            if spans is not None:  # last out: the spans of the shutdown flush are sent too
                tracing.enable(spans)
                stack.callback(tracing.shut_down, spans)
            if http_client is not None:
                http = http_client
            else:
                base_url = settings.ucd_base_url
                if base_url is None:
                    base_url = await stack.enter_async_context(run_local_ucd(settings))
                http = build_http_client(settings, base_url=base_url)
                stack.push_async_callback(http.aclose)
            # Before the UCD client: its quota budget and, with Redis, its circuit
            # breakers are kept in the shared state.
            state = open_state(settings, time_left=time_left)
            stack.push_async_callback(state.aclose)
            share_documents(documents, state, settings)  # with Redis: on every replica
            breakers = circuit_breakers(settings, state)  # with Redis: shared
            metrics.watch_breakers(breakers)
            await stack.enter_async_context(metrics.publishing())  # serve --workers: shared
            ucd = UcdClient(
                http,
                partner=settings.partner,
                token=settings.token,
                bulkheads=Bulkheads(
                    reads=settings.max_concurrency_reads or settings.max_concurrency,
                    writes=settings.max_concurrency_writes,
                    identity=settings.max_concurrency_identity,
                    exports=settings.max_concurrency_exports,
                ),
                breakers=breakers,
                max_retries=settings.max_retries,
                max_retry_after=settings.max_retry_after,
                request_timeout=settings.request_timeout,
                observers=(metrics,),
                quota=(
                    PartnerQuota(state, settings.partner, settings.ucd_quota_share)
                    if settings.ucd_quota_share > 0
                    else None
                ),
            )
            audit = AuditLog(settings.audit_log) if settings.audit_log else None
            if audit is not None:
                stack.push_async_callback(audit.aclose)
            upserts = UpsertCoalescer(ucd, window_ms=settings.upsert_window_ms)
            # Bounded after SIGTERM (gateway/drain.py), even against a UCD that hangs.
            stack.push_async_callback(lambda: upserts.aclose(within=admission.shutdown_time_left()))
            reads = ProfileReads(ucd)
            cache = open_profile_cache(settings, state, reads)
            if cache is not None:
                metrics.watch_profile_cache(cache)
            slot.value = Runtime(
                settings=settings,
                ucd=ucd,
                exports=ExportJobs(settings.webhook_base_url(), state, ttl=settings.export_job_ttl),
                upserts=upserts,
                reads=reads,
                ucd_base_url=str(http.base_url),
                catalog=CatalogCache(settings.catalog_ttl),
                cache=cache,
                audit=audit,
                rate_limiter=RateLimiter(state, settings.rate_limit),
            )
            try:
                yield
            finally:
                slot.value = None

    app = Starlette(
        routes=[
            # Every method reaches the view, so a PUT is refused in the same shape (405).
            Route("/graphql", GatewayGraphQL(schema, slot, settings, documents)),
            Route("/healthz", _healthz, methods=["GET"]),
            Route("/readyz", _readyz(slot, admission), methods=["GET"]),
            Route("/metrics", metrics_endpoint(metrics), methods=["GET"]),
            Route("/hooks/exports/{job_id}/{token}", _export_hook(slot), methods=["POST"]),
            *graphiql_routes(settings.graphiql),
        ],
        lifespan=lifespan,
    )
    # Innermost of the three: a request refused by the others costs no credential check.
    app.add_middleware(Authenticate, authenticator=authenticator)
    if settings.cors_origins:  # outside authentication: a preflight carries no credential
        app.add_middleware(CORSMiddleware, **cors_options(settings.cors_origins))
    if traced:
        app.add_middleware(tracing.TraceRequests)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Added last, so outermost: a refused request costs no body read and no other layer.
    app.add_middleware(ShedLoad, admission=admission)
    # Around even that: every answer, a refusal too, carries its X-Request-Id (a header
    # scan and an id, microseconds next to the refusal's write).
    app.add_middleware(RequestIds)
    app.state.runtime = slot
    app.state.admission = admission
    return app


def admission_of(app: Starlette) -> Admission:
    """The app's count of GraphQL requests in flight, and its drain switch."""
    admission = app.state.admission
    assert isinstance(admission, Admission), "not an app of create_app"
    return admission
