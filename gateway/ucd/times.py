"""Instants on the wire: RFC 3339 date-times and whole epoch seconds (§3.2.1, §4.8.1).

One parser and one rounding for everything the gateway compares in time: the DateTime
scalar's input, the events' ``created_date`` the resolvers filter on, the ``last`` safety
check of the read path, and the ``start_date``/``end_date`` of E2 and E3 requests. Two
parsers used to disagree there (``"2025-01-10T10:00Z"`` was an instant to one and
garbage to the other), and so did two roundings (``int(ts)`` truncates towards zero,
``math.floor`` does not: -0.5 s is second 0 to one and second -1 to the other).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = ["epoch_seconds", "format_datetime", "parse_datetime", "parse_instant"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND: Final = timedelta(seconds=1)


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


def parse_instant(value: object) -> datetime | None:
    """``parse_datetime`` for values read from the UCD: None instead of an error.

    >>> parse_instant("2025-01-10T10:00:00z") is not None, parse_instant("2025-01-10T10:00Z")
    (True, None)
    >>> parse_instant(None), parse_instant(1736503200)
    (None, None)
    """
    if not isinstance(value, str):
        # Most values that are not instants are absent ones (every user without a
        # birthday): ~70 ns here against ~400 ns through parse_datetime's ValueError.
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        return None


def epoch_seconds(value: datetime) -> int:
    """floor(epoch seconds) of an instant, exactly (no float on the way).

    The UCD compares ``floor(event seconds)`` with inclusive integer bounds (§3.2.3), so
    flooring both ends of a window asks for a superset of it; the resolvers trim the rest.
    ``value.timestamp()`` goes through a float, which rounds .999999 up to the next second
    from year ~2300 on, and ``int()`` of it truncates instants before 1970 towards zero.

    >>> epoch_seconds(datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC))
    -1
    """
    return (value - _EPOCH) // _SECOND
