"""E9 — delete a user profile (§3.8): ``POST /api/user/v1/delete``.

Deleting the ``profiles`` row removes its identifiers, attributes, events and aliases
through ``ON DELETE CASCADE`` (store/database.py's schema), all in the erasure transaction of §4.9.
The partner's catalogues (custom names, event names) are left as they are (§3.9).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.local_ucd.identity.erasure import erase_named_user
from gateway.local_ucd.services import UcdRequest

__all__ = ["handle_delete_user"]


async def handle_delete_user(req: UcdRequest) -> Any:
    """E9: the user is given by identifiers, or by a top-level ``insider_id``, which wins."""
    await erase_named_user(req, "delete", _delete_profile)
    return {}


def _delete_profile(conn: sqlite3.Connection, profile_pk: int) -> None:
    conn.execute("DELETE FROM profiles WHERE pk = ?", (profile_pk,))
