"""Dynamic segments for E3 (§5.5): conditions, their checks, and evaluation against a snapshot.

A segment is a name and a list of ANDed conditions ``{"attribute", "operator", "value"}``.
Segment 1, "All users", has no conditions and is never stored. Segments are created and
listed by :mod:`gateway.local_ucd.endpoints.segments`.

Evaluation runs in Python over the attribute maps of :mod:`gateway.local_ucd.attributes.views`,
so a condition sees exactly what E2 shows (read names, identifier views, stored JSON values),
chunk by chunk in ascending ``insider_id`` order, the row order of exports (§3.3.4).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.local_ucd.attributes.names import resolve_read_name
from gateway.local_ucd.attributes.views import load_attribute_maps
from gateway.local_ucd.http import ApiError
from gateway.local_ucd.store.json_values import is_number, json_equal
from gateway.ucd.rules import normalise_email

__all__ = [
    "ALL_USERS",
    "ALL_USERS_NAME",
    "OPERATORS",
    "Condition",
    "matches",
    "parse_conditions",
    "segment_profile_pks",
]

#: The implicit segment of every partner (§5.5).
ALL_USERS = 1
ALL_USERS_NAME = "All users"

#: In the order of the spec's error text.
OPERATORS = ("eq", "neq", "gt", "gte", "lt", "lte", "exists", "contains")

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Profiles evaluated per attribute-map query (views.load_attribute_maps chunks under this).
_CHUNK = 500


@dataclass(frozen=True)
class Condition:
    """One validated condition; ``key`` is the canonical read name of ``attribute``."""

    attribute: str
    operator: str
    value: Any  # None only for ``exists`` without a value
    has_value: bool
    key: str  # resolved once: evaluation runs it for every profile

    def to_json(self) -> dict[str, Any]:
        """The condition as listed by GET: as sent, unknown keys dropped."""
        shown: dict[str, Any] = {"attribute": self.attribute, "operator": self.operator}
        if self.has_value:
            shown["value"] = self.value
        return shown


# -- validation -------------------------------------------------------------------------


def parse_conditions(raw: Any) -> list[Condition]:
    """Validate ``conditions`` (absent or null = ``[]``); raise the first §5.5 error."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ApiError.bad_request("conditions must be array")
    conditions: list[Condition] = []
    for index, item in enumerate(raw):
        path = f"conditions.{index}"
        if not isinstance(item, dict):
            raise ApiError.bad_request(f"{path} must be object")
        attribute = item.get("attribute")
        if not isinstance(attribute, str) or not attribute:
            raise ApiError.bad_request(f"{path}.attribute must be defined")
        operator = item.get("operator")
        if operator not in OPERATORS:
            raise ApiError.bad_request(f"{path}.operator must be one of {', '.join(OPERATORS)}")
        value = item.get("value")
        has_value = value is not None
        if operator == "exists":
            if has_value and not isinstance(value, bool):
                raise ApiError.bad_request(f"{path}.value must be boolean")
        elif not has_value:
            raise ApiError.bad_request(f"{path}.value must be defined")
        key = resolve_read_name(attribute).key
        conditions.append(Condition(attribute, operator, value, has_value, key))
    return conditions


# -- evaluation -------------------------------------------------------------------------


def _compare(operator: str, left: Any, right: Any) -> bool:
    """gt/gte/lt/lte: both numbers (by value) or both strings (code points), else false."""
    both_numbers = is_number(left) and is_number(right)
    if not both_numbers and not (isinstance(left, str) and isinstance(right, str)):
        return False
    if operator == "gt":
        return bool(left > right)
    if operator == "gte":
        return bool(left >= right)
    if operator == "lt":
        return bool(left < right)
    return bool(left <= right)


def _holds(condition: Condition, value: Any, present: bool) -> bool:
    operator = condition.operator
    if operator == "exists":
        return present is (condition.value if condition.has_value else True)
    if not present:
        return operator == "neq"  # absent satisfies only neq and exists:false
    expected = condition.value
    if condition.key == "email" and isinstance(expected, str):
        expected = normalise_email(expected)  # §4.2: everywhere, segment conditions too
    elements = value if isinstance(value, list) else [value]
    if operator == "eq":
        return any(json_equal(element, expected) for element in elements)
    if operator == "neq":
        return not any(json_equal(element, expected) for element in elements)
    if operator == "contains":
        if isinstance(value, list):
            return any(json_equal(element, expected) for element in value)
        return isinstance(value, str) and isinstance(expected, str) and expected in value
    return any(_compare(operator, element, expected) for element in elements)


def matches(conditions: list[Condition], attributes: Mapping[str, Any]) -> bool:
    """Whether a profile's attribute map (read names, ``iid`` included) passes every condition.

    Arrays: eq/gt/gte/lt/lte hold when any element does, neq when no element equals.
    """
    for condition in conditions:
        key = condition.key
        present = key in attributes
        if not _holds(condition, attributes.get(key), present):
            return False
    return True


def _load_conditions(
    conn: sqlite3.Connection, partner: str, segment_id: int
) -> list[Condition] | None:
    if segment_id == ALL_USERS:
        return []
    row = conn.execute(
        "SELECT conditions FROM segments WHERE partner = ? AND segment_id = ?",
        (partner, segment_id),
    ).fetchone()
    if row is None:
        return None
    return parse_conditions(orjson.loads(row[0]))


def segment_profile_pks(
    conn: sqlite3.Connection, partner: str, segment_id: int
) -> Iterator[int] | None:
    """The profiles of a segment in ascending ``insider_id``; ``None`` if there is no such segment.

    The existence check runs now; the profiles are read lazily, in chunks, on the caller's
    connection (use it inside the export's snapshot). Keyset pagination rather than one open
    cursor, so the caller may run its own queries between items.
    """
    if isinstance(segment_id, bool) or not _INT64_MIN <= segment_id <= _INT64_MAX:
        return None  # not an id SQLite could even hold
    conditions = _load_conditions(conn, partner, segment_id)
    if conditions is None:
        return None
    return _iterate(conn, partner, conditions)


def _iterate(conn: sqlite3.Connection, partner: str, conditions: list[Condition]) -> Iterator[int]:
    needs_attributes = any(condition.key != "iid" for condition in conditions)
    after = ""
    while True:
        chunk = conn.execute(
            "SELECT pk, insider_id FROM profiles WHERE partner = ? AND insider_id > ?"
            " ORDER BY insider_id LIMIT ?",
            (partner, after, _CHUNK),
        ).fetchall()
        if not chunk:
            return
        after = chunk[-1][1]
        if not conditions:
            yield from (pk for pk, _ in chunk)
            continue
        maps = load_attribute_maps(conn, [pk for pk, _ in chunk]) if needs_attributes else {}
        for pk, insider_id in chunk:
            attributes = maps.get(pk, {})
            attributes["iid"] = insider_id
            if matches(conditions, attributes):
                yield pk
