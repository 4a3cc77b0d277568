"""Partner namespaces (§2.3): nothing of partner A is read, matched or changed by partner B."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import LocalUcdConfig
from tests.local_ucd.conftest import OTHER_PARTNER, OTHER_TOKEN, make_client
from tests.local_ucd.test_export import HookRecorder, upsert

ADA = {"email": "ada@example.com"}
NO_SUCH_USER = {"error": "no such user for these identifiers: no data"}
HOOK = "http://hooks.test/ready"


@dataclass
class Partners:
    a: httpx.AsyncClient  # partner "local"
    b: httpx.AsyncClient  # partner "other"
    hooks: HookRecorder


@pytest.fixture
async def partners(ucd_config: LocalUcdConfig) -> AsyncIterator[Partners]:
    hooks = HookRecorder()
    async with httpx.AsyncClient(transport=httpx.MockTransport(hooks)) as hook_client:
        app = create_local_ucd_app(ucd_config, hook_client=hook_client)
        other_headers = {"X-PARTNER-NAME": OTHER_PARTNER, "X-REQUEST-TOKEN": OTHER_TOKEN}
        async with (
            LifespanManager(app),
            make_client(app) as a,
            make_client(app, other_headers) as b,
        ):
            yield Partners(a, b, hooks)


async def read(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any] | None:
    response = await client.post("/api/user/v1/profile", json={**body, "attributes": "*"})
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["attributes"]
    return found


async def ada_of_a(p: Partners) -> dict[str, Any]:
    await upsert(
        p.a,
        {
            "identifiers": {**ADA, "phone_number": "+905551112233", "custom": {"crm_id": "c-9"}},
            "attributes": {
                "name": "Ada A",
                "static_segment_id": [1, 2],
                "custom": {"tier": "gold"},
            },
        },
    )
    found = await read(p.a, {"identifiers": ADA})
    assert found is not None
    return found


async def test_same_email_under_two_partners_is_two_profiles(partners: Partners) -> None:
    ada_a = await ada_of_a(partners)
    assert await read(partners.b, {"identifiers": ADA}) is None
    await upsert(partners.b, {"identifiers": ADA, "attributes": {"name": "Ada B"}})
    ada_b = await read(partners.b, {"identifiers": ADA})
    assert ada_b is not None
    assert ada_b["iid"] != ada_a["iid"]
    assert ada_b == {"iid": ada_b["iid"], "email": "ada@example.com", "name": "Ada B"}
    assert await read(partners.a, {"identifiers": ADA}) == ada_a


async def test_insider_id_of_a_is_unknown_to_b_everywhere(partners: Partners) -> None:
    ada_a = await ada_of_a(partners)
    iid = ada_a["iid"]
    b = partners.b
    assert (
        await b.post("/api/user/v1/profile", json={"insider_id": iid, "attributes": "*"})
    ).json() == NO_SUCH_USER
    response = await b.post(
        "/api/user/v1/upsert", json={"users": [{"insider_id": iid, "attributes": {"name": "B"}}]}
    )
    assert response.json()["data"]["fail"]["errors"] == {
        "users.0.insider_id.exists": ["no such user for this insider_id"]
    }
    response = await b.post(
        "/api/user/v1/attribute/delete", json={"users": [{"insider_id": iid, "whole": ["name"]}]}
    )
    assert response.json()["data"]["fail"]["errors"] == {
        "users.0.identifiers.exists": ["no such user for these identifiers"]
    }
    for method, path, body in [
        ("POST", "/api/contact/v1/anonymize", {"insider_id": iid}),
        ("POST", "/api/user/v1/anonymize", {"insider_id": iid}),
        ("POST", "/api/user/v1/delete", {"insider_id": iid}),
    ]:
        response = await b.request(method, path, json=body)
        assert (response.status_code, response.json()) == (404, NO_SUCH_USER), path
    assert await read(partners.a, {"insider_id": iid}) == ada_a


async def test_b_cannot_change_a_through_identifiers(partners: Partners) -> None:
    ada_a = await ada_of_a(partners)
    b = partners.b
    for method, path, body in [
        (
            "PATCH",
            "/api/user/v1/identity",
            {"old_identifier": ADA, "new_identifier": {"email": "x@y.co"}},
        ),
        ("DELETE", "/api/user/v1/identity", {"identifiers": {"phone_number": "+905551112233"}}),
        ("POST", "/api/user/v1/anonymize", {"identifiers": ADA}),
        ("POST", "/api/user/v1/delete", {"identifiers": {"custom": {"crm_id": "c-9"}}}),
    ]:
        response = await b.request(method, path, json=body)
        assert (response.status_code, response.json()) == (404, NO_SUCH_USER), path
    response = await b.post(
        "/api/user/v1/attribute/delete",
        json={"users": [{"identifiers": ADA, "whole": ["name"], "partial": {"list_id": [1]}}]},
    )
    assert response.json()["data"]["fail"]["count"] == 1
    # B may use A's values freely: they are B's own, unrelated identifiers.
    await upsert(b, {"identifiers": {"email": "b@example.com"}, "attributes": {"name": "B"}})
    response = await b.patch(
        "/api/user/v1/identity",
        json={"old_identifier": {"email": "b@example.com"}, "new_identifier": ADA},
    )
    assert (response.status_code, response.json()) == (200, {})
    assert await read(partners.a, {"identifiers": ADA}) == ada_a


async def test_custom_name_catalogues_are_per_partner(partners: Partners) -> None:
    """``tier`` is a custom attribute of A; for B it is a free name (404, not 'no valid')."""
    await ada_of_a(partners)
    response = await partners.b.request(
        "DELETE", "/api/user/v1/identity", json={"identifiers": {"custom": {"tier": "gold"}}}
    )
    assert (response.status_code, response.json()) == (404, NO_SUCH_USER)
    response = await partners.a.request(
        "DELETE", "/api/user/v1/identity", json={"identifiers": {"custom": {"tier": "gold"}}}
    )
    assert (response.status_code, response.json()) == (
        400,
        {"error": "no valid identifier: bad request"},
    )


async def export(client: httpx.AsyncClient, segment_id: int = 1) -> httpx.Response:
    return await client.post(
        "/api/raw/v1/export",
        json={
            "segment": {"segment_id": segment_id},
            "attributes": ["email", "name"],
            "format": "csv",
            "hook": HOOK,
        },
    )


async def test_exports_and_downloads_are_per_partner(partners: Partners) -> None:
    ada_a = await ada_of_a(partners)
    await upsert(
        partners.b, {"identifiers": {"email": "bee@example.com"}, "attributes": {"name": "Bee"}}
    )
    # A's segment ids are not B's.
    response = await partners.a.post(
        "/api/local/v1/segments",
        json={
            "name": "gold",
            "conditions": [{"attribute": "c_tier", "operator": "eq", "value": "gold"}],
        },
    )
    assert response.json() == {"segment_id": 2}
    response = await export(partners.b, 2)
    assert (response.status_code, response.json()) == (
        400,
        {"error": "segment not found: bad request"},
    )

    assert (await export(partners.a)).status_code == 200
    await partners.hooks.wait_for(1)
    assert (await export(partners.b)).status_code == 200
    await partners.hooks.wait_for(2)
    url_a, url_b = partners.hooks.urls
    path_a = url_a.removeprefix("http://local-ucd.test")
    path_b = url_b.removeprefix("http://local-ucd.test")
    assert path_a.startswith("/exports/local/p/")
    assert path_b.startswith("/exports/other/p/")

    file_a = await partners.a.get(path_a)
    file_b = await partners.b.get(path_b)
    assert ada_a["iid"] in file_a.text
    assert "bee@example.com" not in file_a.text
    assert "ada@example.com" not in file_b.text
    assert ada_a["iid"] not in file_b.text
    # A's file under B's partner path (and the reverse) does not exist.
    not_found = {"error": "export not found: no data"}
    for path in (
        path_a.replace("/exports/local/", "/exports/other/"),
        path_b.replace("/exports/other/", "/exports/local/"),
    ):
        response = await partners.b.get(path)
        assert (response.status_code, response.json()) == (404, not_found)

    # B erasing its own Ada-email profile withdraws nothing of A's.
    await upsert(partners.b, {"identifiers": ADA, "attributes": {"name": "Ada B"}})
    assert (
        await partners.b.post("/api/user/v1/delete", json={"identifiers": ADA})
    ).status_code == 200
    assert (await partners.a.get(path_a)).status_code == 200
