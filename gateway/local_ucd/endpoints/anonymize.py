"""E7/E8 — delete a user's PII (§3.7).

``POST /api/contact/v1/anonymize`` names the user by ``insider_id``; ``POST
/api/user/v1/anonymize`` by identifiers (or a top-level ``insider_id``, which wins).

The PII set is fixed [LOCAL]: the default attributes of :data:`PII_ATTRIBUTES` and the
``email`` / ``phone_number`` identifiers. The profile, its ``insider_id``, ``uuid``, custom
identifiers, other attributes and events stay. Anonymizing twice is a successful no-op.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.local_ucd.http import ApiError
from gateway.local_ucd.identity.erasure import erase_named_user, erase_profile
from gateway.local_ucd.identity.identifiers import resolve_insider_id
from gateway.local_ucd.services import UcdRequest

__all__ = [
    "PII_ATTRIBUTES",
    "PII_IDENTIFIER_KINDS",
    "handle_anonymize_contact",
    "handle_anonymize_user",
]

#: Default attributes deleted by anonymize (§3.7.2), by their stored (write) names.
PII_ATTRIBUTES: tuple[str, ...] = (
    "name",
    "surname",
    "gender",
    "birthday",
    "age",
    "city",
    "country",
)
#: Identifier kinds deleted by anonymize (§3.7.2); uuid and custom identifiers stay.
PII_IDENTIFIER_KINDS: tuple[str, ...] = ("email", "phone_number")

_DELETE_ATTRIBUTES = (
    "DELETE FROM attributes WHERE profile_pk = ? AND custom = 0"  # noqa: S608 (placeholders)
    f" AND name IN ({','.join('?' * len(PII_ATTRIBUTES))})"
)
_DELETE_IDENTIFIERS = (
    "DELETE FROM identifiers WHERE profile_pk = ?"  # noqa: S608 (placeholders)
    f" AND kind IN ({','.join('?' * len(PII_IDENTIFIER_KINDS))})"
)


async def handle_anonymize_contact(req: UcdRequest) -> Any:
    """E7: the user is given by ``insider_id`` (an alias resolves to its survivor)."""
    insider_id = req.body.get("insider_id")
    if not isinstance(insider_id, str) or not insider_id:
        raise ApiError.bad_request("insider_id must be defined")
    req.admit("anonymize")
    partner = req.partner

    def find(conn: sqlite3.Connection) -> int | None:
        return resolve_insider_id(conn, partner, insider_id)

    await erase_profile(req, find, _erase_pii)
    return {}


async def handle_anonymize_user(req: UcdRequest) -> Any:
    """E8: the user is given by identifiers, or by a top-level ``insider_id``, which wins."""
    await erase_named_user(req, "anonymize", _erase_pii)
    return {}


def _erase_pii(conn: sqlite3.Connection, profile_pk: int) -> None:
    conn.execute(_DELETE_ATTRIBUTES, (profile_pk, *PII_ATTRIBUTES))
    conn.execute(_DELETE_IDENTIFIERS, (profile_pk, *PII_IDENTIFIER_KINDS))
