"""Writing attributes (§4.7): value types, custom-name catalogue, scalars and arrays.

Default attributes are stored under their canonical write name (``custom = 0``), custom
attributes under their name without ``c_`` (``custom = 1``); values are JSON text.
Identifier-named attributes never reach this module: they are identifiers to attach.

Custom attribute types (§4.7.2) are fixed by the first accepted value and kept in
``custom_names``. Within an upsert a later user must see the types fixed by earlier users
of the same request, yet a failing user must fix nothing — so :class:`CustomNames` caches
the catalogue for one transaction and takes staged changes only from accepted users.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.local_ucd.store.json_values import is_number
from gateway.local_ucd.timefmt import is_rfc3339_z

__all__ = [
    "ATTRIBUTE_TYPES",
    "AttributeRow",
    "CustomName",
    "CustomNames",
    "classify_value",
    "fits_type",
    "insert_attributes",
    "merge_arrays",
    "write_attributes",
]

#: Types a custom attribute can have (§5.6), in the order of the error message.
ATTRIBUTE_TYPES: tuple[str, ...] = (
    "string",
    "number",
    "boolean",
    "date",
    "string_array",
    "number_array",
)


@dataclass(frozen=True)
class CustomName:
    """A catalogue entry: a custom identifier, or a custom attribute (type ``None`` until fixed)."""

    is_identifier: bool
    type: str | None


def fits_type(value: Any, type_name: str) -> bool:
    """Whether ``value`` has the attribute type ``type_name`` (§4.7.1 type names).

    ``[]`` fits both array types; booleans are not numbers.
    """
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "number":
        return is_number(value)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "date":
        return isinstance(value, str) and is_rfc3339_z(value)
    if type_name == "string_array":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if type_name == "number_array":
        return isinstance(value, list) and all(is_number(item) for item in value)
    raise ValueError(f"unknown attribute type {type_name!r}")


def classify_value(value: Any) -> str | None:
    """The type a first value fixes (§4.7.2): ``""`` for ``[]`` (none), ``None`` if unsupported.

    A string in RFC 3339 form is a ``string``: only a declaration makes a ``date``.
    """
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if is_number(value):
        return "number"
    if isinstance(value, list):
        if not value:
            return ""
        if all(isinstance(item, str) for item in value):
            return "string_array"
        if all(is_number(item) for item in value):
            return "number_array"
    return None


class CustomNames:
    """The partner's custom-name catalogue (§4.7.3) as seen inside one write transaction."""

    _SELECT = "SELECT is_identifier, type FROM custom_names WHERE partner = ? AND name = ?"
    # A name is never re-classified; a NULL type (only [] seen) may become fixed once.
    _UPSERT = (
        "INSERT INTO custom_names (partner, name, is_identifier, type) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (partner, name) DO UPDATE SET type = excluded.type "
        "WHERE custom_names.type IS NULL AND custom_names.is_identifier = 0"
    )

    def __init__(self, conn: sqlite3.Connection, partner: str) -> None:
        self._conn = conn
        self._partner = partner
        self._cache: dict[str, CustomName | None] = {}
        self._dirty: dict[str, CustomName] = {}

    def get(self, name: str) -> CustomName | None:
        if name in self._cache:
            return self._cache[name]
        row = self._conn.execute(self._SELECT, (self._partner, name)).fetchone()
        entry = None if row is None else CustomName(bool(row[0]), row[1])
        self._cache[name] = entry
        return entry

    def is_custom_attribute(self, name: str) -> bool:
        entry = self.get(name)
        return entry is not None and not entry.is_identifier

    def accept(self, staged: Mapping[str, CustomName]) -> None:
        """Take the catalogue changes of an accepted user; written by :meth:`flush`."""
        for name, entry in staged.items():
            current = self.get(name)
            if current is None or (current.type is None and not current.is_identifier):
                self._cache[name] = entry
                self._dirty[name] = entry

    def flush(self) -> None:
        """Write the accepted changes (inside the request's transaction)."""
        if self._dirty:
            self._conn.executemany(
                self._UPSERT,
                [
                    (self._partner, name, int(entry.is_identifier), entry.type)
                    for name, entry in self._dirty.items()
                ],
            )
            self._dirty.clear()


def _dedupe(values: Iterable[Any], seen: set[Any] | None = None) -> list[Any]:
    """Keep first occurrences; ``1`` and ``1.0`` are one value (§2.4), as in Python sets.

    A set, not :func:`~gateway.local_ucd.store.json_values.json_equal`: arrays reaching here
    are validated string or number arrays (never booleans, which a set would equate
    with 1 and 0), and a set keeps a long append linear.
    """
    seen = set() if seen is None else seen
    kept: list[Any] = []
    for value in values:
        if value not in seen:
            seen.add(value)
            kept.append(value)
    return kept


def merge_arrays(stored: list[Any], new: Iterable[Any]) -> list[Any]:
    """Append (§4.7.4): stored values first, then each new value not already present."""
    seen: set[Any] = set()
    return _dedupe(stored, seen) + _dedupe(new, seen)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


AttributeRow = tuple[int, int, str, str]

_SELECT_VALUE = "SELECT value FROM attributes WHERE profile_pk = ? AND custom = ? AND name = ?"
_REPLACE = "INSERT OR REPLACE INTO attributes (profile_pk, custom, name, value) VALUES (?, ?, ?, ?)"
_DELETE = "DELETE FROM attributes WHERE profile_pk = ? AND custom = ? AND name = ?"


def write_attributes(
    conn: sqlite3.Connection,
    profile_pk: int,
    values: Iterable[tuple[int, str, Any]],
    *,
    append: bool,
    new_profile: bool,
    pending: list[AttributeRow],
) -> None:
    """Apply ``(custom, name, value)`` triples (§4.7.4); values are validated and not null.

    Scalars overwrite. Arrays append (deduplicated) or overwrite (deduplicated); an array
    that would be empty is removed, and ``[]`` in append mode changes nothing.
    ``new_profile`` skips reading stored arrays that cannot exist; its rows then go to
    ``pending``, for one batched :func:`insert_attributes` later.
    """
    replace: list[AttributeRow] = []
    delete: list[tuple[int, int, str]] = []
    for custom, name, value in values:
        if isinstance(value, list):
            if append:
                if not value:
                    continue
                row = (
                    None
                    if new_profile
                    else conn.execute(_SELECT_VALUE, (profile_pk, custom, name)).fetchone()
                )
                stored = orjson.loads(row[0]) if row is not None else []
                result = merge_arrays(stored if isinstance(stored, list) else [], value)
            else:
                result = _dedupe(value)
            if result:
                replace.append((profile_pk, custom, name, _dumps(result)))
            elif not new_profile:
                delete.append((profile_pk, custom, name))
        else:
            replace.append((profile_pk, custom, name, _dumps(value)))
    if delete:
        conn.executemany(_DELETE, delete)
    if new_profile:
        pending.extend(replace)
    else:
        insert_attributes(conn, replace)


def insert_attributes(conn: sqlite3.Connection, rows: list[AttributeRow]) -> None:
    """Write ``(profile_pk, custom, name, JSON value)`` rows, replacing stored values."""
    if rows:
        conn.executemany(_REPLACE, rows)
