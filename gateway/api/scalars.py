"""The contract's two custom scalars: DateTime (RFC 3339, UTC out) and JSON.

Both are registered in ``StrawberryConfig.scalar_map`` (schema.py), which replaces
strawberry's built-in ``datetime`` scalar: strawberry's own serializes with
``isoformat()`` (``+00:00``), and the contract wants a trailing ``Z``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types.scalar import ScalarDefinition

__all__ = ["DATETIME_SCALAR", "JSON", "JSON_SCALAR", "format_datetime", "parse_datetime"]


def format_datetime(value: datetime) -> str:
    """RFC 3339 in UTC with ``Z``; fractions only when present (as the UCD renders, §4.8.1).

    >>> format_datetime(datetime(2025, 1, 10, 21, 35, 20, tzinfo=UTC))
    '2025-01-10T21:35:20Z'
    """
    if value.tzinfo is None:
        # Naive values only come from our own code, always meant as UTC.
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_datetime(value: object) -> datetime:
    """An RFC 3339 date-time with ``Z`` or an offset; a value without one is refused.

    >>> parse_datetime("2025-01-11T00:35:20+03:00").isoformat()
    '2025-01-10T21:35:20+00:00'
    """
    if not isinstance(value, str):
        raise ValueError("DateTime must be an RFC 3339 string, e.g. 2025-01-10T21:35:20Z")
    text = value.strip()
    # RFC 3339 needs the "T" (or a space) and an offset; fromisoformat alone would also
    # take a bare date or a naive time, which the UCD refuses (§3.1.3 timestamp.type(date)).
    if len(text) < 20 or text[10] not in "Tt ":
        raise ValueError(f"DateTime must be an RFC 3339 date-time: {value}")
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"DateTime must be an RFC 3339 date-time: {value}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"DateTime needs a time zone (Z or +hh:mm): {value}")
    return parsed.astimezone(UTC)


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
