"""Fixtures of the callers' tests: a JWKS server for the session, an issuer, API keys,
and the gateway app with authentication on, over the local UCD (tests/gateway/conftest.py).

Personas are API keys named after what they may do; ``call`` posts as one of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import httpx
import orjson
import pytest

from gateway.auth.api_keys import sha256_hex
from gateway.settings import Settings
from tests.gateway.auth.jwks_server import AUDIENCE, ISSUER, Issuer, JwksServer, serve_jwks
from tests.gateway.conftest import GATEWAY_BASE, GatewayHttp, HookRelay, serve_gateway

#: persona -> its scopes; its key is ``key_of(persona)``.
PERSONAS: Final[Mapping[str, tuple[str, ...]]] = {
    "reader": ("profile:read",),
    "pii-reader": ("profile:read", "pii:read"),
    "writer": ("profile:write",),
    "identity": ("identity:write",),
    "eraser": ("pii:erase",),
    "exporter": ("export",),
    "nothing": (),
    "everything": (
        "profile:read",
        "pii:read",
        "profile:write",
        "identity:write",
        "pii:erase",
        "export",
    ),
}


def key_of(persona: str) -> str:
    return f"ucdg_test-key-of-{persona}"


def keys_toml(personas: Mapping[str, tuple[str, ...]] = PERSONAS) -> str:
    entries = []
    for persona, scopes in personas.items():
        names = ", ".join(f'"{s}"' for s in scopes)
        entries.append(
            f'[[keys]]\nid = "{persona}"\nsha256 = "{sha256_hex(key_of(persona))}"\n'
            f"scopes = [{names}]\n"
        )
    return "\n".join(entries)


@pytest.fixture(scope="session")
def jwks_server() -> Iterator[JwksServer]:
    with serve_jwks() as server:
        yield server


@pytest.fixture
def issuer(jwks_server: JwksServer) -> Issuer:
    """An issuer of this test's own, publishing one RS256 key."""
    return jwks_server.issuer()


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-keys.toml"
    path.write_text(keys_toml())
    return path


def auth_settings(keys_file: Path | None, issuer: Issuer | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "public_url": GATEWAY_BASE,
        "upsert_window_ms": 5.0,
        "api_keys_file": keys_file,
    }
    if issuer is not None:
        values.update(
            jwt_jwks_url=issuer.jwks_url,
            jwt_issuer=ISSUER,
            jwt_audience=AUDIENCE,
            jwt_jwks_min_refresh=0.0,
        )
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@contextlib.asynccontextmanager
async def authed_gateway(
    settings: Settings, ucd_http: httpx.AsyncClient, hooks: HookRelay
) -> AsyncIterator[GatewayHttp]:
    async with serve_gateway(settings, ucd_http, hooks) as served:
        yield served


@pytest.fixture
async def secured(
    keys_file: Path, issuer: Issuer, ucd_http: httpx.AsyncClient, hooks: HookRelay
) -> AsyncIterator[GatewayHttp]:
    """The gateway with API keys (``PERSONAS``) and JWTs of ``issuer`` accepted."""
    async with authed_gateway(auth_settings(keys_file, issuer), ucd_http, hooks) as served:
        yield served


async def call(
    gateway: GatewayHttp,
    query: str,
    variables: Mapping[str, Any] | None = None,
    *,
    persona: str | None = None,
    token: str | None = None,
) -> httpx.Response:
    """POST /graphql as ``persona`` (its API key) or with ``token``; neither: no header."""
    headers = {}
    credential = token if token is not None else key_of(persona) if persona else None
    if credential is not None:
        headers["Authorization"] = f"Bearer {credential}"
    return await gateway.client.post(
        "/graphql", json={"query": query, "variables": dict(variables or {})}, headers=headers
    )


def body(response: httpx.Response) -> Any:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return orjson.loads(response.content)
