"""Who may call: API keys and JWTs through Authorization: Bearer, over HTTP, against a
real JWKS endpoint (tests/gateway/auth/jwks_server.py) and the local UCD."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from gateway.auth.middleware import PUBLIC_PREFIXES
from gateway.graphiql.assets import STATIC_PATH
from gateway.ucd.client import UcdClient
from tests.gateway.auth.conftest import (
    auth_settings,
    authed_gateway,
    body,
    call,
    key_of,
)
from tests.gateway.auth.jwks_server import AUDIENCE, ISSUER, Issuer, new_key
from tests.gateway.conftest import CallLog, GatewayHttp, HookRelay, put_users

QUERY = '{ user(key: {uuid: "u-1"}) { insiderId city } }'


@pytest.fixture
async def ada(ucd: UcdClient) -> None:
    await put_users(
        ucd,
        {
            "identifiers": {"uuid": "u-1", "email": "ada@example.com"},
            "attributes": {"name": "Ada", "city": "London"},
        },
    )


def assert_unauthenticated(response: httpx.Response, message_part: str) -> None:
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="ucd-gateway"')
    (error,) = body(response)["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    assert message_part in error["message"]


# --- API keys -------------------------------------------------------------------------


@pytest.mark.usefixtures("ada")
async def test_a_known_api_key_reads_with_its_scopes(secured: GatewayHttp) -> None:
    response = await call(secured, QUERY, persona="reader")
    assert response.status_code == 200
    assert body(response)["data"]["user"]["city"] == "London"


async def test_no_credential_is_401_unauthenticated_and_costs_no_ucd_call(
    secured: GatewayHttp, ucd_calls: CallLog
) -> None:
    response = await call(secured, QUERY)
    assert_unauthenticated(response, "Authorization: Bearer")
    assert "invalid_token" not in response.headers["www-authenticate"]
    assert ucd_calls.calls == []


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Bearer ucdg_not-a-key", id="unknown-key"),
        pytest.param(f"Bearer {key_of('reader')}x", id="key-with-a-suffix"),
        pytest.param(f"Basic {key_of('reader')}", id="not-bearer"),
        pytest.param("Bearer ", id="empty"),
        pytest.param("Bearer a.b.c", id="not-a-jwt"),
    ],
)
async def test_a_bad_credential_is_401_unauthenticated(
    secured: GatewayHttp, ucd_calls: CallLog, header: str
) -> None:
    response = await secured.client.post(
        "/graphql", json={"query": QUERY}, headers={"Authorization": header}
    )
    assert response.status_code == 401
    assert body(response)["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
    assert ucd_calls.calls == []


async def test_keys_never_reach_the_log(
    secured: GatewayHttp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await call(secured, QUERY, persona="reader")
    await secured.client.post(
        "/graphql", json={"query": QUERY}, headers={"Authorization": "Bearer ucdg_wrong-secret"}
    )
    assert key_of("reader") not in caplog.text
    assert "ucdg_wrong-secret" not in caplog.text


async def test_a_json_keys_file_works_like_a_toml_one(
    tmp_path: Path, ucd_http: httpx.AsyncClient, hooks: HookRelay
) -> None:
    path = tmp_path / "keys.json"
    digest = hashlib.sha256(b"ucdg_json-key").hexdigest()
    path.write_text(
        json.dumps(
            {
                "keys": [
                    {"id": "j", "sha256": digest, "scopes": ["export"], "rate_limit": "5/second"}
                ]
            }
        )
    )
    async with authed_gateway(auth_settings(path, None), ucd_http, hooks) as gateway:
        response = await call(gateway, '{ exportJob(id: "x") { id } }', token="ucdg_json-key")
    assert response.status_code == 200
    assert body(response)["data"] == {"exportJob": None}


# --- JWTs -----------------------------------------------------------------------------


@pytest.mark.usefixtures("ada")
@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
async def test_a_valid_token_of_each_allowed_algorithm_is_accepted(
    secured: GatewayHttp, issuer: Issuer, alg: str
) -> None:
    issuer.rotate(alg)
    response = await call(secured, QUERY, token=issuer.token("profile:read"))
    assert response.status_code == 200, response.text
    assert body(response)["data"]["user"]["city"] == "London"


@pytest.mark.usefixtures("ada")
async def test_scopes_may_come_as_an_scp_list(secured: GatewayHttp, issuer: Issuer) -> None:
    token = issuer.token(["profile:read", "openid"], claim="scp")
    response = await call(secured, QUERY, token=token)
    assert body(response)["data"]["user"]["city"] == "London"


async def test_a_token_without_the_scope_is_forbidden_not_unauthenticated(
    secured: GatewayHttp, issuer: Issuer
) -> None:
    response = await call(secured, QUERY, token=issuer.token("export other:scope"))
    assert response.status_code == 200
    (error,) = body(response)["errors"]
    assert error["extensions"] == {"code": "FORBIDDEN", "scope": "profile:read"}


def _hs256_with_the_public_key(issuer: Issuer) -> str:
    """The key-confusion attack: HS256 with the issuer's public key (PEM) as the secret.

    PyJWT refuses to make such a token, so it is put together by hand."""
    pem = issuer.key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def part(data: dict[str, object]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")

    claims = json.loads(base64.urlsafe_b64decode(issuer.token().split(".")[1] + "=="))
    signing_input = (
        part({"alg": "HS256", "typ": "JWT", "kid": issuer.key.kid}) + b"." + part(claims)
    )
    signature = hmac.new(pem, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


def _alg_none(issuer: Issuer) -> str:
    good = issuer.token()
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    return f"{header}.{good.split('.')[1]}."


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda i: i.token(expires_in=-120), "expired", id="expired"),
        pytest.param(lambda i: i.token(iss="https://evil.test/"), "issuer", id="wrong-issuer"),
        pytest.param(lambda i: i.token(aud="another-api"), "(aud)", id="wrong-audience"),
        pytest.param(_alg_none, "must be signed with", id="alg-none"),
        pytest.param(_hs256_with_the_public_key, "must be signed with", id="hs256-public-key"),
        pytest.param(
            lambda i: i.token(key=new_key("RS256")), "not in the issuer's key set", id="unknown-kid"
        ),
        pytest.param(
            lambda i: (
                i.token(key=new_key("ES256")).rsplit(".", 1)[0] + "." + i.token().rsplit(".", 1)[1]
            ),
            "not in the issuer's key set",
            id="forged-signature",
        ),
    ],
)
async def test_bad_tokens_are_refused(
    secured: GatewayHttp, issuer: Issuer, ucd_calls: CallLog, make: object, message: str
) -> None:
    token = make(issuer)  # type: ignore[operator]
    response = await call(secured, QUERY, token=token)
    assert_unauthenticated(response, message)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert ucd_calls.calls == []


async def test_a_token_signed_by_a_published_key_but_tampered_is_refused(
    secured: GatewayHttp, issuer: Issuer
) -> None:
    header, _, signature = issuer.token("profile:read").split(".")
    claims = (
        base64.urlsafe_b64encode(
            json.dumps(
                {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": 2**40, "scope": "pii:read"}
            ).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    response = await call(secured, QUERY, token=f"{header}.{claims}.{signature}")
    assert_unauthenticated(response, "signature or claims")


@pytest.mark.usefixtures("ada")
async def test_rotated_keys_are_fetched_on_the_first_token_with_a_new_kid(
    secured: GatewayHttp, issuer: Issuer
) -> None:
    first = await call(secured, QUERY, token=issuer.token())
    assert first.status_code == 200
    assert issuer.fetches == 1
    old = issuer.key
    issuer.rotate("ES256")
    again = await call(secured, QUERY, token=issuer.token())
    assert again.status_code == 200, again.text
    assert issuer.fetches == 2
    # The old key is gone from the set: its tokens stop verifying.
    stale = await call(secured, QUERY, token=issuer.token(key=old, sub="another"))
    assert stale.status_code == 401


async def test_unknown_kids_refetch_the_key_set_at_most_once_per_interval(
    issuer: Issuer, keys_file: Path, ucd_http: httpx.AsyncClient, hooks: HookRelay
) -> None:
    settings = auth_settings(keys_file, issuer, jwt_jwks_min_refresh=60.0)
    async with authed_gateway(settings, ucd_http, hooks) as gateway:
        assert (await call(gateway, QUERY, token=issuer.token())).status_code in (200,)
        for _ in range(5):
            made_up = issuer.token(key=new_key("EdDSA"))
            assert (await call(gateway, QUERY, token=made_up)).status_code == 401
    assert issuer.fetches == 1


async def test_an_unreachable_key_set_refuses_tokens_and_says_so_in_the_log(
    keys_file: Path,
    ucd_http: httpx.AsyncClient,
    hooks: HookRelay,
    issuer: Issuer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = auth_settings(
        keys_file, issuer, jwt_jwks_url=issuer.jwks_url.replace(issuer.name, "nobody")
    )
    async with authed_gateway(settings, ucd_http, hooks) as gateway:
        response = await call(gateway, QUERY, token=issuer.token())
        # API keys still work while the issuer is down.
        by_key = await call(gateway, QUERY, persona="reader")
    assert_unauthenticated(response, "not in the issuer's key set")
    assert by_key.status_code == 200
    assert "cannot fetch the JWT key set" in caplog.text


# --- what stays open --------------------------------------------------------------------


async def test_probes_and_the_export_webhook_need_no_credential(secured: GatewayHttp) -> None:
    assert (await secured.client.get("/healthz")).status_code == 200
    assert (await secured.client.get("/readyz")).status_code == 200
    hook = await secured.client.post(
        "/hooks/exports/nope/bad-token", json={"url": "https://x.test/f"}
    )
    # Reached the route (its own capability check), not the authentication.
    assert hook.status_code == 404


async def test_introspection_and_graphiql_default_to_off_with_authentication(
    secured: GatewayHttp,
) -> None:
    response = await call(secured, "{ __schema { queryType { name } } }", persona="reader")
    assert body(response)["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    page = await secured.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 404


async def test_introspection_and_graphiql_stay_on_when_set_explicitly(
    keys_file: Path, ucd_http: httpx.AsyncClient, hooks: HookRelay
) -> None:
    settings = auth_settings(keys_file, None, introspection=True, graphiql=True)
    async with authed_gateway(settings, ucd_http, hooks) as gateway:
        response = await call(gateway, "{ __schema { queryType { name } } }", persona="reader")
        page = await gateway.client.get("/graphql", headers={"Accept": "text/html"})
        # The page's own files load without a credential (a browser sends none for them).
        script = await gateway.client.get(f"{STATIC_PATH}/boot.js")
    assert body(response)["data"] == {"__schema": {"queryType": {"name": "Query"}}}
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    assert script.status_code == 200


def test_graphiql_files_are_the_public_prefix_the_middleware_lets_through() -> None:
    assert STATIC_PATH + "/" in PUBLIC_PREFIXES
