"""Events of E1 (§4.8): checks, canonical de-duplication digest, retention and storage.

An event is checked and prepared once (:func:`check_events`), so the write path only
decides retention and inserts. Storage layout (shared with E2/E3, see LOCAL.md):
``params`` = the default parameters as sent at the root of ``event_params`` without
``source``, ``custom`` and null values ([LOCAL]: a null parameter is absent);
``custom`` = event-level ``custom`` merged under ``event_params.custom``;
``dedupe`` = 16-byte BLAKE2b of the canonical JSON of §4.8.3.

De-duplication against stored events is SQLite's job: ``INSERT OR IGNORE`` on
``UNIQUE(profile_pk, dedupe)``, so no event needs a SELECT.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson

from gateway.local_ucd.http import render_value

__all__ = [
    "EVENT_NAME_KEY",
    "PARAM_TYPES",
    "CatalogKey",
    "EventRow",
    "PreparedEvent",
    "check_events",
    "dedupe_digest",
    "insert_events",
    "parse_timestamp",
    "queue_events",
    "retention_days",
    "write_catalog",
]

# fullmatch, so a trailing newline does not pass as "$" would let it.
_EVENT_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
# Names repeat across a million events: remember the valid ones (bounded).
_VALID_NAMES: set[str] = set()
_VALID_NAMES_LIMIT = 10_000


def _valid_name(name: str) -> bool:
    if _EVENT_NAME_RE.fullmatch(name) is None:
        return False
    if len(_VALID_NAMES) >= _VALID_NAMES_LIMIT:
        _VALID_NAMES.clear()
    _VALID_NAMES.add(name)
    return True


#: The real UCD's key text, verbatim (upper case in the pattern, yet rejected; §3.1.3 note).
EVENT_NAME_KEY = "event_name.*.regexp(^[a-z0-9][a-zA-Z0-9._-]*$)"

#: Type-checked default parameters (§4.8.2); every other root key takes any JSON value.
PARAM_TYPES: dict[str, str] = {
    **dict.fromkeys(
        (
            "product_id",
            "name",
            "currency",
            "event_group_id",
            "url",
            "locale",
            "color",
            "size",
            "product_image_url",
            "session_id",
            "promotion_name",
            "source",
        ),
        "string",
    ),
    "taxonomy": "string_array",
    **dict.fromkeys(("unit_price", "unit_sale_price", "stock", "promotion_discount"), "number"),
    "quantity": "integer",
}

#: Parameters ``purchase`` and ``cart_page_view`` require, in the order of the messages.
REQUIRED_PARAMS: tuple[str, ...] = ("event_group_id", "currency", "unit_sale_price")
_REQUIRING_EVENTS = frozenset({"purchase", "cart_page_view"})

#: Retention on write (§4.8.4); other names (custom events too) keep 90 days.
_RETENTION_DAYS: dict[str, int] = {
    "purchase": 730,
    "confirmation_page_view": 730,
    **dict.fromkeys(
        ("lead_collected", "sign_up_confirmation", "email_delivered", "email_open", "email_click"),
        365,
    ),
}
_DEFAULT_RETENTION_DAYS = 90
_DAY_US = 86_400_000_000

# orjson's integer range; an integral float outside it keeps its float form in the digest.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


@dataclass(slots=True)
class PreparedEvent:
    """A checked event, ready to insert."""

    name: str
    ts_us: int
    source: str
    params: str  # JSON text
    custom: str  # JSON text
    dedupe: bytes
    #: (name, default parameter names, custom parameter names) for event_catalog (§3.9).
    catalog_key: tuple[str, tuple[str, ...], tuple[str, ...]]


def _param_type_ok(value: Any, type_name: str) -> bool:
    kind = type(value)
    if type_name == "string":
        return kind is str
    if type_name == "number":
        return kind is int or kind is float
    if type_name == "integer":
        return kind is int or (kind is float and value.is_integer())
    # string_array
    return kind is list and all(type(item) is str for item in value)


def _canonical(value: Any) -> Any:
    """Numbers by value (§2.4): an integral float becomes an int, so ``1.0`` digests as ``1``.

    Returns ``value`` itself when nothing changes (the common case), so the digest of an
    ordinary event costs one pass over its values and no copies.
    """
    kind = type(value)
    if kind is float:
        if value.is_integer() and _INT_MIN <= value <= _INT_MAX:
            return int(value)
        return value
    if kind is dict:
        return _canonical_map(value)
    if kind is list:
        changed: list[Any] | None = None
        for index, item in enumerate(value):
            item_kind = type(item)
            if item_kind is str or item_kind is int or item_kind is bool or item is None:
                continue
            new = _canonical(item)
            if new is not item:
                if changed is None:
                    changed = list(value)
                changed[index] = new
        return value if changed is None else changed
    return value


def _canonical_map(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    changed: dict[str, Any] | None = None
    for key, item in mapping.items():
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        new = _canonical(item)
        if new is not item:
            if changed is None:
                changed = dict(mapping)
            changed[key] = new
    return mapping if changed is None else changed


def dedupe_digest(
    name: str,
    ts_us: int,
    params: Mapping[str, Any],
    custom: Mapping[str, Any],
    source: str,
    *,
    plain: bool = False,
) -> bytes:
    """The identity of an event (§4.8.3): name, instant, and canonical parameters.

    Canonical JSON = keys sorted at every level, compact, numbers by value. ``plain``
    says the caller saw no value that canonicalising would change.
    """
    if plain:
        body = {**params, "custom": custom, "source": source}
    else:
        body = {**_canonical_map(params), "custom": _canonical_map(custom), "source": source}
    text = orjson.dumps([name, ts_us, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(text, digest_size=16).digest()


def retention_days(name: str, overrides: Mapping[str, int]) -> int:
    """Days an event of this name is kept on write; the ``event_retention_days`` setting wins."""
    days = overrides.get(name)
    if days is not None:
        return days
    return _RETENTION_DAYS.get(name, _DEFAULT_RETENTION_DAYS)


# The RFC 3339 date-time of timefmt.parse_rfc3339_us, ASCII digits only. This path runs
# once per event (a million per benchmark), so it avoids datetime arithmetic: the day
# number of each date is computed once (datetime.date validates it) and cached.
_TIMESTAMP_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAYS: dict[str, int | None] = {}
_DAYS_LIMIT = 100_000


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


def _custom_names_ok(custom: Mapping[str, Any]) -> bool:
    return all(1 <= len(key) <= 128 for key in custom)


_STRING_PARAMS = frozenset(key for key, kind in PARAM_TYPES.items() if kind == "string")
_NUMBER_PARAMS = frozenset(key for key, kind in PARAM_TYPES.items() if kind == "number")
_OTHER_TYPED_PARAMS = frozenset(PARAM_TYPES) - _STRING_PARAMS - _NUMBER_PARAMS


def _default_params(event_params: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The default parameters to store and the source, or ``None`` if a type is wrong.

    The stored parameters are those at the root of ``event_params`` without ``custom``
    and ``source``. [LOCAL] A null default parameter counts as absent. This is the hot
    path of E1: set operations pick the typed keys, so untyped keys cost nothing here.
    """
    source = None
    if "custom" in event_params or "source" in event_params:
        params = dict(event_params)
        params.pop("custom", None)
        source = params.pop("source", None)
        if source is not None and type(source) is not str:
            return None
    else:
        params = event_params  # not changed below: no copy needed
    if None in params.values():
        params = {key: value for key, value in params.items() if value is not None}
    keys = params.keys()
    for key in keys & _STRING_PARAMS:
        if type(params[key]) is not str:
            return None
    for key in keys & _NUMBER_PARAMS:
        kind = type(params[key])
        if kind is not int and kind is not float:
            return None
    for key in keys & _OTHER_TYPED_PARAMS:
        if not _param_type_ok(params[key], PARAM_TYPES[key]):
            return None
    return params, source or "api"


def _report_default_params(
    event_params: dict[str, Any], index: int, errors: list[tuple[str, str]]
) -> None:
    """The type errors of the default parameters, in the order they were sent."""
    for key, value in event_params.items():
        type_name = PARAM_TYPES.get(key)
        if type_name is not None and value is not None and not _param_type_ok(value, type_name):
            errors.append(
                (
                    f"events.{index}.event_params.{key}.type({type_name})",
                    f"{key} must be {type_name}: {render_value(value)}",
                )
            )


def _plain_values(mapping: Mapping[str, Any]) -> bool:
    """No value needs canonicalising: no integral float, and no container except a list
    of strings (``taxonomy``)."""
    for value in mapping.values():
        kind = type(value)
        if kind is float:
            if value.is_integer():
                return False
        elif kind is dict or (kind is list and not all(type(item) is str for item in value)):
            return False
    return True


def _report_custom_names(
    custom: Mapping[str, Any], where: str, errors: list[tuple[str, str]]
) -> None:
    for key in custom:
        if not 1 <= len(key) <= 128:
            errors.append((f"{where}.*.length(1,128)", f"invalid custom name: {key}"))


def _check_event(raw: Any, index: int, errors: list[tuple[str, str]]) -> PreparedEvent | None:
    """Check one event (§3.1.3 event rows); append ``(key suffix, message)`` on failure."""
    if type(raw) is not dict:
        errors.append(
            (f"events.{index}.type(object)", f"event must be object: {render_value(raw)}")
        )
        return None
    failed = False

    name = raw.get("event_name")
    name_ok = False
    if type(name) is not str:
        errors.append((f"events.{index}.event_name.required", "event_name is required"))
        failed = True
    elif name not in _VALID_NAMES and not _valid_name(name):
        errors.append((f"events.{index}.{EVENT_NAME_KEY}", f"invalid event name: {name}"))
        failed = True
    else:
        name_ok = True

    timestamp = raw.get("timestamp")
    ts_us: int | None = None
    if timestamp is None:  # [LOCAL] null counts as absent
        errors.append((f"events.{index}.timestamp.required", "timestamp is required"))
        failed = True
    else:
        ts_us = parse_timestamp(timestamp) if type(timestamp) is str else None
        if ts_us is None:
            errors.append(
                (
                    f"events.{index}.timestamp.type(date)",
                    f"timestamp must be date: {render_value(timestamp)}",
                )
            )
            failed = True

    event_params = raw.get("event_params")
    params: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    source = "api"
    params_ok = True
    # No value needs canonicalising for the digest (no integral float, no container):
    # the common case then digests the parameters as they are.
    plain = True
    if event_params is not None and type(event_params) is not dict:
        errors.append(
            (
                f"events.{index}.event_params.type(object)",
                f"event_params must be object: {render_value(event_params)}",
            )
        )
        failed = True
        params_ok = False
    elif event_params is not None:
        checked = _default_params(event_params)
        if checked is None:
            _report_default_params(event_params, index, errors)
            failed = True
        else:
            params, source = checked
            plain = _plain_values(params)
        params_custom = event_params.get("custom")
        if params_custom is not None:
            if type(params_custom) is not dict:
                errors.append(
                    (
                        f"events.{index}.event_params.custom.type(object)",
                        f"custom must be object: {render_value(params_custom)}",
                    )
                )
                failed = True
            elif not _custom_names_ok(params_custom):
                _report_custom_names(params_custom, f"events.{index}.event_params.custom", errors)
                failed = True
            else:
                custom = params_custom
                plain = plain and _plain_values(custom)

    # [LOCAL] an event-level "custom" (a sibling of event_params) is checked like
    # event_params.custom, under its own key; event_params.custom wins on a clash (§4.8.2).
    event_custom = raw.get("custom")
    if event_custom is not None:
        if type(event_custom) is not dict:
            errors.append(
                (
                    f"events.{index}.custom.type(object)",
                    f"custom must be object: {render_value(event_custom)}",
                )
            )
            failed = True
        elif not _custom_names_ok(event_custom):
            _report_custom_names(event_custom, f"events.{index}.custom", errors)
            failed = True
        elif event_custom:
            custom = {**event_custom, **custom}
            plain = plain and _plain_values(event_custom)

    if name_ok and params_ok and name in _REQUIRING_EVENTS:
        given = event_params if type(event_params) is dict else {}
        for param in REQUIRED_PARAMS:
            if given.get(param) is None:
                errors.append(
                    (
                        f"events.{index}.event_params.*.required",
                        f"{param} parameter is required on {name} event",
                    )
                )
                failed = True

    if failed or ts_us is None or not isinstance(name, str):
        return None
    return PreparedEvent(
        name,
        ts_us,
        source,
        orjson.dumps(params).decode(),
        orjson.dumps(custom).decode(),
        dedupe_digest(name, ts_us, params, custom, source, plain=plain),
        (name, tuple(params), tuple(custom)),
    )


def _fast_timestamp(text: str) -> int | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` of an already seen date, by slicing; else ``None``.

    ``None`` only means "not this fast form": :func:`parse_timestamp` decides then.
    """
    if len(text) != 20 or text[19] != "Z" or text[10] != "T" or text[13] != ":" or text[16] != ":":
        return None
    days = _DAYS.get(text[:10])  # only dates parse_timestamp validated are cached
    clock = text[11:13] + text[14:16] + text[17:19]
    if days is None or not (clock.isascii() and clock.isdigit()):
        return None
    hhmmss = int(clock)
    hour, minute, second = hhmmss // 10_000, hhmmss // 100 % 100, hhmmss % 100
    if hour > 23 or minute > 59 or second > 59:
        return None
    return (days * 86_400 + hour * 3_600 + minute * 60 + second) * 1_000_000


def _fast_event(raw: Any) -> PreparedEvent | None:
    """The common, valid event in one pass; ``None`` sends it to :func:`_check_event`.

    E1's hot path (a million events per benchmark): same result as ``_check_event`` for
    the events it accepts, with fewer calls. Anything unusual (an event-level ``custom``,
    an offset or fraction in the timestamp, a required parameter missing, any failure)
    takes the full path, which also reports the errors.
    """
    if type(raw) is not dict or "custom" in raw:
        return None
    name = raw.get("event_name")
    if type(name) is not str or name not in _VALID_NAMES:
        return None
    timestamp = raw.get("timestamp")
    if type(timestamp) is not str:
        return None
    ts_us = _fast_timestamp(timestamp)
    if ts_us is None:
        return None
    event_params = raw.get("event_params")
    if event_params is None:
        if name in _REQUIRING_EVENTS:
            return None
        return PreparedEvent(
            name,
            ts_us,
            "api",
            "{}",
            "{}",
            dedupe_digest(name, ts_us, {}, {}, "api", plain=True),
            (name, (), ()),
        )
    if type(event_params) is not dict:
        return None
    checked = _default_params(event_params)
    if checked is None:
        return None
    params, source = checked
    custom = event_params.get("custom")
    if custom is None:
        custom = {}
    elif type(custom) is not dict or not _custom_names_ok(custom):
        return None
    if name in _REQUIRING_EVENTS:
        for param in REQUIRED_PARAMS:
            if event_params.get(param) is None:
                return None
    plain = _plain_values(params) and (not custom or _plain_values(custom))
    return PreparedEvent(
        name,
        ts_us,
        source,
        orjson.dumps(params).decode(),
        orjson.dumps(custom).decode() if custom else "{}",
        dedupe_digest(name, ts_us, params, custom, source, plain=plain),
        (name, tuple(params), tuple(custom)),
    )


def check_events(raw_events: list[Any], errors: list[tuple[str, str]]) -> list[PreparedEvent]:
    """Check a user's ``events`` array; the result is meaningful only when no error was added."""
    prepared: list[PreparedEvent] = []
    for index, raw in enumerate(raw_events):
        event = _fast_event(raw) or _check_event(raw, index, errors)
        if event is not None:
            prepared.append(event)
    return prepared


_INSERT = (
    "INSERT OR IGNORE INTO events (profile_pk, name, ts_us, source, params, custom, dedupe) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)

EventRow = tuple[int, str, int, str, str, str, bytes]
#: (event name, default parameter names, custom parameter names): what event_catalog records.
CatalogKey = tuple[str, tuple[str, ...], tuple[str, ...]]


def queue_events(
    profile_pk: int,
    events: Iterable[PreparedEvent],
    *,
    now_us: int,
    overrides: Mapping[str, int],
    rows: list[EventRow],
    catalog: set[CatalogKey],
) -> None:
    """Turn a user's events into rows for :func:`insert_events` (§4.8.3, §4.8.4).

    Events older than their retention are dropped silently, duplicates within the user
    are skipped here, and duplicates of stored events by ``INSERT OR IGNORE``. Names and
    parameters of the kept events are added to ``catalog`` (§3.9).
    """
    seen: set[bytes] = set()
    cutoffs: dict[str, int] = {}
    for event in events:
        cutoff = cutoffs.get(event.name)
        if cutoff is None:
            cutoff = now_us - retention_days(event.name, overrides) * _DAY_US
            cutoffs[event.name] = cutoff
        if event.ts_us < cutoff or event.dedupe in seen:
            continue
        seen.add(event.dedupe)
        rows.append(
            (
                profile_pk,
                event.name,
                event.ts_us,
                event.source,
                event.params,
                event.custom,
                event.dedupe,
            )
        )
        catalog.add(event.catalog_key)


def insert_events(conn: sqlite3.Connection, rows: list[EventRow]) -> None:
    """Insert queued rows in one statement; stored duplicates are ignored by the UNIQUE key."""
    if rows:
        conn.executemany(_INSERT, rows)


def write_catalog(conn: sqlite3.Connection, partner: str, catalog: Iterable[CatalogKey]) -> None:
    """Record event names and parameter keys of accepted users (catalogues only grow).

    Default parameters by name, custom ones as ``c_<name>``; ``""`` records the name alone.
    """
    rows: set[tuple[str, str, str]] = set()
    for name, params, custom in catalog:
        rows.add((partner, name, ""))
        rows.update((partner, name, param) for param in params)
        rows.update((partner, name, "c_" + param) for param in custom)
    conn.executemany(
        "INSERT OR IGNORE INTO event_catalog (partner, event_name, param) VALUES (?, ?, ?)",
        sorted(rows),
    )
