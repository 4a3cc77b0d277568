"""E1 processing: attributes (§4.7), events (§4.8), per-user atomicity and catalogues (§3.1.4)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import LocalUcdConfig
from gateway.local_ucd.events.timestamps import parse_timestamp
from gateway.local_ucd.events.writing import _check_event, _fast_event
from gateway.local_ucd.timefmt import parse_rfc3339_us

from .conftest import make_client

Upsert = Callable[..., Any]
OK = {"data": {"successful": {"count": 1}, "fail": {}}}
ADA = {"email": "ada@example.com"}
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def ucd_app(ucd_config: LocalUcdConfig) -> AsyncIterator[Starlette]:
    """The app itself (its state holds the services), with the server's clock pinned:
    retention is measured from it."""
    app = create_local_ucd_app(ucd_config)
    async with LifespanManager(app):
        app.state.services.now = lambda: NOW
        yield app


def db(config: LocalUcdConfig) -> sqlite3.Connection:
    return sqlite3.connect(config.database_path)


async def attributes_of(ucd: httpx.AsyncClient, identifiers: dict[str, Any]) -> dict[str, Any]:
    response = await ucd.post(
        "/api/user/v1/profile", json={"identifiers": identifiers, "attributes": ["*"]}
    )
    assert response.status_code == 200, response.text
    attributes: dict[str, Any] = response.json()["attributes"]
    attributes.pop("iid")
    return attributes


def stored_events(config: LocalUcdConfig) -> list[tuple[Any, ...]]:
    with db(config) as conn:
        rows = conn.execute(
            "SELECT name, ts_us, source, params, custom FROM events ORDER BY pk"
        ).fetchall()
    return [
        (name, ts, source, orjson.loads(params), orjson.loads(custom))
        for name, ts, source, params, custom in rows
    ]


def ago(days: float) -> str:
    return (NOW - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- attributes ------------------------------------------------------------------------------


async def test_example_user_is_stored(upsert: Upsert, ucd: httpx.AsyncClient) -> None:
    """The first user of §3.1.1's example, read back with ``*``."""
    raw = {
        "identifiers": {"email": "ada@example.com", "custom": {"crm_id": "c-9"}},
        "attributes": {
            "name": "Ada",
            "age": 36,
            "email_optin": True,
            "birthday": "1989-12-10T00:00:00Z",
            "static_segment_id": [1, 2],
            "custom": {"tier": "gold", "favorite_color": ["green"]},
        },
    }
    assert await upsert(raw) == OK
    assert await attributes_of(ucd, ADA) == {
        "email": "ada@example.com",
        "name": "Ada",
        "age": 36,
        "birthday": "1989-12-10T00:00:00Z",
        "email_optin": True,
        "static_segment_id": [1, 2],
        "c_crm_id": "c-9",
        "c_tier": "gold",
        "c_favorite_color": ["green"],
    }


async def test_scalars_overwrite_and_nulls_change_nothing(
    upsert: Upsert, ucd: httpx.AsyncClient
) -> None:
    await upsert(
        {"identifiers": ADA, "attributes": {"name": "Ada", "age": 36, "custom": {"tier": "gold"}}}
    )
    await upsert(
        {
            "identifiers": ADA,
            "attributes": {"name": "Ada L.", "age": None, "custom": {"tier": None}},
        }
    )
    assert await attributes_of(ucd, ADA) == {
        "email": "ada@example.com",
        "name": "Ada L.",
        "age": 36,
        "c_tier": "gold",
    }


ARRAY_CASES = [
    pytest.param({}, {}, [1, 2, 3], id="append-by-default"),
    pytest.param({"not_append": True}, {}, [3, 1], id="user-not-append"),
    pytest.param({"append": False}, {}, [3, 1], id="user-append-false"),
    pytest.param({"append": True, "not_append": True}, {}, [1, 2, 3], id="append-decides"),
    pytest.param({}, {"not_append": True}, [3, 1], id="request-not-append"),
    pytest.param({"append": True}, {"not_append": True}, [1, 2, 3], id="user-overrides-request"),
    pytest.param(
        {"not_append": False}, {"append": False}, [1, 2, 3], id="user-not-append-false-wins"
    ),
]


@pytest.mark.parametrize(("user_flags", "request_flags", "expected"), ARRAY_CASES)
async def test_array_write_modes(
    upsert: Upsert,
    ucd: httpx.AsyncClient,
    user_flags: dict[str, Any],
    request_flags: dict[str, Any],
    expected: list[int],
) -> None:
    await upsert({"identifiers": ADA, "attributes": {"static_segment_id": [1, 2]}})
    result = await upsert(
        {"identifiers": ADA, "attributes": {"static_segment_id": [3, 3, 1]}, **user_flags},
        **request_flags,
    )
    assert result == OK
    assert (await attributes_of(ucd, ADA))["static_segment_id"] == expected


async def test_append_compares_numbers_by_value(upsert: Upsert, ucd: httpx.AsyncClient) -> None:
    await upsert({"identifiers": ADA, "attributes": {"custom": {"scores": [1, 2.5]}}})
    await upsert({"identifiers": ADA, "attributes": {"custom": {"scores": [1.0, 2.5, 3.0, 3]}}})
    assert (await attributes_of(ucd, ADA))["c_scores"] == [1, 2.5, 3.0]


async def test_empty_array_appends_nothing_and_overwrite_removes(
    upsert: Upsert, ucd: httpx.AsyncClient
) -> None:
    await upsert(
        {"identifiers": ADA, "attributes": {"static_segment_id": [1], "custom": {"tags": ["a"]}}}
    )
    await upsert(
        {"identifiers": ADA, "attributes": {"static_segment_id": [], "custom": {"tags": []}}}
    )
    assert await attributes_of(ucd, ADA) == {
        "email": "ada@example.com",
        "static_segment_id": [1],
        "c_tags": ["a"],
    }
    await upsert(
        {
            "identifiers": ADA,
            "not_append": True,
            "attributes": {"static_segment_id": [], "custom": {"tags": []}},
        }
    )
    assert await attributes_of(ucd, ADA) == {"email": "ada@example.com"}


async def test_aliases_are_stored_under_the_canonical_name(
    upsert: Upsert, ucd: httpx.AsyncClient, ucd_config: LocalUcdConfig
) -> None:
    await upsert(
        {"identifiers": ADA, "attributes": {"locale": "tr_TR", "list_id": [4], "gdpr_optin": False}}
    )
    await upsert(
        {"identifiers": ADA, "attributes": {"lo": "en_US", "locale": "de_DE", "gdpr": True}}
    )
    assert await attributes_of(ucd, ADA) == {
        "email": "ada@example.com",
        "lo": "en_US",
        "static_segment_id": [4],
        "gdpr": False,
    }
    with db(ucd_config) as conn:
        names = [
            row[0]
            for row in conn.execute("SELECT name FROM attributes WHERE custom = 0 ORDER BY name")
        ]
    assert names == ["gdpr_optin", "lo", "static_segment_id"]


async def test_custom_types_are_fixed_by_the_first_value(
    upsert: Upsert, ucd_config: LocalUcdConfig
) -> None:
    await upsert(
        {
            "identifiers": ADA,
            "attributes": {
                "custom": {
                    "s": "x",
                    "n": 1.5,
                    "b": False,
                    "sa": ["a"],
                    "na": [1],
                    "empty": [],
                    "looks_like_date": "2025-01-01T00:00:00Z",
                }
            },
        }
    )
    with db(ucd_config) as conn:
        rows = conn.execute(
            "SELECT name, is_identifier, type FROM custom_names ORDER BY name"
        ).fetchall()
    assert rows == [
        ("b", 0, "boolean"),
        ("empty", 0, None),
        ("looks_like_date", 0, "string"),
        ("n", 0, "number"),
        ("na", 0, "number_array"),
        ("s", 0, "string"),
        ("sa", 0, "string_array"),
    ]


async def test_empty_array_fixes_no_type(upsert: Upsert, ucd: httpx.AsyncClient) -> None:
    await upsert({"identifiers": ADA, "attributes": {"custom": {"later": []}}})
    assert await upsert({"identifiers": ADA, "attributes": {"custom": {"later": 7}}}) == OK
    result = await upsert({"identifiers": ADA, "attributes": {"custom": {"later": "x"}}})
    assert result["data"]["fail"]["errors"] == {
        "users.0.attributes.custom.later.type(number)": ["later must be number: x"]
    }
    assert (await attributes_of(ucd, ADA))["c_later"] == 7


async def test_dates_only_when_declared(upsert: Upsert, ucd: httpx.AsyncClient) -> None:
    declared = await ucd.post("/api/local/v1/attributes", json={"name": "renewal", "type": "date"})
    assert declared.status_code == 200
    assert (
        await upsert(
            {"identifiers": ADA, "attributes": {"custom": {"renewal": "2026-01-01T00:00:00Z"}}}
        )
        == OK
    )
    result = await upsert({"identifiers": ADA, "attributes": {"custom": {"renewal": "2026-01-01"}}})
    assert result["data"]["fail"]["errors"] == {
        "users.0.attributes.custom.renewal.type(date)": ["renewal must be date: 2026-01-01"]
    }
    assert (await attributes_of(ucd, ADA))["c_renewal"] == "2026-01-01T00:00:00Z"


async def test_a_new_name_in_identifiers_and_attributes_becomes_an_identifier(
    upsert: Upsert, ucd: httpx.AsyncClient, ucd_config: LocalUcdConfig
) -> None:
    result = await upsert(
        {"identifiers": {"custom": {"crm_id": "c-1"}}, "attributes": {"custom": {"crm_id": "c-1"}}}
    )
    assert result == OK
    with db(ucd_config) as conn:
        assert conn.execute("SELECT name, is_identifier, type FROM custom_names").fetchall() == [
            ("crm_id", 1, None)
        ]
        assert conn.execute("SELECT count(*) FROM attributes").fetchone() == (0,)
    assert await attributes_of(ucd, {"custom": {"crm_id": "c-1"}}) == {"c_crm_id": "c-1"}


async def test_identifier_attributes_attach_but_never_replace(
    upsert: Upsert, ucd: httpx.AsyncClient
) -> None:
    await upsert(
        {
            "identifiers": {"uuid": "u-1"},
            "attributes": {"email": " Ada@Example.com ", "phone_number": "+905551112233"},
        }
    )
    assert await attributes_of(ucd, {"uuid": "u-1"}) == {
        "uuid": "u-1",
        "email": "ada@example.com",
        "phone_number": "+905551112233",
    }
    await upsert({"identifiers": {"uuid": "u-1"}, "attributes": {"email": "other@example.com"}})
    assert (await attributes_of(ucd, {"uuid": "u-1"}))["email"] == "ada@example.com"


async def test_identifier_attributes_never_select_a_profile(
    upsert: Upsert, ucd_config: LocalUcdConfig
) -> None:
    await upsert({"identifiers": ADA, "attributes": {"name": "Ada"}})
    assert (
        await upsert({"identifiers": {"uuid": "u-2"}, "attributes": {"email": "ada@example.com"}})
        == OK
    )
    with db(ucd_config) as conn:
        assert conn.execute("SELECT count(*) FROM profiles").fetchone() == (2,)
        owner = conn.execute("SELECT profile_pk FROM identifiers WHERE kind = 'email'").fetchone()
        assert owner == (1,)


# -- events ----------------------------------------------------------------------------------


async def test_event_storage_layout(upsert: Upsert, ucd_config: LocalUcdConfig) -> None:
    events = [
        {
            "event_name": "purchase",
            "timestamp": "2025-01-10T21:35:20Z",
            "event_params": {
                "product_id": "ABC",
                "currency": "USD",
                "unit_sale_price": 890.9,
                "quantity": 1,
                "event_group_id": "O1",
                "source": "web",
                "custom": {"gift_wrap": True},
            },
        },
        {
            "event_name": "page_view",
            "timestamp": "2025-05-01T00:00:00.250Z",
            "event_params": {"source": ""},
        },
        {"event_name": "page_view", "timestamp": "2025-05-02T00:00:00Z"},
    ]
    assert await upsert({"identifiers": ADA, "events": events}) == OK
    assert stored_events(ucd_config) == [
        (
            "purchase",
            parse_rfc3339_us("2025-01-10T21:35:20Z"),
            "web",
            {
                "product_id": "ABC",
                "currency": "USD",
                "unit_sale_price": 890.9,
                "quantity": 1,
                "event_group_id": "O1",
            },
            {"gift_wrap": True},
        ),
        ("page_view", parse_rfc3339_us("2025-05-01T00:00:00.25Z"), "api", {}, {}),
        ("page_view", parse_rfc3339_us("2025-05-02T00:00:00Z"), "api", {}, {}),
    ]


async def test_event_level_custom_is_merged_under_event_params_custom(
    upsert: Upsert, ucd_config: LocalUcdConfig
) -> None:
    event = {
        "event_name": "signup",
        "timestamp": ago(1),
        "custom": {"a": 1, "b": 2},
        "event_params": {"custom": {"b": 3, "c": 4}},
    }
    assert await upsert({"identifiers": ADA, "events": [event]}) == OK
    assert stored_events(ucd_config)[0][4] == {"a": 1, "b": 3, "c": 4}


BASE_EVENT: dict[str, Any] = {
    "event_name": "page_view",
    "timestamp": "2025-05-10T12:00:00Z",
    "event_params": {"unit_price": 10, "custom": {"n": [1], "m": {"x": 1, "y": 2}}},
}
DUPLICATES = [
    pytest.param({}, id="identical"),
    pytest.param({"timestamp": "2025-05-10T15:00:00+03:00"}, id="offset-normalised"),
    pytest.param(
        {"event_params": {"unit_price": 10.0, "custom": {"n": [1.0], "m": {"x": 1.0, "y": 2}}}},
        id="numbers-by-value",
    ),
    pytest.param(
        {"event_params": {"custom": {"m": {"y": 2, "x": 1}, "n": [1]}, "unit_price": 10}},
        id="key-order",
    ),
    pytest.param(
        {
            "event_params": {
                "unit_price": 10,
                "source": "api",
                "custom": {"n": [1], "m": {"x": 1, "y": 2}},
            }
        },
        id="explicit-default-source",
    ),
    pytest.param(
        {
            "event_params": {
                "unit_price": 10,
                "source": "",
                "custom": {"n": [1], "m": {"x": 1, "y": 2}},
            }
        },
        id="empty-source",
    ),
    pytest.param(
        {
            "event_params": {"unit_price": 10, "custom": {"n": [1]}},
            "custom": {"m": {"x": 1, "y": 2}},
        },
        id="event-level-custom",
    ),
]


@pytest.mark.parametrize("change", DUPLICATES)
async def test_identical_events_are_stored_once(
    upsert: Upsert, ucd_config: LocalUcdConfig, change: dict[str, Any]
) -> None:
    twin = {**BASE_EVENT, **change}
    assert (
        await upsert({"identifiers": ADA, "events": [BASE_EVENT, twin]}) == OK
    )  # within a request
    assert await upsert({"identifiers": ADA, "events": [twin]}) == OK  # against stored events
    assert len(stored_events(ucd_config)) == 1


async def test_events_differing_in_anything_are_kept(
    upsert: Upsert, ucd_config: LocalUcdConfig
) -> None:
    base = {
        "event_name": "page_view",
        "timestamp": "2025-05-10T12:00:00Z",
        "event_params": {"url": "/a"},
    }
    variants = [
        base,
        {**base, "event_name": "page_view2"},
        {**base, "timestamp": "2025-05-10T12:00:00.000001Z"},
        {**base, "event_params": {"url": "/b"}},
        {**base, "event_params": {"url": "/a", "source": "web"}},
        {**base, "event_params": {"url": "/a", "custom": {"url": "/a"}}},
    ]
    assert await upsert({"identifiers": ADA, "events": variants}) == OK
    assert len(stored_events(ucd_config)) == 6


async def test_the_same_event_of_two_profiles_is_two_events(
    upsert: Upsert, ucd_config: LocalUcdConfig
) -> None:
    event = {"event_name": "page_view", "timestamp": ago(1)}
    await upsert(
        {"identifiers": ADA, "events": [event]}, {"identifiers": {"uuid": "u-2"}, "events": [event]}
    )
    assert len(stored_events(ucd_config)) == 2


RETENTION = [
    pytest.param("purchase", 729, True, id="purchase-729d-kept"),
    pytest.param("purchase", 731, False, id="purchase-731d-dropped"),
    pytest.param("confirmation_page_view", 731, False, id="confirmation-731d-dropped"),
    pytest.param("email_click", 364, True, id="email-click-364d-kept"),
    pytest.param("email_click", 366, False, id="email-click-366d-dropped"),
    pytest.param("sign_up_confirmation", 366, False, id="sign-up-366d-dropped"),
    pytest.param("page_view", 89, True, id="other-89d-kept"),
    pytest.param("page_view", 91, False, id="other-91d-dropped"),
    pytest.param("my.custom_event", 91, False, id="custom-91d-dropped"),
    pytest.param("page_view", -400, True, id="future-kept"),
]


@pytest.mark.parametrize(("name", "days_old", "kept"), RETENTION)
async def test_retention_on_write(
    upsert: Upsert, ucd_config: LocalUcdConfig, name: str, days_old: int, kept: bool
) -> None:
    params = {"event_group_id": "O", "currency": "USD", "unit_sale_price": 1}
    result = await upsert(
        {
            "identifiers": ADA,
            "events": [{"event_name": name, "timestamp": ago(days_old), "event_params": params}],
        }
    )
    assert result == OK  # a dropped event does not fail the user (§3.1.5)
    assert len(stored_events(ucd_config)) == (1 if kept else 0)


async def test_retention_follows_the_server_clock(
    upsert: Upsert, ucd_app: Starlette, ucd_config: LocalUcdConfig
) -> None:
    event = {"event_name": "page_view", "timestamp": "2025-05-01T00:00:00Z"}
    ucd_app.state.services.now = lambda: datetime(2025, 9, 1, tzinfo=UTC)
    await upsert({"identifiers": ADA, "events": [event]})
    assert stored_events(ucd_config) == []
    ucd_app.state.services.now = lambda: datetime(2025, 6, 1, tzinfo=UTC)
    await upsert({"identifiers": ADA, "events": [event]})
    assert len(stored_events(ucd_config)) == 1


@pytest.fixture
async def short_retention_app(tmp_path: Path) -> AsyncIterator[Starlette]:
    config = LocalUcdConfig(
        data_dir=tmp_path / "short", event_retention_days={"page_view": 1, "my_event": 1000}
    )
    app = create_local_ucd_app(config)
    async with LifespanManager(app):
        app.state.services.now = lambda: NOW
        yield app


async def test_event_retention_days_overrides_and_extends(short_retention_app: Starlette) -> None:
    events = [
        {"event_name": "page_view", "timestamp": ago(2)},
        {"event_name": "page_view", "timestamp": ago(0.5)},
        {"event_name": "my_event", "timestamp": ago(999)},
        {"event_name": "other", "timestamp": ago(91)},
    ]
    async with make_client(short_retention_app) as client:
        response = await client.post(
            "/api/user/v1/upsert", json={"users": [{"identifiers": ADA, "events": events}]}
        )
        assert response.json() == OK
    with sqlite3.connect(tmp_db(short_retention_app)) as conn:
        rows = conn.execute("SELECT name, ts_us FROM events ORDER BY pk").fetchall()
    assert rows == [
        ("page_view", parse_rfc3339_us(ago(0.5))),
        ("my_event", parse_rfc3339_us(ago(999))),
    ]


def tmp_db(app: Starlette) -> Path:
    path: Path = app.state.services.config.database_path
    return path


async def test_event_catalog_records_accepted_users_only(
    upsert: Upsert, ucd_config: LocalUcdConfig
) -> None:
    good = {
        "identifiers": ADA,
        "events": [
            {
                "event_name": "purchase",
                "timestamp": ago(1),
                "event_params": {
                    "event_group_id": "O",
                    "currency": "USD",
                    "unit_sale_price": 1,
                    "source": "web",
                    "custom": {"gift_wrap": True},
                },
            },
            {"event_name": "page_view", "timestamp": ago(1), "custom": {"ref": "x"}},
        ],
    }
    bad = {
        "identifiers": {"email": "bad"},
        "events": [{"event_name": "rejected", "timestamp": ago(1)}],
    }
    await upsert(good, bad)
    with db(ucd_config) as conn:
        rows = conn.execute("SELECT event_name, param FROM event_catalog ORDER BY 1, 2").fetchall()
    assert rows == [
        ("page_view", ""),
        ("page_view", "c_ref"),
        ("purchase", ""),
        ("purchase", "c_gift_wrap"),
        ("purchase", "currency"),
        ("purchase", "event_group_id"),
        ("purchase", "source"),  # a default parameter (§4.8.2), requestable in E2/E3
        ("purchase", "unit_sale_price"),
    ]


def test_fast_timestamp_parser_agrees_with_timefmt() -> None:
    samples = [
        "2025-01-10T21:35:20Z",
        "2025-01-11T00:35:20+03:00",
        "2025-01-10T16:05:20-05:30",
        "2024-02-29T23:59:60Z",
        "1969-12-31T23:59:59.999999Z",
        "2025-01-10t21:35:20.1234567z",
        "0001-01-01T00:00:00Z",
        "2025-01-10T21:35:20.5+00:00",
    ]
    for text in samples:
        assert parse_timestamp(text) == parse_rfc3339_us(text), text
    for bad in [
        "2025-02-29T00:00:00Z",
        "2025-01-10T24:00:00Z",
        "2025-01-10T21:35Z",
        "2025-01-10 21:35:20Z",
        "2025-01-10T21:35:20+24:00",
        "2025-01-10T21:35:20",
        "2025-01-10T21:35:20Z\n",
    ]:
        assert parse_timestamp(bad) is None, bad


# -- per-user atomicity, ordering, isolation ---------------------------------------------------


async def test_a_failing_user_changes_nothing(upsert: Upsert, ucd_config: LocalUcdConfig) -> None:
    raw = {
        "identifiers": {"email": "new@example.com", "custom": {"crm_id": "c-1"}},
        "attributes": {"name": "New", "custom": {"tier": "gold"}},
        "events": [
            {"event_name": "page_view", "timestamp": ago(1)},
            {"event_name": "BAD", "timestamp": ago(1)},
        ],
    }
    result = await upsert(raw)
    assert result["data"]["successful"] == {}
    with db(ucd_config) as conn:
        for table in (
            "profiles",
            "identifiers",
            "attributes",
            "events",
            "custom_names",
            "event_catalog",
        ):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table  # noqa: S608


async def test_an_unknown_insider_id_rolls_back_that_user_only(
    upsert: Upsert, ucd_config: LocalUcdConfig
) -> None:
    result = await upsert(
        {"identifiers": ADA, "attributes": {"name": "Ada"}},
        {
            "insider_id": "00000000-0000-4000-8000-000000000000",
            "identifiers": {"uuid": "u-9"},
            "attributes": {"custom": {"tier": "gold"}},
        },
    )
    assert result["data"] == {
        "successful": {"count": 1},
        "fail": {
            "count": 1,
            "errors": {"users.1.insider_id.exists": ["no such user for this insider_id"]},
        },
    }
    with db(ucd_config) as conn:
        assert conn.execute("SELECT kind, value FROM identifiers").fetchall() == [
            ("email", "ada@example.com")
        ]
        assert conn.execute("SELECT count(*) FROM custom_names").fetchone() == (0,)


async def test_later_users_see_earlier_users(
    upsert: Upsert, ucd: httpx.AsyncClient, ucd_config: LocalUcdConfig
) -> None:
    result = await upsert(
        {"identifiers": ADA, "attributes": {"name": "Ada", "static_segment_id": [1]}},
        {"identifiers": ADA, "attributes": {"surname": "Lovelace", "static_segment_id": [2]}},
        {
            "identifiers": ADA,
            "not_append": True,
            "attributes": {"static_segment_id": [3]},
            "events": [{"event_name": "page_view", "timestamp": ago(1)}],
        },
        {"identifiers": ADA, "events": [{"event_name": "page_view", "timestamp": ago(1)}]},
    )
    assert result == {"data": {"successful": {"count": 4}, "fail": {}}}
    assert await attributes_of(ucd, ADA) == {
        "email": "ada@example.com",
        "name": "Ada",
        "surname": "Lovelace",
        "static_segment_id": [3],
    }
    with db(ucd_config) as conn:
        assert conn.execute("SELECT count(*) FROM profiles").fetchone() == (1,)
    assert len(stored_events(ucd_config)) == 1


async def test_insider_id_mode_updates_the_profile(
    upsert: Upsert, ucd: httpx.AsyncClient, ucd_app: Starlette, ucd_config: LocalUcdConfig
) -> None:
    await upsert({"identifiers": ADA, "attributes": {"name": "Ada"}})
    with db(ucd_config) as conn:
        insider_id, created, updated = conn.execute(
            "SELECT insider_id, created_us, updated_us FROM profiles"
        ).fetchone()
    assert created == updated
    app_now = NOW + timedelta(hours=1)
    ucd_app.state.services.now = lambda: app_now
    assert await upsert({"insider_id": insider_id, "attributes": {"name": "Ada L."}}) == OK
    assert (await attributes_of(ucd, ADA))["name"] == "Ada L."
    with db(ucd_config) as conn:
        assert conn.execute("SELECT created_us, updated_us FROM profiles").fetchone() == (
            created,
            parse_rfc3339_us(app_now.strftime("%Y-%m-%dT%H:%M:%SZ")),
        )


async def test_partners_are_separate(
    upsert: Upsert, other_ucd: httpx.AsyncClient, ucd: httpx.AsyncClient, ucd_config: LocalUcdConfig
) -> None:
    await upsert({"identifiers": ADA, "attributes": {"custom": {"tier": "gold"}}})
    response = await other_ucd.post(
        "/api/user/v1/upsert",
        json={
            "users": [{"identifiers": ADA, "attributes": {"name": "Other", "custom": {"tier": 5}}}]
        },
    )
    assert response.json() == OK
    assert await attributes_of(ucd, ADA) == {"email": "ada@example.com", "c_tier": "gold"}
    with db(ucd_config) as conn:
        assert conn.execute(
            "SELECT partner, count(*) FROM profiles GROUP BY 1 ORDER BY 1"
        ).fetchall() == [
            ("local", 1),
            ("other", 1),
        ]


FAST_PATH_EVENTS = [
    {"event_name": "page_view", "timestamp": "2025-05-01T10:00:00Z"},
    {"event_name": "page_view", "timestamp": "2025-05-01T10:00:00Z", "event_params": {}},
    {
        "event_name": "purchase",
        "timestamp": "2025-05-01T23:59:59Z",
        "event_params": {
            "product_id": "p1", "source": "web", "event_group_id": "o1", "currency": "EUR",
            "unit_sale_price": 9.5, "quantity": 2.0, "taxonomy": ["a", "b"],
            "custom": {"gift": True, "n": 1.0, "deep": {"x": [1.0]}},
        },
    },
    {"event_name": "add_to_cart", "timestamp": "2025-05-01T00:00:00Z",
     "event_params": {"source": "", "referrer": None, "url": "/x", "custom": {}}},
]  # fmt: skip


@pytest.mark.parametrize("event", FAST_PATH_EVENTS)
def test_fast_event_path_matches_the_full_checks(event: dict[str, Any]) -> None:
    """The hot path and the full checker prepare the same event (same digest, same rows)."""
    full = _check_event(event, 0, [])
    assert full is not None
    assert _fast_event(event) == full  # the date is known now: the fast path takes it
