"""The key set and the verifier on their own, against the real JWKS server: the edges
the HTTP tests do not reach (kid-less tokens, odd key sets, missing claims)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.auth.jwt_tokens import JwtVerifier, KeySet, TokenRefused
from gateway.auth.scopes import Scope
from tests.gateway.auth.jwks_server import AUDIENCE, ISSUER, Issuer, new_key


@pytest.fixture
async def verifier(issuer: Issuer) -> AsyncIterator[JwtVerifier]:
    keys = KeySet(issuer.jwks_url, max_age=300, min_refresh=0)
    yield JwtVerifier(keys, issuer=ISSUER, audience=AUDIENCE, leeway=0)
    await keys.aclose()


async def test_a_token_without_kid_is_verified_by_a_set_of_one_key(
    verifier: JwtVerifier, issuer: Issuer
) -> None:
    principal = await verifier.principal(issuer.token("export", with_kid=False))
    assert (principal.id, principal.scopes) == ("svc-reporting", frozenset({Scope.EXPORT}))


async def test_concurrent_requests_share_one_fetch(verifier: JwtVerifier, issuer: Issuer) -> None:
    tokens = [issuer.token() for _ in range(5)]
    await asyncio.gather(*(verifier.principal(t) for t in tokens))
    assert issuer.fetches == 1


async def test_a_given_client_is_used_and_left_open(issuer: Issuer) -> None:
    async with httpx.AsyncClient() as http:
        keys = KeySet(issuer.jwks_url, max_age=300, min_refresh=0, http=http)
        assert await keys.key(issuer.key.kid) is not None
        await keys.aclose()
        assert not http.is_closed


async def test_the_key_set_is_fetched_again_once_too_old(issuer: Issuer) -> None:
    now = [0.0]
    keys = KeySet(issuer.jwks_url, max_age=60, min_refresh=30, clock=lambda: now[0])
    await keys.key(issuer.key.kid)
    now[0] = 59.0
    await keys.key(issuer.key.kid)
    assert issuer.fetches == 1
    now[0] = 61.0
    await keys.key(issuer.key.kid)
    assert issuer.fetches == 2
    await keys.aclose()


async def test_keys_of_other_uses_kinds_or_algorithms_are_left_out(
    verifier: JwtVerifier, issuer: Issuer
) -> None:
    encryption = new_key("RS256")
    hs512 = new_key("RS256")
    issuer.extra = [
        {**encryption.jwk, "use": "enc"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
        {**hs512.jwk, "alg": "RS512"},
        "not an object",
    ]
    assert (await verifier.principal(issuer.token())).id == "svc-reporting"
    for key in (encryption, hs512):
        with pytest.raises(TokenRefused, match="not in the issuer's key set"):
            await verifier.principal(issuer.token(key=key))


async def test_a_document_that_is_not_a_key_set_refuses_tokens(
    verifier: JwtVerifier, issuer: Issuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    issuer.raw = {"keys": "none"}
    with pytest.raises(TokenRefused, match="not in the issuer's key set"):
        await verifier.principal(issuer.token())
    assert "not a JWK Set" in caplog.text


@pytest.mark.parametrize(
    ("drop", "sub", "message"),
    [
        pytest.param(["sub"], "x", "the token has no sub claim", id="no-sub"),
        pytest.param([], "", "sub claim must be a non-empty string", id="empty-sub"),
        pytest.param(["exp"], "x", "the token has no exp claim", id="no-exp"),
    ],
)
async def test_tokens_missing_required_claims_are_refused(
    verifier: JwtVerifier, issuer: Issuer, drop: list[str], sub: str, message: str
) -> None:
    with pytest.raises(TokenRefused, match=message):
        await verifier.principal(issuer.token(sub=sub, drop=drop))


async def test_a_token_without_scopes_holds_none(verifier: JwtVerifier, issuer: Issuer) -> None:
    principal = await verifier.principal(issuer.token(None))
    assert principal.scopes == frozenset()
    spaced = await verifier.principal(issuer.token("profile:read  pii:read unknown"))
    assert spaced.scopes == {Scope.PROFILE_READ, Scope.PII_READ}


async def test_a_verified_token_is_kept_until_its_expiry_at_most(issuer: Issuer) -> None:
    now = [1_000_000_000.0]
    keys = KeySet(issuer.jwks_url, max_age=60, min_refresh=0, clock=lambda: now[0])
    verifier = JwtVerifier(keys, issuer=ISSUER, audience=AUDIENCE, leeway=0, clock=lambda: now[0])
    token = issuer.token(exp=int(now[0]) + 30, iat=int(now[0]))
    # PyJWT checks exp against the real clock: a token made for the fake one is expired,
    # so only a kept verification can accept it again.
    with pytest.raises(TokenRefused, match="expired"):
        await verifier.principal(token)
    fresh = issuer.token()
    first = await verifier.principal(fresh)
    issuer.rotate()  # the signing key is withdrawn; the kept verification still holds
    assert await verifier.principal(fresh) is first
    assert issuer.fetches == 1
    now[0] += 61  # past the 60 s a verification is kept, and the key set's max age
    with pytest.raises(TokenRefused, match="not in the issuer's key set"):
        await verifier.principal(fresh)
    await keys.aclose()
