r"""The UCD's per-user rule keys (§3.1.3, §3.4.3), parsed.

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
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from gateway.ucd.names import EMAIL, PHONE_NUMBER, UUID
from gateway.ucd.rules import EMAIL as EMAIL_RULE
from gateway.ucd.rules import PHONE_NUMBER as PHONE_RULE

__all__ = ["ErrorKey", "identifier_kind", "required_param"]

#: ``<path>.<name>(<args>)``: the rule is the *last* ``name(args)``, whose arguments hold
#: no parentheses (none of the UCD's rules do, §3.1.3) but may hold dots. The path is
#: greedy because a custom name may hold anything, parentheses included (§3.1.3: 1-128
#: characters): ``attributes.custom.size(cm).type(string)`` is the name ``size(cm)``
#: and the rule ``type(string)``, not the rule ``size(cm).type(string)``.
_WITH_ARGS: Final = re.compile(r"(?:(?P<path>.*)\.)?(?P<rule>[a-z_]+\([^()]*\))", re.DOTALL)
#: §3.1.3: "<param> parameter is required on <event> event".
_REQUIRED_PARAM: Final = re.compile(r"([a-z_]+) parameter is required on ")


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

    def event_index(self) -> int | None:
        """M of an ``events.M...`` key."""
        if len(self.path) >= 2 and self.path[0] == "events" and self.path[1].isdecimal():
            return int(self.path[1])
        return None


def identifier_kind(key: ErrorKey, messages: Sequence[str]) -> str | None:
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


def required_param(messages: Sequence[str]) -> str | None:
    """The parameter an ``event_params.*.required`` key is about, from its message."""
    match = _REQUIRED_PARAM.match(messages[0]) if messages else None
    return match.group(1) if match is not None else None
