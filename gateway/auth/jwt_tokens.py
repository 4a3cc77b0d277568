"""JWTs: the issuer's key set (JWKS), cached, and tokens verified against it.

Verification is PyJWT's (signature, ``exp``/``nbf`` with leeway, ``iss``, ``aud``); this
module only picks the key and reads the scopes. Algorithms are allow-listed: RS256,
ES256 and EdDSA. ``none`` and the HMAC family are never accepted, so a token "signed"
with HS256 using the issuer's *public* key (the classic key-confusion attack) is
refused before any key is even looked up; PyJWT also checks that the token's ``alg``
is the algorithm of the JWK it is verified with.

The key set is fetched lazily, kept for ``max_age`` seconds, and fetched again at once
when a token names a ``kid`` the set lacks (the issuer rotated its keys) - but never
twice within ``min_refresh`` seconds, so tokens with made-up ``kid`` values cannot make
the gateway hammer the issuer. Concurrent requests share one fetch: a request that
arrives while one is on the wire waits for its answer instead of sending another.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

import httpx
import jwt

from gateway.auth.principal import Principal, PrincipalKind
from gateway.auth.scopes import Scope, known_scopes

__all__ = ["ALGORITHMS", "JwtVerifier", "KeySet", "TokenRefused"]

logger = logging.getLogger("gateway.auth")

#: The only algorithms a token may be signed with.
ALGORITHMS: Final = ("RS256", "ES256", "EdDSA")

#: A key set fetch that takes longer than this fails (the request gets 401, the log why).
_FETCH_TIMEOUT: Final = 5.0
#: Verified tokens kept (by their SHA-256), and for how long at most: a signature check
#: costs 0.2-0.3 ms a request, and clients send the same token for its whole life. A key
#: the issuer withdraws stops its tokens once the key set is fetched again (max_age) and
#: the kept verification is this old.
_VERIFIED_SIZE: Final = 1024
_VERIFIED_SECONDS: Final = 60.0


class TokenRefused(Exception):
    """A token that is not accepted; the message is safe to show its bearer."""


class KeySet:
    """The issuer's signing keys, fetched from ``url`` over ``http`` (or a client of its own)."""

    def __init__(
        self,
        url: str,
        *,
        max_age: float,
        min_refresh: float,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._max_age = max_age
        self._min_refresh = min_refresh
        self._http = http
        self._own_http: httpx.AsyncClient | None = None
        self._clock = clock
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # start of the last fetch, successful or not
        self._pending: asyncio.Future[None] | None = None  # the fetch on the wire
        #: Fetches made, for tests and metrics.
        self.fetches = 0

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The key a token's ``kid`` names (a set of one key also serves a token without)."""
        if self._pending is not None:
            await asyncio.shield(self._pending)  # its answer may hold the kid: wait for it
        elif self._fetched_at is None or self._clock() - self._fetched_at >= self._max_age:
            await self._refresh()
        found = self._lookup(kid)
        if found is None and self._clock() - (self._fetched_at or 0.0) >= self._min_refresh:
            await self._refresh()
            found = self._lookup(kid)
        return found

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        """Fetch the set, or join the fetch on the wire: one at a time, shared.

        Shielded: a request that gives up waiting does not cancel the others' fetch."""
        if self._pending is None:
            self._fetched_at = self._clock()
            self.fetches += 1
            self._pending = asyncio.ensure_future(self._fetch())
        await asyncio.shield(self._pending)

    async def _fetch(self) -> None:
        try:
            response = await self._client().get(self._url, timeout=_FETCH_TIMEOUT)
            response.raise_for_status()
            self._keys = _usable_keys(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            # The old keys (if any) stay: an issuer's hiccup must not log everyone out.
            logger.warning("cannot fetch the JWT key set %s: %s", self._url, exc)
        finally:
            self._pending = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is not None:
            return self._http
        if self._own_http is None:
            self._own_http = httpx.AsyncClient()
        return self._own_http

    async def aclose(self) -> None:
        if self._own_http is not None:
            await self._own_http.aclose()
            self._own_http = None


def _usable_keys(document: Any) -> dict[str | None, jwt.PyJWK]:
    """The signing keys of a JWKS document whose algorithm is allowed, by ``kid``."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set: no keys list")
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, Mapping) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(dict(entry))
        except jwt.PyJWTError:
            continue  # a key type or curve this gateway does not take; others may serve
        if key.algorithm_name in ALGORITHMS:
            keys[key.key_id] = key
    return keys


class JwtVerifier:
    """Tokens to principals: signature, ``exp``, ``iss`` and ``aud`` checked; scopes read."""

    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str,
        audience: str,
        leeway: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._clock = clock
        self._verified: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()

    async def principal(self, token: str) -> Principal:
        digest = hashlib.sha256(token.encode()).digest()
        now = self._clock()
        hit = self._verified.get(digest)
        if hit is not None and now < hit[1]:
            self._verified.move_to_end(digest)
            return hit[0]
        principal, expires = await self._verify(token)
        self._verified[digest] = (principal, min(expires, now + _VERIFIED_SECONDS))
        if len(self._verified) > _VERIFIED_SIZE:
            self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        """The token's principal and its ``exp``; every check, no cache."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRefused("the credential is not a well-formed JWT") from None
        if header.get("alg") not in ALGORITHMS:
            raise TokenRefused(f"tokens must be signed with {', '.join(ALGORITHMS)}")
        kid = header.get("kid")
        key = await self.keys.key(kid if isinstance(kid, str) else None)
        if key is None:
            raise TokenRefused("the token's signing key is not in the issuer's key set")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=list(ALGORITHMS),
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRefused("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise TokenRefused("the token is not meant for this gateway (aud)") from None
        except jwt.InvalidIssuerError:
            raise TokenRefused("the token is not from the trusted issuer (iss)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRefused(f"the token has no {exc.claim} claim") from None
        except jwt.PyJWTError:
            raise TokenRefused("the token's signature or claims are not valid") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise TokenRefused("the token's sub claim must be a non-empty string")
        return Principal(subject, PrincipalKind.JWT, _scopes(claims)), float(claims["exp"])


def _scopes(claims: Mapping[str, Any]) -> frozenset[Scope]:
    """``scope`` (RFC 8693 §4.2: space-separated) or ``scp`` (a list, or a string)."""
    raw = claims.get("scope", claims.get("scp"))
    if isinstance(raw, str):
        return known_scopes(raw.split())
    if isinstance(raw, list):
        return known_scopes(v for v in raw if isinstance(v, str))
    return frozenset()
