"""The one user a single-user request names (E2, E5/E6, E8, E9), checked against the catalogue.

§3.1.3 forbids using a partner's custom *attribute* as a custom identifier, so identity
checks need the custom-name catalogue (§4.7.3). Single-user endpoints read it in one
snapshot before validating, and only when the request names custom identifiers at all::

    parse_user_identity(req)                 -> ParsedIdentity, or 400 with issues[0]
    read_custom_attribute_names(req, names)  -> the subset of names that are custom attributes

E1 and E4 check many users inside their write transaction and ask
:func:`gateway.local_ucd.identity.identifiers.is_custom_attribute` directly instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

from gateway.local_ucd.http import ApiError
from gateway.local_ucd.identity.identifiers import ParsedIdentity, parse_identity
from gateway.local_ucd.services import UcdRequest

__all__ = ["parse_user_identity", "read_custom_attribute_names"]

# SQLite's default limit of bound parameters is 999; one goes to the partner.
_CHUNK = 900


async def read_custom_attribute_names(req: UcdRequest, names: Sequence[str]) -> frozenset[str]:
    """Which of ``names`` the partner uses as custom attributes (not custom identifiers)."""
    if not names:
        return frozenset()
    partner = req.partner

    def read(conn: sqlite3.Connection) -> frozenset[str]:
        found: set[str] = set()
        for start in range(0, len(names), _CHUNK):
            chunk = names[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT name FROM custom_names WHERE partner = ? AND is_identifier = 0 AND name IN ({marks})"  # noqa: S608, E501 (marks are placeholders)
            found.update(name for (name,) in conn.execute(sql, (partner, *chunk)))
        return frozenset(found)

    return await req.services.store.read(read)


async def parse_user_identity(req: UcdRequest) -> ParsedIdentity:
    """The identity checks of §3.1.3 on the body's ``insider_id`` and ``identifiers``.

    Raises 400 with the first issue's message (single-user endpoints, §3.2.2, §3.7.1).
    Only string values under ``identifiers.custom`` reach the custom-attribute check, so
    only their names are looked up.
    """
    body = req.body
    identifiers = body.get("identifiers")
    custom = identifiers.get("custom") if isinstance(identifiers, Mapping) else None
    names: list[str] = []
    if isinstance(custom, Mapping):
        names = [name for name, value in custom.items() if isinstance(value, str)]
    custom_attributes = await read_custom_attribute_names(req, names)
    parsed = parse_identity(body, custom_attributes.__contains__)
    if parsed.issues:
        raise ApiError.bad_request(parsed.issues[0].message)
    return parsed
