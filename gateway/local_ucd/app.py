"""The local UCD's ASGI app: routing and the request pipeline of §2.7.

    routing (404/405) -> fault injection -> authentication -> body checks
        -> the endpoint's own validation -> rate limiting -> the operation (one transaction)

The last three stages live in each endpoint's handler (validation decides what the rate
limiter is asked); the first four live here.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.local_ucd.auth import authenticate
from gateway.local_ucd.bodies import read_json_body
from gateway.local_ucd.callbacks import CallbackDispatcher
from gateway.local_ucd.config import LocalUcdConfig
from gateway.local_ucd.endpoints import (
    anonymize,
    attribute_delete,
    attribute_types,
    delete_user,
    downloads,
    export,
    identity,
    metadata,
    profile,
    segments,
    upsert,
)
from gateway.local_ucd.faults import FaultInjector
from gateway.local_ucd.http import (
    UNKNOWN_ERROR,
    ApiError,
    ConnectionDropped,
    go_error,
    json_response,
)
from gateway.local_ucd.openapi import document as openapi
from gateway.local_ucd.ratelimit import RateLimiter
from gateway.local_ucd.services import Services, UcdRequest
from gateway.local_ucd.store.database import Store

__all__ = ["ENDPOINTS", "Endpoint", "create_local_ucd_app"]

logger = logging.getLogger("gateway.local_ucd")

Handler = Callable[[UcdRequest], Awaitable[Any]]


@dataclass(frozen=True)
class Endpoint:
    """One method on one path. ``fault_key`` is set for Insider's endpoints (§3) only."""

    method: str
    path: str
    handler: Handler
    fault_key: str | None
    has_body: bool = True
    content_type_optional: bool = False


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("POST", "/api/user/v1/upsert", upsert.handle_upsert, "upsert"),
    Endpoint("POST", "/api/user/v1/profile", profile.handle_profile, "profile"),
    Endpoint("POST", "/api/raw/v1/export", export.handle_export, "export"),
    Endpoint(
        "POST",
        "/api/user/v1/attribute/delete",
        attribute_delete.handle_attribute_delete,
        "attribute_delete",
    ),
    Endpoint("PATCH", "/api/user/v1/identity", identity.handle_identity_update, "identity_update"),
    Endpoint(
        "DELETE",
        "/api/user/v1/identity",
        identity.handle_identity_delete,
        "identity_delete",
        content_type_optional=True,
    ),
    Endpoint(
        "POST",
        "/api/contact/v1/anonymize",
        anonymize.handle_anonymize_contact,
        "anonymize_contact",
    ),
    Endpoint("POST", "/api/user/v1/anonymize", anonymize.handle_anonymize_user, "anonymize_user"),
    Endpoint("POST", "/api/user/v1/delete", delete_user.handle_delete_user, "delete_user"),
    Endpoint(
        "POST",
        "/api/user/v3/metadata/columns",
        metadata.handle_metadata_columns,
        "metadata_columns",
    ),
    Endpoint("POST", "/api/local/v1/segments", segments.handle_create_segment, None),
    Endpoint("GET", "/api/local/v1/segments", segments.handle_list_segments, None, has_body=False),
    Endpoint("POST", "/api/local/v1/attributes", attribute_types.handle_declare_attribute, None),
    Endpoint(
        "GET",
        "/api/local/v1/attributes",
        attribute_types.handle_list_attributes,
        None,
        has_body=False,
    ),
)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _make_route_endpoint(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        services = _services(request)
        action = None
        if endpoint.fault_key is not None and services.faults is not None:
            action = await services.faults.draw(endpoint.fault_key)
            if action.kind == "error_500":
                return json_response(UNKNOWN_ERROR, status=500)
            if action.kind == "error_429":
                return ApiError.too_many_requests(action.retry_after_s).response()
            if action.kind == "drop":
                return _DroppedResponse(endpoint.fault_key)
        response = await _answer(endpoint, request, services)
        if action is not None and action.kind == "drop_after_commit":
            # Processed (and, for a write, committed) as usual; the answer, whatever it
            # is, never reaches the client (§5.7).
            return _DroppedResponse(endpoint.fault_key or "")
        return response

    return run


async def _answer(endpoint: Endpoint, request: Request, services: Services) -> Response:
    """Stages 3 to 7 of the pipeline: authentication, body checks, the handler."""
    try:
        partner = authenticate(request.headers, services.config.partners)
        body: dict[str, Any] = {}
        if endpoint.has_body:
            body = await read_json_body(
                request, content_type_optional=endpoint.content_type_optional
            )
        result = await endpoint.handler(UcdRequest(partner, body, services))
    except ApiError as error:
        return error.response()
    except Exception as exc:
        # Log the place, never the message: messages can carry request values (PII).
        logger.error(
            "unexpected %s in %s %s\n%s",
            type(exc).__name__,
            endpoint.method,
            endpoint.path,
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        return json_response(UNKNOWN_ERROR, status=500)
    return json_response(result)


async def _healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def _not_found(request: Request, exc: Exception) -> Response:
    return json_response(go_error("not found"), status=404)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    headers = exc.headers if isinstance(exc, HTTPException) and exc.headers else {}
    return json_response(go_error("method not allowed"), status=405, headers=headers)


def _routes() -> list[Route]:
    by_path: dict[str, list[Endpoint]] = {}
    for endpoint in ENDPOINTS:
        by_path.setdefault(endpoint.path, []).append(endpoint)
    routes: list[Route] = []
    for path, endpoints in by_path.items():
        handlers = {e.method: _make_route_endpoint(e) for e in endpoints}

        async def dispatch(
            request: Request,
            handlers: dict[str, Callable[[Request], Awaitable[Response]]] = handlers,
        ) -> Response:
            # Starlette answers HEAD on GET routes; HEAD runs the GET handler.
            method = "GET" if request.method == "HEAD" else request.method
            return await handlers[method](request)

        routes.append(Route(path, dispatch, methods=list(handlers)))
    routes.append(Route("/healthz", _healthz, methods=["GET"]))
    routes.append(Route("/openapi.json", openapi.handle_openapi, methods=["GET"]))
    routes.append(Route("/exports/{partner}/p/{file}", downloads.handle_download, methods=["GET"]))
    return routes


class _DroppedResponse(Response):
    """Closes the connection mid-answer (fault injection's drops, §5.7).

    It starts the response and then raises :class:`ConnectionDropped`. Because the answer
    has started, Starlette's error middleware re-raises instead of sending a 500, and uvicorn
    closes the socket: the client sees a dropped connection (``httpx.RemoteProtocolError``),
    never a well-formed answer. In-process, ``LocalUcdTransport`` does the same translation.
    """

    def __init__(self, key: str) -> None:
        super().__init__(status_code=200)
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise ConnectionDropped(self.key)


def create_local_ucd_app(
    config: LocalUcdConfig, *, hook_client: httpx.AsyncClient | None = None
) -> Starlette:
    """The local UCD as an ASGI app. Its lifespan opens the store and starts the workers.

    ``hook_client`` sends export webhooks and error callbacks; by default one is opened
    (and closed) by the lifespan.
    """
    config = config.validated()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = Store(config.database_path)
        await store.open()
        client = hook_client or httpx.AsyncClient(timeout=10.0)
        services = Services(
            config=config,
            store=store,
            limiter=RateLimiter(strict=config.strict_rate_limits),
            faults=FaultInjector(config.faults) if config.faults is not None else None,
            callbacks=CallbackDispatcher(client),
            hook_client=client,
        )
        app.state.services = services
        await services.exports.start()
        try:
            yield
        finally:
            await services.exports.aclose()
            await services.callbacks.aclose()
            if hook_client is None:
                await client.aclose()
            await store.close()

    app = Starlette(
        routes=_routes(),
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    # Paths are matched exactly (§2.1): no redirect from /x/ to /x.
    app.router.redirect_slashes = False
    return app
