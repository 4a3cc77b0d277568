"""E9 — delete a user profile (§3.8): everything of the profile goes, catalogues stay."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gateway.local_ucd.config import LocalUcdConfig

PATH = "/api/user/v1/delete"
ADA = {"email": "ada@example.com"}
NO_SUCH_USER = {"error": "no such user for these identifiers: no data"}

Upsert = Callable[..., Any]


async def iid_of(ucd: httpx.AsyncClient, body: dict[str, Any]) -> str | None:
    response = await ucd.post("/api/user/v1/profile", json={**body, "attributes": ["name"]})
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    iid: str = response.json()["attributes"]["iid"]
    return iid


def counts(config: LocalUcdConfig) -> dict[str, int]:
    with sqlite3.connect(config.database_path) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 (fixed names)
            for table in ("profiles", "aliases", "identifiers", "attributes", "events")
        }


@pytest.fixture
async def merged(upsert: Upsert, ucd: httpx.AsyncClient) -> tuple[str, str]:
    """Ada (uuid u-1) merged with a second profile: (survivor iid, alias iid)."""
    event = {
        "event_name": "purchase",
        "timestamp": "2099-01-01T00:00:00Z",
        "event_params": {"event_group_id": "o-1", "currency": "USD", "unit_sale_price": 1.5},
    }
    await upsert(
        {
            "identifiers": {"uuid": "u-1", "custom": {"crm_id": "c-9"}},
            "attributes": {"name": "Ada", "custom": {"tier": "gold"}},
            "events": [event],
        },
        {
            "identifiers": {**ADA, "phone_number": "+905551112233"},
            "attributes": {"city": "Izmir"},
            "events": [{"event_name": "login", "timestamp": "2099-01-02T00:00:00Z"}],
        },
    )
    alias = await iid_of(ucd, {"identifiers": ADA})
    await upsert({"identifiers": {"uuid": "u-1", **ADA}, "attributes": {"age": 36}})
    survivor = await iid_of(ucd, {"identifiers": ADA})
    assert alias is not None
    assert survivor is not None
    assert survivor != alias
    return survivor, alias


async def test_delete_removes_profile_identifiers_attributes_events_and_aliases(
    merged: tuple[str, str], upsert: Upsert, ucd: httpx.AsyncClient, ucd_config: LocalUcdConfig
) -> None:
    await upsert({"identifiers": {"email": "bob@example.com"}, "attributes": {"name": "Bob"}})
    before = counts(ucd_config)
    assert before["aliases"] == 1
    survivor, alias = merged
    response = await ucd.post(PATH, json={"identifiers": {"custom": {"crm_id": "c-9"}}})
    assert (response.status_code, response.json()) == (200, {})
    assert counts(ucd_config) == {
        "profiles": 1,
        "aliases": 0,
        "identifiers": 1,
        "attributes": 1,
        "events": 0,
    }
    for body in (
        {"insider_id": survivor},
        {"insider_id": alias},
        {"identifiers": ADA},
        {"identifiers": {"uuid": "u-1"}},
        {"identifiers": {"phone_number": "+905551112233"}},
    ):
        assert await iid_of(ucd, body) is None
    assert await iid_of(ucd, {"identifiers": {"email": "bob@example.com"}}) is not None


async def test_delete_by_alias_and_identifier_values_are_free_again(
    merged: tuple[str, str], upsert: Upsert, ucd: httpx.AsyncClient
) -> None:
    survivor, alias = merged
    response = await ucd.post(PATH, json={"insider_id": alias, "identifiers": {"uuid": "other"}})
    assert (response.status_code, response.json()) == (200, {})
    await upsert({"identifiers": {"uuid": "u-1", **ADA}, "attributes": {"name": "New"}})
    fresh = await iid_of(ucd, {"identifiers": ADA})
    assert fresh is not None
    assert fresh not in (survivor, alias)
    # Deleting again by the old ids: nothing left to find.
    for iid in (survivor, alias):
        response = await ucd.post(PATH, json={"insider_id": iid})
        assert (response.status_code, response.json()) == (404, NO_SUCH_USER)


async def test_catalogues_are_kept(merged: tuple[str, str], ucd: httpx.AsyncClient) -> None:
    async def columns(table: str) -> list[str]:
        response = await ucd.post("/api/user/v3/metadata/columns", json={"table": table})
        assert response.status_code == 200, response.text
        return [column["key"] for column in response.json()]

    contacts, events = await columns("contacts"), await columns("events")
    assert (await ucd.post(PATH, json={"identifiers": ADA})).status_code == 200
    assert await columns("contacts") == contacts
    assert await columns("events") == events
    assert {"c_tier", "c_crm_id"} <= set(contacts)
    assert {"purchase", "login"} <= set(events)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        pytest.param({}, "either insider_id or idenifiers must be specified", id="nothing"),
        pytest.param(
            {"identifiers": {"email": ""}},
            "either insider_id or idenifiers must be specified",
            id="blocked",
        ),
        pytest.param({"identifiers": "x"}, "identifiers must be object: x", id="not-object"),
        pytest.param({"insider_id": 7}, "insider_id must be string: 7", id="insider-id-type"),
        pytest.param(
            {"identifiers": {"email": "sample"}}, "not a valid email address: sample", id="email"
        ),
        pytest.param(
            {"identifiers": {"custom": {"tier": "gold"}}},
            "tier is a custom attribute, not an identifier",
            id="custom-attribute",
        ),
    ],
)
async def test_request_errors(
    merged: tuple[str, str], ucd: httpx.AsyncClient, body: dict[str, Any], text: str
) -> None:
    response = await ucd.post(PATH, json=body)
    assert response.status_code == 400
    assert response.json() == {"error": f"{text}: bad request"}
    assert await iid_of(ucd, {"identifiers": ADA}) == merged[0]


async def test_unknown_user_is_404(merged: tuple[str, str], ucd: httpx.AsyncClient) -> None:
    response = await ucd.post(PATH, json={"identifiers": {"email": "nobody@example.com"}})
    assert (response.status_code, response.json()) == (404, NO_SUCH_USER)
    assert await iid_of(ucd, {"identifiers": ADA}) == merged[0]
