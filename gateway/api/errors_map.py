"""The UCD's per-user error keys -> GraphQL input paths.

The UCD reports a refused user of E1/E4 as ``users.N.<path>.<rule>`` (§3.1.3, §3.4.3);
``N`` is the position in *its* request, which the write path already translated back to
the caller's item. What is left is the rule key, e.g.

    identifiers.*.regexp(^.+@.+\\..+$)          -> users.3.key.email
    identifiers.*.regexp(^\\+[1-9]\\d{6,14}$)    -> users.3.key.phoneNumber
    events.2.event_name.*.regexp(...)          -> users.0.events.2.name
    events.0.event_params.*.required           -> users.0.events.0.eventGroupId (by message)
    attributes.gdpr_optin.type(boolean)        -> users.1.attributes.gdprOptin
    attributes.custom.tier.type(string)        -> users.1.attributes.custom.<index of tier>
    whole.identifier                           -> users.4.names

A key we cannot place more precisely maps to the item itself (``users.3``): the
message still says what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Final

from gateway.api.names import EVENT_PARAM_TO_INPUT_FIELD, WRITE_NAME_TO_INPUT_FIELD
from gateway.api.types import FieldError
from gateway.ucd.envelope import UserOutcome

__all__ = ["delete_errors", "exception_errors", "upsert_errors"]

_EVENT_KEY: Final = re.compile(r"^events\.(\d+)\.(.+)$")
_REQUIRED_PARAM: Final = re.compile(r"^(\w+) parameter is required on ")


def _identity_path(rest: str, messages: Sequence[str], base: str) -> str:
    """``identifiers...`` / ``insider_id...`` keys -> ``<base>.key.<field>``."""
    key = f"{base}.key"
    if rest.startswith("insider_id"):
        return key if rest.endswith(".required") else f"{key}.insiderId"
    if rest.startswith("identifiers.custom"):
        return f"{key}.custom"
    if rest.startswith("identifiers.*"):
        # One key for every default identifier; the rule or message tells which one.
        text = " ".join(messages)
        if "regexp(^.+@" in rest or text.startswith("email") or "email address" in text:
            return f"{key}.email"
        if "regexp(^\\+" in rest or text.startswith("phone_number") or "phone number" in text:
            return f"{key}.phoneNumber"
        if text.startswith("uuid"):
            return f"{key}.uuid"
    return key


def _custom_index(names: Sequence[str], name: str) -> str:
    return str(names.index(name)) if name in names else name


def upsert_errors(
    outcome: UserOutcome, base: str, *, custom_names: Sequence[str] = ()
) -> list[FieldError]:
    """FieldErrors of one E1 user. ``custom_names``: its AttributesInput.custom names, in order."""
    return _map(outcome, base, lambda rest, msgs: _upsert_path(rest, msgs, base, custom_names))


def _upsert_path(rest: str, messages: Sequence[str], base: str, custom_names: Sequence[str]) -> str:
    if rest.startswith(("identifiers", "insider_id")):
        return _identity_path(rest, messages, base)
    if rest.startswith("attributes"):
        parts = rest.split(".")
        if len(parts) >= 4 and parts[1] == "custom" and parts[2] != "*":
            return f"{base}.attributes.custom.{_custom_index(custom_names, parts[2])}"
        if len(parts) >= 3 and parts[1] in WRITE_NAME_TO_INPUT_FIELD:
            return f"{base}.attributes.{WRITE_NAME_TO_INPUT_FIELD[parts[1]]}"
        if len(parts) >= 3 and parts[1] == "custom":
            return f"{base}.attributes.custom"
        return f"{base}.attributes"
    match = _EVENT_KEY.match(rest)
    if match is not None:
        event = f"{base}.events.{match.group(1)}"
        tail = match.group(2)
        if tail.startswith("event_name"):
            return f"{event}.name"
        if tail.startswith("timestamp"):
            return f"{event}.timestamp"
        if tail.startswith("event_params.*.required"):
            required = _REQUIRED_PARAM.match(messages[0]) if messages else None
            if required is not None and required.group(1) in EVENT_PARAM_TO_INPUT_FIELD:
                return f"{event}.{EVENT_PARAM_TO_INPUT_FIELD[required.group(1)]}"
            return event
        if tail.startswith("event_params.custom"):
            return f"{event}.custom"
        params = tail.split(".")
        if params[0] == "event_params" and len(params) >= 3:
            field = EVENT_PARAM_TO_INPUT_FIELD.get(params[1])
            return f"{event}.{field}" if field else f"{event}.params.{params[1]}"
        return event
    if rest.startswith("events"):
        return f"{base}.events"
    return base


def delete_errors(outcome: UserOutcome, base: str) -> list[FieldError]:
    """FieldErrors of one E4 user."""
    return _map(outcome, base, lambda rest, msgs: _delete_path(rest, msgs, base))


def _delete_path(rest: str, messages: Sequence[str], base: str) -> str:
    if rest.startswith("identifiers.exists"):
        return f"{base}.key"
    if rest.startswith(("identifiers", "insider_id")):
        return _identity_path(rest, messages, base)
    if rest.startswith("whole"):
        return f"{base}.names" if not rest.startswith("whole.required") else base
    if rest.startswith("custom.whole"):
        return f"{base}.customNames"
    if rest.startswith(("partial", "custom.partial")):
        return f"{base}.values"
    return base


def _map(
    outcome: UserOutcome, base: str, path_of: Callable[[str, Sequence[str]], str]
) -> list[FieldError]:
    errors: list[FieldError] = []
    for rest, messages in outcome.errors.items():
        path = base if rest == "size" else path_of(rest, messages)
        errors.extend(FieldError(path=path, message=message) for message in messages)
    return errors


def exception_errors(exc: BaseException, base: str) -> list[FieldError]:
    """An item whose request failed as a whole (other chunks of the mutation succeeded)."""
    message = getattr(exc, "message", None) or "the UCD call for this item failed"
    return [FieldError(path=base, message=str(message))]
