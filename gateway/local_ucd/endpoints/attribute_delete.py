"""E4 — delete user attributes (§3.4): ``POST /api/user/v1/attribute/delete``.

Per user: the shape checks and identity checks of §3.4.3 (all failures reported, as E1
does), then — only for users that passed them — the lookup and the checks that need the
profile, then the deletions. Every user runs inside its own SAVEPOINT of the request's one
transaction, so a failing user changes nothing and the others are applied::

    {"users": [{"identifiers": {"email": "ada@example.com"},
                "whole": ["name"], "partial": {"list_id": [1, 2]},
                "custom": {"whole": ["tier"], "partial": {"favorite_color": ["green"]}}}]}

Stored values are JSON text (store/database.py); ``partial`` removes every element equal to a
listed value with JSON equality, numbers by value (``1`` equals ``1.0``, ``true`` equals no
number), and an array left empty is removed (§3.4.3 semantics).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.local_ucd.attributes.names import DefaultAttribute, by_write_name
from gateway.local_ucd.http import ApiError, data_envelope, render_value
from gateway.local_ucd.identity.identifiers import (
    is_custom_attribute,
    lookup_profile,
    parse_identity,
)
from gateway.local_ucd.services import UcdRequest
from gateway.local_ucd.store.json_values import json_equal
from gateway.local_ucd.timefmt import to_us

__all__ = ["MAX_USERS", "handle_attribute_delete"]

MAX_USERS = 1000
REQUIRED_TARGET = "at least one of whole, partial, custom.whole or custom.partial must be specified"
NO_SUCH_USER = "no such user for these identifiers"
IDENTIFIER_NOT_HERE = "identifier attributes cannot be deleted here; use the identity API"

#: [LOCAL] §3.4.3: default names accept the write aliases and also the read name ``gdpr``.
_EXTRA_DEFAULT_NAMES = {"gdpr": "gdpr_optin"}


@dataclass
class _Targets:
    """What one user asks to delete, after the shape checks."""

    whole: list[str] = field(default_factory=list)
    partial: dict[str, list[Any]] = field(default_factory=dict)
    custom_whole: list[str] = field(default_factory=list)
    custom_partial: dict[str, list[Any]] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.whole or self.partial or self.custom_whole or self.custom_partial)


class _Errors:
    """The data envelope's ``errors``: key -> messages, in encounter order (§3.1.3)."""

    def __init__(self) -> None:
        self.by_key: dict[str, list[str]] = {}

    def add(self, key: str, message: str) -> None:
        self.by_key.setdefault(key, []).append(message)


async def handle_attribute_delete(req: UcdRequest) -> Any:
    users = req.body.get("users")
    if not isinstance(users, list):
        raise ApiError.bad_request("users must be defined")
    if len(users) > MAX_USERS:
        raise ApiError.bad_request(f"users must not contain more than {MAX_USERS} items")
    req.admit("upsert")
    if not users:
        return data_envelope(0, 0, {})
    partner = req.partner
    now_us = to_us(req.services.now())

    def run(conn: sqlite3.Connection) -> dict[str, Any]:
        errors = _Errors()
        successful = failed = 0
        for n, user in enumerate(users):
            conn.execute("SAVEPOINT attribute_delete_user")
            try:
                ok = _apply_user(conn, partner, n, user, errors, now_us)
            except BaseException:
                conn.execute("ROLLBACK TO attribute_delete_user")
                conn.execute("RELEASE attribute_delete_user")
                raise
            if ok:
                conn.execute("RELEASE attribute_delete_user")
                successful += 1
            else:
                conn.execute("ROLLBACK TO attribute_delete_user")
                conn.execute("RELEASE attribute_delete_user")
                failed += 1
        return data_envelope(successful, failed, errors.by_key)

    return await req.services.store.write(run)


def _apply_user(
    conn: sqlite3.Connection, partner: str, n: int, user: Any, errors: _Errors, now_us: int
) -> bool:
    """Check and apply one user; report its failures under ``users.N.…``; True on success."""
    prefix = f"users.{n}"
    if not isinstance(user, Mapping):
        errors.add(f"{prefix}.type(object)", f"user must be object: {render_value(user)}")
        return False
    identity = parse_identity(user, lambda name: is_custom_attribute(conn, partner, name))
    for issue in identity.issues:
        errors.add(f"{prefix}.{issue.key}", issue.message)
    failed = bool(identity.issues)
    targets, shape_ok = _parse_targets(user, prefix, errors)
    # A structurally invalid target is already reported; "nothing to delete" would be noise.
    if shape_ok and targets.empty():
        errors.add(f"{prefix}.whole.required", REQUIRED_TARGET)
    if failed or not shape_ok or targets.empty():
        return False

    profile_pk = lookup_profile(conn, partner, identity.insider_id, identity.identifiers)
    if profile_pk is None:
        errors.add(f"{prefix}.identifiers.exists", NO_SUCH_USER)
        return False
    plan = _Plan(conn, profile_pk)
    ok = plan.check_and_stage(prefix, targets, errors)
    if ok and plan.apply():
        conn.execute("UPDATE profiles SET updated_us = ? WHERE pk = ?", (now_us, profile_pk))
    return ok


def _parse_targets(user: Mapping[str, Any], prefix: str, errors: _Errors) -> tuple[_Targets, bool]:
    """Shape checks of ``whole``, ``partial`` and ``custom`` (§3.4.3); absent or null = none."""
    targets = _Targets()
    whole = _whole(user.get("whole"), f"{prefix}.whole", errors)
    partial = _partial(user.get("partial"), f"{prefix}.partial", errors)
    ok = whole is not None and partial is not None
    targets.whole = whole or []
    targets.partial = partial or {}
    custom = user.get("custom")
    if custom is not None and not isinstance(custom, Mapping):
        errors.add(
            f"{prefix}.custom.type(object)", f"custom must be object: {render_value(custom)}"
        )
        return targets, False
    if isinstance(custom, Mapping):
        custom_whole = _whole(custom.get("whole"), f"{prefix}.custom.whole", errors)
        custom_partial = _partial(custom.get("partial"), f"{prefix}.custom.partial", errors)
        ok = ok and custom_whole is not None and custom_partial is not None
        targets.custom_whole = custom_whole or []
        targets.custom_partial = custom_partial or {}
    return targets, ok


def _whole(value: Any, key: str, errors: _Errors) -> list[str] | None:
    """``whole``: the names; ``None`` (after reporting) when malformed; absent/null is none."""
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    errors.add(f"{key}.type(array)", f"whole must be array: {render_value(value)}")
    return None


def _partial(value: Any, key: str, errors: _Errors) -> dict[str, list[Any]] | None:
    """``partial``: name -> values; ``None`` (after reporting) when malformed.

    [LOCAL] A ``null`` value under a name is ignored, like a null attribute in E1 (§4.7.4).
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        errors.add(f"{key}.type(object)", f"partial must be object: {render_value(value)}")
        return None
    result: dict[str, list[Any]] = {}
    ok = True
    for name, values in value.items():
        if values is None:
            continue
        if not isinstance(values, list):
            errors.add(f"{key}.{name}.type(array)", f"{name} must be array: {render_value(values)}")
            ok = False
            continue
        result[name] = values
    return result if ok else None


def _default(name: str) -> DefaultAttribute | None:
    return by_write_name(_EXTRA_DEFAULT_NAMES.get(name, name))


class _Plan:
    """The profile-dependent checks, and the new attribute values they lead to."""

    def __init__(self, conn: sqlite3.Connection, profile_pk: int) -> None:
        self.conn = conn
        self.profile_pk = profile_pk
        # (custom, stored name) -> new value (None = delete); only touched attributes.
        self.staged: dict[tuple[int, str], Any] = {}
        self._held_identifiers = {
            (kind, name)
            for kind, name in conn.execute(
                "SELECT kind, name FROM identifiers WHERE profile_pk = ?", (profile_pk,)
            )
        }

    def _stored(self, custom: int, name: str) -> Any:
        """The value as stored before this user: the checks look at the profile as it is."""
        row = self.conn.execute(
            "SELECT value FROM attributes WHERE profile_pk = ? AND custom = ? AND name = ?",
            (self.profile_pk, custom, name),
        ).fetchone()
        return None if row is None else orjson.loads(row[0])

    def check_and_stage(self, prefix: str, targets: _Targets, errors: _Errors) -> bool:
        """Run the §3.4.3 profile checks in table order; stage the changes of a passing user."""
        ok = True
        for name in targets.whole:
            attribute = _default(name)
            if attribute is None:
                continue  # unknown name: a successful no-op
            if attribute.is_identifier:
                if (attribute.write_name, "") in self._held_identifiers:
                    errors.add(f"{prefix}.whole.identifier", IDENTIFIER_NOT_HERE)
                    ok = False
                continue
            self.staged[(0, attribute.write_name)] = None
        for name in targets.custom_whole:
            if ("custom", name) in self._held_identifiers:
                errors.add(f"{prefix}.custom.whole.identifier", IDENTIFIER_NOT_HERE)
                ok = False
                continue
            self.staged[(1, name)] = None
        for name, values in targets.partial.items():
            attribute = _default(name)
            if attribute is None:
                continue  # unknown name: a successful no-op
            if attribute.is_identifier:
                held = (attribute.write_name, "") in self._held_identifiers
                ok &= self._stage_partial(f"{prefix}.partial", name, None, values, errors, held)
            else:
                stored = (0, attribute.write_name)
                ok &= self._stage_partial(f"{prefix}.partial", name, stored, values, errors)
        for name, values in targets.custom_partial.items():
            held = ("custom", name) in self._held_identifiers
            key = f"{prefix}.custom.partial"
            ok &= self._stage_partial(key, name, (1, name), values, errors, held)
        return ok

    def _stage_partial(
        self,
        key: str,
        name: str,
        stored: tuple[int, str] | None,
        values: list[Any],
        errors: _Errors,
        identifier_held: bool = False,
    ) -> bool:
        # An identifier view (email, c_<custom identifier>) is a string the user holds.
        stored_value = None if identifier_held or stored is None else self._stored(*stored)
        if identifier_held or (stored_value is not None and not isinstance(stored_value, list)):
            errors.add(f"{key}.{name}.type(array)", f"{name} is not an array attribute")
            return False
        if stored is None or stored_value is None:
            return True  # not held: a successful no-op
        # Work on what earlier entries of this user left (``whole``, an alias's partial).
        current = self.staged.get(stored, stored_value)
        if current is None:
            return True
        kept = [item for item in current if not any(json_equal(item, v) for v in values)]
        if len(kept) < len(current):
            self.staged[stored] = kept or None  # an array left empty is removed
        return True

    def apply(self) -> bool:
        """Write the staged values; True when anything changed."""
        changed = False
        for (custom, name), value in self.staged.items():
            if value is None:
                cursor = self.conn.execute(
                    "DELETE FROM attributes WHERE profile_pk = ? AND custom = ? AND name = ?",
                    (self.profile_pk, custom, name),
                )
            else:
                cursor = self.conn.execute(
                    "UPDATE attributes SET value = ?"
                    " WHERE profile_pk = ? AND custom = ? AND name = ?",
                    (orjson.dumps(value).decode(), self.profile_pk, custom, name),
                )
            changed = changed or cursor.rowcount > 0
        return changed
