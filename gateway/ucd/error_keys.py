r"""The UCD's per-user rule keys (§3.1.3, §3.4.3): parsed, then told what they are about.

E1 and E4 report a refused user as ``users.N.<path>.<rule>``; once the envelope is split
per user (``envelope.DataEnvelope.split``), what is left is ``<path>.<rule>``. The rule
is the last part: a name with arguments in parentheses, which may hold dots of their own
(``regexp(^.+@.+\..+$)``), or a bare word (``required``, ``exists``, ``identifier``).
The path may hold dots and parentheses of its own, in a custom name.

    >>> ErrorKey.parse(r"identifiers.*.regexp(^.+@.+\..+$)")
    ErrorKey(path=('identifiers', '*'), rule='regexp(^.+@.+\\..+$)')
    >>> ErrorKey.parse("events.2.event_params.*.required")
    ErrorKey(path=('events', '2', 'event_params', '*'), rule='required')
    >>> ErrorKey.parse("attributes.custom.size(cm).type(string)")
    ErrorKey(path=('attributes', 'custom', 'size(cm)'), rule='type(string)')
    >>> ErrorKey.parse("type(object)")
    ErrorKey(path=(), rule='type(object)')

``upsert_fault`` and ``delete_fault`` say which part of the user a key (and its
messages) is about, in the UCD's terms; the GraphQL layer places that on its input:

    >>> upsert_fault(ErrorKey.parse("attributes.lo.type(string)"), ["lo must be string: 1"])
    AttributeFault(name='locale', custom=False)
    >>> upsert_fault(ErrorKey.parse("events.3.event_params.*.required"),
    ...              ["currency parameter is required on purchase event"])
    EventFault(index=3, field=<EventField.MISSING_PARAM: 'missing_param'>, param='currency')
    >>> delete_fault(ErrorKey.parse("custom.whole.identifier"), ["crm is an identifier"])
    DeletionFault(whole=True, custom=True)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final

from gateway.ucd.names import CUSTOM, EMAIL, INSIDER_ID, PHONE_NUMBER, UUID, WRITE_NAME_ALIASES
from gateway.ucd.rules import EMAIL as EMAIL_RULE
from gateway.ucd.rules import PHONE_NUMBER as PHONE_RULE

__all__ = [
    "AttributeFault",
    "DeletionFault",
    "ErrorKey",
    "EventFault",
    "EventField",
    "Fault",
    "IdentityFault",
    "delete_fault",
    "upsert_fault",
]

#: ``<path>.<name>(<args>)``: the rule is the *last* ``name(args)``, whose arguments hold
#: no parentheses (none of the UCD's rules do, §3.1.3) but may hold dots. The path is
#: greedy because a custom name may hold anything, parentheses included (§3.1.3: 1-128
#: characters): ``attributes.custom.size(cm).type(string)`` is the name ``size(cm)``
#: and the rule ``type(string)``, not the rule ``size(cm).type(string)``.
_WITH_ARGS: Final = re.compile(r"(?:(?P<path>.*)\.)?(?P<rule>[a-z_]+\([^()]*\))", re.DOTALL)
#: §3.1.3: "<param> parameter is required on <event> event".
_REQUIRED_PARAM: Final = re.compile(r"([a-z_]+) parameter is required on ")
#: The path segment that stands for "any name" (``identifiers.*``, ``event_params.*``).
_ANY: Final = "*"
_REQUIRED: Final = "required"


@dataclass(frozen=True, slots=True)
class ErrorKey:
    """One rule key: the path of the offending field and the rule it broke."""

    path: tuple[str, ...]
    rule: str

    @classmethod
    def parse(cls, key: str) -> ErrorKey:
        match = _WITH_ARGS.fullmatch(key)
        if match is not None:
            path = match.group("path")
            return cls(tuple(path.split(".")) if path else (), match.group("rule"))
        *path, rule = key.split(".")
        return cls(tuple(path), rule)

    def under(self, *prefix: str) -> bool:
        """True when the path starts with ``prefix``."""
        return self.path[: len(prefix)] == prefix


# --- what a key is about --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdentityFault:
    """How the user is named: ``identifier`` is ``insider_id``, ``email``,
    ``phone_number``, ``uuid`` or ``custom``; None: the naming as a whole (nothing names
    the user, ``identifiers`` is no object, no user has these identifiers)."""

    identifier: str | None = None


@dataclass(frozen=True, slots=True)
class AttributeFault:
    """E1's attributes: ``name`` is a default attribute's write name (the UCD's other
    write names resolved, ``lo`` -> ``locale``) or, with ``custom``, a custom attribute's
    name; None: the attributes (or the custom attributes) as a whole."""

    name: str | None = None
    custom: bool = False


class EventField(Enum):
    """The part of one E1 event a key is about."""

    NAME = "name"
    TIMESTAMP = "timestamp"
    #: A parameter's value (``param``: its name, default or not, as sent).
    PARAM = "param"
    #: A parameter the event requires is missing (``param``: its name, when the message
    #: gives it).
    MISSING_PARAM = "missing_param"
    #: The custom parameters, or one of their names.
    CUSTOM_PARAMS = "custom_params"


@dataclass(frozen=True, slots=True)
class EventFault:
    """E1's events: ``index`` of the event (None: the events as a whole); ``field`` (None:
    the event as a whole) and, for the parameter fields, ``param``."""

    index: int | None = None
    field: EventField | None = None
    param: str | None = None


@dataclass(frozen=True, slots=True)
class DeletionFault:
    """E4: the names of whole attributes to delete (``whole``) or the values to remove
    from arrays (``partial``), of default or ``custom`` attributes."""

    whole: bool
    custom: bool


#: What a key is about; None: the user as a whole (or a key that names no part).
Fault = IdentityFault | AttributeFault | EventFault | DeletionFault | None


def upsert_fault(key: ErrorKey, messages: Sequence[str]) -> Fault:
    """What an E1 key is about (§3.1.3)."""
    if key.under("identifiers") or key.under(INSIDER_ID):
        return _identity_fault(key, messages)
    if key.under("attributes"):
        return _attribute_fault(key.path)
    if key.under("events"):
        return _event_fault(key, messages)
    return None


def delete_fault(key: ErrorKey, messages: Sequence[str]) -> Fault:
    """What an E4 key is about (§3.4.3)."""
    if key.under("identifiers") or key.under(INSIDER_ID):
        return _identity_fault(key, messages)
    if key.under("whole"):
        # "at least one of whole, partial, ... must be specified": the user as a whole.
        missing = key.path == ("whole",) and key.rule == _REQUIRED
        return None if missing else DeletionFault(whole=True, custom=False)
    if key.under(CUSTOM, "whole"):
        return DeletionFault(whole=True, custom=True)
    if key.under("partial"):
        return DeletionFault(whole=False, custom=False)
    if key.under(CUSTOM, "partial"):
        return DeletionFault(whole=False, custom=True)
    return None


def _identity_fault(key: ErrorKey, messages: Sequence[str]) -> IdentityFault:
    if key.under(INSIDER_ID):
        # "either insider_id or identifiers must be specified" is about the whole key.
        return IdentityFault(None if key.rule == _REQUIRED else INSIDER_ID)
    if key.under("identifiers", CUSTOM):
        return IdentityFault(CUSTOM)
    if key.under("identifiers", _ANY):
        return IdentityFault(_identifier_kind(key, messages))
    return IdentityFault()


def _identifier_kind(key: ErrorKey, messages: Sequence[str]) -> str | None:
    """Which default identifier an ``identifiers.*`` key is about: email, phone_number or
    uuid, from the rule where it tells (the format rules) and the message otherwise.

    The UCD reports every default identifier under the one key ``identifiers.*``.
    """
    text = " ".join(messages)
    if key.rule == EMAIL_RULE.key or text.startswith(EMAIL) or "email address" in text:
        return EMAIL
    if key.rule == PHONE_RULE.key or text.startswith(PHONE_NUMBER) or "phone number" in text:
        return PHONE_NUMBER
    if text.startswith(UUID):
        return UUID
    return None


def _attribute_fault(path: tuple[str, ...]) -> AttributeFault:
    if path[1:2] == (CUSTOM,):
        if len(path) >= 3 and path[2] != _ANY:
            # A custom name may hold dots: everything after "custom." is the name.
            return AttributeFault(".".join(path[2:]), custom=True)
        return AttributeFault(custom=True)
    if len(path) >= 2:
        return AttributeFault(WRITE_NAME_ALIASES.get(path[1], path[1]))
    return AttributeFault()


def _event_fault(key: ErrorKey, messages: Sequence[str]) -> EventFault:
    """``events.M.<tail>`` -> the part of event M; ``events.<rule>`` -> the events."""
    if len(key.path) < 2 or not key.path[1].isdecimal():
        return EventFault()
    index, tail = int(key.path[1]), key.path[2:]
    if tail[:1] == ("event_name",):
        return EventFault(index, EventField.NAME)
    if tail[:1] == ("timestamp",):
        return EventFault(index, EventField.TIMESTAMP)
    if tail[:2] == ("event_params", _ANY) and key.rule == _REQUIRED:
        return EventFault(index, EventField.MISSING_PARAM, _required_param(messages))
    if tail[:2] == ("event_params", CUSTOM):
        return EventFault(index, EventField.CUSTOM_PARAMS)
    if tail[:1] == ("event_params",) and len(tail) >= 2:
        return EventFault(index, EventField.PARAM, tail[1])
    return EventFault(index)


def _required_param(messages: Sequence[str]) -> str | None:
    """The parameter an ``event_params.*.required`` key is about, from its message."""
    match = _REQUIRED_PARAM.match(messages[0]) if messages else None
    return match.group(1) if match is not None else None
