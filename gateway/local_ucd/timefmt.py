"""RFC 3339 timestamps as the UCD reads and writes them (§4.8.1).

Events are stored as integer microseconds since the epoch (UTC) and rendered as
``YYYY-MM-DDTHH:MM:SSZ``, with the fraction (trailing zeros removed) only when not zero.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["is_rfc3339_z", "parse_rfc3339_us", "render_us", "to_us"]

# Date, 'T' (or 't'/' '? RFC 3339 allows 't' and, in notes, a space; we accept T/t only),
# time, optional fraction, and 'Z' or a numeric offset.
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_rfc3339_us(text: str) -> int | None:
    """Microseconds since the epoch, or ``None`` when ``text`` is not an RFC 3339 date-time.

    >>> parse_rfc3339_us("2025-01-11T00:35:20+03:00") == parse_rfc3339_us("2025-01-10T21:35:20Z")
    True
    """
    match = _RFC3339.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if int(second) > 60:
        return None
    try:
        # Leap second 60 is valid RFC 3339 but not a Python time: fold it into :59.
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            min(int(second), 59),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    if offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        off_h, off_m = int(offset[1:3]), int(offset[4:6])
        if off_h > 23 or off_m > 59:
            return None
        moment -= sign * timedelta(hours=off_h, minutes=off_m)
    micros = 0
    if fraction:
        digits = fraction[1:]
        # Microsecond precision (§4.8.1): extra digits are truncated.
        micros = int((digits + "000000")[:6])
    return to_us(moment) + micros


def is_rfc3339_z(text: str) -> bool:
    """An RFC 3339 date-time ending in ``Z`` (the ``date`` attribute type of §4.7.1)."""
    return text.endswith("Z") and parse_rfc3339_us(text) is not None


def to_us(moment: datetime) -> int:
    """A timezone-aware datetime as integer microseconds since the epoch."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def render_us(us: int) -> str:
    """``2025-01-10T21:35:20Z``, or ``2025-01-10T21:35:20.5Z`` with a fraction."""
    moment = _EPOCH + timedelta(microseconds=us)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"
