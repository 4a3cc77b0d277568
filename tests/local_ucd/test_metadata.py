"""E10 — metadata columns (§3.9): contacts and events catalogues, order, types, isolation."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from gateway.local_ucd.config import LocalUcdConfig

COLUMNS = "/api/user/v3/metadata/columns"

DEFAULT_COLUMNS = [
    {"key": "iid", "display_name": "Profile ID", "type": "string"},
    {"key": "email", "display_name": "Email", "type": "string"},
    {"key": "phone_number", "display_name": "Phone Number", "type": "string"},
    {"key": "uuid", "display_name": "UUID", "type": "string"},
    {"key": "name", "display_name": "Name", "type": "string"},
    {"key": "surname", "display_name": "Surname", "type": "string"},
    {"key": "gender", "display_name": "Gender", "type": "string"},
    {"key": "age", "display_name": "Age", "type": "number"},
    {"key": "birthday", "display_name": "Birthday", "type": "date"},
    {"key": "language", "display_name": "Language", "type": "string"},
    {"key": "country", "display_name": "Country", "type": "string"},
    {"key": "city", "display_name": "City", "type": "string"},
    {"key": "lo", "display_name": "Locale", "type": "string"},
    {"key": "email_optin", "display_name": "Email Opt-In", "type": "boolean"},
    {"key": "sms_optin", "display_name": "SMS Opt-In", "type": "boolean"},
    {"key": "whatsapp_optin", "display_name": "WhatsApp Opt-In", "type": "boolean"},
    {"key": "gdpr", "display_name": "GDPR Opt-In", "type": "boolean"},
    {"key": "static_segment_id", "display_name": "Static Segment IDs", "type": "number_array"},
]


async def columns(client: httpx.AsyncClient, table: str) -> list[dict[str, Any]]:
    response = await client.post(COLUMNS, json={"table": table})
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


def recent(hours_ago: int = 1) -> str:
    """A timestamp inside every retention period (§4.8.4)."""
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="absent"),
        pytest.param({"table": "users"}, id="other"),
        pytest.param({"table": "Contacts"}, id="case"),
        pytest.param({"table": ["contacts"]}, id="array"),
        pytest.param({"table": None}, id="null"),
    ],
)
async def test_bad_table(ucd: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await ucd.post(COLUMNS, json=body)
    assert response.status_code == 400
    assert response.json() == {"error": "table must be contacts or events: bad request"}


async def test_needs_valid_headers(ucd: httpx.AsyncClient) -> None:
    """A credential check (§3.9): a wrong token is refused before the table is looked at."""
    response = await ucd.post(COLUMNS, json={"table": "contacts"}, headers={"X-REQUEST-TOKEN": "x"})
    assert response.status_code == 403


async def test_empty_partner_lists_iid_and_defaults(ucd: httpx.AsyncClient) -> None:
    assert await columns(ucd, "contacts") == DEFAULT_COLUMNS
    assert await columns(ucd, "events") == []


async def test_custom_names_follow_defaults_sorted_with_types(
    ucd: httpx.AsyncClient, upsert: Callable[..., Any]
) -> None:
    declared = await ucd.post("/api/local/v1/attributes", json={"name": "renewal", "type": "date"})
    assert declared.status_code == 200, declared.text
    await upsert(
        {
            "identifiers": {"email": "ada@example.com", "custom": {"crm_id": "c-9"}},
            "attributes": {
                "custom": {
                    "tier": "gold",
                    "score": 4.5,
                    "vip": True,
                    "tags": ["a"],
                    "lucky": [7],
                    "empty": [],
                    "Upper": "x",
                    "renewal": "2026-01-01T00:00:00Z",
                }
            },
        }
    )
    custom = (await columns(ucd, "contacts"))[len(DEFAULT_COLUMNS) :]
    assert custom == [
        {"key": "c_Upper", "display_name": "Upper", "type": "string"},  # code-point order
        {"key": "c_crm_id", "display_name": "crm_id", "type": "string"},  # identifier
        {"key": "c_empty", "display_name": "empty", "type": "array"},  # only [] seen so far
        {"key": "c_lucky", "display_name": "lucky", "type": "array"},
        {"key": "c_renewal", "display_name": "renewal", "type": "date"},
        {"key": "c_score", "display_name": "score", "type": "number"},
        {"key": "c_tags", "display_name": "tags", "type": "array"},
        {"key": "c_tier", "display_name": "tier", "type": "string"},
        {"key": "c_vip", "display_name": "vip", "type": "boolean"},
    ]


async def test_events_grouped_by_name_with_sorted_params(
    ucd: httpx.AsyncClient, upsert: Callable[..., Any]
) -> None:
    await upsert(
        {
            "identifiers": {"email": "ada@example.com"},
            "events": [
                {
                    "event_name": "purchase",
                    "timestamp": recent(),
                    "event_params": {
                        "product_id": "p1",
                        "currency": "TRY",
                        "event_group_id": "g1",
                        "unit_sale_price": 1,
                        "custom": {"gift_wrap": True},
                    },
                },
                {"event_name": "login", "timestamp": recent()},
                {
                    "event_name": "add_to_cart",
                    "timestamp": recent(),
                    "event_params": {"product_id": "p1", "referrer": "x"},
                    "custom": {"zone": "b"},
                },
            ],
        },
        {
            "identifiers": {"email": "bob@example.com"},
            "events": [
                {
                    "event_name": "add_to_cart",
                    "timestamp": recent(2),
                    "event_params": {"color": "red", "custom": {"aisle": 3}},
                }
            ],
        },
    )

    def params(*keys: str) -> list[dict[str, str]]:
        return [{"key": key, "display_name": key} for key in keys]

    assert await columns(ucd, "events") == [
        {
            "key": "add_to_cart",
            "display_name": "add_to_cart",
            "params": params("c_aisle", "c_zone", "color", "product_id", "referrer"),
        },
        {"key": "login", "display_name": "login", "params": []},
        {
            "key": "purchase",
            "display_name": "purchase",
            "params": params(
                "c_gift_wrap", "currency", "event_group_id", "product_id", "unit_sale_price"
            ),
        },
    ]


async def test_a_sent_source_is_a_catalogued_parameter(
    ucd: httpx.AsyncClient, upsert: Callable[..., Any]
) -> None:
    """``source`` is a default parameter (§4.8.2) that E2/E3 can request (``e_source``), so
    §3.9 lists it once an event was accepted with it; it is not listed when never sent."""
    await upsert(
        {
            "identifiers": {"email": "ada@example.com"},
            "events": [
                {
                    "event_name": "page_view",
                    "timestamp": recent(),
                    "event_params": {"source": "web"},
                },
                {"event_name": "login", "timestamp": recent(), "event_params": {"url": "/x"}},
                {"event_name": "search", "timestamp": recent(), "event_params": {"source": None}},
            ],
        }
    )
    found = {
        entry["key"]: [p["key"] for p in entry["params"]] for entry in await columns(ucd, "events")
    }
    assert found == {"login": ["url"], "page_view": ["source"], "search": []}


async def test_catalogues_are_per_partner_and_never_shrink(
    ucd: httpx.AsyncClient,
    other_ucd: httpx.AsyncClient,
    upsert: Callable[..., Any],
    ucd_config: LocalUcdConfig,
) -> None:
    await upsert(
        {
            "identifiers": {"email": "ada@example.com"},
            "attributes": {"custom": {"tier": "gold"}},
            "events": [{"event_name": "login", "timestamp": recent()}],
        }
    )
    assert await columns(other_ucd, "contacts") == DEFAULT_COLUMNS
    assert await columns(other_ucd, "events") == []
    before = (await columns(ucd, "contacts"), await columns(ucd, "events"))
    assert before[0][-1]["key"] == "c_tier"
    assert [e["key"] for e in before[1]] == ["login"]
    # The user (and with it every value) goes; the catalogues stay.
    with sqlite3.connect(ucd_config.database_path) as conn:
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("DELETE FROM profiles")
    assert (await columns(ucd, "contacts"), await columns(ucd, "events")) == before
