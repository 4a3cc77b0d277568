"""E5/E6 — change or remove one identifier (§3.5, §3.6): ``PATCH``/``DELETE /api/user/v1/identity``.

Both bodies name identifiers as *entries*: one default key, or one name inside ``custom``
(``{"custom": {"a": "1", "b": "2"}}`` is two entries, ``{"custom": {}}`` none). Each entry is
checked with :func:`parse_identity`, whose issues map onto the spec's checks:

    format issue (``regexp(...)``)              -> check "<the §3.1.3 message>: bad request"
    any other issue, or a blocked/null value    -> "no valid identifier: bad request"
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.local_ucd.http import ApiError
from gateway.local_ucd.identity.identifiers import (
    Identifier,
    find_owner,
    parse_identity,
)
from gateway.local_ucd.identity.user_identity import read_custom_attribute_names
from gateway.local_ucd.services import UcdRequest
from gateway.local_ucd.timefmt import to_us

__all__ = ["handle_identity_delete", "handle_identity_update"]

NO_VALID_IDENTIFIER = "no valid identifier"
EXACTLY_ONE_PAIR = "there must be exactly 1 entry for both new and old identifiers"
EXACTLY_ONE = "there must be exactly 1 identifier"
SAME_TYPE = "old and new identifiers must be of the same type"
SAME_VALUES = "identifier values are the same"
TAKEN = "new identifier already has a user assigned to it"
SOLE_IDENTIFIER = "you cannot delete the sole identifier specified for a user"


@dataclass(frozen=True)
class _Entry:
    """One identifier entry as sent: ``key`` is the top-level key, ``name`` the custom name."""

    key: str
    name: str | None
    value: Any

    @property
    def type(self) -> tuple[str, str | None]:
        """Different custom names are different types (§3.5.2 check 3)."""
        return (self.key, self.name)

    def as_identifiers(self) -> dict[str, Any]:
        if self.name is not None:
            return {"custom": {self.name: self.value}}
        return {self.key: self.value}


@dataclass(frozen=True)
class _Checked:
    """An entry after the identity checks: the identifier, or the answer's message."""

    entry: _Entry
    identifier: Identifier | None
    format_error: str | None  # the §3.1.3 format message (check "format")


def _entries(obj: Any) -> list[_Entry] | None:
    """The entries of an identifiers object, or ``None`` when it is not an object.

    [LOCAL] A ``custom`` value that is not an object counts as one entry (it then fails
    as "no valid identifier").
    """
    if not isinstance(obj, Mapping):
        return None
    entries: list[_Entry] = []
    for key, value in obj.items():
        if key == "custom" and isinstance(value, Mapping):
            entries.extend(_Entry("custom", str(name), item) for name, item in value.items())
        else:
            entries.append(_Entry(str(key), None, value))
    return entries


def _custom_names(entries: Sequence[_Entry]) -> list[str]:
    return [entry.name for entry in entries if entry.name is not None]


def _check(entry: _Entry, custom_attributes: frozenset[str]) -> _Checked:
    """Check 2 ("no valid identifier") of §3.5.2/§3.6 for one entry; keep the format verdict.

    Every issue of :func:`parse_identity` but a format one fails the check: an unknown key
    (``in(defaults_column)``), a ``custom`` that is not an object, a wrong type or name
    length, a custom attribute, and the ``required`` pair a blocked or null value leaves.
    Without issues, the one entry gave one usable identifier.
    """
    parsed = parse_identity(
        {"identifiers": entry.as_identifiers()},
        custom_attributes.__contains__,
        use_insider_id=False,
    )
    format_errors = [issue.message for issue in parsed.issues if ".regexp(" in issue.key]
    if len(parsed.issues) > len(format_errors):
        raise ApiError.bad_request(NO_VALID_IDENTIFIER)
    if format_errors:
        return _Checked(entry, None, format_errors[0])
    return _Checked(entry, parsed.identifiers[0], None)


def _valid(checked: _Checked) -> Identifier:
    """The format check (§3.5.2 check 4, §3.6 check 3)."""
    if checked.format_error is not None:
        raise ApiError.bad_request(checked.format_error)
    assert checked.identifier is not None  # no format error -> an identifier
    return checked.identifier


async def handle_identity_update(req: UcdRequest) -> Any:
    """E5: move one identifier of a profile to a new value of the same type."""
    old_entries = _entries(req.body.get("old_identifier"))
    new_entries = _entries(req.body.get("new_identifier"))
    if old_entries is None or new_entries is None or len(old_entries) != 1 or len(new_entries) != 1:
        raise ApiError.bad_request(EXACTLY_ONE_PAIR)
    custom_attributes = await read_custom_attribute_names(
        req, _custom_names([*old_entries, *new_entries])
    )
    old_checked = _check(old_entries[0], custom_attributes)
    new_checked = _check(new_entries[0], custom_attributes)
    if old_checked.entry.type != new_checked.entry.type:
        raise ApiError.bad_request(SAME_TYPE)
    old = _valid(old_checked)
    new = _valid(new_checked)
    if old.value == new.value:
        raise ApiError.bad_request(SAME_VALUES)
    partner = req.partner

    def update(conn: sqlite3.Connection, owner: int) -> None:
        if find_owner(conn, partner, new) is not None:
            raise ApiError.bad_request(TAKEN)
        _delete_identifier(conn, partner, old)
        conn.execute(
            "INSERT INTO identifiers (partner, kind, name, value, profile_pk)"
            " VALUES (?, ?, ?, ?, ?)",
            (partner, new.kind, new.name, new.value, owner),
        )

    await _edit_profile_holding(req, "identity_update", old, update)
    return {}


async def handle_identity_delete(req: UcdRequest) -> Any:
    """E6: remove one identifier value from the profile holding it (never the last one)."""
    entries = _entries(req.body.get("identifiers"))
    if entries is None or len(entries) != 1:
        raise ApiError.bad_request(EXACTLY_ONE)
    custom_attributes = await read_custom_attribute_names(req, _custom_names(entries))
    ident = _valid(_check(entries[0], custom_attributes))
    partner = req.partner

    def delete(conn: sqlite3.Connection, owner: int) -> None:
        (count,) = conn.execute(
            "SELECT count(*) FROM identifiers WHERE profile_pk = ?", (owner,)
        ).fetchone()
        if count <= 1:
            raise ApiError.bad_request(SOLE_IDENTIFIER)
        _delete_identifier(conn, partner, ident)

    await _edit_profile_holding(req, "identity_delete", ident, delete)
    return {}


async def _edit_profile_holding(
    req: UcdRequest,
    pool: str,
    ident: Identifier,
    change: Callable[[sqlite3.Connection, int], None],
) -> None:
    """Admit to ``pool``, then in one write: 404 unless a profile holds ``ident``, else
    ``change(conn, owner)`` and bump the owner's ``updated_us``."""
    req.admit(pool)
    partner = req.partner
    now_us = to_us(req.services.now())

    def run(conn: sqlite3.Connection) -> None:
        owner = find_owner(conn, partner, ident)
        if owner is None:
            raise ApiError.not_found()
        change(conn, owner)
        _touch(conn, owner, now_us)

    await req.services.store.write(run)


def _delete_identifier(conn: sqlite3.Connection, partner: str, ident: Identifier) -> None:
    conn.execute(
        "DELETE FROM identifiers WHERE partner = ? AND kind = ? AND name = ? AND value = ?",
        (partner, ident.kind, ident.name, ident.value),
    )


def _touch(conn: sqlite3.Connection, profile_pk: int, now_us: int) -> None:
    conn.execute("UPDATE profiles SET updated_us = ? WHERE pk = ?", (now_us, profile_pk))
