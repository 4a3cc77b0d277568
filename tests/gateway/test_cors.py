"""Browsers: exact CORS origins (none by default), and no cross-site request forgery."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pydantic
import pytest

from gateway.settings import Settings
from tests.gateway.auth.conftest import auth_settings, key_of, keys_toml
from tests.gateway.conftest import CallLog, GatewayHttp, HookRelay, serve_gateway

APP = "https://app.example.com"
QUERY = '{ exportJob(id: "x") { id } }'
PREFLIGHT = {
    "Origin": APP,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


@pytest.fixture
async def browser_gateway(
    tmp_path: Path, ucd_http: httpx.AsyncClient, hooks: HookRelay
) -> AsyncIterator[GatewayHttp]:
    keys = tmp_path / "keys.toml"
    keys.write_text(keys_toml())
    settings = auth_settings(keys, None, cors_origins=f"{APP}, http://localhost:5173")
    async with serve_gateway(settings, ucd_http, hooks) as served:
        yield served


async def test_a_listed_origin_gets_its_preflight_answered_without_a_credential(
    browser_gateway: GatewayHttp,
) -> None:
    response = await browser_gateway.client.options("/graphql", headers=PREFLIGHT)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in response.headers


async def test_another_origin_is_not_allowed(browser_gateway: GatewayHttp) -> None:
    headers = {**PREFLIGHT, "Origin": "https://evil.example"}
    response = await browser_gateway.client.options("/graphql", headers=headers)
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    answer = await browser_gateway.client.post(
        "/graphql",
        json={"query": QUERY},
        headers={"Origin": "https://evil.example", "Authorization": f"Bearer {key_of('exporter')}"},
    )
    assert "access-control-allow-origin" not in answer.headers


async def test_answers_to_a_listed_origin_are_readable_there_refusals_included(
    browser_gateway: GatewayHttp,
) -> None:
    ok = await browser_gateway.client.post(
        "/graphql",
        json={"query": QUERY},
        headers={"Origin": APP, "Authorization": f"Bearer {key_of('exporter')}"},
    )
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == APP
    refused = await browser_gateway.client.post(
        "/graphql", json={"query": QUERY}, headers={"Origin": APP}
    )
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == APP


async def test_no_origin_is_allowed_by_default(gateway_http: GatewayHttp) -> None:
    response = await gateway_http.client.options("/graphql", headers=PREFLIGHT)
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("origin", ["*", "https://app.example.com/path", "app.example.com"])
def test_only_exact_origins_are_accepted(origin: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="not an exact origin"):
        Settings(_env_file=None, cors_origins=(origin,))  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("method", "content_type", "status"),
    [
        pytest.param("POST", "text/plain", 415, id="form-text-plain"),
        pytest.param("POST", "application/x-www-form-urlencoded", 415, id="form-urlencoded"),
        pytest.param("POST", "multipart/form-data; boundary=x", 415, id="form-multipart"),
        pytest.param("GET", None, 400, id="get"),
    ],
)
async def test_a_cross_site_form_or_link_cannot_run_a_mutation(
    gateway_http: GatewayHttp,
    ucd_calls: CallLog,
    method: str,
    content_type: str | None,
    status: int,
) -> None:
    """CSRF: what a page of another site can send without a preflight never mutates,
    even on a gateway without authentication."""
    mutation = 'mutation { deleteUser(key: {uuid: "u-1"}) { ok } }'
    if method == "GET":
        response = await gateway_http.client.get("/graphql", params={"query": mutation})
    else:
        response = await gateway_http.client.post(
            "/graphql",
            content=f'{{"query": "{mutation.replace(chr(34), chr(92) + chr(34))}"}}',
            headers={"Content-Type": content_type or "", "Origin": "https://evil.example"},
        )
    assert response.status_code == status
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert ucd_calls.calls == []
