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
message still says what is wrong. Reading a key (its path, its rule, which identifier
or parameter its message names) is ``gateway.ucd.error_keys``'s; placing it on the
GraphQL input is this module's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from strawberry.utils.str_converters import to_camel_case

from gateway.api.names import EVENT_PARAM_TO_INPUT_FIELD, WRITE_NAME_TO_INPUT_FIELD
from gateway.api.types import FieldError
from gateway.ucd.envelope import UserOutcome
from gateway.ucd.error_keys import ErrorKey, identifier_kind, required_param
from gateway.ucd.names import CUSTOM

__all__ = ["delete_errors", "exception_errors", "upsert_errors"]

#: The gateway's own key for a user too big for any request (gateway.ucd.batching.TOO_BIG).
_SIZE = "size"


def _identity_path(key: ErrorKey, messages: Sequence[str], base: str) -> str:
    """``identifiers...`` / ``insider_id...`` keys -> ``<base>.key.<field>``."""
    user_key = f"{base}.key"
    if key.under("insider_id"):
        return user_key if key.rule == "required" else f"{user_key}.insiderId"
    if key.under("identifiers", CUSTOM):
        return f"{user_key}.custom"
    if key.under("identifiers", "*"):
        # One key for every default identifier; the rule or message tells which one.
        kind = identifier_kind(key, messages)
        if kind is not None:
            return f"{user_key}.{to_camel_case(kind)}"
    return user_key


def _custom_index(names: Sequence[str], name: str) -> str:
    return str(names.index(name)) if name in names else name


def upsert_errors(
    outcome: UserOutcome, base: str, *, custom_names: Sequence[str] = ()
) -> list[FieldError]:
    """FieldErrors of one E1 user. ``custom_names``: its AttributesInput.custom names, in order."""
    return _map(outcome, base, lambda key, msgs: _upsert_path(key, msgs, base, custom_names))


def _upsert_path(
    key: ErrorKey, messages: Sequence[str], base: str, custom_names: Sequence[str]
) -> str:
    path = key.path
    if key.under("identifiers") or key.under("insider_id"):
        return _identity_path(key, messages, base)
    if key.under("attributes"):
        if key.under("attributes", CUSTOM) and len(path) >= 3 and path[2] != "*":
            # A custom name may hold dots: everything after "custom." is the name.
            name = ".".join(path[2:])
            return f"{base}.attributes.custom.{_custom_index(custom_names, name)}"
        if len(path) >= 2 and path[1] in WRITE_NAME_TO_INPUT_FIELD:
            return f"{base}.attributes.{WRITE_NAME_TO_INPUT_FIELD[path[1]]}"
        if key.under("attributes", CUSTOM):
            return f"{base}.attributes.custom"
        return f"{base}.attributes"
    index = key.event_index()
    if index is not None:
        return _event_path(key, messages, f"{base}.events.{index}")
    if key.under("events"):
        return f"{base}.events"
    return base


def _event_path(key: ErrorKey, messages: Sequence[str], event: str) -> str:
    """``events.M.<tail>`` -> the EventInput field of event M."""
    tail = key.path[2:]
    if tail[:1] == ("event_name",):
        return f"{event}.name"
    if tail[:1] == ("timestamp",):
        return f"{event}.timestamp"
    if tail[:2] == ("event_params", "*") and key.rule == "required":
        param = required_param(messages)
        if param is not None and param in EVENT_PARAM_TO_INPUT_FIELD:
            return f"{event}.{EVENT_PARAM_TO_INPUT_FIELD[param]}"
        return event
    if tail[:2] == ("event_params", CUSTOM):
        return f"{event}.custom"
    if tail[:1] == ("event_params",) and len(tail) >= 2:
        field = EVENT_PARAM_TO_INPUT_FIELD.get(tail[1])
        return f"{event}.{field}" if field else f"{event}.params.{tail[1]}"
    return event


def delete_errors(outcome: UserOutcome, base: str) -> list[FieldError]:
    """FieldErrors of one E4 user."""
    return _map(outcome, base, lambda key, msgs: _delete_path(key, msgs, base))


def _delete_path(key: ErrorKey, messages: Sequence[str], base: str) -> str:
    if key.path == ("identifiers",) and key.rule == "exists":
        return f"{base}.key"
    if key.under("identifiers") or key.under("insider_id"):
        return _identity_path(key, messages, base)
    if key.under("whole"):
        return base if key.path == ("whole",) and key.rule == "required" else f"{base}.names"
    if key.under(CUSTOM, "whole"):
        return f"{base}.customNames"
    if key.under("partial") or key.under(CUSTOM, "partial"):
        return f"{base}.values"
    return base


def _map(
    outcome: UserOutcome, base: str, path_of: Callable[[ErrorKey, Sequence[str]], str]
) -> list[FieldError]:
    errors: list[FieldError] = []
    for rest, messages in outcome.errors.items():
        path = base if rest == _SIZE else path_of(ErrorKey.parse(rest), messages)
        errors.extend(FieldError(path=path, message=message) for message in messages)
    return errors


def exception_errors(exc: BaseException, base: str) -> list[FieldError]:
    """An item whose request failed as a whole (other chunks of the mutation succeeded)."""
    message = getattr(exc, "message", None) or "the UCD call for this item failed"
    return [FieldError(path=base, message=str(message))]
