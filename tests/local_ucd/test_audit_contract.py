"""Contract audit (reviewer R1): rules checked over HTTP that no other test file covered.

* §5.7 each endpoint of §3 draws from its own fault key (PATCH and DELETE of one path,
  E7 and E8 apart);
* §2.6 each endpoint is admitted to its pool (E1+E4 share ``upsert``, E7+E8 ``anonymize``),
  after its 400s and before its 404s, with ``Retry-After`` from the oldest needed entry;
* §4.5 a merged-away ``insider_id`` resolves to the survivor on every endpoint taking one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import FAULT_KEYS, FaultConfig, LocalUcdConfig
from gateway.local_ucd.http import NO_SUCH_USER, TOO_MANY_REQUESTS, UNKNOWN_ERROR
from gateway.local_ucd.ratelimit import POOL_LIMITS
from gateway.local_ucd.services import Services
from tests.local_ucd.conftest import PARTNER, FakeClock, make_client, serve

#: (fault key, method, path) of every endpoint of §3.
ENDPOINTS: list[tuple[str, str, str]] = [
    ("upsert", "POST", "/api/user/v1/upsert"),
    ("profile", "POST", "/api/user/v1/profile"),
    ("export", "POST", "/api/raw/v1/export"),
    ("attribute_delete", "POST", "/api/user/v1/attribute/delete"),
    ("identity_update", "PATCH", "/api/user/v1/identity"),
    ("identity_delete", "DELETE", "/api/user/v1/identity"),
    ("anonymize_contact", "POST", "/api/contact/v1/anonymize"),
    ("anonymize_user", "POST", "/api/user/v1/anonymize"),
    ("delete_user", "POST", "/api/user/v1/delete"),
    ("metadata_columns", "POST", "/api/user/v3/metadata/columns"),
]

EMPTY_PARTNER = {"success": False, "message": "Empty Partner"}


def test_every_fault_key_names_one_endpoint() -> None:
    assert sorted(key for key, _, _ in ENDPOINTS) == sorted(FAULT_KEYS)


@pytest.mark.parametrize("key", FAULT_KEYS)
async def test_each_endpoint_draws_from_its_own_fault_key(
    ucd_config: LocalUcdConfig, key: str
) -> None:
    faults = FaultConfig.from_json({"seed": 1, "endpoints": {key: {"error_500_rate": 1.0}}})
    async with serve(dataclasses.replace(ucd_config, faults=faults), {}) as (_, anonymous):
        for endpoint_key, method, path in ENDPOINTS:
            # Faults come before authentication (§2.7): no headers are needed to see them.
            response = await anonymous.request(method, path, json={})
            if endpoint_key == key:
                assert (response.status_code, response.json()) == (500, UNKNOWN_ERROR), path
            else:
                assert (response.status_code, response.json()) == (400, EMPTY_PARTNER), path
        # The local endpoints are never faulted (§5).
        assert (await anonymous.get("/healthz")).status_code == 200


# -- rate-limit pools over HTTP (§2.6) ---------------------------------------------------

#: (pool, method, path, a body answered 400, a body that passes validation).
POOL_CASES = [
    pytest.param(
        "upsert",
        "POST",
        "/api/user/v1/upsert",
        {"users": None},
        {"users": [{"identifiers": {"email": "ada@example.com"}, "attributes": {"age": 3}}]},
        id="E1-upsert",
    ),
    pytest.param(
        "upsert",
        "POST",
        "/api/user/v1/attribute/delete",
        {"users": None},
        {"users": [{"identifiers": {"email": "nobody@example.com"}, "whole": ["name"]}]},
        id="E4-upsert",
    ),
    pytest.param(
        "identity_update",
        "PATCH",
        "/api/user/v1/identity",
        {},
        {"old_identifier": {"email": "nobody@example.com"}, "new_identifier": {"email": "x@y.co"}},
        id="E5-identity_update",
    ),
    pytest.param(
        "identity_delete",
        "DELETE",
        "/api/user/v1/identity",
        {},
        {"identifiers": {"email": "nobody@example.com"}},
        id="E6-identity_delete",
    ),
    pytest.param(
        "anonymize",
        "POST",
        "/api/contact/v1/anonymize",
        {},
        {"insider_id": "00000000-0000-4000-8000-000000000000"},
        id="E7-anonymize",
    ),
    pytest.param(
        "anonymize",
        "POST",
        "/api/user/v1/anonymize",
        {},
        {"identifiers": {"email": "nobody@example.com"}},
        id="E8-anonymize",
    ),
    pytest.param(
        "delete",
        "POST",
        "/api/user/v1/delete",
        {},
        {"identifiers": {"email": "nobody@example.com"}},
        id="E9-delete",
    ),
]


@pytest.fixture
async def strict_services(ucd_config: LocalUcdConfig) -> AsyncIterator[tuple[Any, Services]]:
    app = create_local_ucd_app(dataclasses.replace(ucd_config, strict_rate_limits=True))
    async with LifespanManager(app) as manager:
        yield manager.app, app.state.services


@pytest.mark.parametrize(("pool", "method", "path", "invalid", "valid"), POOL_CASES)
async def test_each_endpoint_is_admitted_to_its_pool_after_its_400s(
    strict_services: tuple[Any, Services],
    pool: str,
    method: str,
    path: str,
    invalid: dict[str, Any],
    valid: dict[str, Any],
) -> None:
    app, services = strict_services
    clock = FakeClock()
    services.limiter._clock = clock  # move time without waiting
    limit = int(POOL_LIMITS[pool])
    for _ in range(limit - 1):  # the pool's window, one request short of full, at t
        services.limiter.admit(PARTNER, pool)
    clock.advance(12)
    async with make_client(app) as ucd:
        # A 400 is answered before the rate stage and is not counted.
        response = await ucd.request(method, path, json=invalid)
        assert response.status_code == 400, response.text
        # The last free unit: admitted whatever the outcome (200, or 404 for an unknown user).
        response = await ucd.request(method, path, json=valid)
        assert response.status_code in (200, 404), response.text
        assert response.status_code != 404 or response.json() == NO_SUCH_USER
        # Full now: refused until the oldest entry leaves the window (60 - 12 s).
        response = await ucd.request(method, path, json=valid)
        assert response.status_code == 429
        assert response.json() == TOO_MANY_REQUESTS
        assert response.headers["Retry-After"] == "48"
        # A 400 still answers 400 on a full pool: validation comes first (§2.7).
        response = await ucd.request(method, path, json=invalid)
        assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(0, 1, id="E1-then-E4"),
        pytest.param(4, 5, id="E7-then-E8"),
    ],
)
async def test_shared_pools_count_both_endpoints(
    strict_services: tuple[Any, Services], first: int, second: int
) -> None:
    app, services = strict_services
    services.limiter._clock = FakeClock()
    pool, method, path, _, valid = POOL_CASES[first].values
    for _ in range(int(POOL_LIMITS[str(pool)]) - 1):
        services.limiter.admit(PARTNER, str(pool))
    _, other_method, other_path, _, other_valid = POOL_CASES[second].values
    async with make_client(app) as ucd:
        response = await ucd.request(str(method), str(path), json=valid)
        assert response.status_code in (200, 404), response.text
        response = await ucd.request(str(other_method), str(other_path), json=other_valid)
        assert response.status_code == 429, response.text


# -- merged-away insider_id on every endpoint (§4.5 step 4) -----------------------------


async def _merged_pair(ucd: httpx.AsyncClient) -> tuple[str, str]:
    """Two profiles merged by an upsert; returns (survivor id, merged-away id)."""

    async def iid_of(identifiers: dict[str, Any]) -> str:
        response = await ucd.post(
            "/api/user/v1/profile", json={"identifiers": identifiers, "attributes": ["iid"]}
        )
        assert response.status_code == 200, response.text
        value: str = response.json()["attributes"]["iid"]
        return value

    users = [
        {"identifiers": {"uuid": "u-1"}, "attributes": {"name": "Ada", "age": 36}},
        {"identifiers": {"email": "ada@example.com"}, "attributes": {"city": "Izmir"}},
    ]
    response = await ucd.post("/api/user/v1/upsert", json={"users": users})
    assert response.status_code == 200, response.text
    survivor, merged = await iid_of({"uuid": "u-1"}), await iid_of({"email": "ada@example.com"})
    both = {"uuid": "u-1", "email": "ada@example.com"}
    merge = {"users": [{"identifiers": both, "attributes": {"surname": "Lovelace"}}]}
    response = await ucd.post("/api/user/v1/upsert", json=merge)
    assert response.json() == {"data": {"successful": {"count": 1}, "fail": {}}}
    assert await iid_of({"email": "ada@example.com"}) == survivor
    return survivor, merged


async def _profile(ucd: httpx.AsyncClient, insider_id: str) -> httpx.Response:
    return await ucd.post(
        "/api/user/v1/profile", json={"insider_id": insider_id, "attributes": "*"}
    )


async def test_a_merged_away_id_reaches_the_survivor_on_e1_e2_e4(ucd: httpx.AsyncClient) -> None:
    survivor, merged = await _merged_pair(ucd)
    response = await _profile(ucd, merged)
    assert response.status_code == 200
    assert response.json()["attributes"]["iid"] == survivor
    # E1 by the alias writes to the survivor (no new profile, no failure).
    response = await ucd.post(
        "/api/user/v1/upsert",
        json={"users": [{"insider_id": merged, "attributes": {"country": "TR"}}]},
    )
    assert response.json() == {"data": {"successful": {"count": 1}, "fail": {}}}
    # E4 by the alias deletes from the survivor.
    response = await ucd.post(
        "/api/user/v1/attribute/delete",
        json={"users": [{"insider_id": merged, "whole": ["age"]}]},
    )
    assert response.json() == {"data": {"successful": {"count": 1}, "fail": {}}}
    attributes = (await _profile(ucd, survivor)).json()["attributes"]
    assert attributes == {
        "iid": survivor,
        "email": "ada@example.com",
        "uuid": "u-1",
        "name": "Ada",
        "surname": "Lovelace",
        "country": "TR",
        "city": "Izmir",
    }


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/api/contact/v1/anonymize", {}, id="E7"),
        pytest.param(
            "/api/user/v1/anonymize", {"identifiers": {"email": "no@example.com"}}, id="E8"
        ),
    ],
)
async def test_a_merged_away_id_anonymizes_the_survivor(
    ucd: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    survivor, merged = await _merged_pair(ucd)
    response = await ucd.post(path, json={**body, "insider_id": merged})
    assert (response.status_code, response.json()) == (200, {})
    attributes = (await _profile(ucd, survivor)).json()["attributes"]
    assert attributes == {"iid": survivor, "uuid": "u-1"}  # name, surname, city, email gone


async def test_a_merged_away_id_deletes_the_survivor_and_then_neither_id_resolves(
    ucd: httpx.AsyncClient,
) -> None:
    survivor, merged = await _merged_pair(ucd)
    response = await ucd.post("/api/user/v1/delete", json={"insider_id": merged})
    assert (response.status_code, response.json()) == (200, {})
    for insider_id in (survivor, merged):
        response = await _profile(ucd, insider_id)
        assert (response.status_code, response.json()) == (404, NO_SUCH_USER)
        response = await ucd.post(
            "/api/user/v1/upsert",
            json={"users": [{"insider_id": insider_id, "attributes": {"age": 1}}]},
        )
        assert response.json()["data"]["fail"]["errors"] == {
            "users.0.insider_id.exists": ["no such user for this insider_id"]
        }
