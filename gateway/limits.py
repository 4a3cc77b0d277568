"""What every request passes through before a resolver runs, and how refusals are answered.

* ``BodySizeLimit``: an ASGI middleware; a body over ``max_body_bytes`` gets HTTP 413
  before anything parses it.
* ``schema_extensions(settings)``: the strawberry extensions of every GraphQL request:
  the token, depth and alias limits, the parser and validation caches, stable error
  codes for refused documents, and masking of unexpected errors.
* ``code_request_errors(errors)``: the codes the HTTP view adds once a result is known
  (syntax errors and refused variables escape the extension hooks).

The limits and their answers live together so that a refused request always gets the
same shape: a message meant for the caller and an ``extensions.code`` to branch on.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence

import orjson
from graphql import GraphQLError, GraphQLSyntaxError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

from gateway.errors import GatewayError
from gateway.settings import Settings

# The name the masked errors were always logged under; log routing may depend on it.
logger = logging.getLogger("gateway.app")

INTERNAL_ERROR_MESSAGE = "Internal server error"


# --- request body limit ----------------------------------------------------------------


class BodySizeLimit:
    """Answers 413 when a request body is over ``max_bytes``, before the app reads it.

    A declared ``Content-Length`` is checked up front. A chunked body is read here up
    to the limit and replayed to the app, so nothing downstream sees a partial body.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"request body is larger than {self.max_bytes} bytes"
        body = {"errors": [{"message": message, "extensions": {"code": "PAYLOAD_TOO_LARGE"}}]}
        response = Response(
            orjson.dumps(body),
            status_code=413,
            headers={"Connection": "close"},
            media_type="application/json",
        )
        await response(scope, receive, send)


# --- GraphQL limits, caches and error codes ----------------------------------------------


def schema_extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """The extensions every request runs: caches, limits and masking.

    Factories, not instances: strawberry builds fresh extensions per request. The
    depth and alias rules are built once, though: each limiter instance makes a new
    rule class, and ValidationCache keys on the rules, so per-request rule classes
    would make every validation a cache miss (measured: ~10 ms per request).
    """
    limit_rules = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    return [
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        ParserCache,
        lambda: AddValidationRules(limit_rules),
        ValidationCache,
        ValidationErrorCodes,
        MaskUnexpectedErrors,
    ]


class ValidationErrorCodes(SchemaExtension):
    """Gives validation errors (the depth and alias limits included) a stable
    ``extensions.code``: graphql-core writes them without one, and clients branch on
    codes, not on messages. Syntax errors (the token limit included) are tagged by
    ``code_request_errors``: with ParserCache they escape the parse hooks.
    """

    def on_validate(self) -> Iterator[None]:
        yield
        _tag(self.execution_context.pre_execution_errors, "GRAPHQL_VALIDATION_FAILED")


def code_request_errors(errors: Sequence[GraphQLError]) -> None:
    """Codes for the errors still without one once the result is known (in place)."""
    _tag([e for e in errors if isinstance(e, GraphQLSyntaxError)], "GRAPHQL_PARSE_FAILED")
    # Left without a code and without a path: variables that failed coercion.
    _tag([e for e in errors if e.path is None], "BAD_USER_INPUT")


def _tag(errors: Sequence[GraphQLError] | None, code: str) -> None:
    for error in errors or ():
        if not (error.extensions or {}).get("code"):
            error.extensions = {**(error.extensions or {}), "code": code}


# --- masking -----------------------------------------------------------------------------


class MaskUnexpectedErrors(MaskErrors):
    """Masks every error that is not a ``GatewayError`` or a GraphQL-level error.

    The caller sees "Internal server error" and an ``errorId``; the log has the same
    id with the traceback. Only the exception's type and frames are logged, not its
    text: an unexpected exception's message may hold a caller's email or phone.
    """

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected, error_message=INTERNAL_ERROR_MESSAGE)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        error_id = str(uuid.uuid4())
        original = error.original_error
        frames = "".join(traceback.format_tb(original.__traceback__)) if original else ""
        logger.error(
            "internal error %s in %s: %s\n%s",
            error_id,
            ".".join(str(p) for p in error.path or ()),
            type(original).__qualname__,
            frames,
        )
        return GraphQLError(
            message=INTERNAL_ERROR_MESSAGE,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=None,
            extensions={"code": "INTERNAL_SERVER_ERROR", "errorId": error_id},
        )


def _is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    # Without a path the error came before execution: the caller's document or
    # variables were refused (a scalar's ValueError on a bad literal included), and the
    # message is about the caller's own input. With no original error, graphql-core
    # wrote it for the caller; a GraphQLError raised on purpose is meant for them too.
    return (
        original is not None
        and error.path is not None
        and not isinstance(original, GatewayError | GraphQLError)
    )
