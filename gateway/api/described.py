"""Typed decorators for resolvers with a description.

``@strawberry.field(description=...)`` picks strawberry's keyword-only overload, which
returns ``Any`` and makes mypy --strict call the resolver untyped. Passing the resolver
positionally picks the typed overload; these wrappers do that and keep the function's
type for the type checker (at runtime the class attribute is strawberry's field, exactly
what the decorator form produces).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import strawberry

__all__ = ["described_field", "described_mutation"]

F = TypeVar("F", bound=Callable[..., Any])


def described_field(description: str) -> Callable[[F], F]:
    def wrap(resolver: F) -> F:
        return cast(F, strawberry.field(resolver, description=description))

    return wrap


def described_mutation(description: str) -> Callable[[F], F]:
    def wrap(resolver: F) -> F:
        return cast(F, strawberry.mutation(resolver, description=description))

    return wrap
