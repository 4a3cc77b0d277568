"""The UCD's per-user errors -> GraphQL input paths.

The UCD reports a refused user of E1/E4 as ``users.N.<path>.<rule>`` (§3.1.3, §3.4.3);
``N`` is the position in *its* request, which the write path already translated back to
the caller's item. ``gateway.ucd.error_keys`` reads the rest of the key (and, where the
key does not tell, its message) into a ``Fault``: the part of the user it is about, in
the UCD's terms. This module places that part on the GraphQL input, e.g.

    identifiers.*.regexp(^.+@.+\\..+$)          -> users.3.key.email
    identifiers.*.regexp(^\\+[1-9]\\d{6,14}$)    -> users.3.key.phoneNumber
    events.2.event_name.*.regexp(...)          -> users.0.events.2.name
    events.0.event_params.*.required           -> users.0.events.0.eventGroupId (by message)
    attributes.gdpr_optin.type(boolean)        -> users.1.attributes.gdprOptin
    attributes.custom.tier.type(string)        -> users.1.attributes.custom.<index of tier>
    whole.identifier                           -> users.4.names

A key we cannot place more precisely maps to the item itself (``users.3``): the
message still says what is wrong. Only GraphQL field names are spelled here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gateway.api.names import EVENT_PARAM_TO_INPUT_FIELD, KEY_FIELDS, WRITE_NAME_TO_INPUT_FIELD
from gateway.api.types import FieldError
from gateway.ucd.envelope import UserOutcome
from gateway.ucd.error_keys import (
    AttributeFault,
    DeletionFault,
    ErrorKey,
    EventFault,
    EventField,
    Fault,
    IdentityFault,
    delete_fault,
    upsert_fault,
)

__all__ = ["delete_errors", "exception_errors", "upsert_errors"]

#: What a key is about, from the key and its messages (one function per endpoint).
Classify = Callable[[ErrorKey, Sequence[str]], Fault]


def upsert_errors(
    outcome: UserOutcome, base: str, *, custom_names: Sequence[str] = ()
) -> list[FieldError]:
    """FieldErrors of one E1 user. ``custom_names``: its AttributesInput.custom names, in order."""
    return _map(outcome, base, upsert_fault, custom_names)


def delete_errors(outcome: UserOutcome, base: str) -> list[FieldError]:
    """FieldErrors of one E4 user."""
    return _map(outcome, base, delete_fault, ())


def exception_errors(exc: BaseException, base: str) -> list[FieldError]:
    """An item whose request failed as a whole (other chunks of the mutation succeeded)."""
    message = getattr(exc, "message", None) or "the UCD call for this item failed"
    return [FieldError(path=base, message=str(message))]


def _map(
    outcome: UserOutcome, base: str, classify: Classify, custom_names: Sequence[str]
) -> list[FieldError]:
    errors: list[FieldError] = []
    for key, messages in outcome.errors.items():
        # The gateway's own key for a user too big for any request (batching.TOO_BIG)
        # reads as a bare rule about no part: the item itself.
        path = _path(classify(ErrorKey.parse(key), messages), base, custom_names)
        errors.extend(FieldError(path=path, message=message) for message in messages)
    return errors


def _path(fault: Fault, base: str, custom_names: Sequence[str]) -> str:
    match fault:
        case IdentityFault(identifier=identifier):
            field = KEY_FIELDS.get(identifier) if identifier is not None else None
            return f"{base}.key.{field}" if field is not None else f"{base}.key"
        case AttributeFault(name=name, custom=True):
            if name is None:
                return f"{base}.attributes.custom"
            return f"{base}.attributes.custom.{_custom_index(custom_names, name)}"
        case AttributeFault(name=name):
            field = WRITE_NAME_TO_INPUT_FIELD.get(name) if name is not None else None
            return f"{base}.attributes.{field}" if field is not None else f"{base}.attributes"
        case EventFault(index=None):
            return f"{base}.events"
        case EventFault(index=index, field=field, param=param):
            return _event_path(f"{base}.events.{index}", field, param)
        case DeletionFault(whole=True, custom=False):
            return f"{base}.names"
        case DeletionFault(whole=True, custom=True):
            return f"{base}.customNames"
        case DeletionFault():
            return f"{base}.values"
    return base


def _custom_index(names: Sequence[str], name: str) -> str:
    """The AttributesInput.custom item that carried ``name``; the name if none did."""
    return str(names.index(name)) if name in names else name


def _event_path(event: str, field: EventField | None, param: str | None) -> str:
    """One EventInput field of ``event`` (``users.N.events.M``)."""
    typed = EVENT_PARAM_TO_INPUT_FIELD.get(param) if param is not None else None
    match field:
        case EventField.NAME:
            return f"{event}.name"
        case EventField.TIMESTAMP:
            return f"{event}.timestamp"
        case EventField.CUSTOM_PARAMS:
            return f"{event}.custom"
        case EventField.PARAM | EventField.MISSING_PARAM if typed is not None:
            return f"{event}.{typed}"
        case EventField.PARAM if param is not None:
            # Parameters the gateway does not type are sent from EventInput.params.
            return f"{event}.params.{param}"
    # A missing parameter the gateway does not type has no field of its own to name.
    return event
