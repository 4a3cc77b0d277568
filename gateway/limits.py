"""What every request passes through before a resolver runs.

* ``BodySizeLimit``: an ASGI middleware; a body over ``max_body_bytes`` gets HTTP 413
  before anything parses it.
* ``schema_extensions(settings)``: the strawberry extension of every GraphQL request
  (``GatewayExtension``): the token limit, the document limits (fields, depth, aliases,
  directives, gateway/document_limits.py), introspection when it is off
  (``UCD_GATEWAY_INTROSPECTION``), the parser and validation caches, stable error codes
  for refused documents, and masking of unexpected errors; its ``on_execute`` runs the
  operation budget (gateway/api/budget.py).

Every refusal is answered by gateway/error_pipeline.py, so a refused request always
gets the same shape: a message meant for the caller and an ``extensions.code`` to
branch on.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    NoSchemaIntrospectionCustomRule,
    specified_rules,
)
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from gateway.api.audit_trail import OperationTrail
from gateway.api.authorization import operation_refusals
from gateway.api.budget import CostLimits, OperationBudget
from gateway.api.rate_limiting import rate_limit_refusal
from gateway.api.strawberry_internals import (
    MaskingExtension,
    graphql_core_schema,
    refuse_execution,
    use_parsed_document,
    use_validation_errors,
    validate,
)
from gateway.document_limits import DocumentLimits
from gateway.document_shape import PlainStrings, erased_plainly, noting_plain_strings, shape_of
from gateway.document_text import PARSE_CACHE_SIZE, parse_text
from gateway.error_pipeline import (
    code_validation_errors,
    drop_tracebacks,
    is_unexpected,
    mask_unexpected,
    payload_too_large,
)
from gateway.settings import Settings

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

    Factories, not instances: strawberry builds fresh extensions per request.
    """
    limits = DocumentLimits(
        max_fields=settings.max_fields,
        max_query_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases,
        max_directives=settings.max_directives,
    )
    extra_rules: tuple[type[ASTValidationRule], ...] = ()
    if not settings.introspection:
        # graphql-core's rule refuses __schema and __type (not __typename); it is
        # strawberry's DisableIntrospection without an extension of its own per request.
        extra_rules = (NoSchemaIntrospectionCustomRule,)
    return [
        RequestGuards(
            max_tokens=settings.max_tokens,
            validation_rules=extra_rules,
            # Suggestions go with introspection: "Did you mean 'email'?" reads the schema
            # out to whoever guesses near a field's name.
            validation_cache=ValidationCache(
                limits=limits, hide_suggestions=not settings.introspection
            ),
            cost_limits=CostLimits(
                settings.max_ucd_calls_per_operation,
                settings.max_user_keys,
                profile_cache=settings.profile_cache_ttl is not None,
            ),
        )
    ]


#: The parser cache (gateway/document_text.py), shared with APQ registration, so a
#: document registered and run in one request is parsed once.
_cached_parse = parse_text


def parse_cache_info() -> Any:
    """The parser cache's ``functools`` statistics (hits, misses), for tests and metrics."""
    return _cached_parse.cache_info()


class ValidationCache:
    """Validation errors per query text, confirmed by the identity of the parsed document.

    With ``limits``, a document is first measured against them (one linear pass,
    gateway/document_limits.py) and one over a limit gets that one error: the
    validation rules, some of which expand fragments, never see it. The refusal is
    cached like any other answer.

    strawberry's ValidationCache keys an ``lru_cache`` on the document itself, and hashing
    a ``DocumentNode`` walks its whole tree on every request. The parser cache hands out
    the same document object for the same text, so the text (with the rules) is the key
    here and the stored document being this very object confirms the hit: one parsed anew (say,
    after it left the parser cache) is validated again and replaces the entry. The schema
    is checked the same way, so one cache never answers for another schema.
    ``hide_suggestions`` is fixed per cache, so no entry answers with the other setting.

    A text not found is looked up by its document's shape (gateway/document_shape.py:
    the document less its aliases' text and the strings it passes to field arguments):
    a document of a shape validated before without error, whose left-out strings all
    stood where a ``String`` or ``ID`` goes, is valid too, without graphql-core's rules
    (``shape_hits``). A client that writes its values into the text sends a new
    document with each request; this is what keeps its validation from costing more
    than the rest of the request. Only valid documents are remembered by shape, so
    every error is still the rules' own.
    """

    def __init__(
        self,
        maxsize: int = PARSE_CACHE_SIZE,
        *,
        limits: DocumentLimits | None = None,
        hide_suggestions: bool = False,
    ) -> None:
        self._maxsize = maxsize
        self._limits = limits
        self.hide_suggestions = hide_suggestions
        self._entries: dict[
            tuple[str, tuple[type[ASTValidationRule], ...]],
            tuple[GraphQLSchema, DocumentNode, list[GraphQLError]],
        ] = {}
        #: Shapes of valid documents (key: shape and rules), each with its schema.
        self._shapes: dict[tuple[Hashable, tuple[type[ASTValidationRule], ...]], GraphQLSchema] = {}
        self.hits = 0
        self.misses = 0
        self.shape_hits = 0  # misses answered by the document's shape

    def validate(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        query: str | None,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> list[GraphQLError]:
        if query is None:  # a document given without its text: nothing to key on
            return self._validate(schema, document, rules)
        key = (query, rules)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is schema and entry[1] is document:
            self.hits += 1
            return entry[2]
        self.misses += 1
        shape = shape_of(document)
        shape_key = (shape.key, rules) if shape is not None else None
        if shape_key is not None and self._shapes.get(shape_key) is schema:
            self.shape_hits += 1
            errors: list[GraphQLError] = []
        elif shape is not None and shape.erased:
            with noting_plain_strings() as noted:
                errors = self._validate(schema, document, (*rules, PlainStrings))
            if not errors and erased_plainly(shape, noted):
                self._remember_shape(shape_key, schema)
        else:
            errors = self._validate(schema, document, rules)
            if not errors and shape_key is not None:
                self._remember_shape(shape_key, schema)
        if entry is None and len(self._entries) >= self._maxsize:
            # Oldest first (dicts keep insertion order): bounded, like the parser cache,
            # so unique query texts cannot grow memory without limit.
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (schema, document, errors)
        return errors

    def _remember_shape(
        self,
        key: tuple[Hashable, tuple[type[ASTValidationRule], ...]] | None,
        schema: GraphQLSchema,
    ) -> None:
        assert key is not None
        if key not in self._shapes and len(self._shapes) >= self._maxsize:
            del self._shapes[next(iter(self._shapes))]  # oldest first, bounded as above
        self._shapes[key] = schema

    def _validate(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> list[GraphQLError]:
        refusal = self._limits.check(document) if self._limits is not None else None
        if refusal is not None:
            return [refusal]
        return validate(schema, document, rules, hide_suggestions=self.hide_suggestions)


@dataclass(frozen=True)
class RequestGuards:
    """The per-app settings of ``GatewayExtension``; called, it builds one for a request."""

    max_tokens: int
    #: Rules beside graphql-core's own: NoSchemaIntrospectionCustomRule when it is off.
    validation_rules: tuple[type[ASTValidationRule], ...]
    validation_cache: ValidationCache
    cost_limits: CostLimits

    def __call__(self) -> GatewayExtension:
        return GatewayExtension(self)

    @functools.cached_property
    def _rules(self) -> tuple[type[ASTValidationRule], ...]:
        """strawberry's default rules, then ours: built once, not per request."""
        return (*specified_rules, *self.validation_rules)

    def prepare(self, schema: GraphQLSchema, query: str) -> DocumentNode | None:
        """``query``'s document when it parses and validates as a request's extension
        would find it (the same caches, so neither side does the work twice), else None.

        For the compiled execution path (gateway/compiled/): a document that fails
        either is answered by strawberry, with the errors it always gave.
        """
        try:
            document = _cached_parse(query, max_tokens=self.max_tokens)
        except GraphQLError:
            return None
        errors = self.validation_cache.validate(schema, document, query, self._rules)
        return None if errors else document


class GatewayExtension(MaskingExtension):
    """Everything a request passes through in strawberry, as one operation-level extension.

    * the token limit (strawberry's MaxTokensLimiter) and the parser cache (ParserCache);
    * the document limits (fields, depth, aliases, directives: one linear pass, in place
      of strawberry's QueryDepthLimiter and MaxAliasesLimiter, which follow every
      spread of every fragment), then validation, both through ``ValidationCache``;
    * a stable ``extensions.code`` on validation errors (the document limits
      included). Syntax errors (the token limit included) are coded by the HTTP view:
      with the parser cache they escape the parse hooks;
    * masking of unexpected errors (MaskErrors): the caller sees "Internal server error"
      and an ``errorId``; the log has the same id with the traceback.
    * before execution: the scopes of mutations, the operation budget, the caller's rate
      limit and the audit trail's attempt lines, each able to refuse the operation before
      any UCD call; after it, the audit trail's outcome and read lines
      (gateway/api/audit_trail.py).

    The codes and the masking are the error pipeline's (gateway/error_pipeline.py).

    Why one extension and not strawberry's six: strawberry builds every extension and
    wraps each of its hooks in a context manager on every request, which cost more CPU
    than the parse and validation they cache. No ``resolve`` hook: that one would wrap
    every field resolution.
    """

    def __init__(self, guards: RequestGuards) -> None:
        super().__init__(should_mask=is_unexpected, mask=mask_unexpected)
        self._guards = guards
        self._budget: OperationBudget | None = None

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = self._guards.max_tokens
        context.validation_rules = context.validation_rules + self._guards.validation_rules
        yield from super().on_operation()
        # Masked and logged by now: the errors' tracebacks would only keep the
        # operation's frames, and its context with them, in a reference cycle.
        if context.result is not None and context.result.errors:
            drop_tracebacks(context.result.errors)

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

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        # The audit trail (gateway/api/audit_trail.py): its outcome lines are written
        # however the operation ends, refused ones included.
        trail = OperationTrail.of(context)
        with self._admitted(context):
            if context.result is None:  # not refused: the caller's limit, then its trail
                refusal = await rate_limit_refusal(context, self._budget_planned())
                if refusal is None and trail is not None:
                    refusal = await trail.before()
                if refusal is not None:
                    refuse_execution(context, [refusal])
            yield
        if trail is not None:
            await trail.after()

    def _budget_planned(self) -> int:
        return self._budget.planned if self._budget is not None else 0

    def _admitted(self, context: ExecutionContext) -> contextlib.AbstractContextManager[None]:
        # Mutations the caller may not run refuse the operation before any UCD call
        # (gateway/api/authorization.py); fail closed if that check itself fails.
        try:
            refusals = operation_refusals(context)
        except Exception as exc:
            refusals = [mask_unexpected(GraphQLError("authorization", original_error=exc))]
        if refusals:
            refuse_execution(context, refusals)
            return contextlib.nullcontext()
        # The operation budget (gateway/api/budget.py): planned with the variables
        # coerced, refused over the limit, or its UCD calls counted.
        self._budget = OperationBudget(self._guards.cost_limits)
        return self._budget.executing(context)

    def get_results(self) -> dict[str, Any]:
        # extensions.cost, on every operation that reached execution.
        return self._budget.results() if self._budget is not None else {}
