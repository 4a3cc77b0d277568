"""Reading a profile's attributes as the UCD shows them (read names of §4.7.1).

One place builds the attribute map of a profile, so E2, E3, segments and E4 agree:
default attributes under their read name (``gdpr``, ``lo`` …), the identifier views
``email``/``phone_number``/``uuid`` and ``c_<name>`` for custom identifiers (read from the
``identifiers`` table), and custom attributes as ``c_<name>``. ``iid`` is not included.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from gateway.local_ucd.attributes.names import by_write_name

__all__ = ["load_attribute_maps", "load_attributes"]

# SQLite's default limit of bound parameters is 32766; stay well below it.
_CHUNK = 900


def load_attributes(conn: sqlite3.Connection, profile_pk: int) -> dict[str, Any]:
    """The attribute map of one profile, keyed by read name."""
    return load_attribute_maps(conn, [profile_pk]).get(profile_pk, {})


def load_attribute_maps(
    conn: sqlite3.Connection, profile_pks: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """Attribute maps of many profiles in two queries per chunk (exports read in chunks)."""
    maps: dict[int, dict[str, Any]] = {pk: {} for pk in profile_pks}
    for start in range(0, len(profile_pks), _CHUNK):
        chunk = list(profile_pks[start : start + _CHUNK])
        marks = ",".join("?" * len(chunk))
        for pk, custom, name, value in conn.execute(
            f"SELECT profile_pk, custom, name, value FROM attributes WHERE profile_pk IN ({marks})",  # noqa: S608 (marks are placeholders)
            chunk,
        ):
            if custom:
                key = f"c_{name}"
            else:
                attribute = by_write_name(name)
                key = attribute.read_name if attribute is not None else name
            maps[pk][key] = orjson.loads(value)
        for pk, kind, name, value in conn.execute(
            f"SELECT profile_pk, kind, name, value FROM identifiers WHERE profile_pk IN ({marks})",  # noqa: S608
            chunk,
        ):
            maps[pk][f"c_{name}" if kind == "custom" else kind] = value
    return maps
