"""Erasure (§4.9): the steps shared by anonymize (E7/E8) and delete user (E9).

    store.erase(fn)                      one transaction, secure_delete=ON, then
      fn: find the profile (404 if none)     wal_checkpoint(TRUNCATE) under an exclusive
          collect its insider_id + aliases    lock, so no reader can keep the WAL alive
          run the endpoint's deletions
          exports.withdraw_for(...)       export files holding the user leave the database
    after the commit:
      unlink the withdrawn files         their URLs already answer 404 (rows are gone)
      exports.note_erasure(...)          a running export job rebuilds its file (§3.3.3)
      callbacks.discard(...)             no pending error callback about the profile

Not-found is raised *inside* the transaction: it rolls back and ``erase`` skips the
checkpoint, so a 404 costs no WAL truncation. Erased values are never logged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.local_ucd.http import ApiError
from gateway.local_ucd.identity.identifiers import lookup_profile
from gateway.local_ucd.identity.user_identity import parse_user_identity
from gateway.local_ucd.services import UcdRequest

__all__ = ["Erased", "erase_named_user", "erase_profile", "insider_ids_of"]

#: Finds the profile inside the erasure transaction: its key, or ``None`` (→ 404).
Finder = Callable[[sqlite3.Connection], int | None]
#: Runs the endpoint's deletions on the profile key, inside the erasure transaction.
Eraser = Callable[[sqlite3.Connection, int], None]


@dataclass(frozen=True)
class Erased:
    """What one erasure did: the ids that named the profile and the files it withdrew."""

    insider_ids: tuple[str, ...]
    files: tuple[Path, ...]


def insider_ids_of(conn: sqlite3.Connection, partner: str, profile_pk: int) -> tuple[str, ...]:
    """The profile's own ``insider_id`` followed by every alias that points to it."""
    row = conn.execute(
        "SELECT insider_id FROM profiles WHERE pk = ? AND partner = ?", (profile_pk, partner)
    ).fetchone()
    own = [] if row is None else [str(row[0])]
    aliases = [
        str(alias)
        for (alias,) in conn.execute(
            "SELECT insider_id FROM aliases WHERE partner = ? AND profile_pk = ?"
            " ORDER BY insider_id",
            (partner, profile_pk),
        )
    ]
    return (*own, *aliases)


async def erase_profile(req: UcdRequest, find: Finder, erase: Eraser) -> Erased:
    """Run one erasure with every guarantee of §4.9; raise the 404 when no profile matches."""
    services = req.services
    partner = req.partner

    def run(conn: sqlite3.Connection) -> Erased:
        profile_pk = find(conn)
        if profile_pk is None:
            raise ApiError.not_found()  # rolls the transaction back; no checkpoint runs
        insider_ids = insider_ids_of(conn, partner, profile_pk)
        erase(conn, profile_pk)
        files = services.exports.withdraw_for(conn, partner, insider_ids)
        return Erased(insider_ids, tuple(files))

    erased = await services.store.erase(run)
    for path in erased.files:
        # The rows are gone with the commit, so the URL already answers 404; the bytes go now.
        path.unlink(missing_ok=True)
    services.exports.note_erasure(partner, erased.insider_ids)
    services.callbacks.discard(partner, erased.insider_ids)
    return erased


async def erase_named_user(req: UcdRequest, pool: str, erase: Eraser) -> Erased:
    """E8/E9: erase the user named by ``identifiers`` or a top-level ``insider_id`` (which wins).

    Request checks (400) come before admission to ``pool`` (429), as in every endpoint.
    """
    parsed = await parse_user_identity(req)
    req.admit(pool)
    partner = req.partner

    def find(conn: sqlite3.Connection) -> int | None:
        return lookup_profile(conn, partner, parsed.insider_id, parsed.identifiers)

    return await erase_profile(req, find, erase)
