"""``POST`` / ``GET /api/local/v1/attributes`` (§5.6): declare and list custom attribute types.

Declaring is the only way to get a ``date`` custom attribute (§4.7.2). A name shares the
custom-name namespace with custom identifiers (§4.7.3), so a custom identifier's name
cannot be declared.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.local_ucd.attributes.writing import ATTRIBUTE_TYPES, CustomName, CustomNames
from gateway.local_ucd.http import ApiError
from gateway.local_ucd.services import UcdRequest
from gateway.ucd.rules import CUSTOM_NAME

__all__ = ["handle_declare_attribute", "handle_list_attributes"]

_TYPE_ERROR = f"type must be one of {', '.join(ATTRIBUTE_TYPES)}"
_CLASH_ERROR = "attribute already exists with another type"


async def handle_declare_attribute(req: UcdRequest) -> Any:
    name = req.body.get("name")
    if not isinstance(name, str) or not CUSTOM_NAME.check(name):
        raise ApiError.bad_request("name must be defined")
    type_name = req.body.get("type")
    if type_name not in ATTRIBUTE_TYPES:
        raise ApiError.bad_request(_TYPE_ERROR)
    declared = await req.services.store.write(
        lambda conn: _declare(conn, req.partner, name, str(type_name))
    )
    if not declared:
        raise ApiError.bad_request(_CLASH_ERROR)
    return {"name": name, "type": type_name}


def _declare(conn: sqlite3.Connection, partner: str, name: str, type_name: str) -> bool:
    """Fix the type; ``False`` when the name is an identifier or has another type.

    The catalogue's own rule decides, as for a first value in an upsert: a new name is
    taken, and a name seen only with ``[]`` (no type yet, §4.7.2) gets the declared type.
    """
    names = CustomNames(conn, partner)
    declared = CustomName(is_identifier=False, type=type_name)
    names.accept({name: declared})
    names.flush()
    return names.get(name) == declared


async def handle_list_attributes(req: UcdRequest) -> Any:
    rows = await req.services.store.read(
        lambda conn: conn.execute(
            "SELECT name, is_identifier, type FROM custom_names WHERE partner = ? ORDER BY name",
            (req.partner,),
        ).fetchall()
    )
    # [LOCAL] a name seen only with [] has no type yet and is not listed.
    return {
        "attributes": [
            {"name": name, "type": "identifier" if is_identifier else type_name}
            for name, is_identifier, type_name in rows
            if is_identifier or type_name is not None
        ]
    }
