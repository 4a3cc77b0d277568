"""Pins every strawberry internal the gateway uses (gateway/api/strawberry_internals.py).

Each test names the behaviour the gateway relies on and where; when a strawberry
upgrade breaks one, the failure says which wrapper to fix. They run against a small
schema of their own, so they test strawberry, not the gateway's schema.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import orjson
import pytest
import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    ObjectValueNode,
    OperationDefinitionNode,
    parse,
    specified_rules,
)
from graphql import validate as graphql_core_validate
from starlette.requests import Request
from strawberry.asgi import GraphQL
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.http import GraphQLRequestData
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter
from strawberry.types import ExecutionResult

from gateway.api.names import ATTRIBUTE_INPUT_WRITE_NAMES, EVENT_INPUT_PARAMS, KEY_FIELDS
from gateway.api.strawberry_internals import (
    ERROR_LOGGER_NAME,
    AcyclicExecutionContext,
    CachedNameConverter,
    ErrorHookSchema,
    MaskingExtension,
    RequestRefused,
    graphql_core_schema,
    graphql_name,
    is_one_of_refusal,
    one_of_type_names,
    raw_info,
    refuse_execution,
    use_parsed_document,
    use_validation_errors,
    validate,
    withhold_field,
)

# --- a small schema ------------------------------------------------------------------------

seen_infos: list[GraphQLResolveInfo[Any]] = []


@strawberry.input(one_of=True)
class Pick:
    first_name: str | None = strawberry.UNSET
    last_name: str | None = strawberry.UNSET


@strawberry.type
class Person:
    first_name: str

    @strawberry.field
    def friend(self) -> Person | None:
        return None


@strawberry.type
class Query:
    @strawberry.field
    def person(self, info: strawberry.Info[Any, Any], pick: Pick) -> Person:
        seen_infos.append(raw_info(info))
        return Person(first_name=pick.first_name or pick.last_name or "")

    # Nullable, so one failing field does not stop the others from running.
    @strawberry.field
    def boom(self) -> str | None:
        raise ValueError("boom for ada@example.com")

    @strawberry.field
    def refused(self) -> str | None:
        raise GraphQLError("refused on purpose")

    @strawberry.field
    def a(self) -> str:
        return "a"

    @strawberry.field
    def b(self) -> str:
        return "b"


def small_schema(**kwargs: Any) -> strawberry.Schema:
    return strawberry.Schema(Query, **kwargs)


TWO_KEYS = '{ person(pick: {firstName: "a", lastName: "b"}) { firstName } }'
ONE_OF_MESSAGE = "OneOf Input Object 'Pick' must specify exactly one key."


def run(schema: strawberry.Schema, query: str, **variables: Any) -> ExecutionResult:
    return schema.execute_sync(query, variable_values=variables or None)


# --- raw_info ------------------------------------------------------------------------------


def test_raw_info_is_graphql_cores_resolve_info() -> None:
    """selection.py reads field_nodes, fragments and schema; mutation.py reads return_type."""
    schema = small_schema()
    seen_infos.clear()
    result = run(
        schema,
        'query { person(pick: {firstName: "Ada"}) { ...F } } fragment F on Person { firstName }',
    )
    assert result.errors is None, result.errors
    (info,) = seen_infos
    # strawberry hands graphql-core a NamedTuple of its own with GraphQLResolveInfo's
    # fields (plus operation_extensions), so the fields are what is pinned, not the class.
    missing = set(GraphQLResolveInfo._fields) - set(type(info)._fields)
    assert not missing, f"raw_info(info) lacks GraphQLResolveInfo fields {missing}"
    assert info.field_name == "person"
    assert isinstance(info.return_type, GraphQLNonNull), "raw_info(info).return_type changed"
    assert isinstance(info.return_type.of_type, GraphQLObjectType)
    assert info.return_type.of_type.name == "Person"
    assert [node.name.value for node in info.field_nodes] == ["person"]
    assert list(info.fragments) == ["F"], "raw_info(info).fragments lost the fragments"
    assert info.schema is graphql_core_schema(schema)


# --- graphql_core_schema and validate ----------------------------------------------------


def test_graphql_core_schema_is_the_schema_strawberry_built() -> None:
    schema = small_schema()
    core = graphql_core_schema(schema)
    assert isinstance(core, GraphQLSchema), "graphql_core_schema(schema) is not a GraphQLSchema"
    assert core.query_type is not None
    assert core.query_type.name == "Query"
    assert {"Query", "Person", "Pick"} <= set(core.type_map)
    assert set(core.query_type.fields) == {"person", "boom", "refused", "a", "b"}


def test_validate_answers_what_graphql_core_answers() -> None:
    core = graphql_core_schema(small_schema())
    rules = tuple(specified_rules)
    for query in ["{ a }", "{ nope }", "{ person { firstName } }", "query($x: Int) { a }"]:
        document = parse(query)
        ours = [e.message for e in validate(core, document, rules)]
        theirs = [e.message for e in graphql_core_validate(core, document, rules)]
        assert ours == theirs, f"validate() and graphql-core differ on {query!r}"


def test_validate_without_suggestions_runs_strawberrys_rules_too() -> None:
    """limits.py validates with hide_suggestions when introspection is off: the same
    errors as strawberry's validation (its @oneOf rule included), minus the suggestion."""
    core = graphql_core_schema(small_schema())
    rules = tuple(specified_rules)
    for query in ["{ a }", "query($x: Int) { a }", TWO_KEYS, "{ person { firstNam } }"]:
        document = parse(query)
        shown = [e.message for e in validate(core, document, rules)]
        hidden = [e.message for e in validate(core, document, rules, hide_suggestions=True)]
        assert hidden == [m.partition(" Did you mean")[0] for m in shown], query
    (error,) = validate(core, parse("{ b2 }"), rules)
    assert error.message == "Cannot query field 'b2' on type 'Query'. Did you mean 'b'?"
    (error,) = validate(core, parse("{ b2 }"), rules, hide_suggestions=True)
    assert error.message == "Cannot query field 'b2' on type 'Query'."


def test_validate_refuses_a_one_of_literal_with_the_object_as_its_node() -> None:
    """one_of.py finds the refused argument by the error's node and message; graphql-core
    alone lets the literal through (strawberry's own rule refuses it)."""
    core = graphql_core_schema(small_schema())
    document = parse(TWO_KEYS)
    assert graphql_core_validate(core, document, specified_rules) == []
    (error,) = validate(core, document, tuple(specified_rules))
    assert error.message == ONE_OF_MESSAGE, "strawberry's @oneOf message changed"
    assert is_one_of_refusal(error)
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    (field,) = operation.selection_set.selections
    assert isinstance(field, FieldNode)
    (argument,) = field.arguments or ()
    assert isinstance(argument.value, ObjectValueNode)
    assert error.nodes is not None
    assert error.nodes[0] is argument.value, "the @oneOf error's node is not the literal"


def test_a_one_of_variable_is_refused_at_execution_without_node_or_path() -> None:
    """one_of.py traces such an error to the variable's argument (it carries neither)."""
    result = run(
        small_schema(),
        "query($p: Pick!) { person(pick: $p) { firstName } }",
        p={"firstName": "a", "lastName": "b"},
    )
    assert result.errors is not None
    (error,) = result.errors
    assert error.message == ONE_OF_MESSAGE
    assert is_one_of_refusal(error)
    assert (error.nodes, error.path) == (None, None)
    assert not (error.extensions or {}).get("code"), "strawberry now codes @oneOf errors"


def test_other_validation_errors_are_not_one_of_refusals() -> None:
    core = graphql_core_schema(small_schema())
    errors = validate(core, parse("{ nope person { firstName } }"), tuple(specified_rules))
    assert len(errors) == 2
    assert not any(is_one_of_refusal(error) for error in errors)


def test_one_of_type_names_are_the_one_of_inputs() -> None:
    assert one_of_type_names(small_schema()) == frozenset({"Pick"})


# --- naming ------------------------------------------------------------------------------

#: The GraphQL names of the Python names gateway/api/names.py converts that have an
#: underscore (the others stay as they are): the fields of AttributesInput, EventInput
#: and UserKey the gateway pairs with UCD names.
CAMEL_CASED = {
    "phone_number": "phoneNumber",
    "email_optin": "emailOptin",
    "sms_optin": "smsOptin",
    "whatsapp_optin": "whatsappOptin",
    "gdpr_optin": "gdprOptin",
    "static_segment_ids": "staticSegmentIds",
    "product_id": "productId",
    "product_name": "productName",
    "unit_price": "unitPrice",
    "unit_sale_price": "unitSalePrice",
    "event_group_id": "eventGroupId",
    "insider_id": "insiderId",
}


def test_graphql_name_is_strawberrys_name_for_the_names_the_gateway_converts() -> None:
    converted = {*ATTRIBUTE_INPUT_WRITE_NAMES, *EVENT_INPUT_PARAMS, *KEY_FIELDS}
    assert set(CAMEL_CASED) <= converted, "a row of CAMEL_CASED is no longer converted"
    assert {name: graphql_name(name) for name in converted} == {
        name: CAMEL_CASED.get(name, name) for name in converted
    }
    # The same naming strawberry's schema uses (Person.first_name is firstName).
    assert "firstName: String!" in small_schema().as_str()
    assert graphql_name("first_name") == "firstName"


# --- the name converter hook -------------------------------------------------------------


def test_a_name_converter_names_fields_and_arguments_through_apply_naming_config() -> None:
    class Upper(NameConverter):
        def apply_naming_config(self, name: str) -> str:
            return name.upper()

    sdl = small_schema(config=StrawberryConfig(name_converter=Upper())).as_str()
    assert "PERSON(PICK: Pick!): Person!" in sdl, "apply_naming_config no longer names fields"
    assert "FIRST_NAME: String" in sdl


def test_the_cached_name_converter_names_as_strawberry_does_and_is_asked_per_request() -> None:
    asked: list[str] = []
    converted: list[str] = []

    class CountingBase(NameConverter):
        """Under the cache in the method order: counts the conversions actually run."""

        def apply_naming_config(self, name: str) -> str:
            converted.append(name)
            return super().apply_naming_config(name)

    class Counting(CachedNameConverter, CountingBase):
        """Over the cache: counts every time strawberry asks."""

        def apply_naming_config(self, name: str) -> str:
            asked.append(name)
            return super().apply_naming_config(name)

    cached = small_schema(config=StrawberryConfig(name_converter=Counting()))
    assert cached.as_str() == small_schema().as_str()
    asked.clear()
    query = '{ person(pick: {firstName: "Ada"}) { firstName } }'
    for _ in range(2):
        result = run(cached, query)
        assert result.errors is None, result.errors
    # Converting the arguments names their fields again, on every request: the cache's why.
    assert asked.count("first_name") >= 2, "strawberry no longer names arguments per request"
    # ... and each distinct name was converted once, however often it was asked for.
    assert converted, "the cache no longer calls the base converter"
    assert sorted(set(converted)) == sorted(converted), "a name was converted twice"
    assert "first_name" in converted


# --- the error hook ----------------------------------------------------------------------


@pytest.fixture
def strawberry_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> pytest.LogCaptureFixture:
    """strawberry's error log as it writes it: without the filter the app installs
    process-wide (an app built by an earlier test in this worker would hide records)."""
    monkeypatch.setattr(logging.getLogger(ERROR_LOGGER_NAME), "filters", [])
    caplog.set_level(logging.ERROR, logger=ERROR_LOGGER_NAME)
    return caplog


class Recording(ErrorHookSchema):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(Query, **kwargs)
        self.seen: list[tuple[list[str], DocumentNode | None, Any]] = []

    def see_errors(self, errors: list[GraphQLError], *, document: Any, variables: Any) -> None:
        self.seen.append(([e.message for e in errors], document, variables))


async def test_the_error_hook_sees_validation_and_execution_errors_with_the_request() -> None:
    schema = Recording()
    await schema.execute("{ nope }")
    await schema.execute(
        "query($p: Pick!) { person(pick: $p) { firstName } boom }",
        variable_values={"p": {"firstName": "Ada"}},
    )
    (validation, document, _), (execution, _, variables) = schema.seen
    assert validation == ["Cannot query field 'nope' on type 'Query'."]
    assert isinstance(document, DocumentNode), "the hook no longer gets the parsed document"
    assert execution == ["boom for ada@example.com"]
    assert variables == {"p": {"firstName": "Ada"}}, "the hook lost the request's variables"


async def test_the_error_hook_sees_errors_before_masking_and_replaces_strawberrys_log(
    strawberry_log: pytest.LogCaptureFixture,
) -> None:
    masking = MaskingExtension(should_mask=lambda e: True, mask=lambda e: GraphQLError("masked"))
    schema = Recording(extensions=[lambda: masking])
    result = await schema.execute("{ boom }")
    assert [e.message for e in result.errors or ()] == ["masked"]
    assert schema.seen[0][0] == ["boom for ada@example.com"], "the hook ran after masking"
    assert strawberry_log.records == []


async def test_strawberry_logs_error_messages_to_the_logger_the_app_silences(
    strawberry_log: pytest.LogCaptureFixture,
) -> None:
    """gateway/app.py drops this logger's records: they carry the caller's input."""
    await small_schema().execute("{ boom }")
    assert [r.name for r in strawberry_log.records] == [ERROR_LOGGER_NAME]
    assert "ada@example.com" in strawberry_log.text


# --- masking -------------------------------------------------------------------------------


def test_masking_replaces_the_errors_it_is_told_to_and_keeps_the_others() -> None:
    masked: list[str] = []

    def mask(error: GraphQLError) -> GraphQLError:
        masked.append(error.message)
        return GraphQLError("masked", path=error.path, extensions={"code": "X"})

    def should_mask(error: GraphQLError) -> bool:
        return isinstance(error.original_error, ValueError)

    schema = small_schema(extensions=[lambda: MaskingExtension(should_mask=should_mask, mask=mask)])
    result = run(schema, "{ boom refused }")
    assert masked == ["boom for ada@example.com"]
    by_path = {tuple(e.path or ()): e for e in result.errors or ()}
    assert by_path[("boom",)].message == "masked"
    assert by_path[("boom",)].extensions == {"code": "X"}
    assert by_path[("refused",)].message == "refused on purpose"


def test_masking_runs_through_mask_errors_process_result_hook() -> None:
    """MaskingExtension overrides MaskErrors._process_result to skip a slow isinstance
    check; the override must be what strawberry calls, for plain results too."""
    assert callable(getattr(MaskErrors, "_process_result", None)), "MaskErrors lost _process_result"
    assert callable(getattr(MaskErrors, "_process_errors", None)), "MaskErrors lost _process_errors"
    calls: list[object] = []

    class Spy(MaskingExtension):
        def _process_result(self, result: object) -> None:
            calls.append(result)
            super()._process_result(result)

    spy = Spy(should_mask=lambda e: True, mask=lambda e: GraphQLError("masked"))
    result = run(small_schema(extensions=[lambda: spy]), "{ nope }")
    assert len(calls) == 1, "MaskErrors.on_operation no longer calls _process_result"
    assert [e.message for e in result.errors or ()] == ["masked"]


# --- an extension's own parse and validation ---------------------------------------------


def _extension(
    on_parse: Callable[[SchemaExtension], None] | None = None,
    on_validate: Callable[[SchemaExtension], None] | None = None,
) -> SchemaExtension:
    class Own(SchemaExtension):
        def on_parse(self) -> Iterator[None]:
            if on_parse is not None:
                on_parse(self)
            yield

        def on_validate(self) -> Iterator[None]:
            if on_validate is not None:
                on_validate(self)
            yield

    return Own()


def test_a_document_given_in_on_parse_is_used_instead_of_parsing_the_query() -> None:
    own = _extension(
        on_parse=lambda ext: use_parsed_document(ext.execution_context, parse("{ b }"))
    )
    result = run(small_schema(extensions=[lambda: own]), "{ a }")
    assert result.data == {"b": "b"}, "strawberry parsed the query despite the given document"


def test_errors_given_in_on_validate_replace_strawberrys_validation() -> None:
    refused = GraphQLError("refused by the extension")
    own = _extension(
        on_validate=lambda ext: use_validation_errors(ext.execution_context, [refused])
    )
    result = run(small_schema(extensions=[lambda: own]), "{ a }")
    assert result.errors == [refused]
    valid = _extension(on_validate=lambda ext: use_validation_errors(ext.execution_context, []))
    result = run(small_schema(extensions=[lambda: valid]), "{ a nope }")
    # graphql-core's executor skips the unknown field: validation did not run.
    assert (result.data, result.errors) == ({"a": "a"}, None), "strawberry validated anyway"


# --- an extension's refusal to execute, and a resolver's arguments ------------------------


class _Refusing(SchemaExtension):
    refused: ClassVar[GraphQLError] = GraphQLError("over the budget")
    ran: ClassVar[list[str]] = []

    def on_execute(self) -> Iterator[None]:
        refuse_execution(self.execution_context, [self.refused])
        yield


def test_a_result_given_in_on_execute_is_answered_and_nothing_executes() -> None:
    """gateway/api/budget.py refuses an operation over the UCD-call budget this way."""

    @strawberry.type
    class Counting:
        @strawberry.field
        def a(self) -> str:
            _Refusing.ran.append("a")
            return "a"

    result = strawberry.Schema(Counting, extensions=[_Refusing]).execute_sync("{ a }")
    assert (result.data, result.errors) == (None, [_Refusing.refused])
    assert _Refusing.ran == [], "strawberry executed the operation despite the given result"


def test_an_extensions_results_are_the_responses_extensions() -> None:
    """``get_results`` is how the gateway adds ``extensions.cost`` (gateway/limits.py)."""

    class Cost(SchemaExtension):
        def get_results(self) -> dict[str, Any]:
            return {"cost": 1}

    result = small_schema(extensions=[Cost]).execute_sync("{ a }")
    assert result.extensions == {"cost": 1}


# --- RequestRefused ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body", "status"),
    [
        pytest.param("PUT", b"{}", 405, id="method"),
        pytest.param("POST", b"{", 400, id="not-json"),
        pytest.param("GET", b"", 404, id="ide-off"),
    ],
)
async def test_strawberrys_view_refuses_requests_by_raising_request_refused(
    method: str, body: bytes, status: int
) -> None:
    """app.py's view catches RequestRefused around ``run`` to answer in the error shape."""
    view = GraphQL[Any, None](small_schema(), graphql_ide=None)
    scope = {
        "type": "http",
        "method": method,
        "path": "/graphql",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"accept", b"text/html")],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    with pytest.raises(RequestRefused) as refused:
        await view.run(Request(scope, receive))
    assert refused.value.status_code == status
    assert refused.value.reason


async def test_strawberrys_view_runs_a_batch_through_execute_single_with_one_context() -> None:
    """app.py's view batches by returning a list from ``parse_http_body`` (without
    strawberry's batching config, whose refusals say less), and resolves each operation's
    persisted document in ``execute_single``, which strawberry calls per operation, with
    keywords only and the request's one context (so the operations share dataloaders)."""
    calls: list[tuple[str | None, Any]] = []

    class View(GraphQL[Any, None]):
        async def parse_http_body(self, request: Any) -> Any:
            return [GraphQLRequestData(q, None, None, None) for q in ("{ a: __typename }", None)]

        async def get_context(self, request: Any, response: Any) -> Any:
            return object()

        async def execute_single(  # type: ignore[override]
            self, *, request_data: GraphQLRequestData, **kwargs: Any
        ) -> ExecutionResult:
            calls.append((request_data.query, kwargs["context"]))
            if request_data.query is None:
                return ExecutionResult(data=None, errors=[GraphQLError("named elsewhere")])
            result: ExecutionResult = await super().execute_single(
                request_data=request_data, **kwargs
            )
            return result

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/graphql",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"[]", "more_body": False}

    response = await View(small_schema(), graphql_ide=None).run(Request(scope, receive))
    assert orjson.loads(response.body) == [
        {"data": {"a": "Query"}},
        {"data": None, "errors": [{"message": "named elsewhere"}]},
    ]
    assert [query for query, _ in calls] == ["{ a: __typename }", None]
    assert calls[0][1] is calls[1][1]


# --- withhold_field (gateway/api/types.py: PII a caller may not read) ------------------------


@strawberry.type
class _Person:
    name: str | None
    city: str | None


@strawberry.type
class _PersonQuery:
    @strawberry.field
    def person(self) -> _Person:
        person = _Person(name="Ada", city="London")
        withhold_field(person, "name", PermissionError("name is withheld"))
        return person


async def test_a_withheld_plain_field_is_null_with_its_error_and_the_rest_answered() -> None:
    result = await strawberry.Schema(query=_PersonQuery).execute("{ person { name city } }")
    assert result.data == {"person": {"name": None, "city": "London"}}
    (error,) = result.errors or []
    assert error.path == ["person", "name"]
    assert error.message == "name is withheld"
    assert isinstance(error.original_error, PermissionError)


# --- AcyclicExecutionContext -----------------------------------------------------------------


class _Kept(AcyclicExecutionContext):
    """The executors made, kept for the test to look at."""

    made: ClassVar[list[AcyclicExecutionContext]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _Kept.made.append(self)


@strawberry.type
class _Slow:
    @strawberry.field
    async def answer(self) -> int:
        return 42


async def test_a_finished_executor_lets_go_of_itself_and_its_helpers_still_work() -> None:
    """graphql-core's executor holds two of its own bound methods (``async_helpers``): a
    reference cycle that kept each operation's context for the cyclic collector. Once
    the result is complete they are swapped for helpers that do the same work alone."""
    _Kept.made.clear()
    schema = strawberry.Schema(query=_Slow, execution_context_class=_Kept)
    result = await schema.execute("{ answer }")
    assert result.data == {"answer": 42}
    (executor,) = _Kept.made
    helpers = executor.async_helpers
    assert getattr(helpers.gather, "__self__", None) is None
    assert getattr(helpers.track, "__self__", None) is None

    async def value(n: int) -> int:
        return n

    assert await helpers.gather([value(1), value(2)]) == [1, 2]
    settled: list[int] = []

    async def note() -> None:
        settled.append(1)

    helpers.track([note(), "not awaitable"])
    for _ in range(3):
        await asyncio.sleep(0)
    assert settled == [1]
