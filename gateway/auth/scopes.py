"""The scopes a caller may hold, and the one each root field of the schema needs.

Scopes are the unit of permission of both kinds of credential: an API key lists them in
the keys file, a JWT carries them in ``scope`` (space-separated) or ``scp``. A caller
without authentication configured (the loopback ``make run`` case) holds every scope.

Which scope a field needs is a table of GraphQL names rather than a decorator on each
resolver, so tests/gateway/test_authorization.py can hold it equal to the schema: a new
root field cannot go unguarded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = ["FIELD_SCOPES", "Scope", "known_scopes", "parse_scopes"]


class Scope(StrEnum):
    """One permission; the value is what keys files and tokens spell."""

    #: Non-PII fields, events, the partner's catalogue.
    PROFILE_READ = "profile:read"
    #: email, phoneNumber, name, surname, birthday, identifier values, and custom
    #: attributes listed in UCD_GATEWAY_PII_ATTRIBUTES.
    PII_READ = "pii:read"
    #: upsertUsers, deleteAttributes.
    PROFILE_WRITE = "profile:write"
    #: updateIdentifier, deleteIdentifier.
    IDENTITY_WRITE = "identity:write"
    #: deletePii, deleteUser.
    PII_ERASE = "pii:erase"
    #: startExport, exportJob.
    EXPORT = "export"


#: The scope each root field needs, by GraphQL type and field name.
FIELD_SCOPES: Final[Mapping[tuple[str, str], Scope]] = MappingProxyType(
    {
        ("Query", "user"): Scope.PROFILE_READ,
        ("Query", "users"): Scope.PROFILE_READ,
        ("Query", "exportJob"): Scope.EXPORT,
        # The partner's attribute and event names and types: metadata, not personal data.
        ("Query", "catalog"): Scope.PROFILE_READ,
        ("Mutation", "upsertUsers"): Scope.PROFILE_WRITE,
        ("Mutation", "deleteAttributes"): Scope.PROFILE_WRITE,
        ("Mutation", "updateIdentifier"): Scope.IDENTITY_WRITE,
        ("Mutation", "deleteIdentifier"): Scope.IDENTITY_WRITE,
        ("Mutation", "deletePii"): Scope.PII_ERASE,
        ("Mutation", "deleteUser"): Scope.PII_ERASE,
        ("Mutation", "startExport"): Scope.EXPORT,
    }
)


def parse_scopes(values: Iterable[str], *, where: str) -> frozenset[Scope]:
    """The scopes named by ``values``; an unknown name is a ``ValueError`` naming ``where``.

    Used for keys files and the command line, where a typo must fail loudly. Tokens are
    read with ``known_scopes`` instead: an identity provider may put other scopes in them.
    """
    scopes: set[Scope] = set()
    for value in values:
        try:
            scopes.add(Scope(value))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise ValueError(f"{where}: unknown scope {value!r} (known: {known})") from None
    return frozenset(scopes)


def known_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """The gateway's scopes among ``values``; others (``openid``, another API's) are ignored."""
    known = {s.value for s in Scope}
    return frozenset(Scope(v) for v in values if v in known)
