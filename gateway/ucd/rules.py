r"""The UCD's identifier and name rules, as one table (docs/ucd-rest-api.md §3.1.3, §4.2).

One row is the gateway's alone: ``IDENTIFIER_VALUE`` bounds identifier values where the
contract says nothing, so only the gateway checks it (see ``_identifier_value_ok``).

Both sides check with this table: the gateway's input validation (``gateway.api.validation``,
before any UCD call) and the local UCD (its identity checks, upsert validation, event
writing and segment conditions), so what one refuses the other refuses too; both also
normalise and block identifier values with the functions here, never with copies. It
imports only the standard library, because the local UCD may import nothing else from the
gateway.

Each rule keeps the UCD's rule text verbatim, as it appears in its error keys (E1's
``users.1.identifiers.*.regexp(^.+@.+\..+$)``), and checks the way the UCD's Go regexps do:

* ``fullmatch`` and no ``re.DOTALL``: Python's ``$`` also matches before a final newline and
  DOTALL lets ``.`` match one, so ``"+905551112233\n"`` and ``"a\nb@x.io"`` would pass; Go
  refuses both.
* ``[0-9]``, not ``\d``: Python's ``\d`` matches every Unicode digit (``"+٩٠٥٥٥١١١٢٢٣٣"``);
  Go's is ASCII.
* The event-name text says ``[a-zA-Z0-9._-]`` but the UCD refuses upper case (§3.1.3 note):
  the text is the UCD's, the pattern is what it enforces.

    >>> PHONE_NUMBER.check("+905551112233"), PHONE_NUMBER.check("+905551112233\n")
    (True, False)
    >>> EMAIL.check(" Ada@Example.COM "), EMAIL.check("a\nb@x.io")
    (True, False)
    >>> f"identifiers.*.{EMAIL.key}"
    'identifiers.*.regexp(^.+@.+\\..+$)'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "BLOCKED",
    "BLOCKED_VALUES",
    "CUSTOM_NAME",
    "EMAIL",
    "EVENT_NAME",
    "IDENTIFIER_VALUE",
    "PHONE_NUMBER",
    "RULES",
    "Rule",
    "is_blocked",
    "normalise_email",
    "normalise_identifier",
]

#: Identifier values the UCD ignores (§4.2), compared case-insensitively after normalisation.
BLOCKED_VALUES: Final = frozenset({"undefined", "anonymous", "0", "1", "null", ""})


def normalise_email(value: str) -> str:
    """Emails are trimmed and lower-cased before validation, matching and storage (§4.2)."""
    return value.strip().lower()


def normalise_identifier(kind: str, value: str) -> str:
    """The stored form of an identifier value: emails normalised, every other kind as sent.

    >>> normalise_identifier("email", " A@B.io "), normalise_identifier("uuid", " A ")
    ('a@b.io', ' A ')
    """
    return normalise_email(value) if kind == "email" else value


def is_blocked(value: str, *, email: bool = False) -> bool:
    """True when the UCD silently ignores this identifier value (§4.2): compared after
    normalisation, which only emails have.

    >>> is_blocked(" NULL ", email=True), is_blocked(" null ")
    (True, False)
    """
    return BLOCKED.check(normalise_email(value) if email else value)


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: its name, the UCD's text of it in error keys, and the check itself.

    ``check(value)`` is True when the value passes (for ``BLOCKED``: when it is blocked).
    ``key`` is empty for a rule the UCD reports under no key of its own.
    """

    name: str
    key: str
    check: Callable[[str], bool]


def _matches(
    pattern: str, *, normalise: Callable[[str], str] | None = None
) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    if normalise is None:
        return lambda value: compiled.fullmatch(value) is not None
    return lambda value: compiled.fullmatch(normalise(value)) is not None


#: §4.2: checked on the normalised email (trimmed, lower-cased).
EMAIL: Final = Rule(
    "email", r"regexp(^.+@.+\..+$)", _matches(r".+@.+\..+", normalise=normalise_email)
)
#: §4.2: E.164, ASCII digits only.
PHONE_NUMBER: Final = Rule(
    "phone_number", r"regexp(^\+[1-9]\d{6,14}$)", _matches(r"\+[1-9][0-9]{6,14}")
)
#: §3.1.3: the key text allows upper case, the UCD does not (see the module doc).
EVENT_NAME: Final = Rule(
    "event_name", "regexp(^[a-z0-9][a-zA-Z0-9._-]*$)", _matches(r"[a-z0-9][a-z0-9._-]*")
)
#: C0 controls, DEL and C1 controls (Unicode category Cc).
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _custom_name_ok(name: str) -> bool:
    r"""1 to 128 characters, none a control character (C0, DEL or C1).

    The length is §3.1.3's. The control characters are [LOCAL]: the contract (a shared
    document, docs/ucd-rest-api.md) says nothing, and a name with CR, LF, tab or NUL is
    never one a partner means, while it breaks line-oriented readers of export headers
    and lets a name forge a log line. Names are kept and sent as JSON keys and CSV
    columns, never as file paths, so ``../`` or ``/`` is just text and stays allowed.

    >>> _custom_name_ok("tier"), _custom_name_ok("../x"), _custom_name_ok("a\r\nb")
    (True, True, False)
    """
    return 1 <= len(name) <= 128 and _CONTROL.search(name) is None


#: §3.1.3: custom identifier, attribute and event parameter names have 1 to 128 characters;
#: [LOCAL] no control characters. The key stays the contract's (see ``_custom_name_ok``).
CUSTOM_NAME: Final = Rule("custom_name", "length(1,128)", _custom_name_ok)
#: The longest identifier value the gateway sends (see ``_identifier_value_ok``).
MAX_IDENTIFIER_VALUE: Final = 1024


def _identifier_value_ok(value: str) -> bool:
    r"""At most 1,024 characters, none a control character (C0, DEL or C1).

    The gateway's own protection, not the UCD's rule: the contract gives identifier
    values (uuid, custom identifiers, insider_id) no length and no alphabet, so the
    local UCD, which must refuse only what the real UCD refuses, stores them as sent,
    and ``key`` is empty. A 1 MB uuid in a ``users(keys)`` of 100 keys would be sent
    100 times, stored, logged and echoed in error messages; no partner's identifier is
    that long (a UUID has 36 characters, an email at most 254), and a CR, LF or NUL
    in one is never meant and forges log lines, as in names (``_custom_name_ok``).

    >>> _identifier_value_ok("u-1"), _identifier_value_ok("u" * 1025), _identifier_value_ok("u\n")
    (True, False, False)
    """
    return len(value) <= MAX_IDENTIFIER_VALUE and _CONTROL.search(value) is None


#: [LOCAL] the gateway's bound on identifier values; the UCD has none (no key of its own).
IDENTIFIER_VALUE: Final = Rule("identifier_value", "", _identifier_value_ok)
#: §4.2: a blocked value (already normalised) is never matched nor stored; no error of its own.
BLOCKED: Final = Rule("blocked", "", lambda value: value.lower() in BLOCKED_VALUES)

#: Every rule by name.
RULES: Final[Mapping[str, Rule]] = {
    rule.name: rule
    for rule in (EMAIL, PHONE_NUMBER, EVENT_NAME, CUSTOM_NAME, IDENTIFIER_VALUE, BLOCKED)
}
