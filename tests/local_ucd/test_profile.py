"""E2 — get user profile (§3.2): validation order, lookup, read names, events and quota."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import LocalUcdConfig
from gateway.local_ucd.timefmt import parse_rfc3339_us

from .conftest import PARTNER, make_client

PROFILE = "/api/user/v1/profile"
EMAIL = "ada@example.com"
WINDOW = {"start_date": 1735689600, "end_date": 1738367999}  # January 2025, as in §3.2.1


# -- seeding straight into the store (independent of E1) -------------------------------


@pytest.fixture
def db(ucd_app: Starlette, ucd_config: LocalUcdConfig) -> Path:
    """The running local UCD's database file (its lifespan created the schema)."""
    return ucd_config.database_path


def seed(
    db: Path,
    *,
    partner: str = PARTNER,
    identifiers: Sequence[tuple[str, str, str]] = (),
    attributes: dict[str, Any] | None = None,
    custom: dict[str, Any] | None = None,
    custom_identifiers: Sequence[str] = (),
    events: Sequence[tuple[str, str, str, dict[str, Any], dict[str, Any]]] = (),
    aliases: Sequence[str] = (),
) -> str:
    """Create one profile the way the store keeps it (store/database.py); return its insider_id.

    identifiers: (kind, name, value); events: (name, RFC 3339 timestamp, source, default
    params, custom params), stored in the given order (later = more recently stored).
    """
    insider_id = str(uuid.uuid4())

    def write(conn: sqlite3.Connection) -> None:
        pk = conn.execute(
            "INSERT INTO profiles (partner, insider_id, created_us, updated_us)"
            " VALUES (?, ?, 0, 0)",
            (partner, insider_id),
        ).lastrowid
        for alias in aliases:
            conn.execute("INSERT INTO aliases VALUES (?, ?, ?)", (partner, alias, pk))
        for kind, name, value in identifiers:
            conn.execute(
                "INSERT INTO identifiers VALUES (?, ?, ?, ?, ?)", (partner, kind, name, value, pk)
            )
            if kind == "custom":
                conn.execute(
                    "INSERT OR IGNORE INTO custom_names VALUES (?, ?, 1, NULL)", (partner, name)
                )
        for name in custom_identifiers:
            conn.execute(
                "INSERT OR IGNORE INTO custom_names VALUES (?, ?, 1, NULL)", (partner, name)
            )
        for is_custom, values in ((0, attributes or {}), (1, custom or {})):
            for name, value in values.items():
                conn.execute(
                    "INSERT INTO attributes VALUES (?, ?, ?, ?)",
                    (pk, is_custom, name, orjson.dumps(value).decode()),
                )
                if is_custom:
                    conn.execute(
                        "INSERT OR IGNORE INTO custom_names VALUES (?, ?, 0, 'string')",
                        (partner, name),
                    )
        for name, timestamp, source, params, custom_params in events:
            conn.execute(
                "INSERT INTO events (profile_pk, name, ts_us, source, params, custom, dedupe)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    pk,
                    name,
                    parse_rfc3339_us(timestamp),
                    source,
                    orjson.dumps(params).decode(),
                    orjson.dumps(custom_params).decode(),
                    os.urandom(16),
                ),
            )

    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        write(conn)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return insider_id


async def profile(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post(PROFILE, json=body)


async def ok(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await profile(client, body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def by_email(**rest: Any) -> dict[str, Any]:
    return {"identifiers": {"email": EMAIL}, **rest}


# -- the spec's example -----------------------------------------------------------------


#: §3.2.1's request.
SPEC_REQUEST: dict[str, Any] = {
    "identifiers": {"email": EMAIL},
    "attributes": ["email", "name", "gdpr", "c_tier"],
    "events": {
        **WINDOW,
        "wanted": [
            {
                "event_name": "purchase",
                "params": ["product_id", "unit_sale_price", "c_gift_wrap", "timestamp"],
            },
            {"event_name": "email_click", "params": ["campaign_id"]},
        ],
    },
    "quota": True,
}


def spec_answer(iid: str) -> dict[str, Any]:
    """§3.2.3's answer to :data:`SPEC_REQUEST` for a user whose ``insider_id`` is ``iid``."""
    return {
        "attributes": {"iid": iid, "email": EMAIL, "name": "Ada", "gdpr": True, "c_tier": "gold"},
        "events": {
            "purchase": [
                {
                    "created_date": "2025-01-10T21:35:20Z",
                    "source": "api",
                    "product_id": "ABC21000",
                    "unit_sale_price": 890.9,
                    "c_gift_wrap": True,
                }
            ],
            "email_click": [],
        },
        "quota": {"cost": 3, "used": 3, "total": 1000},
    }


async def test_spec_example_answer(db: Path, ucd: httpx.AsyncClient) -> None:
    """§3.2.1's request gets §3.2.3's answer (iid aside, which is random)."""
    iid = seed(
        db,
        identifiers=[("email", "", EMAIL)],
        attributes={"name": "Ada", "gdpr_optin": True},
        custom={"tier": "gold"},
        events=[
            (
                "purchase",
                "2025-01-10T21:35:20Z",
                "api",
                {"product_id": "ABC21000", "unit_sale_price": 890.9, "quantity": 1},
                {"gift_wrap": True},
            )
        ],
    )
    assert await ok(ucd, SPEC_REQUEST) == spec_answer(iid)


async def test_spec_example_through_upsert(ucd: httpx.AsyncClient, upsert: Any) -> None:
    """End to end: E1 writes what E2 reads (offset timestamps, aliases, custom params)."""
    await upsert(
        {
            "identifiers": {"email": " ADA@Example.com", "custom": {"crm_id": "c-9"}},
            "attributes": {"name": "Ada", "gdpr_optin": True, "custom": {"tier": "gold"}},
            "events": [
                {
                    "event_name": "purchase",
                    "timestamp": "2025-01-11T00:35:20+03:00",
                    "event_params": {
                        "product_id": "ABC21000",
                        "unit_sale_price": 890.9,
                        "currency": "TRY",
                        "event_group_id": "g-1",
                        "custom": {"gift_wrap": True},
                    },
                }
            ],
        }
    )
    response = await profile(ucd, SPEC_REQUEST)
    assert response.status_code == 200
    # Whole units stay integers on the wire, as in the spec's sample.
    assert b'"quota":{"cost":3,"used":3,"total":1000}' in response.content
    answer = response.json()
    iid = answer["attributes"]["iid"]
    assert answer == spec_answer(iid)
    by_id = await ok(ucd, {"insider_id": iid, "attributes": ["c_crm_id"]})
    assert by_id["attributes"] == {"iid": iid, "c_crm_id": "c-9"}


# -- request-level errors (§3.2.2) ------------------------------------------------------

ITEM = {"event_name": "purchase", "params": []}


@pytest.mark.parametrize(
    ("body", "text"),
    [
        pytest.param(
            {"attributes": ["name"]},
            "either insider_id or idenifiers must be specified",
            id="no-user",
        ),
        pytest.param(
            {"identifiers": {"email": "null"}, "attributes": ["name"]},
            "either insider_id or idenifiers must be specified",
            id="only-blocked",
        ),
        pytest.param(
            {"identifiers": {"email": "sample"}, "attributes": ["name"]},
            "not a valid email address: sample",
            id="bad-email",
        ),
        pytest.param(
            {"identifiers": {"phone_number": "12"}},
            "user has an invalid phone number: 12",
            id="bad-phone-before-selection",
        ),
        pytest.param(
            by_email(), "either attributes or events must be specified", id="no-selection"
        ),
        pytest.param(
            by_email(attributes=None, events=None),
            "either attributes or events must be specified",
            id="nulls",
        ),
        pytest.param(
            by_email(attributes="email"), "attributes must be array", id="attributes-string"
        ),
        pytest.param(
            by_email(attributes=["email", 1]),
            "attributes must be array",
            id="attributes-non-string",
        ),
        pytest.param(
            by_email(attributes={"a": 1}), "attributes must be array", id="attributes-object"
        ),
        pytest.param(by_email(events=[]), "events must be object", id="events-array"),
        pytest.param(
            by_email(events={"end_date": 1, "wanted": []}),
            "events.start_date is required",
            id="no-start",
        ),
        pytest.param(
            by_email(events={"start_date": 1, "wanted": []}),
            "events.end_date is required",
            id="no-end",
        ),
        pytest.param(
            by_email(events={"start_date": "1", "end_date": 2, "wanted": []}),
            "events.start_date must be integer",
            id="start-string",
        ),
        pytest.param(
            by_email(events={"start_date": 1.5, "end_date": 2, "wanted": []}),
            "events.start_date must be integer",
            id="start-fraction",
        ),
        pytest.param(
            by_email(events={"start_date": True, "end_date": 2, "wanted": []}),
            "events.start_date must be integer",
            id="start-boolean",
        ),
        pytest.param(
            by_email(events={"start_date": 1, "end_date": 2}),
            "events.wanted is required",
            id="no-wanted",
        ),
        pytest.param(
            by_email(events={"start_date": 1, "end_date": 2, "wanted": {}}),
            "events.wanted must be array",
            id="wanted-object",
        ),
        pytest.param(
            by_email(events={"start_date": 1, "end_date": 2, "wanted": ["purchase"]}),
            "events.wanted.0 must be object",
            id="item-string",
        ),
        pytest.param(
            by_email(events={"start_date": 1, "end_date": 2, "wanted": [{"params": []}]}),
            "events.wanted.0.event_name is required",
            id="no-event-name",
        ),
        pytest.param(
            by_email(
                events={"start_date": 1, "end_date": 2, "wanted": [{"event_name": 3, "params": []}]}
            ),
            "events.wanted.0.event_name must be string",
            id="event-name-number",
        ),
        pytest.param(
            by_email(
                events={"start_date": 1, "end_date": 2, "wanted": [ITEM, {"event_name": "x"}]}
            ),
            "events.wanted.1.params is required",
            id="no-params",
        ),
        pytest.param(
            by_email(
                events={
                    "start_date": 1,
                    "end_date": 2,
                    "wanted": [ITEM, {"event_name": "x", "params": "a"}],
                }
            ),
            "events.wanted.1.params must be array",
            id="params-string",
        ),
        pytest.param(
            by_email(
                events={
                    "start_date": 1,
                    "end_date": 2,
                    "wanted": [{"event_name": "x", "params": ["a", 2]}],
                }
            ),
            "events.wanted.0.params.1 must be string",
            id="param-number",
        ),
        pytest.param(
            by_email(events={"start_date": 3, "end_date": 2, "wanted": [ITEM]}),
            "events.start_date must not be after events.end_date",
            id="start-after-end",
        ),
        pytest.param(
            by_email(events={"start_date": 3, "end_date": 2, "wanted": [{"event_name": "x"}]}),
            "events.wanted.0.params is required",
            id="types-before-range",
        ),
        pytest.param(
            by_email(
                events={
                    "start_date": 3,
                    "end_date": 2,
                    "wanted": [
                        {**ITEM, "filters": [{"key": "a", "operator": "ne", "values": [1]}]}
                    ],
                }
            ),
            "events.start_date must not be after events.end_date",
            id="range-before-filters",
        ),
        pytest.param(
            by_email(
                events={
                    **WINDOW,
                    "wanted": [
                        {**ITEM, "filters": [{"key": "a", "operator": "ne", "values": [1]}]}
                    ],
                }
            ),
            "events.wanted.0.filters.0.operator must be eq",
            id="filter-operator",
        ),
        pytest.param(
            by_email(events={**WINDOW, "wanted": [{**ITEM, "filters": {"key": "a"}}]}),
            "events.wanted.0.filters must be array",
            id="filters-object",
        ),
        pytest.param(
            by_email(
                events={
                    **WINDOW,
                    "wanted": [{**ITEM, "filters": [{"operator": "eq", "values": [1]}]}],
                }
            ),
            "events.wanted.0.filters.0.key is required",
            id="filter-no-key",
        ),
        pytest.param(
            by_email(
                events={**WINDOW, "wanted": [{**ITEM, "filters": [{"key": "a", "operator": "eq"}]}]}
            ),
            "events.wanted.0.filters.0.values is required",
            id="filter-no-values",
        ),
        pytest.param(
            by_email(
                events={
                    **WINDOW,
                    "wanted": [{**ITEM, "filters": [{"key": "a", "operator": "eq", "values": []}]}],
                }
            ),
            "events.wanted.0.filters.0.values must not be empty",
            id="filter-empty-values",
        ),
        pytest.param(
            by_email(events={**WINDOW, "wanted": [{**ITEM, "limit_per_source": 0}]}),
            "events.wanted.0.limit_per_source must be positive integer",
            id="limit-zero",
        ),
        pytest.param(
            by_email(events={**WINDOW, "wanted": [ITEM, {**ITEM, "limit_per_source": "2"}]}),
            "events.wanted.1.limit_per_source must be positive integer",
            id="limit-string",
        ),
        pytest.param(
            by_email(attributes=["name"], quota="yes"), "quota must be boolean", id="quota-string"
        ),
        pytest.param(
            by_email(attributes=3, quota="yes"),
            "attributes must be array",
            id="attributes-before-quota",
        ),
    ],
)
async def test_request_level_errors(
    ucd: httpx.AsyncClient, body: dict[str, Any], text: str
) -> None:
    response = await profile(ucd, body)
    assert response.status_code == 400
    assert response.json() == {"error": f"{text}: bad request"}


async def test_custom_attribute_used_as_identifier_is_an_identity_error(
    db: Path, ucd: httpx.AsyncClient
) -> None:
    seed(db, custom={"tier": "gold"})
    response = await profile(
        ucd, {"identifiers": {"custom": {"tier": "gold"}}, "attributes": ["c_tier"]}
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "tier is a custom attribute, not an identifier: bad request"
    }


async def test_identity_errors_come_before_selection_errors(ucd: httpx.AsyncClient) -> None:
    response = await profile(ucd, {"insider_id": 7, "attributes": "bad"})
    assert response.json() == {"error": "insider_id must be string: 7: bad request"}


# -- lookup -----------------------------------------------------------------------------


async def test_unknown_user_is_404(ucd: httpx.AsyncClient) -> None:
    for body in (
        by_email(attributes=["name"]),
        {"insider_id": str(uuid.uuid4()), "attributes": ["name"]},
    ):
        response = await profile(ucd, body)
        assert response.status_code == 404
        assert response.json() == {"error": "no such user for these identifiers: no data"}


async def test_alias_answers_with_the_survivors_iid(db: Path, ucd: httpx.AsyncClient) -> None:
    old = str(uuid.uuid4())
    iid = seed(db, attributes={"name": "Ada"}, aliases=[old])
    answer = await ok(ucd, {"insider_id": old, "attributes": ["name"]})
    assert answer == {"attributes": {"iid": iid, "name": "Ada"}, "events": {}}


async def test_insider_id_wins_over_identifiers(db: Path, ucd: httpx.AsyncClient) -> None:
    seed(db, identifiers=[("email", "", EMAIL)], attributes={"name": "Ada"})
    bob = seed(db, attributes={"name": "Bob"})
    answer = await ok(
        ucd, {"insider_id": bob, "identifiers": {"email": EMAIL}, "attributes": ["name"]}
    )
    assert answer["attributes"] == {"iid": bob, "name": "Bob"}


async def test_lookup_by_normalised_email_and_priority(db: Path, ucd: httpx.AsyncClient) -> None:
    ada = seed(db, identifiers=[("email", "", EMAIL)])
    uuid_owner = seed(db, identifiers=[("uuid", "", "u-1")])
    answer = await ok(ucd, {"identifiers": {"email": "  ADA@Example.com "}, "attributes": []})
    assert answer["attributes"] == {"iid": ada}
    # uuid outranks email (§4.2): the uuid owner answers.
    answer = await ok(ucd, {"identifiers": {"email": EMAIL, "uuid": "u-1"}, "attributes": []})
    assert answer["attributes"] == {"iid": uuid_owner}


async def test_other_partner_does_not_see_the_user(
    db: Path, ucd: httpx.AsyncClient, other_ucd: httpx.AsyncClient
) -> None:
    iid = seed(db, identifiers=[("email", "", EMAIL)])
    for body in (by_email(attributes=["email"]), {"insider_id": iid, "attributes": ["email"]}):
        assert (await profile(other_ucd, body)).status_code == 404
    assert (await profile(ucd, {"insider_id": iid, "attributes": ["email"]})).status_code == 200


# -- attributes -------------------------------------------------------------------------


def _rich_user(db: Path) -> str:
    return seed(
        db,
        identifiers=[
            ("email", "", EMAIL),
            ("phone_number", "", "+905551112233"),
            ("uuid", "", "u-1"),
            ("custom", "crm_id", "c-9"),
        ],
        attributes={
            "name": "Ada",
            "gdpr_optin": False,
            "lo": "tr_TR",
            "static_segment_id": [1, 2],
            "age": 36,
        },
        custom={"tier": "gold", "score": 1.0},
    )


async def test_read_names_resolve_to_canonical_keys(db: Path, ucd: httpx.AsyncClient) -> None:
    iid = _rich_user(db)
    body = by_email(
        attributes=[
            "gdpr_optin",
            "locale",
            "list_id",
            "em",
            "pn",
            "c_tier",
            "c_crm_id",
            "uuid",
            "gdpr",
            "iid",
        ]
    )
    assert (await ok(ucd, body))["attributes"] == {
        "iid": iid,
        "gdpr": False,
        "lo": "tr_TR",
        "static_segment_id": [1, 2],
        "email": EMAIL,
        "phone_number": "+905551112233",
        "c_tier": "gold",
        "c_crm_id": "c-9",
        "uuid": "u-1",
    }


async def test_unknown_and_missing_names_are_omitted(db: Path, ucd: httpx.AsyncClient) -> None:
    iid = _rich_user(db)
    body = by_email(attributes=["surname", "c_nope", "favourite", "gdpr_opt", "name"])
    assert (await ok(ucd, body))["attributes"] == {"iid": iid, "name": "Ada"}


async def test_numbers_come_back_as_stored(db: Path, ucd: httpx.AsyncClient) -> None:
    _rich_user(db)
    response = await profile(ucd, by_email(attributes=["c_score", "age"]))
    assert b'"c_score":1.0' in response.content
    assert b'"age":36' in response.content


@pytest.mark.parametrize(
    "attributes", ["*", ["*"], ["name", "*"]], ids=["star", "star-list", "star-with-names"]
)
async def test_star_returns_every_attribute(
    db: Path, ucd: httpx.AsyncClient, attributes: Any
) -> None:
    iid = _rich_user(db)
    answer = await ok(ucd, by_email(attributes=attributes))
    assert answer["attributes"] == {
        "iid": iid,
        "email": EMAIL,
        "phone_number": "+905551112233",
        "uuid": "u-1",
        "name": "Ada",
        "age": 36,
        "lo": "tr_TR",
        "gdpr": False,
        "static_segment_id": [1, 2],
        "c_crm_id": "c-9",
        "c_score": 1.0,
        "c_tier": "gold",
    }
    # Defaults in §4.7.1 order, then custom names sorted.
    assert list(answer["attributes"])[1:5] == ["email", "phone_number", "uuid", "name"]
    assert list(answer["attributes"])[-3:] == ["c_crm_id", "c_score", "c_tier"]


async def test_events_only_request_still_has_iid(db: Path, ucd: httpx.AsyncClient) -> None:
    iid = _rich_user(db)
    answer = await ok(ucd, by_email(events={**WINDOW, "wanted": []}))
    assert answer == {"attributes": {"iid": iid}, "events": {}}


# -- events -----------------------------------------------------------------------------


def _ev(
    name: str, ts: str, source: str = "api", **params: Any
) -> tuple[str, str, str, dict[str, Any], dict[str, Any]]:
    custom = {k[2:]: v for k, v in params.items() if k.startswith("c_")}
    default = {k: v for k, v in params.items() if not k.startswith("c_")}
    return (name, ts, source, default, custom)


async def test_window_is_inclusive_on_floor_seconds(db: Path, ucd: httpx.AsyncClient) -> None:
    start, end = 1735689600, 1735689700  # 2025-01-01T00:00:00Z .. +100 s
    seed(
        db,
        identifiers=[("email", "", EMAIL)],
        events=[
            _ev("view", "2024-12-31T23:59:59.999999Z", n=1),  # floor = start - 1: out
            _ev("view", "2025-01-01T00:00:00Z", n=2),  # = start: in
            _ev("view", "2025-01-01T00:01:40.999999Z", n=3),  # floor = end: in
            _ev("view", "2025-01-01T00:01:41Z", n=4),  # end + 1: out
        ],
    )
    answer = await ok(
        ucd,
        by_email(
            events={
                "start_date": start,
                "end_date": end,
                "wanted": [{"event_name": "view", "params": ["n"]}],
            }
        ),
    )
    assert answer["events"] == {
        "view": [
            {"created_date": "2025-01-01T00:01:40.999999Z", "source": "api", "n": 3},
            {"created_date": "2025-01-01T00:00:00Z", "source": "api", "n": 2},
        ]
    }


async def test_single_second_window_and_huge_bounds(db: Path, ucd: httpx.AsyncClient) -> None:
    seed(db, identifiers=[("email", "", EMAIL)], events=[_ev("view", "2025-01-01T00:00:00.5Z")])
    one = {
        "start_date": 1735689600,
        "end_date": 1735689600,
        "wanted": [{"event_name": "view", "params": []}],
    }
    assert len((await ok(ucd, by_email(events=one)))["events"]["view"]) == 1
    huge = {
        "start_date": -(10**30),
        "end_date": 10**30,
        "wanted": [{"event_name": "view", "params": []}],
    }
    assert len((await ok(ucd, by_email(events=huge)))["events"]["view"]) == 1


async def test_newest_first_then_most_recently_stored(db: Path, ucd: httpx.AsyncClient) -> None:
    seed(
        db,
        identifiers=[("email", "", EMAIL)],
        events=[
            _ev("view", "2025-01-02T00:00:00Z", n="tie-stored-first"),
            _ev("view", "2025-01-03T00:00:00Z", n="newest"),
            _ev("view", "2025-01-02T00:00:00Z", n="tie-stored-last"),
            _ev("view", "2025-01-01T00:00:00Z", n="oldest"),
            _ev("click", "2025-01-04T00:00:00Z", n="other name"),
        ],
    )
    answer = await ok(
        ucd, by_email(events={**WINDOW, "wanted": [{"event_name": "view", "params": ["n"]}]})
    )
    assert [e["n"] for e in answer["events"]["view"]] == [
        "newest",
        "tie-stored-last",
        "tie-stored-first",
        "oldest",
    ]


async def test_params_rendering(db: Path, ucd: httpx.AsyncClient) -> None:
    seed(
        db,
        identifiers=[("email", "", EMAIL)],
        events=[
            _ev(
                "purchase",
                "2025-01-10T21:35:20Z",
                "web",
                product_id="P1",
                taxonomy=["a", "b"],
                c_gift_wrap=False,
                c_note=None,
            )
        ],
    )
    params = [
        "timestamp",
        "created_date",
        "source",
        "event_name",
        "c_gift_wrap",
        "product_id",
        "taxonomy",
        "c_note",
        "missing",
        "c_missing",
        "gift_wrap",
    ]
    answer = await ok(
        ucd, by_email(events={**WINDOW, "wanted": [{"event_name": "purchase", "params": params}]})
    )
    assert answer["events"]["purchase"] == [
        {
            "created_date": "2025-01-10T21:35:20Z",
            "source": "web",
            "c_gift_wrap": False,
            "product_id": "P1",
            "taxonomy": ["a", "b"],
            "c_note": None,
        }
    ]


async def test_repeated_wanted_name_uses_the_first_item(db: Path, ucd: httpx.AsyncClient) -> None:
    seed(
        db,
        identifiers=[("email", "", EMAIL)],
        events=[_ev("view", "2025-01-02T00:00:00Z", a=1, b=2)],
    )
    wanted = [
        {"event_name": "view", "params": ["a"]},
        {"event_name": "click", "params": []},
        {
            "event_name": "view",
            "params": ["b"],
            "filters": [{"key": "b", "operator": "eq", "values": [99]}],
        },
    ]
    answer = await ok(ucd, by_email(events={**WINDOW, "wanted": wanted}, quota=True))
    assert answer["events"] == {
        "view": [{"created_date": "2025-01-02T00:00:00Z", "source": "api", "a": 1}],
        "click": [],
    }
    assert answer["quota"]["cost"] == 3


async def test_filters(db: Path, ucd: httpx.AsyncClient) -> None:
    seed(
        db,
        identifiers=[("email", "", EMAIL)],
        events=[
            _ev(
                "purchase",
                "2025-01-01T00:00:01Z",
                "web",
                n=1,
                currency="TRY",
                quantity=1,
                taxonomy=["shoes", "men"],
                c_gift=True,
            ),
            _ev(
                "purchase",
                "2025-01-01T00:00:02Z",
                "api",
                n=2,
                currency="EUR",
                quantity=2,
                taxonomy=["bags"],
                c_gift=1,
            ),
            _ev("purchase", "2025-01-01T00:00:03Z", "app", n=3, currency="TRY", quantity=1.0),
        ],
    )

    async def numbers(*filters: dict[str, Any]) -> list[int]:
        item = {"event_name": "purchase", "params": ["n"], "filters": list(filters)}
        answer = await ok(ucd, by_email(events={**WINDOW, "wanted": [item]}))
        return [e["n"] for e in answer["events"]["purchase"]]

    def eq(key: str, *values: Any) -> dict[str, Any]:
        return {"key": key, "operator": "eq", "values": list(values)}

    assert await numbers(eq("currency", "TRY")) == [3, 1]
    assert await numbers(eq("currency", "TRY", "EUR")) == [3, 2, 1]
    assert await numbers(eq("quantity", 1)) == [3, 1]  # 1 equals 1.0 (§2.4)
    assert await numbers(eq("taxonomy", "men")) == [1]  # any element of an array parameter
    assert await numbers(eq("taxonomy", "men", "bags")) == [2, 1]
    assert await numbers(eq("c_gift", True)) == [1]  # true is not 1
    assert await numbers(eq("c_gift", 1)) == [2]
    assert await numbers(eq("source", "web", "app")) == [3, 1]
    assert await numbers(eq("currency", "TRY"), eq("quantity", 1), eq("c_gift", True)) == [
        1
    ]  # ANDed
    assert await numbers(eq("nope", "TRY")) == []  # a missing parameter never passes


async def test_limit_per_source_applies_after_ordering(db: Path, ucd: httpx.AsyncClient) -> None:
    seed(
        db,
        identifiers=[("email", "", EMAIL)],
        events=[
            _ev("view", "2025-01-01T00:00:01Z", "web", n=1),
            _ev("view", "2025-01-01T00:00:02Z", "api", n=2),
            _ev("view", "2025-01-01T00:00:03Z", "web", n=3),
            _ev("view", "2025-01-01T00:00:04Z", "web", n=4, k="x"),
            _ev("view", "2025-01-01T00:00:05Z", "api", n=5),
            _ev("view", "2025-01-01T00:00:06Z", "web", n=6, k="x"),
        ],
    )
    item: dict[str, Any] = {"event_name": "view", "params": ["n"], "limit_per_source": 2}
    answer = await ok(ucd, by_email(events={**WINDOW, "wanted": [item]}))
    assert [e["n"] for e in answer["events"]["view"]] == [6, 5, 4, 2]
    # Filters first, then the limit counts only passing events.
    item["filters"] = [{"key": "k", "operator": "eq", "values": ["x"]}]
    item["limit_per_source"] = 1
    answer = await ok(ucd, by_email(events={**WINDOW, "wanted": [item]}))
    assert [e["n"] for e in answer["events"]["view"]] == [6]


# -- quota ------------------------------------------------------------------------------


async def test_quota_reports_cost_and_usage(db: Path, ucd: httpx.AsyncClient) -> None:
    seed(db, identifiers=[("email", "", EMAIL)])
    first = await ok(ucd, by_email(attributes=["name"], quota=True))
    assert first["quota"] == {"cost": 1, "used": 1, "total": 1000}
    # Not asked: no quota object, but the call still counts (3 units).
    plain = await ok(
        ucd,
        by_email(
            events={**WINDOW, "wanted": [ITEM, {"event_name": "x", "params": []}]}, quota=False
        ),
    )
    assert "quota" not in plain
    # A 400 is refused before the rate stage and costs nothing; a 404 is admitted and counts.
    assert (await profile(ucd, by_email(attributes=5))).status_code == 400
    assert (
        await profile(ucd, {"identifiers": {"email": "bob@example.com"}, "attributes": []})
    ).status_code == 404
    last = await ok(ucd, by_email(events={**WINDOW, "wanted": [ITEM, ITEM]}, quota=True))
    assert last["quota"] == {"cost": 2, "used": 1 + 3 + 1 + 2, "total": 1000}


async def test_strict_quota_charges_one_plus_distinct_names(
    ucd_config: LocalUcdConfig, db: Path
) -> None:
    """Strict mode (§2.6): a call costing exactly 1000 units fits; the next one is refused."""
    seed(db, identifiers=[("email", "", EMAIL)])
    app = create_local_ucd_app(dataclasses.replace(ucd_config, strict_rate_limits=True))
    async with LifespanManager(app) as manager, make_client(manager.app) as client:
        wanted = [{"event_name": f"e{i}", "params": []} for i in range(999)]
        wanted.append({"event_name": "e0", "params": ["repeat"]})  # repeats cost nothing
        answer = await ok(client, by_email(events={**WINDOW, "wanted": wanted}, quota=True))
        assert answer["quota"] == {"cost": 1000, "used": 1000, "total": 1000}
        assert len(answer["events"]) == 999
        refused = await profile(client, by_email(attributes=[]))
        assert refused.status_code == 429
        assert refused.json() == {"error": "rejected: too many requests"}
        assert int(refused.headers["Retry-After"]) >= 1
        # Validation runs before the rate stage: a bad request still gets its 400.
        assert (await profile(client, by_email(attributes=1))).status_code == 400
