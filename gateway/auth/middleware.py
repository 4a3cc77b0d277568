"""The ASGI middleware that authenticates every request, and where the principal goes.

Every path needs a credential (when authentication is on) except the ones that must
answer without one: the health probes ``/healthz`` and ``/readyz`` (load balancers hold
no keys), the export webhook ``/hooks/exports/{job}/{token}``, which the UCD calls
with its own capability token in the path, and GraphiQL's own static files under
``/graphiql/static/`` (a browser loads them without headers; they hold no data). A
route added later is protected until it is listed here: the list is of exceptions, not
of protected paths.

A plain ``GET /graphql`` without a query string also passes: it can only be GraphiQL's
page (when UCD_GATEWAY_GRAPHIQL is on) or a refusal, never data, and the page's own
requests carry the header its user types in.

The refusal is HTTP 401 with ``WWW-Authenticate: Bearer`` (RFC 6750 §3) and the GraphQL
error body UNAUTHENTICATED, before the body is read. The credential is never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.auth.authenticator import Authenticator, Refused
from gateway.auth.principal import Principal, PrincipalKind
from gateway.error_pipeline import unauthenticated

__all__ = ["NOBODY", "PUBLIC_PREFIXES", "Authenticate", "principal_of"]

_PUBLIC_PATHS: Final = frozenset({"/healthz", "/readyz"})
#: ``/graphiql/static/`` is gateway.graphiql.assets.STATIC_PATH (a higher layer; a test
#: holds the two equal).
PUBLIC_PREFIXES: Final = ("/hooks/exports/", "/graphiql/static/")
#: Where the principal is kept: the request's ``scope["state"]`` (Starlette's request.state).
_STATE_KEY: Final = "gateway.principal"

#: The principal of a request the middleware did not authenticate: no scope at all.
NOBODY: Final = Principal("nobody", PrincipalKind.ANONYMOUS, frozenset())


class Authenticate:
    """Sets the request's principal, or answers 401 (see the module doc)."""

    def __init__(self, app: ASGIApp, *, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _public(scope):
            await self.app(scope, receive, send)
            return
        try:
            principal = await self.authenticator.authenticate(_authorization(scope["headers"]))
        except Refused as refused:
            await _refuse(refused, scope, receive, send)
            return
        scope.setdefault("state", {})[_STATE_KEY] = principal
        await self.app(scope, receive, send)


def principal_of(request: Any) -> Principal:
    """The principal of a request (anything with an ASGI ``scope``); ``NOBODY`` when the
    middleware did not set one, so a request that bypassed it may do nothing."""
    state: Mapping[str, Any] = request.scope.get("state") or {}
    principal = state.get(_STATE_KEY)
    return principal if isinstance(principal, Principal) else NOBODY


def _public(scope: Scope) -> bool:
    path: str = scope["path"]
    if path in _PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        return True
    return path == "/graphql" and scope["method"] == "GET" and not scope["query_string"]


def _authorization(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            return value.decode("latin-1")
    return None


async def _refuse(refused: Refused, scope: Scope, receive: Receive, send: Send) -> None:
    challenge = 'Bearer realm="ucd-gateway"'
    if refused.presented:
        challenge += ', error="invalid_token"'
    response = Response(
        orjson.dumps(unauthenticated(str(refused))),
        status_code=401,
        headers={"WWW-Authenticate": challenge},
        media_type="application/json",
    )
    await response(scope, receive, send)
