"""Every strawberry internal the gateway relies on, behind one small surface.

strawberry's public API does not reach everything the gateway needs (the graphql-core
objects under its own, its error hooks, its parse and validation short cuts), and
its private names may change in any release. Everything below is used only through
this module, and tests/gateway/test_strawberry_internals.py pins each behaviour, so a
strawberry upgrade that breaks one fails there, with the name of what broke:

* ``raw_info(info)``: graphql-core's resolve info (its fields) under strawberry's ``Info``;
* ``graphql_core_schema(schema)``: graphql-core's ``GraphQLSchema`` under the schema;
* ``validate(schema, document, rules, *, hide_suggestions=False)``: strawberry's
  validation (graphql-core's, plus its @oneOf and ``Maybe`` rules), optionally without
  "Did you mean ...?" suggestions (graphql-core's flag, which strawberry does not pass);
* ``one_of_type_names(schema)``: the @oneOf input types (the flag is strawberry's);
* ``is_one_of_refusal(error)``: whether an error is strawberry's @oneOf refusal (its text);
* ``graphql_name(name)``: the GraphQL name strawberry gives a Python field name;
* ``CachedNameConverter``: a hook into strawberry's naming of fields and arguments;
* ``ErrorHookSchema``: a hook that sees every error of a request before masking;
* ``AcyclicExecutionContext``: strawberry's graphql-core executor, which drops its
  reference cycle once the operation's result is complete (pinned by
  tests/gateway/test_garbage.py);
* ``MaskingExtension``: MaskErrors driven by two functions, without its slow check;
* ``use_parsed_document`` / ``use_validation_errors``: an extension's own parse and
  validation, which strawberry then skips;
* ``refuse_execution``: an extension's answer instead of executing the operation;
* ``withhold_field(obj, python_name, error)``: a plain field (no resolver) of a built
  object answers null with ``error`` at its path instead of its value (strawberry reads
  plain fields with ``getattr``; graphql-core raises an exception it completes);
* ``ERROR_LOGGER_NAME``: the logger strawberry writes error messages to;
* the HTTP view's hooks app.py overrides (``parse_http_body`` may return a list, a batch;
  ``execute_single`` is then called per operation, keywords only, with one context):
  public methods, but their calling order is strawberry's, so a test pins it too;
* ``RequestRefused``: what strawberry's HTTP view raises to refuse a request (a body
  that is not JSON, a mutation over GET, GraphiQL when it is off); it answers that with
  a plain-text body of its own, which the gateway's view replaces.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import strawberry
from cross_web import HTTPException
from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLResolveInfoHelpers,
    GraphQLSchema,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import validate as graphql_core_validate
from graphql.pyutils import gather_with_cancel
from strawberry.extensions import MaskErrors
from strawberry.schema.name_converter import NameConverter
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext, validate_document
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types import ExecutionContext
from strawberry.utils.logging import StrawberryLogger
from strawberry.utils.str_converters import to_camel_case

__all__ = [
    "ERROR_LOGGER_NAME",
    "AcyclicExecutionContext",
    "CachedNameConverter",
    "ErrorHookSchema",
    "MaskingExtension",
    "RequestRefused",
    "graphql_core_schema",
    "graphql_name",
    "is_one_of_refusal",
    "one_of_type_names",
    "raw_info",
    "refuse_execution",
    "use_parsed_document",
    "use_validation_errors",
    "validate",
    "withhold_field",
]

#: strawberry's ``StrawberryLogger`` writes every error with its message here.
ERROR_LOGGER_NAME: Final = StrawberryLogger.logger.name

#: Raised by strawberry's HTTP view (``AsyncBaseHTTPView.run`` and the methods it calls) with
#: ``status_code`` and ``reason`` for a request it refuses; also raised by the gateway's view
#: for the refusals it adds, so one handler answers them all.
RequestRefused = HTTPException

#: Part of the message of strawberry's @oneOf validation rule and of its coercion check
#: ("OneOf Input Object 'Pick' must specify exactly one key.").
_ONE_OF_MESSAGE: Final = "OneOf Input Object"


def raw_info(info: strawberry.Info[Any, Any]) -> GraphQLResolveInfo[Any]:
    """graphql-core's info for the field ``info`` resolves.

    strawberry's ``Info`` exposes neither the field nodes, the fragments nor the return
    type; the graphql-core info under it is what its own ``selected_fields`` reads.
    (strawberry builds it as a NamedTuple of its own with ``GraphQLResolveInfo``'s
    fields, not as an instance of that class: read fields, don't check the type.)
    """
    return info._raw_info


def graphql_core_schema(schema: strawberry.Schema) -> GraphQLSchema:
    """The graphql-core schema strawberry built and executes against."""
    return schema._schema


#: The rules strawberry's ``validate_document`` adds to the ones it is given, in its order.
_STRAWBERRY_RULES: Final = (MaybeNullValidationRule, OneOfInputValidationRule)


def validate(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: tuple[type[ASTValidationRule], ...],
    *,
    hide_suggestions: bool = False,
) -> list[GraphQLError]:
    """Validation as strawberry runs it: ``rules`` plus its @oneOf and ``Maybe`` rules.

    graphql-core's ``validate`` alone would let a @oneOf input with two keys through:
    strawberry checks @oneOf with a rule of its own (the message ``is_one_of_refusal``
    reads comes from it). ``hide_suggestions``: no "Did you mean 'email'?" in messages,
    which would spell out the schema to a caller who may not introspect it; strawberry's
    ``validate_document`` has no such parameter, so its rules are added here.
    """
    if not hide_suggestions:
        return validate_document(schema, document, rules)
    return graphql_core_validate(
        schema, document, (*rules, *_STRAWBERRY_RULES), hide_suggestions=True
    )


def is_one_of_refusal(error: GraphQLError) -> bool:
    """True for strawberry's refusal of a @oneOf input without exactly one key, a literal
    (its validation rule) or a variable (its coercion check). Neither carries a code or
    a type of its own, so the message is what tells them apart."""
    return _ONE_OF_MESSAGE in error.message


def graphql_name(name: str) -> str:
    """The GraphQL name strawberry gives the Python field or argument ``name`` with its
    default naming (``auto_camel_case``): ``gdpr_optin`` -> ``gdprOptin``.

    For tables that pair a GraphQL field with a UCD name (gateway/api/names.py).
    """
    return to_camel_case(name)


def one_of_type_names(schema: strawberry.Schema) -> frozenset[str]:
    """Names of the @oneOf input types: strawberry keeps that flag on its own definitions,
    not on graphql-core's types."""
    return frozenset(
        name
        for name, entry in schema.schema_converter.type_map.items()
        if getattr(entry.definition, "is_one_of", False)
    )


class CachedNameConverter(NameConverter):
    """strawberry's name converter, remembering each Python name's GraphQL name.

    strawberry converts names again for every input field of every argument it
    coerces, on every request (``convert_arguments``); the answer never changes.
    ``apply_naming_config`` is the one method every conversion goes through.
    """

    def __init__(self) -> None:
        super().__init__()
        self._names: dict[tuple[str, bool], str] = {}

    def apply_naming_config(self, name: str) -> str:
        key = (name, self.auto_camel_case)
        converted = self._names.get(key)
        if converted is None:
            converted = self._names[key] = super().apply_naming_config(name)
        return converted


class ErrorHookSchema(strawberry.Schema):
    """strawberry's schema, with ``see_errors`` in place of its error logging.

    strawberry calls ``process_errors`` with every error list of a request, validation
    and execution alike, before extensions see the result (so before MaskErrors), which
    makes it the one place both kinds pass through. Its own implementation logs each
    error with its message, which may hold the caller's input, so it is not called.
    """

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        if execution_context is not None:
            self.see_errors(
                errors,
                document=execution_context.graphql_document,
                variables=execution_context.variables,
            )

    def see_errors(
        self,
        errors: list[GraphQLError],
        *,
        document: DocumentNode | None,
        variables: Mapping[str, Any] | None,
    ) -> None:
        """Called with the request's errors, in place; the default does nothing."""


class AcyclicExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """strawberry's graphql-core executor, without its reference cycle once done.

    graphql-core's executor keeps ``async_helpers``, two of its own bound methods, so
    every executor is a cycle. Through ``context_value`` it holds the request's whole
    context (its loader, plan and answers), so each operation on this path left all of
    that to CPython's cyclic collector instead of freeing it when the request ended,
    and under load the full collections that followed stopped the event loop for
    15-50 ms several times a second (bench/README.md, "Overload"). Once a plain result
    is complete nothing calls the helpers again, so they are dropped then. An
    incremental (@defer/@stream) result keeps them: its later payloads still run.
    """

    def execute_operation(self, serially: bool | None = None) -> Any:
        result = super().execute_operation(serially)
        if self.is_awaitable(result):
            return self._detached_after(result)
        self._detach(result)
        return result

    async def _detached_after(self, pending: Any) -> Any:
        result = await pending
        self._detach(result)
        return result

    def _detach(self, result: object) -> None:
        if isinstance(result, GraphQLExecutionResult):
            self.async_helpers = _DETACHED


#: Work handed to a finished executor's helpers, kept referenced until it settles.
_settling: set[asyncio.Future[list[Any]]] = set()


def _settle_detached(values: Sequence[Any]) -> None:
    """``track`` of a finished executor: settle the awaitables in the background, as the
    executor would, without holding it (only an abstract type's asynchronous
    ``is_type_of`` hands work over; none of the gateway's types has one)."""
    awaitables = [value for value in values if inspect.isawaitable(value)]
    if awaitables:
        future = asyncio.gather(*awaitables, return_exceptions=True)
        _settling.add(future)
        future.add_done_callback(_settling.discard)


def _gather_detached(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
    """``gather`` of a finished executor: what the executor's own does."""
    return gather_with_cancel(*values)


#: What a finished executor holds instead of helpers bound to itself.
_DETACHED: Final = GraphQLResolveInfoHelpers(gather=_gather_detached, track=_settle_detached)


class MaskingExtension(MaskErrors):
    """MaskErrors: each error of the result for which ``should_mask`` is true is replaced
    by ``mask(error)``, once the operation is done (``on_operation``'s end).

    A subclass that overrides ``on_operation`` must ``yield from super().on_operation()``.
    """

    def __init__(
        self,
        *,
        should_mask: Callable[[GraphQLError], bool],
        mask: Callable[[GraphQLError], GraphQLError],
    ) -> None:
        super().__init__(should_mask_error=should_mask)
        self._mask = mask

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return self._mask(error)

    def _process_result(self, result: object) -> None:
        # MaskErrors checks a runtime Protocol with isinstance, which is slow on every
        # request (Python 3.11); both result types it accepts carry ``errors``.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]


def use_parsed_document(context: ExecutionContext, document: DocumentNode) -> None:
    """From an ``on_parse`` hook (before its yield): strawberry uses ``document`` and
    does not parse the query itself."""
    context.graphql_document = document


def use_validation_errors(context: ExecutionContext, errors: list[GraphQLError]) -> None:
    """From an ``on_validate`` hook (before its yield): strawberry answers with ``errors``
    (none: the document is valid) and does not validate the document itself."""
    context.pre_execution_errors = errors


def refuse_execution(context: ExecutionContext, errors: list[GraphQLError]) -> None:
    """From an ``on_execute`` hook (before its yield): strawberry answers with ``errors``
    (and ``data: null``) and does not execute the operation; no resolver runs."""
    context.result = GraphQLExecutionResult(data=None, errors=errors)


def withhold_field(obj: object, python_name: str, error: Exception) -> None:
    """Make the plain field ``python_name`` of ``obj`` fail with ``error`` when selected.

    No resolver runs for a plain field: strawberry reads it with ``getattr``, and
    graphql-core's ``complete_value`` raises a value that is an exception as that field's
    error (the spec's field error: null at its path, the rest answered). So a withheld
    field costs the callers who may see it nothing.
    """
    setattr(obj, python_name, error)
