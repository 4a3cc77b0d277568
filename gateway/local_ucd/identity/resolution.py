"""Identity resolution of an upsert user (§4.4) and profile merging (§4.5).

Worked example (§4.5): P1 holds uuid ``u-1``; P2 holds email ``ada@example.com`` and a
phone. A user with that email and ``u-1`` matches both; the uuid has the higher priority,
so P1 survives, P2's email moves to P1, P2's phone is deleted (P1 has one: a conflict),
P2 is deleted and its ``insider_id`` becomes an alias of P1.

Conflicts never fail a user; they are collected here and sent as error callbacks after
the commit (§4.6).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.local_ucd.attributes.writing import merge_arrays
from gateway.local_ucd.identity.identifiers import Identifier, find_owner, resolve_insider_id

__all__ = [
    "BELONGS_TO_ANOTHER",
    "DIFFERENT_VALUE",
    "Conflict",
    "Resolver",
    "Target",
]

DIFFERENT_VALUE = "profile already has a different value for this identifier"
BELONGS_TO_ANOTHER = "identifier belongs to another profile"


@dataclass(frozen=True)
class Conflict:
    """An identifier not attached (or deleted in a merge), reported to the callback."""

    insider_id: str  # the survivor's / target's id
    identifier: Identifier
    reason: str

    def payload(self) -> dict[str, Any]:
        return {
            "insider_id": self.insider_id,
            "identifiers": self.identifier.request_shape(),
            "reason": self.reason,
        }


@dataclass
class Target:
    """The profile S a user is applied to."""

    pk: int
    insider_id: str
    new: bool
    #: S's identifiers by (kind, name) -> value, kept current while attaching.
    held: dict[tuple[str, str], str]


_HELD = "SELECT kind, name, value FROM identifiers WHERE profile_pk = ?"
_CREATE = (
    "INSERT INTO profiles (partner, insider_id, created_us, updated_us) "
    "SELECT ?1, ?2, ?3, ?3 WHERE NOT EXISTS "
    "(SELECT 1 FROM aliases WHERE partner = ?1 AND insider_id = ?2) "
    "ON CONFLICT (partner, insider_id) DO NOTHING"
)
_ATTACH = "INSERT INTO identifiers (partner, kind, name, value, profile_pk) VALUES (?, ?, ?, ?, ?)"
# Owners of many values of one kind/name at once: a range of the primary key per value.
_OWNERS = (
    "SELECT value, profile_pk FROM identifiers"
    " WHERE partner = ? AND kind = ? AND name = ? AND value IN ({marks})"
)
# SQLite's bound-parameter limit is 32766; stay well below it.
_CHUNK = 500

#: (kind, name, value) of an identifier: the key of the owner cache.
_Key = tuple[str, str, str]


class Resolver:
    """Identity resolution inside one write transaction of one partner.

    The owner of every identifier value this transaction looked at or changed is cached
    (:meth:`prefetch` fills it for a whole request in a few queries), and attached
    identifiers are inserted in batches: call :meth:`flush` before the transaction
    commits. Only this class writes ``identifiers`` during an upsert, so the cache stays
    exact; rows a query would read (a profile's identifiers) are flushed first.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        partner: str,
        now_us: int,
        *,
        before_merge: Callable[[], None] = lambda: None,
    ) -> None:
        self.conn = conn
        self.partner = partner
        self.now_us = now_us
        # A merge reads both profiles' rows: writes the caller batches must land first.
        self._before_merge = before_merge
        self._owners: dict[_Key, int | None] = {}
        self._attached: list[tuple[str, str, str, str, int]] = []

    def prefetch(self, keys: Iterable[_Key]) -> None:
        """Look up the owners of these ``(kind, name, value)`` now: a few queries in all."""
        wanted: dict[tuple[str, str], set[str]] = {}
        for kind, name, value in keys:
            if (kind, name, value) not in self._owners:
                wanted.setdefault((kind, name), set()).add(value)
        for (kind, name), values in wanted.items():
            ordered = sorted(values)
            for start in range(0, len(ordered), _CHUNK):
                chunk = ordered[start : start + _CHUNK]
                query = _OWNERS.format(marks=",".join("?" * len(chunk)))
                found = dict(self.conn.execute(query, (self.partner, kind, name, *chunk)))
                for value in chunk:
                    owner = found.get(value)
                    self._owners[kind, name, value] = None if owner is None else int(owner)

    def flush(self) -> None:
        """Insert the identifiers attached since the last flush."""
        if self._attached:
            self.conn.executemany(_ATTACH, self._attached)
            self._attached = []

    # -- §4.4 ---------------------------------------------------------------------------

    def resolve(
        self,
        insider_id: str | None,
        identifiers: tuple[Identifier, ...],
        attach_only: tuple[Identifier, ...],
        conflicts: list[Conflict],
    ) -> Target | None:
        """Find or create S, merge, attach; ``None`` when ``insider_id`` resolves to nothing."""
        if insider_id is not None:
            pk = resolve_insider_id(self.conn, self.partner, insider_id)
            if pk is None:
                return None
            target = self._load(pk)
        else:
            matched: list[int] = []  # distinct owners, in priority order of first match
            for ident in identifiers:
                owner = self._owner(ident)
                if owner is not None and owner not in matched:
                    matched.append(owner)
            if not matched:
                target = self._create()
            else:
                target = self._load(matched[0])
                if len(matched) > 1:
                    self._before_merge()  # _load already flushed this resolver's rows
                for other in matched[1:]:
                    self._merge(other, target, conflicts)
        reported = {conflict.identifier for conflict in conflicts}
        for ident in (*identifiers, *attach_only):
            self._attach(ident, target, conflicts, reported)
        return target

    def _owner(self, ident: Identifier) -> int | None:
        key = (ident.kind, ident.name, ident.value)
        if key not in self._owners:
            self._owners[key] = find_owner(self.conn, self.partner, ident)
        return self._owners[key]

    def _load(self, pk: int) -> Target:
        self.flush()  # the profile may hold identifiers attached earlier in this request
        row = self.conn.execute("SELECT insider_id FROM profiles WHERE pk = ?", (pk,)).fetchone()
        held = {(kind, name): value for kind, name, value in self.conn.execute(_HELD, (pk,))}
        return Target(pk, str(row[0]), False, held)

    def _create(self) -> Target:
        # One statement checks and inserts (a new profile per user is the hot path): an id
        # equal to a live id or alias of the partner (§4.11) inserts nothing and is redrawn.
        while True:
            insider_id = str(uuid.uuid4())
            cursor = self.conn.execute(_CREATE, (self.partner, insider_id, self.now_us))
            if cursor.rowcount == 1 and cursor.lastrowid is not None:
                return Target(cursor.lastrowid, insider_id, True, {})

    def _attach(
        self,
        ident: Identifier,
        target: Target,
        conflicts: list[Conflict],
        reported: set[Identifier],
    ) -> None:
        """Step 5 of §4.4 for one identifier.

        The owner cache is exact here: merges moved their values to S or deleted them.
        """
        key = (ident.kind, ident.name)
        held = target.held.get(key)
        if held == ident.value:
            return
        owner = self._owner(ident)
        if owner is not None and owner != target.pk:
            reason = BELONGS_TO_ANOTHER
        elif held is not None:
            reason = DIFFERENT_VALUE
        else:
            self._attached.append((self.partner, ident.kind, ident.name, ident.value, target.pk))
            self._owners[ident.kind, ident.name, ident.value] = target.pk
            target.held[key] = ident.value
            return
        # [LOCAL] one callback per identifier: a value already reported (deleted in a
        # merge, or sent twice as identifier and attribute) is not reported again.
        if ident not in reported:
            reported.add(ident)
            conflicts.append(Conflict(target.insider_id, ident, reason))

    # -- §4.5 ---------------------------------------------------------------------------

    def _merge(self, other_pk: int, target: Target, conflicts: list[Conflict]) -> None:
        """Merge profile ``other_pk`` (O) into ``target`` (S)."""
        conn = self.conn
        other_id = str(
            conn.execute("SELECT insider_id FROM profiles WHERE pk = ?", (other_pk,)).fetchone()[0]
        )

        # 1. Identifiers: move those whose type/name S lacks; delete and report the others.
        others = [
            Identifier(kind, name, value) for kind, name, value in conn.execute(_HELD, (other_pk,))
        ]
        for ident in sorted(others, key=lambda i: i.priority):
            key = (ident.kind, ident.name)
            where = (self.partner, ident.kind, ident.name, ident.value)
            if key in target.held:
                conn.execute(
                    "DELETE FROM identifiers "
                    "WHERE partner = ? AND kind = ? AND name = ? AND value = ?",
                    where,
                )
                conflicts.append(Conflict(target.insider_id, ident, DIFFERENT_VALUE))
                self._owners[ident.kind, ident.name, ident.value] = None
            else:
                conn.execute(
                    "UPDATE identifiers SET profile_pk = ? "
                    "WHERE partner = ? AND kind = ? AND name = ? AND value = ?",
                    (target.pk, *where),
                )
                self._owners[ident.kind, ident.name, ident.value] = target.pk
                target.held[key] = ident.value

        # 2. Attributes: S's scalars win; arrays are unioned (S's values first).
        mine = {
            (custom, name): value
            for custom, name, value in conn.execute(
                "SELECT custom, name, value FROM attributes WHERE profile_pk = ?", (target.pk,)
            )
        }
        theirs = list(
            conn.execute(
                "SELECT custom, name, value FROM attributes WHERE profile_pk = ?", (other_pk,)
            )
        )
        for custom, name, value in theirs:
            stored = mine.get((custom, name))
            if stored is None:
                conn.execute(
                    "UPDATE attributes SET profile_pk = ? "
                    "WHERE profile_pk = ? AND custom = ? AND name = ?",
                    (target.pk, other_pk, custom, name),
                )
                continue
            kept, extra = orjson.loads(stored), orjson.loads(value)
            if isinstance(kept, list) and isinstance(extra, list):
                union = merge_arrays(kept, extra)
                if len(union) != len(kept):
                    conn.execute(
                        "UPDATE attributes SET value = ? "
                        "WHERE profile_pk = ? AND custom = ? AND name = ?",
                        (orjson.dumps(union).decode(), target.pk, custom, name),
                    )

        # 3. Events: all move; identical ones (same dedupe digest) collapse into S's copy.
        conn.execute(
            "UPDATE OR IGNORE events SET profile_pk = ? WHERE profile_pk = ?", (target.pk, other_pk)
        )

        # 4. Removal: aliases to O now point to S, O's id becomes one, O goes (its leftover
        # identifiers, attributes and duplicate events cascade).
        conn.execute(
            "UPDATE aliases SET profile_pk = ? WHERE profile_pk = ?", (target.pk, other_pk)
        )
        conn.execute(
            "INSERT INTO aliases (partner, insider_id, profile_pk) VALUES (?, ?, ?)",
            (self.partner, other_id, target.pk),
        )
        conn.execute("DELETE FROM profiles WHERE pk = ?", (other_pk,))
