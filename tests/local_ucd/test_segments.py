"""Local segments (§5.5): create, list, ids, errors, and evaluation for exports."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.attributes.views import load_attributes
from gateway.local_ucd.config import LocalUcdConfig
from gateway.local_ucd.exports.segments import segment_profile_pks

from .conftest import OTHER_PARTNER, PARTNER, make_client

SEGMENTS = "/api/local/v1/segments"
ALL_USERS = {"segment_id": 1, "name": "All users", "conditions": []}


async def create(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    return await client.post(SEGMENTS, json=body)


async def create_ok(client: httpx.AsyncClient, name: str, *conditions: dict[str, Any]) -> int:
    response = await create(client, {"name": name, "conditions": list(conditions)})
    assert response.status_code == 200, response.text
    segment_id: int = response.json()["segment_id"]
    return segment_id


def cond(attribute: str, operator: str, *value: Any) -> dict[str, Any]:
    condition: dict[str, Any] = {"attribute": attribute, "operator": operator}
    if value:
        (condition["value"],) = value
    return condition


def members(db: Path, segment_id: int, partner: str = PARTNER) -> list[str] | None:
    """Names of the segment's profiles in evaluation order, on a snapshot like the export's."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        pks = segment_profile_pks(conn, partner, segment_id)
        if pks is None:
            return None
        return [str(load_attributes(conn, pk).get("name", "?")) for pk in pks]
    finally:
        conn.close()


def iids_in_order(db: Path, segment_id: int, partner: str = PARTNER) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        pks = segment_profile_pks(conn, partner, segment_id)
        assert pks is not None
        return [
            conn.execute("SELECT insider_id FROM profiles WHERE pk = ?", (pk,)).fetchone()[0]
            for pk in pks
        ]
    finally:
        conn.close()


@pytest.fixture
def db(ucd_config: LocalUcdConfig) -> Path:
    return ucd_config.database_path


# -- create and list --------------------------------------------------------------------


async def test_all_users_exists_from_the_start(ucd: httpx.AsyncClient) -> None:
    response = await ucd.get(SEGMENTS)
    assert response.status_code == 200
    assert response.json() == {"segments": [ALL_USERS]}


async def test_ids_start_at_two_and_list_in_ascending_order(ucd: httpx.AsyncClient) -> None:
    gold = [cond("c_tier", "eq", "gold"), cond("city", "eq", "Izmir")]
    assert await create_ok(ucd, "Gold buyers in Izmir", *gold) == 2
    assert await create_ok(ucd, "Has email", cond("email", "exists")) == 3
    response = await create(ucd, {"name": "Everyone again", "ignored": 1})  # no conditions = []
    assert response.json() == {"segment_id": 4}
    assert (await ucd.get(SEGMENTS)).json() == {
        "segments": [
            ALL_USERS,
            {"segment_id": 2, "name": "Gold buyers in Izmir", "conditions": gold},
            {"segment_id": 3, "name": "Has email", "conditions": [cond("email", "exists")]},
            {"segment_id": 4, "name": "Everyone again", "conditions": []},
        ]
    }


async def test_ids_are_per_partner(ucd: httpx.AsyncClient, other_ucd: httpx.AsyncClient) -> None:
    assert await create_ok(ucd, "a") == 2
    assert await create_ok(ucd, "b") == 3
    assert await create_ok(other_ucd, "theirs") == 2
    assert (await other_ucd.get(SEGMENTS)).json() == {
        "segments": [ALL_USERS, {"segment_id": 2, "name": "theirs", "conditions": []}]
    }
    assert [s["name"] for s in (await ucd.get(SEGMENTS)).json()["segments"]] == [
        "All users",
        "a",
        "b",
    ]


async def test_ids_are_never_reused(
    ucd_app: Any, ucd_config: LocalUcdConfig, ucd: httpx.AsyncClient, db: Path
) -> None:
    """Even when the newest segment row disappears, and across a restart."""
    assert await create_ok(ucd, "a") == 2
    assert await create_ok(ucd, "b") == 3
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM segments WHERE segment_id = 3")
    assert await create_ok(ucd, "c") == 4
    second = create_local_ucd_app(ucd_config)
    async with LifespanManager(second) as manager, make_client(manager.app) as client:
        assert await create_ok(client, "d") == 5


@pytest.mark.parametrize(
    ("body", "text"),
    [
        pytest.param({"conditions": []}, "name must be defined", id="no-name"),
        pytest.param({"name": "", "conditions": []}, "name must be defined", id="empty-name"),
        pytest.param({"name": 5, "conditions": []}, "name must be defined", id="number-name"),
        pytest.param({"name": "x", "conditions": "all"}, "conditions must be array", id="string"),
        pytest.param({"name": "x", "conditions": {}}, "conditions must be array", id="object"),
        pytest.param({"name": "x", "conditions": [1]}, "conditions.0 must be object", id="item"),
        pytest.param(
            {"name": "x", "conditions": [{"operator": "eq", "value": 1}]},
            "conditions.0.attribute must be defined",
            id="no-attribute",
        ),
        pytest.param(
            {"name": "x", "conditions": [cond("age", "eq", 1), cond("", "eq", 1)]},
            "conditions.1.attribute must be defined",
            id="empty-attribute",
        ),
        pytest.param(
            {"name": "x", "conditions": [cond("age", "like", 1)]},
            "conditions.0.operator must be one of eq, neq, gt, gte, lt, lte, exists, contains",
            id="bad-operator",
        ),
        pytest.param(
            {"name": "x", "conditions": [{"attribute": "age", "value": 1}]},
            "conditions.0.operator must be one of eq, neq, gt, gte, lt, lte, exists, contains",
            id="no-operator",
        ),
        pytest.param(
            {"name": "x", "conditions": [cond("age", "exists"), cond("age", "gt")]},
            "conditions.1.value must be defined",
            id="no-value",
        ),
        pytest.param(
            {"name": "x", "conditions": [{"attribute": "age", "operator": "eq", "value": None}]},
            "conditions.0.value must be defined",
            id="null-value",
        ),
        pytest.param(
            {"name": "x", "conditions": [cond("age", "exists", "yes")]},
            "conditions.0.value must be boolean",
            id="exists-not-boolean",
        ),
        pytest.param({"conditions": "all"}, "name must be defined", id="name-first"),
    ],
)
async def test_create_errors(ucd: httpx.AsyncClient, body: dict[str, Any], text: str) -> None:
    response = await create(ucd, body)
    assert response.status_code == 400
    assert response.json() == {"error": f"{text}: bad request"}
    assert (await ucd.get(SEGMENTS)).json() == {"segments": [ALL_USERS]}


# -- evaluation -------------------------------------------------------------------------


@pytest.fixture
async def people(upsert: Callable[..., Any], other_ucd: httpx.AsyncClient) -> None:
    """Ada, Bob and Cem of partner local; Zed of partner other."""
    result = await upsert(
        {
            "identifiers": {"email": "ada@example.com", "custom": {"crm_id": "c-1"}},
            "attributes": {
                "name": "Ada",
                "age": 36,
                "city": "Izmir",
                "gdpr_optin": True,
                "birthday": "1989-03-12T00:00:00Z",
                "static_segment_id": [1, 2],
                "custom": {"tier": "gold", "tags": ["a", "b"]},
            },
        },
        {
            "identifiers": {"email": "bob@example.com"},
            "attributes": {
                "name": "Bob",
                "age": 20.5,
                "city": "Ankara",
                "gdpr_optin": False,
                "static_segment_id": [3],
                "custom": {"tier": "silver", "tags": ["c"]},
            },
        },
        {"identifiers": {"uuid": "u-3"}, "attributes": {"name": "Cem"}},
    )
    assert result["data"]["successful"] == {"count": 3}
    response = await other_ucd.post(
        "/api/user/v1/upsert",
        json={
            "users": [{"identifiers": {"email": "ada@example.com"}, "attributes": {"name": "Zed"}}]
        },
    )
    assert response.status_code == 200


@pytest.fixture
def segment(ucd: httpx.AsyncClient, db: Path, people: None) -> Callable[..., Any]:
    """Create a segment of the given conditions and return its members' names, sorted."""

    async def _segment(*conditions: dict[str, Any]) -> list[str]:
        segment_id = await create_ok(ucd, "s", *conditions)
        names = members(db, segment_id)
        assert names is not None
        return sorted(names)

    return _segment


async def test_empty_conditions_match_everyone_in_ascending_iid(
    segment: Callable[..., Any], db: Path
) -> None:
    assert await segment() == ["Ada", "Bob", "Cem"]
    for segment_id in (1, 2):
        iids = iids_in_order(db, segment_id)
        assert len(iids) == 3
        assert iids == sorted(iids)


CASES = [
    # eq: read names and aliases, numbers by value, booleans apart from numbers
    (cond("name", "eq", "Ada"), ["Ada"]),
    (cond("age", "eq", 36.0), ["Ada"]),
    (cond("gdpr", "eq", True), ["Ada"]),
    (cond("gdpr_optin", "eq", False), ["Bob"]),
    (cond("gdpr", "eq", 1), []),
    (cond("c_tier", "eq", "gold"), ["Ada"]),
    (cond("name", "eq", "ada"), []),
    # identifiers: email normalised, short names, custom identifiers, uuid
    (cond("email", "eq", "  ADA@Example.COM "), ["Ada"]),
    (cond("em", "eq", "bob@example.com"), ["Bob"]),
    (cond("email", "neq", " BOB@example.com"), ["Ada", "Cem"]),
    (cond("c_crm_id", "eq", "c-1"), ["Ada"]),
    (cond("uuid", "eq", "u-3"), ["Cem"]),
    # neq: absent attributes satisfy it
    (cond("city", "neq", "Izmir"), ["Bob", "Cem"]),
    # arrays: any element for eq/gt/gte/lt/lte, no element for neq
    (cond("static_segment_id", "eq", 2), ["Ada"]),
    (cond("list_id", "eq", 3), ["Bob"]),
    (cond("static_segment_id", "neq", 1), ["Bob", "Cem"]),
    (cond("static_segment_id", "gt", 2), ["Bob"]),
    (cond("static_segment_id", "gte", 2), ["Ada", "Bob"]),
    (cond("static_segment_id", "lt", 2), ["Ada"]),
    (cond("static_segment_id", "lte", 3), ["Ada", "Bob"]),
    (cond("c_tags", "eq", "c"), ["Bob"]),
    # comparisons: numbers with numbers, strings with strings (code points), nothing else
    (cond("age", "gt", 20.5), ["Ada"]),
    (cond("age", "gte", 20.5), ["Ada", "Bob"]),
    (cond("age", "lt", 36), ["Bob"]),
    (cond("age", "lte", 36), ["Ada", "Bob"]),
    (cond("age", "gt", "1"), []),
    (cond("name", "gt", "B"), ["Bob", "Cem"]),
    (cond("name", "lt", "a"), ["Ada", "Bob", "Cem"]),
    (cond("birthday", "gte", "1989-01-01T00:00:00Z"), ["Ada"]),
    (cond("birthday", "lt", "1989-01-01T00:00:00Z"), []),
    # contains: substring of a string (case-sensitive), element of an array
    (cond("name", "contains", "d"), ["Ada"]),
    (cond("name", "contains", "A"), ["Ada"]),
    (cond("name", "contains", "o"), ["Bob"]),
    (cond("name", "contains", "x"), []),
    (cond("c_tags", "contains", "a"), ["Ada"]),
    (cond("c_tags", "contains", "ab"), []),
    (cond("static_segment_id", "contains", 3), ["Bob"]),
    (cond("age", "contains", 36), []),
    (cond("email", "contains", "@EXAMPLE"), ["Ada", "Bob"]),
    # exists
    (cond("city", "exists"), ["Ada", "Bob"]),
    (cond("city", "exists", True), ["Ada", "Bob"]),
    (cond("city", "exists", False), ["Cem"]),
    (cond("email", "exists", False), ["Cem"]),
    (cond("c_tier", "exists"), ["Ada", "Bob"]),
    # unknown names are always absent
    (cond("favourite", "eq", "x"), []),
    (cond("favourite", "neq", "x"), ["Ada", "Bob", "Cem"]),
    (cond("c_nope", "exists", False), ["Ada", "Bob", "Cem"]),
]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        pytest.param(c, e, id=f"{c['attribute']}-{c['operator']}-{c.get('value', '')}")
        for c, e in CASES
    ],
)
async def test_operator(
    segment: Callable[..., Any], condition: dict[str, Any], expected: list[str]
) -> None:
    assert await segment(condition) == expected


async def test_conditions_are_anded(segment: Callable[..., Any]) -> None:
    assert await segment(cond("c_tier", "exists"), cond("age", "lt", 30)) == ["Bob"]
    assert await segment(cond("c_tier", "eq", "gold"), cond("age", "gt", 40)) == []


async def test_iid_condition(segment: Callable[..., Any], db: Path) -> None:
    first = iids_in_order(db, 1)[0]
    assert len(await segment(cond("iid", "eq", first))) == 1
    assert len(await segment(cond("iid", "neq", first))) == 2
    assert len(await segment(cond("iid", "gt", first))) == 2


async def test_segments_are_dynamic(
    segment: Callable[..., Any], upsert: Callable[..., Any], ucd: httpx.AsyncClient, db: Path
) -> None:
    segment_id = await create_ok(ucd, "gold", cond("c_tier", "eq", "gold"))
    assert members(db, segment_id) == ["Ada"]
    await upsert({"identifiers": {"uuid": "u-3"}, "attributes": {"custom": {"tier": "gold"}}})
    assert sorted(members(db, segment_id) or []) == ["Ada", "Cem"]


async def test_unknown_and_foreign_segments_are_none(
    ucd: httpx.AsyncClient, other_ucd: httpx.AsyncClient, db: Path, people: None
) -> None:
    theirs = await create_ok(other_ucd, "theirs")
    assert members(db, theirs) is None  # id 2 exists for "other" only
    assert members(db, 99) is None
    assert members(db, 0) is None
    assert members(db, 2**70) is None
    assert members(db, theirs, OTHER_PARTNER) == ["Zed"]
    assert members(db, 1, OTHER_PARTNER) == ["Zed"]
    assert sorted(members(db, 1) or []) == ["Ada", "Bob", "Cem"]


async def test_many_profiles_stream_in_chunks(ucd_app: Any, db: Path) -> None:
    """More profiles than one evaluation chunk: all seen, ascending, none twice."""
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO profiles (partner, insider_id, created_us, updated_us)"
            " VALUES (?, ?, 0, 0)",
            [(PARTNER, f"{i:08x}-0000-4000-8000-000000000000") for i in range(1203)],
        )
        pks = [
            pk
            for (pk,) in conn.execute("SELECT pk FROM profiles WHERE insider_id LIKE '%5-0000-%'")
        ]
        conn.executemany("INSERT INTO attributes VALUES (?, 0, 'age', '5')", [(pk,) for pk in pks])
    iids = iids_in_order(db, 1)
    assert len(iids) == 1203
    assert iids == sorted(iids)
    with sqlite3.connect(db) as conn:
        segment_id = 7
        conn.execute(
            "INSERT INTO segments VALUES (?, ?, 'fives', ?)",
            (PARTNER, segment_id, '[{"attribute": "age", "operator": "eq", "value": 5}]'),
        )
    fives = iids_in_order(db, segment_id)
    assert len(fives) == len(pks) == 75  # i % 16 == 5
    assert all("5-0000-" in iid for iid in fives)
