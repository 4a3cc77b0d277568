"""E7/E8 — delete a user's PII (§3.7): the fixed PII set, lookups, errors, idempotence."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

CONTACT = "/api/contact/v1/anonymize"
USER = "/api/user/v1/anonymize"
ADA = {"email": "ada@example.com"}
NO_SUCH_USER = {"error": "no such user for these identifiers: no data"}

Upsert = Callable[..., Any]


async def read(ucd: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any] | None:
    response = await ucd.post(
        "/api/user/v1/profile",
        json={
            **body,
            "attributes": "*",
            "events": {
                "start_date": 0,
                "end_date": 5_000_000_000,
                "wanted": [{"event_name": "purchase", "params": ["currency"]}],
            },
        },
    )
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


@pytest.fixture
async def ada_iid(upsert: Upsert, ucd: httpx.AsyncClient) -> str:
    """Ada with every PII attribute, non-PII attributes, identifiers of each kind and an event."""
    await upsert(
        {
            "identifiers": {
                **ADA,
                "phone_number": "+905551112233",
                "uuid": "u-1",
                "custom": {"crm_id": "c-9"},
            },
            "attributes": {
                "name": "Ada",
                "surname": "Lovelace",
                "gender": "F",
                "birthday": "1815-12-10T00:00:00Z",
                "age": 36,
                "city": "London",
                "country": "GB",
                "language": "en_GB",
                "locale": "en_GB",
                "email_optin": True,
                "gdpr_optin": True,
                "static_segment_id": [1],
                "custom": {"tier": "gold", "name": "custom, not PII"},
            },
            "events": [
                {
                    "event_name": "purchase",
                    "timestamp": "2099-01-01T00:00:00Z",
                    "event_params": {
                        "event_group_id": "o-1",
                        "currency": "USD",
                        "unit_sale_price": 1.5,
                    },
                }
            ],
        }
    )
    found = await read(ucd, {"identifiers": ADA})
    assert found is not None
    iid: str = found["attributes"]["iid"]
    return iid


KEPT = {
    "uuid": "u-1",
    "c_crm_id": "c-9",
    "language": "en_GB",
    "lo": "en_GB",
    "email_optin": True,
    "gdpr": True,
    "static_segment_id": [1],
    "c_tier": "gold",
    "c_name": "custom, not PII",
}


async def assert_anonymized(ucd: httpx.AsyncClient, iid: str) -> None:
    found = await read(ucd, {"insider_id": iid})
    assert found is not None
    assert found["attributes"] == {"iid": iid, **KEPT}
    assert [event["currency"] for event in found["events"]["purchase"]] == ["USD"]
    for gone in ({"email": "ada@example.com"}, {"phone_number": "+905551112233"}):
        assert await read(ucd, {"identifiers": gone}) is None


async def test_contact_anonymize_removes_exactly_the_pii(
    ada_iid: str, ucd: httpx.AsyncClient
) -> None:
    response = await ucd.post(CONTACT, json={"insider_id": ada_iid, "partner": "x", "api_key": "y"})
    assert (response.status_code, response.json()) == (200, {})
    await assert_anonymized(ucd, ada_iid)
    # uuid and custom identifiers still find the profile
    found = await read(ucd, {"identifiers": {"uuid": "u-1"}})
    assert found is not None
    assert found["attributes"]["iid"] == ada_iid


async def test_user_anonymize_by_identifiers(ada_iid: str, ucd: httpx.AsyncClient) -> None:
    response = await ucd.post(USER, json={"identifiers": {"email": " ADA@example.com"}})
    assert (response.status_code, response.json()) == (200, {})
    await assert_anonymized(ucd, ada_iid)


async def test_user_anonymize_insider_id_wins(
    ada_iid: str, upsert: Upsert, ucd: httpx.AsyncClient
) -> None:
    await upsert({"identifiers": {"email": "bob@example.com"}, "attributes": {"name": "Bob"}})
    response = await ucd.post(
        USER, json={"insider_id": ada_iid, "identifiers": {"email": "bob@example.com"}}
    )
    assert response.status_code == 200
    await assert_anonymized(ucd, ada_iid)
    bob = await read(ucd, {"identifiers": {"email": "bob@example.com"}})
    assert bob is not None
    assert bob["attributes"]["name"] == "Bob"


async def test_anonymizing_twice_succeeds_without_change(
    ada_iid: str, ucd: httpx.AsyncClient
) -> None:
    for _ in range(2):
        response = await ucd.post(CONTACT, json={"insider_id": ada_iid})
        assert (response.status_code, response.json()) == (200, {})
    await assert_anonymized(ucd, ada_iid)
    response = await ucd.post(USER, json={"identifiers": {"uuid": "u-1"}})
    assert (response.status_code, response.json()) == (200, {})


async def test_user_with_only_pii_identifiers_becomes_anonymous(
    upsert: Upsert, ucd: httpx.AsyncClient
) -> None:
    await upsert({"identifiers": {"email": "eve@example.com"}, "attributes": {"name": "Eve"}})
    eve = await read(ucd, {"identifiers": {"email": "eve@example.com"}})
    assert eve is not None
    iid = eve["attributes"]["iid"]
    assert (
        await ucd.post(USER, json={"identifiers": {"email": "eve@example.com"}})
    ).status_code == 200
    anonymous = await read(ucd, {"insider_id": iid})
    assert anonymous is not None
    assert anonymous["attributes"] == {"iid": iid}
    # The email is free again: it now creates a new profile.
    await upsert({"identifiers": {"email": "eve@example.com"}, "attributes": {"name": "Eve 2"}})
    again = await read(ucd, {"identifiers": {"email": "eve@example.com"}})
    assert again is not None
    assert again["attributes"]["iid"] != iid


async def test_alias_of_a_merged_profile_resolves(upsert: Upsert, ucd: httpx.AsyncClient) -> None:
    await upsert(
        {"identifiers": {"uuid": "u-1"}, "attributes": {"name": "Survivor"}},
        {"identifiers": {"email": "merged@example.com"}, "attributes": {"city": "Izmir"}},
    )
    merged = await read(ucd, {"identifiers": {"email": "merged@example.com"}})
    assert merged is not None
    alias = merged["attributes"]["iid"]
    await upsert(
        {"identifiers": {"uuid": "u-1", "email": "merged@example.com"}, "attributes": {"age": 3}}
    )
    response = await ucd.post(CONTACT, json={"insider_id": alias})
    assert (response.status_code, response.json()) == (200, {})
    survivor = await read(ucd, {"insider_id": alias})
    assert survivor is not None
    assert survivor["attributes"]["iid"] != alias
    assert "name" not in survivor["attributes"]
    assert "city" not in survivor["attributes"]
    assert "email" not in survivor["attributes"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="absent"),
        pytest.param({"insider_id": ""}, id="empty"),
        pytest.param({"insider_id": 5}, id="number"),
        pytest.param({"insider_id": None}, id="null"),
        pytest.param({"identifiers": {"email": "ada@example.com"}}, id="identifiers-only"),
    ],
)
async def test_contact_anonymize_needs_an_insider_id(
    ucd: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await ucd.post(CONTACT, json=body)
    assert response.status_code == 400
    assert response.json() == {"error": "insider_id must be defined: bad request"}


@pytest.mark.parametrize(
    ("body", "text"),
    [
        pytest.param({}, "either insider_id or idenifiers must be specified", id="nothing"),
        pytest.param(
            {"identifiers": {"email": "null", "uuid": "undefined"}},
            "either insider_id or idenifiers must be specified",
            id="all-blocked",
        ),
        pytest.param(
            {"identifiers": {"email": "sample"}}, "not a valid email address: sample", id="email"
        ),
        pytest.param(
            {"identifiers": {"phone_number": "123"}},
            "user has an invalid phone number: 123",
            id="phone",
        ),
        pytest.param(
            {"identifiers": {"fax": "1"}},
            "key must be one of phone_number(pn), email(em) or uuid",
            id="unknown-key",
        ),
        pytest.param(
            {"insider_id": "x", "identifiers": {"uuid": 5}},
            "uuid must be string: 5",
            id="identifier-checked-even-with-insider-id",
        ),
        pytest.param(
            {"identifiers": {"custom": {"tier": "gold"}}},
            "tier is a custom attribute, not an identifier",
            id="custom-attribute",
        ),
    ],
)
async def test_user_anonymize_request_errors(
    ada_iid: str, ucd: httpx.AsyncClient, body: dict[str, Any], text: str
) -> None:
    response = await ucd.post(USER, json=body)
    assert response.status_code == 400
    assert response.json() == {"error": f"{text}: bad request"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param(CONTACT, {"insider_id": "3b9a6c1e-8f3d-4c1a-9e57-2d8f0b6a4c11"}, id="E7"),
        pytest.param(USER, {"identifiers": {"email": "nobody@example.com"}}, id="E8"),
        pytest.param(USER, {"insider_id": "unknown", "identifiers": ADA}, id="E8-insider-id"),
    ],
)
async def test_unknown_user_is_404(
    ada_iid: str, ucd: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    response = await ucd.post(path, json=body)
    assert (response.status_code, response.json()) == (404, NO_SUCH_USER)
    found = await read(ucd, {"identifiers": ADA})
    assert found is not None
    assert found["attributes"]["name"] == "Ada"
