"""The GraphQL schema; ``schema/schema.graphql`` is ``build_schema().as_str()``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cached_property, partial
from typing import Any

from graphql import DocumentNode, GraphQLError
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig

from gateway.api.mutation import Mutation
from gateway.api.one_of import refused_arguments
from gateway.api.query import Query
from gateway.api.scalars import DATETIME_SCALAR, JSON_SCALAR
from gateway.api.strawberry_internals import (
    AcyclicExecutionContext,
    CachedNameConverter,
    ErrorHookSchema,
    graphql_core_schema,
    one_of_type_names,
)
from gateway.error_pipeline import code_one_of_refusals

__all__ = ["GatewaySchema", "build_schema"]


class GatewaySchema(ErrorHookSchema):
    """strawberry's schema, with @oneOf refusals turned into BAD_USER_INPUT (one_of.py)
    and without strawberry's error logging.

    ``see_errors`` sees every error of a request (validation and execution) before the
    response is built. strawberry's own error hook logs each error with its message and
    the query text, and both may hold the caller's emails and phone numbers
    (``user(key: {email: ...})``), so it is not called: unexpected errors are logged, by
    id and without their message, where they are masked (gateway/error_pipeline.py);
    UCD failures by the client.
    """

    @cached_property
    def one_of_types(self) -> frozenset[str]:
        return one_of_type_names(self)

    def see_errors(
        self,
        errors: list[GraphQLError],
        *,
        document: DocumentNode | None,
        variables: Mapping[str, Any] | None,
    ) -> None:
        code_one_of_refusals(
            errors,
            partial(
                refused_arguments,
                schema=graphql_core_schema(self),
                one_of_types=self.one_of_types,
                document=document,
                variables=variables,
            ),
        )


def build_schema() -> GatewaySchema:
    """A fresh schema. The app adds its per-settings extensions (limits, caches)."""
    return GatewaySchema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(
            scalar_map={datetime: DATETIME_SCALAR, JSON: JSON_SCALAR},
            name_converter=CachedNameConverter(),
        ),
        execution_context_class=AcyclicExecutionContext,
    )
