"""Event timestamps (§4.8.1): RFC 3339 date-times to epoch microseconds, fast.

This runs once per event (a million per benchmark), so it avoids datetime arithmetic:
the day number of each date is computed once (``datetime.date`` validates it) and cached,
and the common ``YYYY-MM-DDTHH:MM:SSZ`` form of an already seen date is read by slicing.
"""

from __future__ import annotations

import re
from datetime import date

__all__ = ["fast_timestamp", "parse_timestamp"]

# The RFC 3339 date-time of timefmt.parse_rfc3339_us, ASCII digits only.
_TIMESTAMP_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
#: "YYYY-MM-DD" -> days since the epoch, or None for an impossible date (bounded cache).
_DAYS: dict[str, int | None] = {}
_DAYS_LIMIT = 100_000
#: "HH:MM" -> microseconds and "SS" -> microseconds, for every valid value (1,440 and 60).
_MINUTES_US = {
    f"{h:02d}:{m:02d}": (h * 3_600 + m * 60) * 1_000_000 for h in range(24) for m in range(60)
}
_SECONDS_US = {f"{s:02d}": s * 1_000_000 for s in range(60)}
_DAY_US = 86_400_000_000


def parse_timestamp(text: str) -> int | None:
    """Epoch microseconds of an RFC 3339 date-time with ``Z`` or an offset, else ``None``.

    Same instants as :func:`gateway.local_ucd.timefmt.parse_rfc3339_us`, faster; a leap
    second (``:60``) counts as ``:59``, like there.
    """
    match = _TIMESTAMP_RE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    key = text[:10]
    days = _DAYS.get(key, -1)
    if days == -1:
        try:
            days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
        except ValueError:
            days = None
        if len(_DAYS) >= _DAYS_LIMIT:
            _DAYS.clear()
        _DAYS[key] = days
    if days is None:
        return None
    h, m, s = int(hour), int(minute), int(second)
    if h > 23 or m > 59 or s > 60:
        return None
    seconds = days * 86_400 + h * 3_600 + m * 60 + (59 if s == 60 else s)
    if offset != "Z" and offset != "z":
        off_h, off_m = int(offset[1:3]), int(offset[4:6])
        if off_h > 23 or off_m > 59:
            return None
        shift = off_h * 3_600 + off_m * 60
        seconds -= shift if offset[0] == "+" else -shift
    micros = seconds * 1_000_000
    if fraction:
        # Microsecond precision (§4.8.1): extra digits are truncated.
        micros += int((fraction[1:] + "000000")[:6])
    return micros


def fast_timestamp(text: str) -> int | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` of an already seen date, by slicing; else ``None``.

    ``None`` only means "not this fast form": :func:`parse_timestamp` decides then.
    Example: ``2025-05-01T10:11:12Z`` -> days of ``2025-05-01`` (cached by an earlier
    parse) + ``_MINUTES_US["10:11"]`` + ``_SECONDS_US["12"]``.
    """
    if len(text) != 20 or text[10] != "T" or text[16] != ":" or text[19] != "Z":
        return None
    days = _DAYS.get(text[:10])  # only dates parse_timestamp validated are cached
    minutes = _MINUTES_US.get(text[11:16])  # the key holds the ":" at index 13
    seconds = _SECONDS_US.get(text[17:19])
    if days is None or minutes is None or seconds is None:
        return None
    return days * _DAY_US + minutes + seconds
