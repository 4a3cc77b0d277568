"""Identifiers: normalisation, the identity checks of §3.1.3, and user lookup (§4.2, §4.3).

Shared by every endpoint that names a user. Validation returns :class:`IdentityIssue`
records (key suffix + message) so the upsert can report them under ``users.N.<suffix>`` and
the single-user endpoints can answer with the first message plus ``: bad request``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.local_ucd.http import render_value
from gateway.ucd.rules import BLOCKED, CUSTOM_NAME, EMAIL, PHONE_NUMBER, normalise_identifier

__all__ = [
    "DEFAULT_KINDS",
    "REQUIRED_MESSAGE",
    "Identifier",
    "IdentityIssue",
    "ParsedIdentity",
    "find_owner",
    "format_issue",
    "is_custom_attribute",
    "lookup_profile",
    "parse_identity",
    "resolve_insider_id",
]

#: Key suffixes of the format rules (the pattern is part of the key, verbatim). The rules
#: themselves are the gateway's too (gateway.ucd.rules), so both sides refuse the same values.
EMAIL_KEY = EMAIL.key
PHONE_KEY = PHONE_NUMBER.key

#: The typo is the real UCD's (§3.1.3).
REQUIRED_MESSAGE = "either insider_id or idenifiers must be specified"

#: Default identifier kinds in priority order (§4.2); custom ones follow, by name.
DEFAULT_KINDS: tuple[str, ...] = ("uuid", "email", "phone_number")
_RANK = {kind: rank for rank, kind in enumerate(DEFAULT_KINDS)}


@dataclass(frozen=True)
class Identifier:
    """One identifier value; ``name`` is ``""`` for the default kinds."""

    kind: str
    name: str
    value: str

    @property
    def priority(self) -> tuple[int, str]:
        """Sort key, highest priority first: uuid, email, phone_number, custom by name."""
        return (_RANK.get(self.kind, len(_RANK)), self.name)

    def request_shape(self) -> dict[str, Any]:
        """The identifier as a request writes it: ``{"email": v}`` or ``{"custom": {n: v}}``."""
        if self.kind == "custom":
            return {"custom": {self.name: self.value}}
        return {self.kind: self.value}

    @property
    def read_name(self) -> str:
        """The attribute view's read name (§4.7.4): ``email`` … or ``c_<name>``."""
        return f"c_{self.name}" if self.kind == "custom" else self.kind


@dataclass(frozen=True)
class IdentityIssue:
    """One failed identity check: the error key after ``users.N.`` and the message."""

    key: str
    message: str


@dataclass(frozen=True)
class ParsedIdentity:
    """What a request says about the user it names."""

    insider_id: str | None
    identifiers: tuple[Identifier, ...]  # usable: valid, not blocked; priority order
    issues: tuple[IdentityIssue, ...]
    #: An insider_id or at least one identifier entry with a non-blocked value was given
    #: (an invalid value counts as given, §3.1.3).
    given: bool


def format_issue(kind: str, value: str) -> tuple[str, str] | None:
    """``(rule key, message)`` when a default identifier's value breaks its format, else ``None``.

    Only email (checked once normalised) and phone_number have a format; the caller puts
    its own prefix before the rule key (``identifiers.*.`` or ``attributes.email.``).
    """
    if kind == "email":
        if EMAIL.check(value):
            return None
        return EMAIL_KEY, f"not a valid email address: {value}"
    if kind == "phone_number":
        if PHONE_NUMBER.check(value):
            return None
        return PHONE_KEY, f"user has an invalid phone number: {value}"
    return None


def parse_identity(
    body: Mapping[str, Any],
    is_custom_attribute: Callable[[str], bool],
    *,
    use_insider_id: bool = True,
) -> ParsedIdentity:
    """Run the identity checks of §3.1.3 on ``body['identifiers']`` and ``body['insider_id']``.

    ``is_custom_attribute(name)`` tells whether the partner uses ``name`` as a custom
    attribute (§4.7.3). Issues come in the order of the spec's table; the ``required`` pair
    comes first, so single-user endpoints can answer with ``issues[0]``.
    """
    issues: list[IdentityIssue] = []
    usable: list[Identifier] = []
    given = False

    insider_id: str | None = None
    raw_id = body.get("insider_id")
    if use_insider_id and raw_id is not None:
        given = True
        if isinstance(raw_id, str) and raw_id:
            insider_id = raw_id
        else:
            issues.append(
                IdentityIssue(
                    "insider_id.type(string)", f"insider_id must be string: {render_value(raw_id)}"
                )
            )

    raw = body.get("identifiers")
    if raw is not None and not isinstance(raw, Mapping):
        given = True
        issues.append(
            IdentityIssue(
                "identifiers.type(object)", f"identifiers must be object: {render_value(raw)}"
            )
        )
    elif isinstance(raw, Mapping):
        for key, value in raw.items():
            if key == "custom":
                given = _parse_custom(value, is_custom_attribute, usable, issues) or given
                continue
            if key not in DEFAULT_KINDS:
                given = True
                issues.append(
                    IdentityIssue(
                        "identifiers.*.in(defaults_column)",
                        "key must be one of phone_number(pn), email(em) or uuid",
                    )
                )
                continue
            if not isinstance(value, str):
                if value is None:
                    continue  # JSON null: no value given, like an absent key
                given = True
                issues.append(
                    IdentityIssue(
                        "identifiers.*.type(string)", f"{key} must be string: {render_value(value)}"
                    )
                )
                continue
            normalised = normalise_identifier(key, value)
            # §4.2: compared once normalised; a blocked value is ignored, not an error.
            if BLOCKED.check(normalised):
                continue
            given = True
            issue = format_issue(key, value)
            if issue is not None:
                rule, message = issue
                issues.append(IdentityIssue(f"identifiers.*.{rule}", message))
                continue
            usable.append(Identifier(key, "", normalised))

    if not given:
        issues.insert(0, IdentityIssue("insider_id.required", REQUIRED_MESSAGE))
        issues.insert(0, IdentityIssue("identifiers.required", REQUIRED_MESSAGE))
    usable.sort(key=lambda ident: ident.priority)
    return ParsedIdentity(insider_id, tuple(usable), tuple(issues), given)


def _parse_custom(
    value: Any,
    is_custom_attribute: Callable[[str], bool],
    usable: list[Identifier],
    issues: list[IdentityIssue],
) -> bool:
    """Check ``identifiers.custom``; return whether it gave any non-blocked entry."""
    if value is None:
        return False
    if not isinstance(value, Mapping):
        issues.append(
            IdentityIssue(
                "identifiers.custom.type(object)", f"custom must be object: {render_value(value)}"
            )
        )
        return True
    given = False
    for name, item in value.items():
        # Custom values are used as sent (§4.2): nothing to normalise before the check.
        if isinstance(item, str) and BLOCKED.check(item):
            continue
        if item is None:
            continue
        given = True
        if not CUSTOM_NAME.check(name):
            issues.append(
                IdentityIssue(
                    f"identifiers.custom.*.{CUSTOM_NAME.key}", f"invalid custom name: {name}"
                )
            )
            continue
        if not isinstance(item, str):
            issues.append(
                IdentityIssue(
                    "identifiers.custom.*.type(string)",
                    f"{name} must be string: {render_value(item)}",
                )
            )
            continue
        if is_custom_attribute(name):
            issues.append(
                IdentityIssue(
                    "identifiers.custom.*.type(identifier)",
                    f"{name} is a custom attribute, not an identifier",
                )
            )
            continue
        usable.append(Identifier("custom", name, item))
    return given


# -- lookups (§4.3) -------------------------------------------------------------------


def is_custom_attribute(conn: sqlite3.Connection, partner: str, name: str) -> bool:
    """Whether ``name`` is a custom attribute (not a custom identifier) of the partner."""
    row = conn.execute(
        "SELECT is_identifier FROM custom_names WHERE partner = ? AND name = ?",
        (partner, name),
    ).fetchone()
    return row is not None and row[0] == 0


def resolve_insider_id(conn: sqlite3.Connection, partner: str, insider_id: str) -> int | None:
    """The profile key of ``insider_id``, or of the survivor an alias points to."""
    row = conn.execute(
        "SELECT pk FROM profiles WHERE partner = ? AND insider_id = ?", (partner, insider_id)
    ).fetchone()
    if row is not None:
        return int(row[0])
    row = conn.execute(
        "SELECT profile_pk FROM aliases WHERE partner = ? AND insider_id = ?",
        (partner, insider_id),
    ).fetchone()
    return None if row is None else int(row[0])


def find_owner(conn: sqlite3.Connection, partner: str, ident: Identifier) -> int | None:
    """The profile key holding this identifier value, if any."""
    row = conn.execute(
        "SELECT profile_pk FROM identifiers"
        " WHERE partner = ? AND kind = ? AND name = ? AND value = ?",
        (partner, ident.kind, ident.name, ident.value),
    ).fetchone()
    return None if row is None else int(row[0])


def lookup_profile(
    conn: sqlite3.Connection,
    partner: str,
    insider_id: str | None,
    identifiers: Iterable[Identifier],
) -> int | None:
    """§4.3: ``insider_id`` alone decides when given; else the first matching identifier."""
    if insider_id is not None:
        return resolve_insider_id(conn, partner, insider_id)
    for ident in sorted(identifiers, key=lambda i: i.priority):
        owner = find_owner(conn, partner, ident)
        if owner is not None:
            return owner
    return None
