"""The GraphQL schema; ``schema/schema.graphql`` is ``build_schema().as_str()``."""

from __future__ import annotations

from datetime import datetime
from functools import cached_property, partial

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter
from strawberry.types import ExecutionContext

from gateway.api.mutation import Mutation
from gateway.api.one_of import refused_arguments
from gateway.api.query import Query
from gateway.api.scalars import DATETIME_SCALAR, JSON_SCALAR
from gateway.error_pipeline import code_one_of_refusals

__all__ = ["GatewaySchema", "build_schema"]


class CachedNameConverter(NameConverter):
    """strawberry's name converter, remembering each Python name's GraphQL name.

    strawberry converts names again for every input field of every argument it
    coerces, on every request (``convert_arguments``); the answer never changes.
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


class GatewaySchema(strawberry.Schema):
    """strawberry's schema, with @oneOf refusals turned into BAD_USER_INPUT (one_of.py)
    and without strawberry's error logging.

    ``process_errors`` sees every error of a request (validation and execution) before
    the response is built, which is the one place both kinds pass through. strawberry's
    own ``process_errors`` logs each error with its message and the query text, and both
    may hold the caller's emails and phone numbers (``user(key: {email: ...})``), so it
    is not called: unexpected errors are logged, by id and without their message, where
    they are masked (gateway/error_pipeline.py); UCD failures by the client.
    """

    @cached_property
    def one_of_types(self) -> frozenset[str]:
        return frozenset(
            name
            for name, entry in self.schema_converter.type_map.items()
            if getattr(entry.definition, "is_one_of", False)
        )

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        if execution_context is not None:
            code_one_of_refusals(
                errors,
                partial(
                    refused_arguments,
                    schema=self._schema,
                    one_of_types=self.one_of_types,
                    document=execution_context.graphql_document,
                    variables=execution_context.variables,
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
    )
