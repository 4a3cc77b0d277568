"""The contract's two custom scalars: DateTime (RFC 3339, UTC out) and JSON.

Both are registered in ``StrawberryConfig.scalar_map`` (schema.py), which replaces
strawberry's built-in ``datetime`` scalar: strawberry's own serializes with
``isoformat()`` (``+00:00``), and the contract wants a trailing ``Z``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types.scalar import ScalarDefinition

# The one RFC 3339 parser and formatter: the UCD's answers are read with the same ones.
from gateway.ucd.times import format_datetime, parse_datetime

__all__ = ["DATETIME_SCALAR", "JSON", "JSON_SCALAR", "format_datetime", "parse_datetime"]


def _serialize_datetime(value: Any) -> str:
    if isinstance(value, datetime):
        return format_datetime(value)
    # A UCD string passed through untouched: normalise it the same way.
    return format_datetime(parse_datetime(value))


DATETIME_SCALAR: ScalarDefinition = strawberry.scalar(
    name="DateTime",
    description="Date and time in RFC 3339. Returned in UTC with a trailing Z.",
    serialize=_serialize_datetime,
    parse_value=parse_datetime,
)

JSON_SCALAR: ScalarDefinition = strawberry.scalar(
    name="JSON",
    description="Any JSON value: string, number, boolean, null, list or object.",
    serialize=lambda value: value,
    parse_value=lambda value: value,
)
