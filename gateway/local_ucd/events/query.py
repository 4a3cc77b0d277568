"""What E2 and E3 ask for: the ``attributes`` and ``events`` parts of a request (§3.2, §3.3).

Both endpoints share the parsing (with the exact texts and order of §3.2.2) and the event
selection, so a profile read and an export always agree on which events match::

    parse_selection(body)           -> Selection(attributes, events)   or ApiError 400
    select_events(conn, pk, item, start_s, end_s, newest_first=...)   -> [EventRow, ...]
    render_event(row, item.params)  -> {"created_date", "source", <requested params>}

An event matches a wanted item when its name is the item's ``event_name``, ``start_s <=
floor(epoch seconds) <= end_s`` and it passes every filter; E2 lists newest first, E3 oldest
first; ``limit_per_source`` keeps the first N of each source *after* that ordering (§3.2.4).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from gateway.local_ucd.attributes.names import ReadName, resolve_read_name
from gateway.local_ucd.http import ApiError
from gateway.local_ucd.store.json_values import is_integer, json_equal
from gateway.local_ucd.timefmt import render_us

__all__ = [
    "NON_PARAMETERS",
    "AttributesRequest",
    "EventFilter",
    "EventRow",
    "EventsRequest",
    "Selection",
    "WantedItem",
    "distinct_wanted",
    "lookup_param",
    "parse_attributes_request",
    "parse_events_request",
    "parse_selection",
    "render_event",
    "resolve_attribute_names",
    "select_events",
    "us_bounds",
]

#: Requested "parameters" that are not parameters: they add nothing to an E2 event object
#: (``created_date`` and ``source`` are always there) (§3.2.3).
NON_PARAMETERS = frozenset({"timestamp", "created_date", "source", "event_name"})

# SQLite integers are signed 64-bit; a request may name any integer (§3.2.2 only asks for one).
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

AttributesRequest = list[str] | Literal["*"]


@dataclass(frozen=True)
class EventFilter:
    """``{"key", "operator": "eq", "values"}``: the event's ``key`` equals one of ``values``."""

    key: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class WantedItem:
    """One ``events.wanted[]`` entry."""

    event_name: str
    params: tuple[str, ...]
    filters: tuple[EventFilter, ...] = ()
    limit_per_source: int | None = None


@dataclass(frozen=True)
class EventsRequest:
    """The validated ``events`` object: inclusive epoch-second bounds and the wanted items."""

    start_s: int
    end_s: int
    wanted: tuple[WantedItem, ...]


@dataclass(frozen=True)
class Selection:
    """The ``attributes`` and ``events`` of an E2/E3 request; at least one is not ``None``."""

    attributes: AttributesRequest | None
    events: EventsRequest | None


@dataclass(frozen=True)
class EventRow:
    """One stored event, parameters decoded (the ``events`` table of store/database.py)."""

    pk: int
    name: str
    ts_us: int
    source: str
    params: dict[str, Any]  # default parameters (no ``source``, no ``custom``)
    custom: dict[str, Any]  # custom parameters, without the ``c_`` prefix


# -- parsing (§3.2.2) -------------------------------------------------------------------


def _absent(body: Mapping[str, Any], key: str) -> bool:
    # JSON null counts as "not given" everywhere in E2/E3, like an absent key.
    return body.get(key) is None


def parse_selection(body: Mapping[str, Any]) -> Selection:
    """The ``attributes`` and ``events`` rows of §3.2.2 (also §3.3.2), in the spec's order."""
    if _absent(body, "attributes") and _absent(body, "events"):
        raise ApiError.bad_request("either attributes or events must be specified")
    attributes = None
    if not _absent(body, "attributes"):
        attributes = parse_attributes_request(body["attributes"])
    events = None if _absent(body, "events") else parse_events_request(body["events"])
    return Selection(attributes, events)


def parse_attributes_request(value: Any) -> AttributesRequest:
    """``"*"``, or a list of names; ``["*"]`` or ``"*"`` among names also means every attribute."""
    if value == "*":
        return "*"
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ApiError.bad_request("attributes must be array")
    if "*" in value:
        return "*"
    return list(value)


def resolve_attribute_names(names: Iterable[str]) -> list[ReadName]:
    """Requested names resolved to read names, in order, duplicates and ``iid`` dropped.

    ``["gdpr_optin", "gdpr", "iid", "c_tier"]`` -> keys ``gdpr``, ``c_tier``. Unknown names
    stay (an export still gives them a column; E2 omits them).
    """
    seen: set[str] = set()
    resolved: list[ReadName] = []
    for name in names:
        read = resolve_read_name(name)
        if read.kind == "iid" or read.key in seen:
            continue
        seen.add(read.key)
        resolved.append(read)
    return resolved


def parse_events_request(value: Any) -> EventsRequest:
    """The ``events`` object; raises the first §3.2.2 failure.

    Order: structure and types of every field (start_date, end_date, wanted, then each item's
    event_name and params), then ``start_date <= end_date``, then every item's filters and
    ``limit_per_source`` — the rows of §3.2.2 top to bottom.
    """
    if not isinstance(value, dict):
        raise ApiError.bad_request("events must be object")
    start_s = int(_required(value, "events", "start_date", "integer"))
    end_s = int(_required(value, "events", "end_date", "integer"))
    raw_wanted = value.get("wanted")
    if raw_wanted is None:
        raise ApiError.bad_request("events.wanted is required")
    if not isinstance(raw_wanted, list):
        raise ApiError.bad_request("events.wanted must be array")
    shapes: list[tuple[str, tuple[str, ...]]] = []
    for index, raw_item in enumerate(raw_wanted):
        shapes.append(_parse_item_shape(raw_item, f"events.wanted.{index}"))
    if start_s > end_s:
        raise ApiError.bad_request("events.start_date must not be after events.end_date")
    wanted: list[WantedItem] = []
    for index, (raw_item, (event_name, params)) in enumerate(zip(raw_wanted, shapes, strict=True)):
        path = f"events.wanted.{index}"
        filters = _parse_filters(raw_item.get("filters"), f"{path}.filters")
        limit = _parse_limit(raw_item.get("limit_per_source"), f"{path}.limit_per_source")
        wanted.append(WantedItem(event_name, params, filters, limit))
    return EventsRequest(start_s, end_s, tuple(wanted))


_HAS_TYPE: dict[str, Callable[[Any], bool]] = {
    "string": lambda value: isinstance(value, str),
    "array": lambda value: isinstance(value, list),
    "integer": is_integer,
}


def _required(obj: Mapping[str, Any], path: str, key: str, type_name: str) -> Any:
    """``obj[key]``, given (not null) and of the JSON type ``type_name``; else the 400.

    ``_required(item, "events.wanted.0", "params", "array")`` raises
    ``events.wanted.0.params is required`` or ``events.wanted.0.params must be array``.
    """
    value = obj.get(key)
    if value is None:
        raise ApiError.bad_request(f"{path}.{key} is required")
    if not _HAS_TYPE[type_name](value):
        raise ApiError.bad_request(f"{path}.{key} must be {type_name}")
    return value


def _parse_item_shape(raw: Any, path: str) -> tuple[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise ApiError.bad_request(f"{path} must be object")
    event_name = _required(raw, path, "event_name", "string")
    params = _required(raw, path, "params", "array")
    for index, param in enumerate(params):
        if not isinstance(param, str):
            raise ApiError.bad_request(f"{path}.params.{index} must be string")
    return event_name, tuple(params)


def _parse_filters(raw: Any, path: str) -> tuple[EventFilter, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ApiError.bad_request(f"{path} must be array")
    filters: list[EventFilter] = []
    for index, item in enumerate(raw):
        item_path = f"{path}.{index}"
        if not isinstance(item, dict):
            raise ApiError.bad_request(f"{item_path} must be object")
        key = _required(item, item_path, "key", "string")
        operator = item.get("operator")
        if operator is None:
            raise ApiError.bad_request(f"{item_path}.operator is required")
        if operator != "eq":
            raise ApiError.bad_request(f"{item_path}.operator must be eq")
        values = _required(item, item_path, "values", "array")
        if not values:
            raise ApiError.bad_request(f"{item_path}.values must not be empty")
        filters.append(EventFilter(key, tuple(values)))
    return tuple(filters)


def _parse_limit(raw: Any, path: str) -> int | None:
    if raw is None:
        return None
    if not is_integer(raw) or raw < 1:
        raise ApiError.bad_request(f"{path} must be positive integer")
    return int(raw)


def distinct_wanted(events: EventsRequest | None) -> list[WantedItem]:
    """One item per event name, the first one winning (§3.2.3: later repeats are ignored)."""
    if events is None:
        return []
    items: dict[str, WantedItem] = {}
    for item in events.wanted:
        items.setdefault(item.event_name, item)
    return list(items.values())


# -- selection --------------------------------------------------------------------------


def us_bounds(start_s: int, end_s: int) -> tuple[int, int]:
    """``floor(ts_us / 1e6)`` in ``[start_s, end_s]`` <=> ``ts_us`` in these bounds.

    Clamped to SQLite's integer range, so absurd request values still compare correctly.
    """
    low = max(_INT64_MIN, min(_INT64_MAX, start_s * 1_000_000))
    high = max(_INT64_MIN, min(_INT64_MAX, (end_s + 1) * 1_000_000 - 1))
    return low, high


def lookup_param(row: EventRow, key: str) -> tuple[bool, Any]:
    """``(present, value)`` of a parameter named as requests name it.

    ``c_<name>`` is a custom parameter; ``source`` is the stored source (it is a default
    parameter, kept in its own column); anything else a default parameter.
    """
    if key.startswith("c_") and len(key) > 2:
        name = key[2:]
        return (name in row.custom, row.custom.get(name))
    if key == "source":
        return True, row.source
    return (key in row.params, row.params.get(key))


def _matches(value: Any, wanted: Sequence[Any]) -> bool:
    """The value equals one of ``wanted``, or (an array) one of its elements does."""
    if any(json_equal(value, candidate) for candidate in wanted):
        return True
    return isinstance(value, list) and any(
        json_equal(element, candidate) for element in value for candidate in wanted
    )


def _passes(row: EventRow, filters: Sequence[EventFilter]) -> bool:
    for event_filter in filters:
        present, value = lookup_param(row, event_filter.key)
        if not present or not _matches(value, event_filter.values):
            return False
    return True


_SELECT_EVENTS = (
    "SELECT pk, ts_us, source, params, custom FROM events"
    " WHERE profile_pk = ? AND name = ? AND ts_us BETWEEN ? AND ?"
)
_SELECT_NEWEST_FIRST = _SELECT_EVENTS + " ORDER BY ts_us DESC, pk DESC"
_SELECT_OLDEST_FIRST = _SELECT_EVENTS + " ORDER BY ts_us ASC, pk ASC"


def select_events(
    conn: sqlite3.Connection,
    profile_pk: int,
    item: WantedItem,
    start_s: int,
    end_s: int,
    *,
    newest_first: bool,
) -> list[EventRow]:
    """The profile's events matching ``item`` in the window, ordered and limited (§3.2.3/4).

    Newest first is ``(ts_us DESC, pk DESC)`` (E2); otherwise ``(ts_us ASC, pk ASC)`` (E3).
    The range is in SQL so the ``events_by_profile_name_ts`` index does the work; that index
    ends with the rowid, so the ORDER BY needs no sort step.
    """
    low, high = us_bounds(start_s, end_s)
    cursor = conn.execute(
        _SELECT_NEWEST_FIRST if newest_first else _SELECT_OLDEST_FIRST,
        (profile_pk, item.event_name, low, high),
    )
    limit = item.limit_per_source
    per_source: dict[str, int] = {}
    rows: list[EventRow] = []
    loads = orjson.loads
    for pk, ts_us, source, params, custom in cursor:
        if limit is not None and per_source.get(source, 0) >= limit:
            continue  # cheap skip before decoding: this source is already full
        row = EventRow(pk, item.event_name, ts_us, source, loads(params), loads(custom))
        if item.filters and not _passes(row, item.filters):
            continue
        if limit is not None:
            per_source[source] = per_source.get(source, 0) + 1
        rows.append(row)
    return rows


def render_event(row: EventRow, params: Iterable[str]) -> dict[str, Any]:
    """An E2 event object: ``created_date``, ``source``, then each requested parameter it has."""
    event: dict[str, Any] = {"created_date": render_us(row.ts_us), "source": row.source}
    for key in params:
        if key in NON_PARAMETERS or key in event:
            continue
        present, value = lookup_param(row, key)
        if present:
            event[key] = value
    return event
