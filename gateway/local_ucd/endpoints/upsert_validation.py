"""Per-user validation of E1 (§3.1.3): every check runs, every failure is reported.

:func:`validate_user` turns one element of ``users`` into a :class:`UserPlan` (what to
write) or a list of ``(key suffix, message)`` failures; the caller prefixes ``users.N.``.
Collection rules: messages accumulate in encounter order; a check whose input is
structurally invalid is skipped (no key checks when ``identifiers`` is not an object).

It runs inside the request's write transaction, because custom names (§4.7.3) and custom
attribute types (§4.7.2) fixed by earlier users of the same request decide later checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.local_ucd.attributes.names import by_write_name
from gateway.local_ucd.attributes.writing import CustomName, CustomNames, classify_value, fits_type
from gateway.local_ucd.events.writing import PreparedEvent, check_events
from gateway.local_ucd.http import render_value
from gateway.local_ucd.identity.identifiers import Identifier, format_issue, parse_identity
from gateway.ucd.rules import BLOCKED, CUSTOM_NAME, normalise_identifier

__all__ = [
    "CheckedEvents",
    "Failure",
    "UserPlan",
    "append_flag",
    "check_user_events",
    "validate_user",
]

#: ``(key after "users.N.", message)``
Failure = tuple[str, str]

_SUPPORTED = "string, number, boolean, string array or number array"


@dataclass
class UserPlan:
    """A valid user: what identity resolution, attributes and events will apply."""

    insider_id: str | None
    identifiers: tuple[Identifier, ...]  # I of §4.4, priority order
    attach_only: tuple[Identifier, ...]  # A of §4.4, priority order
    attributes: list[tuple[int, str, Any]]  # (custom, stored name, value), nulls dropped
    append: bool
    events: list[PreparedEvent]
    #: Catalogue changes this user makes if accepted (new names, first types).
    names: dict[str, CustomName] = field(default_factory=dict)


def append_flag(obj: dict[str, Any], default: bool) -> bool:
    """Array write mode (§4.7.4): ``append`` decides over ``not_append``; else ``default``.

    Flags are already known to be booleans or null (null = absent).
    """
    append = obj.get("append")
    if isinstance(append, bool):
        return append
    not_append = obj.get("not_append")
    if isinstance(not_append, bool):
        return not not_append
    return default


#: A user's checked events and their failures (see :func:`check_user_events`).
CheckedEvents = tuple[list[PreparedEvent], list[Failure]]


def check_user_events(raw: Any) -> CheckedEvents:
    """The event checks of one user (§3.1.3 event rows).

    They need no database, so E1 runs them for the whole request before taking the write
    lock, and the transaction only does what depends on stored state.
    """
    if not isinstance(raw, dict):
        return [], []
    events = raw.get("events")
    if events is None:
        return [], []
    if not isinstance(events, list):
        return [], [("events.type(array)", f"events must be array: {render_value(events)}")]
    failures: list[Failure] = []
    prepared = check_events(events, failures)
    return prepared, failures


def validate_user(
    raw: Any,
    names: CustomNames,
    default_append: bool,
    checked_events: CheckedEvents,
) -> tuple[UserPlan | None, list[Failure]]:
    """Check one user of an upsert; return its plan, or ``None`` and its failures.

    ``checked_events`` is :func:`check_user_events` of ``raw``, computed beforehand.
    """
    if not isinstance(raw, dict):
        return None, [("type(object)", f"user must be object: {render_value(raw)}")]
    failures: list[Failure] = []

    identity = parse_identity(raw, names.is_custom_attribute)
    failures.extend((issue.key, issue.message) for issue in identity.issues)
    staged: dict[str, CustomName] = {}
    for ident in identity.identifiers:
        if ident.kind == "custom" and names.get(ident.name) is None:
            # First seen under identifiers.custom: the name becomes a custom identifier.
            staged[ident.name] = CustomName(True, None)

    # [LOCAL] a user-level append/not_append that is not a boolean fails like the
    # request-level flags of §3.1.2; null means absent.
    for flag in ("append", "not_append"):
        value = raw.get(flag)
        if value is not None and not isinstance(value, bool):
            failures.append(
                (f"{flag}.type(boolean)", f"{flag} must be boolean: {render_value(value)}")
            )

    attributes = raw.get("attributes")
    events = raw.get("events")
    if attributes is None and (events is None or events == []):
        failures.append(("attributes.required", "either attributes or events must be specified"))

    values: list[tuple[int, str, Any]] = []
    attach_only: list[Identifier] = []
    if attributes is not None:
        if not isinstance(attributes, dict):
            failures.append(
                (
                    "attributes.type(object)",
                    f"attributes must be object: {render_value(attributes)}",
                )
            )
        else:
            _check_attributes(attributes, names, staged, values, attach_only, failures)

    prepared, event_failures = checked_events
    failures.extend(event_failures)

    if failures:
        return None, failures
    attach_only.sort(key=lambda ident: ident.priority)
    plan = UserPlan(
        insider_id=identity.insider_id,
        identifiers=identity.identifiers,
        attach_only=tuple(attach_only),
        attributes=values,
        append=append_flag(raw, default_append),
        events=prepared,
        names=staged,
    )
    return plan, []


def _check_attributes(
    attributes: dict[str, Any],
    names: CustomNames,
    staged: dict[str, CustomName],
    values: list[tuple[int, str, Any]],
    attach_only: list[Identifier],
    failures: list[Failure],
) -> None:
    custom = attributes.get("custom")
    # [LOCAL] "without any attribute": no key besides custom, and custom absent, null or {}.
    if len(attributes) - ("custom" in attributes) == 0 and (custom is None or custom == {}):
        failures.append(("attributes.min(1)", "attributes must contain at least one attribute"))
        return

    for key, value in attributes.items():
        if key == "custom":
            continue
        attribute = by_write_name(key)
        if attribute is None:
            continue  # neither a write name nor an alias: ignored (§4.7.4)
        if key != attribute.write_name and attribute.write_name in attributes:
            continue  # the canonical name was given too: the alias is ignored
        if value is None:
            continue
        if attribute.is_identifier:
            _check_identifier_attribute(key, value, attach_only, failures)
        elif not fits_type(value, attribute.type):
            failures.append(
                (
                    f"attributes.{key}.type({attribute.type})",
                    f"{key} must be {attribute.type}: {render_value(value)}",
                )
            )
        else:
            values.append((0, attribute.write_name, value))

    if custom is None:
        return
    if not isinstance(custom, dict):
        failures.append(
            ("attributes.custom.type(object)", f"custom must be object: {render_value(custom)}")
        )
        return
    for name, value in custom.items():
        if not CUSTOM_NAME.check(name):
            failures.append(
                (f"attributes.custom.*.{CUSTOM_NAME.key}", f"invalid custom name: {name}")
            )
            continue
        if value is None:
            continue
        entry = staged.get(name) or names.get(name)
        if entry is not None and entry.is_identifier:
            # An identifier sent as an attribute: attach-only (set A of §4.4).
            if not isinstance(value, str):
                failures.append(
                    (
                        f"attributes.custom.{name}.type(string)",
                        f"{name} must be string: {render_value(value)}",
                    )
                )
            elif not BLOCKED.check(value):
                attach_only.append(Identifier("custom", name, value))
            continue
        fixed = entry.type if entry is not None else None
        if fixed is not None:
            if not fits_type(value, fixed):
                failures.append(
                    (
                        f"attributes.custom.{name}.type({fixed})",
                        f"{name} must be {fixed}: {render_value(value)}",
                    )
                )
                continue
        else:
            kind = classify_value(value)
            if kind is None:
                failures.append(
                    (
                        f"attributes.custom.{name}.type(supported)",
                        f"{name} must be {_SUPPORTED}: {render_value(value)}",
                    )
                )
                continue
            # The first value fixes the type; [] claims the name but fixes none (§4.7.2).
            staged[name] = CustomName(False, kind or None)
        values.append((1, name, value))


def _check_identifier_attribute(
    key: str, value: Any, attach_only: list[Identifier], failures: list[Failure]
) -> None:
    """``attributes.email`` / ``phone_number`` / ``uuid``: checked like identifiers (§4.7.4)."""
    if not isinstance(value, str):
        failures.append(
            (f"attributes.{key}.type(string)", f"{key} must be string: {render_value(value)}")
        )
        return
    normalised = normalise_identifier(key, value)
    if BLOCKED.check(normalised):
        return
    issue = format_issue(key, value)
    if issue is not None:
        rule, message = issue
        failures.append((f"attributes.{key}.{rule}", message))
        return
    attach_only.append(Identifier(key, "", normalised))
