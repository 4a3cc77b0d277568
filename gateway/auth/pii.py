"""Which attributes are personal data (PII): reading them needs the ``pii:read`` scope.

Fixed: email, phone number, name, surname and birthday (the values that identify or
describe a person). Configurable: custom attributes named in UCD_GATEWAY_PII_ATTRIBUTES,
since only the partner knows what its ``c_`` attributes hold. Names here are the UCD's
read names (``phone_number``, ``c_loyalty_card``), the ones a ``ProfileNeed`` holds.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Final

from gateway.ucd.names import BIRTHDAY, EMAIL, NAME, PHONE_NUMBER, SURNAME, custom_read_name

__all__ = ["DEFAULT_PII", "pii_read_names"]

#: The default attributes whose values are always PII.
DEFAULT_PII: Final = frozenset({EMAIL, PHONE_NUMBER, NAME, SURNAME, BIRTHDAY})


@functools.lru_cache(maxsize=8)
def pii_read_names(custom: tuple[str, ...]) -> frozenset[str]:
    """The read names of every PII attribute, with the custom ones ``custom`` names."""
    return DEFAULT_PII | _custom(custom)


def _custom(names: Iterable[str]) -> frozenset[str]:
    return frozenset(custom_read_name(name) for name in names)
