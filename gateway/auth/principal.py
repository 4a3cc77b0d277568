"""The caller of one request, as authentication established it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from gateway.auth.scopes import Scope

__all__ = ["ANONYMOUS", "Principal", "PrincipalKind"]


class PrincipalKind(StrEnum):
    API_KEY = "api-key"
    JWT = "jwt"
    #: Authentication is not configured (loopback, or UCD_GATEWAY_ALLOW_ANONYMOUS).
    ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Principal:
    """Who calls (``id``: the key's id or the token's ``sub``) and what it may do.

    ``rate_limit`` is the key's own limit from the keys file (e.g. ``"600/minute"``),
    kept for per-principal rate limiting; None: the gateway's default applies.
    """

    id: str
    kind: PrincipalKind
    scopes: frozenset[Scope]
    rate_limit: str | None = None

    def may(self, scope: Scope) -> bool:
        return scope in self.scopes


#: The caller when no authentication is configured: the gateway as it always was, every
#: scope (the start-up check allows this on a loopback address only).
ANONYMOUS: Final = Principal("anonymous", PrincipalKind.ANONYMOUS, frozenset(Scope))
