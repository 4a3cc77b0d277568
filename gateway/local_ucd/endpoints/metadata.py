"""E10 — attribute columns and event names: ``POST /api/user/v3/metadata/columns`` (§3.9).

    {"table": "contacts"} -> iid, the default attributes (§4.7.1 order), custom names by name
    {"table": "events"}   -> each catalogued event name with its parameters, sorted by key

Read from the catalogues only (``custom_names``, ``event_catalog``), which never shrink, so
the answer does not depend on which users exist. Not rate limited (§2.6).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.local_ucd.attributes.names import DEFAULT_ATTRIBUTES
from gateway.local_ucd.http import ApiError
from gateway.local_ucd.services import UcdRequest

__all__ = ["handle_metadata_columns"]

_IID_COLUMN = {"key": "iid", "display_name": "Profile ID", "type": "string"}

# custom_names.type -> the E10 type: both array types report "array" (§3.9). A NULL type
# (only [] was ever sent, §4.7.2) can only become an array type, so it reports "array" too.
_CUSTOM_TYPES = {
    "string": "string",
    "number": "number",
    "boolean": "boolean",
    "date": "date",
    "string_array": "array",
    "number_array": "array",
    None: "array",
}


async def handle_metadata_columns(req: UcdRequest) -> Any:
    table = req.body.get("table")
    if table not in ("contacts", "events"):
        raise ApiError.bad_request("table must be contacts or events")
    partner = req.partner
    if table == "contacts":
        return await req.services.store.read(lambda conn: _contacts(conn, partner))
    return await req.services.store.read(lambda conn: _events(conn, partner))


def _contacts(conn: sqlite3.Connection, partner: str) -> list[dict[str, Any]]:
    columns: list[dict[str, Any]] = [dict(_IID_COLUMN)]
    columns.extend(
        {"key": a.read_name, "display_name": a.display_name, "type": a.type}
        for a in DEFAULT_ATTRIBUTES
    )
    rows = conn.execute(
        "SELECT name, is_identifier, type FROM custom_names WHERE partner = ?", (partner,)
    ).fetchall()
    # Sorted in Python: code-point order of the name, whatever SQLite's collation.
    for name, is_identifier, custom_type in sorted(rows):
        reported = "string" if is_identifier else _CUSTOM_TYPES.get(custom_type, "string")
        columns.append({"key": f"c_{name}", "display_name": name, "type": reported})
    return columns


def _events(conn: sqlite3.Connection, partner: str) -> list[dict[str, Any]]:
    params: dict[str, list[str]] = {}
    for event_name, param in conn.execute(
        "SELECT event_name, param FROM event_catalog WHERE partner = ?", (partner,)
    ):
        keys = params.setdefault(event_name, [])
        if param:  # '' records the event name alone
            keys.append(param)
    return [
        {
            "key": event_name,
            "display_name": event_name,
            "params": [{"key": key, "display_name": key} for key in sorted(keys)],
        }
        for event_name, keys in sorted(params.items())
    ]
