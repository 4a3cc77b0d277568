"""What every request passes through before a resolver runs.

* ``BodySizeLimit``: an ASGI middleware; a body over ``max_body_bytes`` gets HTTP 413
  before anything parses it.
* ``schema_extensions(settings)``: the strawberry extension of every GraphQL request
  (``GatewayExtension``): the token, depth and alias limits, introspection when it is
  off (``UCD_GATEWAY_INTROSPECTION``), the parser and validation caches, stable error
  codes for refused documents, and masking of unexpected errors.

Every refusal is answered by gateway/error_pipeline.py, so a refused request always
gets the same shape: a message meant for the caller and an ``extensions.code`` to
branch on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import orjson
from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    NoSchemaIntrospectionCustomRule,
    parse,
)
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import (
    MaxAliasesLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

from gateway.api.strawberry_internals import (
    MaskingExtension,
    graphql_core_schema,
    limiter_rules,
    use_parsed_document,
    use_validation_errors,
    validate,
)
from gateway.error_pipeline import (
    code_validation_errors,
    is_unexpected,
    mask_unexpected,
    payload_too_large,
)
from gateway.settings import Settings

#: Distinct query texts whose parse and validation are kept (strawberry's default, 128).
PARSE_CACHE_SIZE: Final = 128


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
        response = Response(
            orjson.dumps(payload_too_large(self.max_bytes)),
            status_code=413,
            headers={"Connection": "close"},
            media_type="application/json",
        )
        await response(scope, receive, send)


# --- GraphQL limits, caches and error codes ----------------------------------------------


def schema_extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """The extensions every request runs: one ``RequestGuards`` (limits, caches, codes, masking).

    Factories, not instances: strawberry builds fresh extensions per request. The
    depth and alias rules are built once, though: each limiter instance makes a new
    rule class, and the validation cache keys on the rules, so per-request rule classes
    would make every validation a cache miss (measured: ~10 ms per request).
    """
    limit_rules = limiter_rules(
        QueryDepthLimiter(max_depth=settings.max_query_depth),
        MaxAliasesLimiter(max_alias_count=settings.max_aliases),
    )
    if not settings.introspection:
        # graphql-core's rule refuses __schema and __type (not __typename); it is
        # strawberry's DisableIntrospection without an extension of its own per request.
        limit_rules = (*limit_rules, NoSchemaIntrospectionCustomRule)
    return [
        RequestGuards(
            max_tokens=settings.max_tokens,
            validation_rules=limit_rules,
            # Suggestions go with introspection: "Did you mean 'email'?" reads the schema
            # out to whoever guesses near a field's name.
            validation_cache=ValidationCache(hide_suggestions=not settings.introspection),
        )
    ]


#: strawberry's ParserCache with MaxTokensLimiter, as one function: parse errors (the
#: token limit included) are raised, never cached, as ``functools.lru_cache`` does.
_cached_parse = functools.lru_cache(maxsize=PARSE_CACHE_SIZE)(parse)


def parse_cache_info() -> Any:
    """The parser cache's ``functools`` statistics (hits, misses), for tests and metrics."""
    return _cached_parse.cache_info()


class ValidationCache:
    """Validation errors per query text, confirmed by the identity of the parsed document.

    strawberry's ValidationCache keys an ``lru_cache`` on the document itself, and hashing
    a ``DocumentNode`` walks its whole tree on every request. The parser cache hands out
    the same document object for the same text, so the text (with the rules) is the key
    here and the stored document being this very object confirms the hit: one parsed anew (say,
    after it left the parser cache) is validated again and replaces the entry. The schema
    is checked the same way, so one cache never answers for another schema.
    ``hide_suggestions`` is fixed per cache, so no entry answers with the other setting.
    """

    def __init__(self, maxsize: int = PARSE_CACHE_SIZE, *, hide_suggestions: bool = False) -> None:
        self._maxsize = maxsize
        self.hide_suggestions = hide_suggestions
        self._entries: dict[
            tuple[str, tuple[type[ASTValidationRule], ...]],
            tuple[GraphQLSchema, DocumentNode, list[GraphQLError]],
        ] = {}
        self.hits = 0
        self.misses = 0

    def validate(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        query: str | None,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> list[GraphQLError]:
        if query is None:  # a document given without its text: nothing to key on
            return validate(schema, document, rules, hide_suggestions=self.hide_suggestions)
        key = (query, rules)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is schema and entry[1] is document:
            self.hits += 1
            return entry[2]
        self.misses += 1
        errors = validate(schema, document, rules, hide_suggestions=self.hide_suggestions)
        if entry is None and len(self._entries) >= self._maxsize:
            # Oldest first (dicts keep insertion order): bounded, like the parser cache,
            # so unique query texts cannot grow memory without limit.
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (schema, document, errors)
        return errors


@dataclass(frozen=True)
class RequestGuards:
    """The per-app settings of ``GatewayExtension``; called, it builds one for a request."""

    max_tokens: int
    validation_rules: tuple[type[ASTValidationRule], ...]
    validation_cache: ValidationCache

    def __call__(self) -> GatewayExtension:
        return GatewayExtension(self)


class GatewayExtension(MaskingExtension):
    """Everything a request passes through in strawberry, as one operation-level extension.

    * the token limit (strawberry's MaxTokensLimiter) and the parser cache (ParserCache);
    * the depth and alias rules (AddValidationRules), validated through ``ValidationCache``;
    * a stable ``extensions.code`` on validation errors (the depth and alias limits
      included). Syntax errors (the token limit included) are coded by the HTTP view:
      with the parser cache they escape the parse hooks;
    * masking of unexpected errors (MaskErrors): the caller sees "Internal server error"
      and an ``errorId``; the log has the same id with the traceback.

    The codes and the masking are the error pipeline's (gateway/error_pipeline.py).

    Why one extension and not strawberry's six: strawberry builds every extension and
    wraps each of its hooks in a context manager on every request, which cost more CPU
    than the parse and validation they cache. No ``resolve`` hook: that one would wrap
    every field resolution.
    """

    def __init__(self, guards: RequestGuards) -> None:
        super().__init__(should_mask=is_unexpected, mask=mask_unexpected)
        self._guards = guards

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = self._guards.max_tokens
        context.validation_rules = context.validation_rules + self._guards.validation_rules
        yield from super().on_operation()

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        use_parsed_document(context, _cached_parse(context.query, **context.parse_options))
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None
        errors = self._guards.validation_cache.validate(
            graphql_core_schema(context.schema),
            context.graphql_document,
            context.query,
            context.validation_rules,
        )
        use_validation_errors(context, errors)
        yield
        code_validation_errors(context.pre_execution_errors)
