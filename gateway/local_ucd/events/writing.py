"""Events of E1 (§4.8): checks, retention and storage.

An event is checked and prepared once (:func:`check_events`), so the write path only
decides retention and inserts. Storage layout (shared with E2/E3; the ``events`` table of
:mod:`gateway.local_ucd.store.database`):
``params`` = the default parameters as sent at the root of ``event_params`` without
``source``, ``custom`` and null values ([LOCAL]: a null parameter is absent);
``custom`` = event-level ``custom`` merged under ``event_params.custom``;
``dedupe`` = the digest of :mod:`gateway.local_ucd.events.digest`.
Parameter types live in :mod:`gateway.local_ucd.events.params`, timestamps in
:mod:`gateway.local_ucd.events.timestamps`.

De-duplication against stored events is SQLite's job: ``INSERT OR IGNORE`` on
``UNIQUE(profile_pk, dedupe)``, so no event needs a SELECT.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.local_ucd.events.digest import dedupe_digest, plain_values
from gateway.local_ucd.events.params import (
    REQUIRED_PARAMS,
    REQUIRING_EVENTS,
    custom_names_ok,
    default_params,
    fast_params,
    report_custom_names,
    report_default_params,
)
from gateway.local_ucd.events.timestamps import fast_timestamp, parse_timestamp
from gateway.local_ucd.http import render_value
from gateway.ucd.rules import EVENT_NAME

__all__ = [
    "EVENT_NAME_KEY",
    "CatalogKey",
    "EventRow",
    "PreparedEvent",
    "check_events",
    "insert_events",
    "queue_events",
    "write_catalog",
]

# Names repeat across a million events: remember the valid ones (bounded).
_VALID_NAMES: set[str] = set()
_VALID_NAMES_LIMIT = 10_000


def _valid_name(name: str) -> bool:
    if not EVENT_NAME.check(name):
        return False
    if len(_VALID_NAMES) >= _VALID_NAMES_LIMIT:
        _VALID_NAMES.clear()
    _VALID_NAMES.add(name)
    return True


#: The real UCD's key text, verbatim (upper case in the pattern, yet rejected; §3.1.3 note).
EVENT_NAME_KEY = f"event_name.*.{EVENT_NAME.key}"

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


def _retention_days(name: str, overrides: Mapping[str, int]) -> int:
    """Days an event of this name is kept on write; the ``event_retention_days`` setting wins."""
    days = overrides.get(name)
    if days is not None:
        return days
    return _RETENTION_DAYS.get(name, _DEFAULT_RETENTION_DAYS)


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
        checked = default_params(event_params)
        if checked is None:
            report_default_params(event_params, index, errors)
            failed = True
        else:
            params, source = checked
            plain = plain_values(params)
        params_custom = event_params.get("custom")
        if params_custom is not None:
            checked_custom = _checked_custom(
                params_custom, f"events.{index}.event_params.custom", errors
            )
            if checked_custom is None:
                failed = True
            else:
                custom = checked_custom
                plain = plain and plain_values(custom)

    # [LOCAL] an event-level "custom" (a sibling of event_params) is checked like
    # event_params.custom, under its own key; event_params.custom wins on a clash (§4.8.2).
    event_custom = raw.get("custom")
    if event_custom is not None:
        checked_custom = _checked_custom(event_custom, f"events.{index}.custom", errors)
        if checked_custom is None:
            failed = True
        elif checked_custom:
            custom = {**checked_custom, **custom}
            plain = plain and plain_values(checked_custom)

    if name_ok and params_ok and name in REQUIRING_EVENTS:
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
    sent_source = type(event_params) is dict and event_params.get("source") is not None
    return _prepared(name, ts_us, source, params, custom, plain=plain, sent_source=sent_source)


def _prepared(
    name: str,
    ts_us: int,
    source: str,
    params: dict[str, Any],
    custom: dict[str, Any],
    *,
    plain: bool,
    sent_source: bool,
) -> PreparedEvent:
    """The stored form of a checked event (storage layout in the module docstring).

    ``sent_source``: ``event_params.source`` was given. It is stored in its own column, not
    with ``params``, yet it is a default parameter (§4.8.2) that E2/E3 can request, so the
    event catalogue (§3.9) lists it.
    """
    catalogued = (*params, "source") if sent_source else tuple(params)
    return PreparedEvent(
        name,
        ts_us,
        source,
        orjson.dumps(params).decode(),
        orjson.dumps(custom).decode() if custom else "{}",
        dedupe_digest(name, ts_us, params, custom, source, plain=plain),
        (name, catalogued, tuple(custom)),
    )


def _checked_custom(value: Any, where: str, errors: list[tuple[str, str]]) -> dict[str, Any] | None:
    """A ``custom`` parameter object (§3.1.3), or ``None`` after reporting why it is not one."""
    if type(value) is not dict:
        errors.append((f"{where}.type(object)", f"custom must be object: {render_value(value)}"))
        return None
    if not custom_names_ok(value):
        report_custom_names(value, where, errors)
        return None
    return value


def _fast_event(raw: Any) -> PreparedEvent | None:
    """The common, valid event in one pass; ``None`` sends it to :func:`_check_event`.

    E1's hot path (a million events per benchmark): same result as ``_check_event`` for
    the events it accepts, with fewer calls. Anything unusual (an event-level ``custom``,
    an offset or fraction in the timestamp, a
    required parameter missing, any failure) takes the full path, which also reports
    the errors.
    """
    if type(raw) is not dict or "custom" in raw:
        return None
    name = raw.get("event_name")
    if type(name) is not str or name not in _VALID_NAMES:
        return None
    timestamp = raw.get("timestamp")
    if type(timestamp) is not str:
        return None
    ts_us = fast_timestamp(timestamp)
    if ts_us is None:
        return None
    event_params = raw.get("event_params")
    if event_params is None:
        if name in REQUIRING_EVENTS:
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
    checked = fast_params(event_params)
    if checked is None:
        return None
    params, source, custom, plain = checked
    if name in REQUIRING_EVENTS:
        for param in REQUIRED_PARAMS:
            if params.get(param) is None:
                return None
    sent_source = event_params.get("source") is not None
    return _prepared(name, ts_us, source, params, custom, plain=plain, sent_source=sent_source)


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
            cutoff = now_us - _retention_days(event.name, overrides) * _DAY_US
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
