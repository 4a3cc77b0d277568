"""An operation's root fields and coerced variables, worked out once per operation for
the budget, the authorization and the audit trail (gateway/api/root_fields.py)."""

from __future__ import annotations

import contextvars
from typing import Any

import pytest
from graphql import parse
from graphql.execution import values

from gateway.api import root_fields as module
from gateway.api.root_fields import root_fields
from gateway.api.schema import build_schema
from gateway.api.strawberry_internals import graphql_core_schema

SCHEMA = graphql_core_schema(build_schema())
UPSERT = parse(
    "mutation($i: UpsertUsersInput!) { a: upsertUsers(input: $i) { failureCount } __typename }"
)


@pytest.fixture
def coercions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the variables were coerced."""
    counted: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        counted.append(1)
        return values.get_variable_values(*args, **kwargs)

    monkeypatch.setattr(module, "get_variable_values", counting)
    return counted


def _variables() -> dict[str, Any]:
    return {"i": {"users": [{"key": {"uuid": "u-1"}, "attributes": {"name": "Ada"}}]}}


def test_one_operation_coerces_its_variables_once(coercions: list[int]) -> None:
    def one_operation() -> None:
        variables = _variables()
        first = root_fields(SCHEMA, UPSERT, None, variables)
        assert first is not None
        assert list(first.fields) == ["a", "__typename"]
        assert first.root is SCHEMA.mutation_type
        assert first.variables.coerced["i"]["users"][0]["attributes"] == {"name": "Ada"}
        assert root_fields(SCHEMA, UPSERT, None, variables) is first
        assert root_fields(SCHEMA, UPSERT, None, variables) is first

    contextvars.copy_context().run(one_operation)
    assert coercions == [1]


def test_other_variables_or_another_context_are_coerced_again(coercions: list[int]) -> None:
    def two_operations() -> None:
        first = root_fields(SCHEMA, UPSERT, None, _variables())
        second = root_fields(SCHEMA, UPSERT, None, _variables())  # equal, not the same
        assert first is not second
        assert first is not None
        assert second is not None
        assert first.variables.coerced == second.variables.coerced

    contextvars.copy_context().run(two_operations)
    contextvars.copy_context().run(two_operations)
    assert coercions == [1, 1, 1, 1]


def test_an_operation_that_cannot_run_has_no_root_fields(coercions: list[int]) -> None:
    def refused() -> None:
        assert root_fields(SCHEMA, UPSERT, "Other", _variables()) is None  # no such operation
        assert root_fields(SCHEMA, UPSERT, None, {"i": {"users": "no"}}) is None  # bad variables

    contextvars.copy_context().run(refused)
    assert coercions == [1]  # no operation: nothing to coerce
