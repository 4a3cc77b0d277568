"""Identity resolution in E1 (§4.4), merging (§4.5) and the conflict callbacks (§4.6)."""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import LocalUcdConfig
from gateway.local_ucd.services import Services

Upsert = Callable[..., Any]
OK = {"data": {"successful": {"count": 1}, "fail": {}}}
HOOK = "https://hooks.example.com/ucd-errors"
P1_ID = "3b9a6c1e-8f3d-4c1a-9e57-2d8f0b6a4c11"
P2_ID = "a0d4e2f7-5b6c-4e8a-b1f3-7c9d2e4f6a80"
DIFFERENT = "profile already has a different value for this identifier"
ANOTHER = "identifier belongs to another profile"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


class HookRecorder:
    """A callback receiver: records each POST (URL and JSON body) and answers 200."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.posts.append((str(request.url), orjson.loads(request.content)))
        return httpx.Response(200)


@pytest.fixture
def hooks() -> HookRecorder:
    return HookRecorder()


@pytest.fixture
async def ucd_app(ucd_config: LocalUcdConfig, hooks: HookRecorder) -> AsyncIterator[Starlette]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(hooks)) as hook_client:
        app = create_local_ucd_app(ucd_config, hook_client=hook_client)
        async with LifespanManager(app):
            # The worked example's events are dated January 2025: keep them in retention.
            app.state.services.now = lambda: datetime(2025, 6, 1, tzinfo=UTC)
            yield app


@pytest.fixture
def services(ucd_app: Starlette) -> Services:
    result: Services = ucd_app.state.services
    return result


@pytest.fixture
def conn(ucd_config: LocalUcdConfig) -> sqlite3.Connection:
    return sqlite3.connect(ucd_config.database_path, isolation_level=None)


async def profile(ucd: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any] | None:
    response = await ucd.post("/api/user/v1/profile", json={"attributes": ["*"], **body})
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    attributes: dict[str, Any] = response.json()["attributes"]
    return attributes


def insider_id_of(conn: sqlite3.Connection, kind: str, value: str) -> str:
    row = conn.execute(
        "SELECT p.insider_id FROM identifiers i JOIN profiles p ON p.pk = i.profile_pk "
        "WHERE i.kind = ? AND i.value = ?",
        (kind, value),
    ).fetchone()
    return str(row[0])


def set_insider_id(conn: sqlite3.Connection, kind: str, value: str, insider_id: str) -> None:
    conn.execute(
        "UPDATE profiles SET insider_id = ? WHERE pk = "
        "(SELECT profile_pk FROM identifiers WHERE kind = ? AND value = ?)",
        (insider_id, kind, value),
    )


def event_names(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT p.insider_id, e.name FROM events e "
        "JOIN profiles p ON p.pk = e.profile_pk ORDER BY e.pk"
    ).fetchall()


# -- the worked example of §4.5 -----------------------------------------------------------------


async def test_worked_example(
    upsert: Upsert,
    ucd: httpx.AsyncClient,
    conn: sqlite3.Connection,
    services: Services,
    hooks: HookRecorder,
) -> None:
    await upsert(
        {
            "identifiers": {"uuid": "u-1", "phone_number": "+905551112233"},
            "attributes": {"name": "Ada", "static_segment_id": [1], "custom": {"tier": "gold"}},
            "events": [
                {
                    "event_name": "purchase",
                    "timestamp": "2025-01-10T21:35:20Z",
                    "event_params": {
                        "event_group_id": "O1",
                        "currency": "USD",
                        "unit_sale_price": 890.9,
                    },
                },
            ],
        },
        {
            "identifiers": {"email": "ada@example.com", "phone_number": "+905559998877"},
            "attributes": {"name": "Ada L.", "city": "Izmir", "static_segment_id": [2]},
            "events": [{"event_name": "email_click", "timestamp": "2025-01-11T08:00:00Z"}],
        },
    )
    set_insider_id(conn, "uuid", "u-1", P1_ID)
    set_insider_id(conn, "email", "ada@example.com", P2_ID)
    assert event_names(conn) == [(P1_ID, "purchase"), (P2_ID, "email_click")]

    result = await upsert(
        {
            "identifiers": {
                "email": " ADA@Example.com",
                "uuid": "u-1",
                "custom": {"crm_id": "c-9"},
            },
            "attributes": {"surname": "Lovelace", "static_segment_id": [3]},
        },
        error_callback_endpoint=HOOK,
    )
    assert result == {"data": {"successful": {"count": 1}, "fail": {}}}

    assert await profile(ucd, {"insider_id": P2_ID}) == {
        "iid": P1_ID,
        "uuid": "u-1",
        "email": "ada@example.com",
        "phone_number": "+905551112233",
        "c_crm_id": "c-9",
        "name": "Ada",
        "surname": "Lovelace",
        "city": "Izmir",
        "static_segment_id": [1, 2, 3],
        "c_tier": "gold",
    }
    assert event_names(conn) == [(P1_ID, "purchase"), (P1_ID, "email_click")]
    assert conn.execute("SELECT insider_id FROM profiles").fetchall() == [(P1_ID,)]
    assert conn.execute("SELECT insider_id, profile_pk FROM aliases").fetchall() == [(P2_ID, 1)]
    # P2's phone was deleted, not kept anywhere.
    assert await profile(ucd, {"identifiers": {"phone_number": "+905559998877"}}) is None

    await services.callbacks.join()
    assert hooks.posts == [
        (
            HOOK,
            {
                "insider_id": P1_ID,
                "identifiers": {"phone_number": "+905559998877"},
                "reason": DIFFERENT,
            },
        ),
    ]


# -- matching and merging -----------------------------------------------------------------------


async def test_new_profiles_get_a_lower_case_uuid4(
    upsert: Upsert, conn: sqlite3.Connection
) -> None:
    await upsert(*({"identifiers": {"uuid": f"u-{i}"}, "attributes": {"age": i}} for i in range(5)))
    ids = [row[0] for row in conn.execute("SELECT insider_id FROM profiles")]
    assert len(set(ids)) == 5
    assert all(UUID4.match(insider_id) for insider_id in ids)


async def test_a_generated_id_equal_to_a_live_id_or_alias_is_regenerated(
    upsert: Upsert, conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await upsert({"identifiers": {"uuid": "u-1"}, "attributes": {"age": 1}})
    await upsert({"identifiers": {"uuid": "u-2"}, "attributes": {"age": 2}})
    await upsert(
        {"identifiers": {"uuid": "u-1", "email": "a@example.com"}, "attributes": {"age": 1}}
    )
    await upsert(
        {"identifiers": {"uuid": "u-2", "email": "a@example.com"}, "attributes": {"age": 1}}
    )
    live = insider_id_of(conn, "uuid", "u-2")  # u-1 was deleted when its profile merged
    alias = str(conn.execute("SELECT insider_id FROM aliases").fetchone()[0])
    fresh = uuid.UUID("12345678-1234-4234-8234-123456789abc")
    queue = [uuid.UUID(live), uuid.UUID(alias), fresh]
    monkeypatch.setattr(uuid, "uuid4", lambda: queue.pop(0))
    await upsert({"identifiers": {"uuid": "u-3"}, "attributes": {"age": 3}})
    assert insider_id_of(conn, "uuid", "u-3") == str(fresh)


async def test_email_is_normalised_for_matching(upsert: Upsert, conn: sqlite3.Connection) -> None:
    await upsert({"identifiers": {"email": "ada@example.com"}, "attributes": {"name": "Ada"}})
    await upsert({"identifiers": {"email": "  ADA@Example.COM\t"}, "attributes": {"surname": "L"}})
    assert conn.execute("SELECT count(*) FROM profiles").fetchone() == (1,)
    assert conn.execute("SELECT value FROM identifiers").fetchall() == [("ada@example.com",)]


async def test_blocked_values_are_never_matched_nor_stored(
    upsert: Upsert, conn: sqlite3.Connection
) -> None:
    await upsert(
        {
            "identifiers": {
                "email": "a@example.com",
                "uuid": "Anonymous",
                "custom": {"crm_id": "NULL"},
            },
            "attributes": {"name": "A"},
        }
    )
    await upsert(
        {
            "identifiers": {"email": "b@example.com", "uuid": "anonymous"},
            "attributes": {"name": "B"},
        }
    )
    assert conn.execute("SELECT count(*) FROM profiles").fetchone() == (2,)
    assert conn.execute("SELECT kind, value FROM identifiers ORDER BY value").fetchall() == [
        ("email", "a@example.com"),
        ("email", "b@example.com"),
    ]
    assert conn.execute("SELECT count(*) FROM custom_names").fetchone() == (0,)


async def test_three_profiles_merge_in_priority_order(
    upsert: Upsert,
    ucd: httpx.AsyncClient,
    conn: sqlite3.Connection,
    services: Services,
    hooks: HookRecorder,
) -> None:
    await upsert(
        {
            "identifiers": {"custom": {"crm_id": "c-1"}},
            "attributes": {"city": "Ankara", "custom": {"tags": ["c"]}},
        },
        {
            "identifiers": {"phone_number": "+905551112233"},
            "attributes": {"city": "Izmir", "age": 40, "custom": {"tags": ["b", "c"]}},
        },
        {"identifiers": {"uuid": "u-1"}, "attributes": {"name": "Ada", "custom": {"tags": ["a"]}}},
    )
    survivor = insider_id_of(conn, "uuid", "u-1")
    phone_owner = insider_id_of(conn, "phone_number", "+905551112233")
    crm_owner = insider_id_of(conn, "custom", "c-1")

    result = await upsert(
        {
            "identifiers": {
                "custom": {"crm_id": "c-1"},
                "phone_number": "+905551112233",
                "uuid": "u-1",
            },
            "attributes": {"surname": "Lovelace"},
        },
        error_callback_endpoint=HOOK,
    )
    assert result == OK
    # The phone's profile merges first, so its city wins over the crm_id profile's.
    assert await profile(ucd, {"insider_id": crm_owner}) == {
        "iid": survivor,
        "uuid": "u-1",
        "phone_number": "+905551112233",
        "c_crm_id": "c-1",
        "name": "Ada",
        "surname": "Lovelace",
        "city": "Izmir",
        "age": 40,
        "c_tags": ["a", "b", "c"],
    }
    assert sorted(conn.execute("SELECT insider_id FROM aliases").fetchall()) == sorted(
        [(phone_owner,), (crm_owner,)]
    )
    await services.callbacks.join()
    assert hooks.posts == []


async def test_aliases_follow_later_merges(
    upsert: Upsert, ucd: httpx.AsyncClient, conn: sqlite3.Connection
) -> None:
    """O merged into S1, then S1 into S2: O's id resolves to S2 (§4.5 step 4)."""
    await upsert(
        {"identifiers": {"phone_number": "+905551112233"}, "attributes": {"name": "O"}},
        {"identifiers": {"email": "s1@example.com"}, "attributes": {"name": "S1"}},
        {"identifiers": {"uuid": "s2"}, "attributes": {"name": "S2"}},
    )
    o_id = insider_id_of(conn, "phone_number", "+905551112233")
    s1_id = insider_id_of(conn, "email", "s1@example.com")
    s2_id = insider_id_of(conn, "uuid", "s2")
    await upsert(
        {
            "identifiers": {"email": "s1@example.com", "phone_number": "+905551112233"},
            "attributes": {"age": 1},
        }
    )
    await upsert(
        {"identifiers": {"uuid": "s2", "email": "s1@example.com"}, "attributes": {"age": 2}}
    )
    assert sorted(conn.execute("SELECT insider_id FROM aliases").fetchall()) == sorted(
        [(o_id,), (s1_id,)]
    )
    assert {row[0] for row in conn.execute("SELECT profile_pk FROM aliases")} == {
        conn.execute("SELECT pk FROM profiles WHERE insider_id = ?", (s2_id,)).fetchone()[0]
    }
    for old in (o_id, s1_id):
        found = await profile(ucd, {"insider_id": old})
        assert found is not None
        assert (found["iid"], found["name"]) == (s2_id, "S2")
    # An upsert by an alias updates the survivor.
    assert await upsert({"insider_id": o_id, "attributes": {"surname": "Via alias"}}) == OK
    found = await profile(ucd, {"insider_id": s2_id})
    assert found is not None
    assert found["surname"] == "Via alias"


async def test_identical_events_collapse_in_a_merge(
    upsert: Upsert, conn: sqlite3.Connection
) -> None:
    same = {
        "event_name": "page_view",
        "timestamp": "2099-01-01T00:00:00Z",
        "event_params": {"url": "/a"},
    }
    other = {"event_name": "page_view", "timestamp": "2099-01-02T00:00:00Z"}
    await upsert(
        {"identifiers": {"uuid": "u-1"}, "events": [same]},
        {"identifiers": {"email": "a@example.com"}, "events": [same, other]},
    )
    await upsert(
        {"identifiers": {"uuid": "u-1", "email": "a@example.com"}, "attributes": {"age": 1}}
    )
    assert conn.execute("SELECT profile_pk, ts_us FROM events ORDER BY pk").fetchall() == [
        (1, 4070908800000000),
        (1, 4070995200000000),
    ]


async def test_merge_within_one_request_sees_batched_writes(
    upsert: Upsert, ucd: httpx.AsyncClient
) -> None:
    """Profiles created earlier in the same request merge with their attributes and events."""
    result = await upsert(
        {
            "identifiers": {"uuid": "u-1"},
            "attributes": {"name": "A", "static_segment_id": [1]},
            "events": [{"event_name": "page_view", "timestamp": "2099-01-01T00:00:00Z"}],
        },
        {
            "identifiers": {"email": "a@example.com"},
            "attributes": {"city": "X", "static_segment_id": [2]},
            "events": [{"event_name": "page_view", "timestamp": "2099-01-01T00:00:00Z"}],
        },
        {
            "identifiers": {"uuid": "u-1", "email": "a@example.com"},
            "attributes": {"static_segment_id": [3]},
        },
    )
    assert result == {"data": {"successful": {"count": 3}, "fail": {}}}
    found = await profile(ucd, {"identifiers": {"uuid": "u-1"}})
    assert found is not None
    found.pop("iid")
    assert found == {
        "uuid": "u-1",
        "email": "a@example.com",
        "name": "A",
        "city": "X",
        "static_segment_id": [1, 2, 3],
    }


# -- attaching and conflicts --------------------------------------------------------------------


async def test_a_different_value_is_not_attached(
    upsert: Upsert, conn: sqlite3.Connection, services: Services, hooks: HookRecorder
) -> None:
    await upsert(
        {
            "identifiers": {"uuid": "u-1", "email": "a@example.com", "custom": {"crm_id": "c-1"}},
            "attributes": {"age": 1},
        }
    )
    result = await upsert(
        {
            "identifiers": {"uuid": "u-1", "email": "b@example.com", "custom": {"crm_id": "c-2"}},
            "attributes": {"age": 2},
        },
        error_callback_endpoint=HOOK,
    )
    assert result == OK
    insider_id = insider_id_of(conn, "uuid", "u-1")
    assert conn.execute("SELECT value FROM identifiers ORDER BY value").fetchall() == [
        ("a@example.com",),
        ("c-1",),
        ("u-1",),
    ]
    await services.callbacks.join()
    assert [body for _url, body in hooks.posts] == [
        {"insider_id": insider_id, "identifiers": {"email": "b@example.com"}, "reason": DIFFERENT},
        {
            "insider_id": insider_id,
            "identifiers": {"custom": {"crm_id": "c-2"}},
            "reason": DIFFERENT,
        },
    ]


async def test_insider_id_mode_never_merges(
    upsert: Upsert, conn: sqlite3.Connection, services: Services, hooks: HookRecorder
) -> None:
    await upsert(
        {"identifiers": {"uuid": "u-1"}, "attributes": {"age": 1}},
        {"identifiers": {"email": "a@example.com"}, "attributes": {"age": 2}},
    )
    target = insider_id_of(conn, "uuid", "u-1")
    result = await upsert(
        {
            "insider_id": target,
            "identifiers": {"email": "a@example.com", "phone_number": "+905551112233"},
            "attributes": {"name": "T"},
        },
        error_callback_endpoint=HOOK,
    )
    assert result == OK
    assert conn.execute("SELECT count(*) FROM profiles").fetchone() == (2,)
    assert insider_id_of(conn, "phone_number", "+905551112233") == target
    assert insider_id_of(conn, "email", "a@example.com") != target
    await services.callbacks.join()
    assert hooks.posts == [
        (
            HOOK,
            {"insider_id": target, "identifiers": {"email": "a@example.com"}, "reason": ANOTHER},
        ),
    ]


async def test_identifier_attributes_report_conflicts(
    upsert: Upsert, conn: sqlite3.Connection, services: Services, hooks: HookRecorder
) -> None:
    await upsert(
        {"identifiers": {"email": "a@example.com"}, "attributes": {"age": 1}},
        {"identifiers": {"custom": {"crm_id": "c-1"}}, "attributes": {"age": 1}},
    )
    result = await upsert(
        {
            "identifiers": {"uuid": "u-2"},
            "attributes": {
                "email": "a@example.com",
                "phone_number": "+905551112233",
                "custom": {"crm_id": "c-1"},
            },
        },
        error_callback_endpoint=HOOK,
    )
    assert result == OK
    target = insider_id_of(conn, "uuid", "u-2")
    assert insider_id_of(conn, "phone_number", "+905551112233") == target
    await services.callbacks.join()
    assert [body for _url, body in hooks.posts] == [
        {"insider_id": target, "identifiers": {"email": "a@example.com"}, "reason": ANOTHER},
        {"insider_id": target, "identifiers": {"custom": {"crm_id": "c-1"}}, "reason": ANOTHER},
    ]


async def test_a_value_deleted_in_a_merge_is_reported_once(
    upsert: Upsert, conn: sqlite3.Connection, services: Services, hooks: HookRecorder
) -> None:
    """O matched through its email, but S has another email: deleted, one callback."""
    await upsert(
        {"identifiers": {"uuid": "u-1", "email": "s@example.com"}, "attributes": {"age": 1}},
        {"identifiers": {"email": "o@example.com"}, "attributes": {"age": 2}},
    )
    result = await upsert(
        {"identifiers": {"uuid": "u-1", "email": "o@example.com"}, "attributes": {"age": 3}},
        error_callback_endpoint=HOOK,
    )
    assert result == OK
    target = insider_id_of(conn, "uuid", "u-1")
    assert conn.execute("SELECT value FROM identifiers ORDER BY value").fetchall() == [
        ("s@example.com",),
        ("u-1",),
    ]
    await services.callbacks.join()
    assert hooks.posts == [
        (
            HOOK,
            {"insider_id": target, "identifiers": {"email": "o@example.com"}, "reason": DIFFERENT},
        ),
    ]


async def test_conflicts_without_a_callback_endpoint_send_nothing(
    upsert: Upsert, services: Services, hooks: HookRecorder
) -> None:
    await upsert(
        {"identifiers": {"uuid": "u-1", "email": "a@example.com"}, "attributes": {"age": 1}}
    )
    assert (
        await upsert(
            {"identifiers": {"uuid": "u-1", "email": "b@example.com"}, "attributes": {"age": 1}}
        )
        == OK
    )
    await services.callbacks.join()
    assert hooks.posts == []


async def test_callbacks_of_failed_requests_are_never_sent(
    ucd: httpx.AsyncClient, upsert: Upsert, services: Services, hooks: HookRecorder
) -> None:
    await upsert(
        {"identifiers": {"uuid": "u-1", "email": "a@example.com"}, "attributes": {"age": 1}}
    )
    body = {
        "users": [
            {"identifiers": {"uuid": "u-1", "email": "b@example.com"}, "attributes": {"age": 1}}
        ],
        "error_callback_endpoint": HOOK,
        "skip_hook": "no",
    }
    assert (await ucd.post("/api/user/v1/upsert", json=body)).status_code == 400
    await services.callbacks.join()
    assert hooks.posts == []


async def test_custom_identifiers_are_per_partner(
    upsert: Upsert, other_ucd: httpx.AsyncClient, conn: sqlite3.Connection
) -> None:
    await upsert(
        {"identifiers": {"email": "a@example.com"}, "attributes": {"custom": {"crm_id": "x"}}}
    )
    response = await other_ucd.post(
        "/api/user/v1/upsert",
        json={
            "users": [
                {
                    "identifiers": {"custom": {"crm_id": "c-1"}, "email": "a@example.com"},
                    "attributes": {"age": 1},
                }
            ]
        },
    )
    assert response.json() == OK
    assert conn.execute(
        "SELECT partner, name, is_identifier FROM custom_names ORDER BY partner"
    ).fetchall() == [
        ("local", "crm_id", 0),
        ("other", "crm_id", 1),
    ]
    assert conn.execute("SELECT count(*) FROM profiles").fetchone() == (2,)
