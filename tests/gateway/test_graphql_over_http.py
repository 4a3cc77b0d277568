"""GraphQL over HTTP: the ``application/graphql-response+json`` answers and their status
codes, the legacy ``application/json`` ones, and batches (a JSON array of operations)
sharing one context, so their reads coalesce and their budget is one
(gateway/graphql_over_http.py, gateway/request_bodies.py, gateway/api/budget.py)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from gateway.graphql_over_http import (
    ACCEPT_CACHE_SIZE,
    GRAPHQL_RESPONSE_MEDIA_TYPE,
    prefers_graphql_response,
)
from tests.gateway.conftest import CallLog, GatewayHttp, app_gateway

UPSERT = """
mutation($users: [UserUpsertInput!]!) {
  upsertUsers(input: {users: $users}) { failureCount }
}
"""
ONE = "query($key: UserKey!) { user(key: $key) { uuid name } }"
MANY = "query($keys: [UserKey!]!) { users(keys: $keys) { uuid name } }"
ASKS_FOR_IT = {"Accept": f"{GRAPHQL_RESPONSE_MEDIA_TYPE}, application/json;q=0.9"}
USERS = [f"u-{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("accept", "prefers"),
    [
        pytest.param(GRAPHQL_RESPONSE_MEDIA_TYPE, True, id="alone"),
        pytest.param(
            f"{GRAPHQL_RESPONSE_MEDIA_TYPE};q=0.5, application/json;q=0.5", True, id="tie"
        ),
        pytest.param("APPLICATION/GRAPHQL-RESPONSE+JSON ; q=1", True, id="case"),
        pytest.param(f"application/json, {GRAPHQL_RESPONSE_MEDIA_TYPE};q=0.8", False, id="lower"),
        pytest.param(f"{GRAPHQL_RESPONSE_MEDIA_TYPE};q=0", False, id="refused"),
        pytest.param(f"{GRAPHQL_RESPONSE_MEDIA_TYPE};q=x", False, id="bad-weight"),
        pytest.param("application/*", False, id="wildcard"),
        pytest.param("", False, id="empty"),
    ],
)
def test_accept_negotiation(accept: str, prefers: bool) -> None:
    assert prefers_graphql_response(accept) is prefers


def _fails(request: httpx.Request) -> httpx.Response:
    return httpx.Response(500, json={"error": "boom"})


#: (request body, settings, the status in each mode, the code of its one error or None).
ANSWERS = [
    pytest.param({"query": "{ user("}, {}, 400, "GRAPHQL_PARSE_FAILED", id="parse"),
    pytest.param({"query": "{ nope }"}, {}, 400, "GRAPHQL_VALIDATION_FAILED", id="validation"),
    pytest.param(
        {"query": ONE, "variables": {"key": {"uuid": 1}}}, {}, 400, "BAD_USER_INPUT", id="variables"
    ),
    pytest.param(
        {"query": MANY, "variables": {"keys": [{"uuid": u} for u in USERS]}},
        {"max_ucd_calls_per_operation": 2},
        400,
        "MAX_COST_EXCEEDED",
        id="cost",
    ),
    pytest.param(
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}},
        {},
        400,
        "PERSISTED_QUERY_NOT_FOUND",
        id="persisted-not-found",
    ),
    pytest.param({"query": "{ __typename }"}, {}, 200, None, id="ok"),
    pytest.param(
        {"query": ONE, "variables": {"key": {"uuid": "u-1"}}},
        {"handler": _fails},
        200,
        "UPSTREAM_ERROR",
        id="field-error",
    ),
]


@pytest.mark.parametrize(("body", "settings", "status", "code"), ANSWERS)
async def test_graphql_response_json_answers_request_errors_with_400_and_no_data(
    body: dict[str, Any], settings: dict[str, Any], status: int, code: str | None
) -> None:
    overrides = dict(settings)
    handler = overrides.pop("handler", None)
    async with app_gateway(handler, **overrides) as (client, _):
        response = await client.post("/graphql", json=body, headers=ASKS_FOR_IT)
    assert response.status_code == status
    assert response.headers["content-type"] == GRAPHQL_RESPONSE_MEDIA_TYPE
    answer = orjson.loads(response.content)
    # The spec: a request error has no data entry; an executed operation has one.
    assert ("data" in answer) is (status == 200)
    assert [e["extensions"]["code"] for e in answer.get("errors", ())] == ([code] if code else [])


@pytest.mark.parametrize(
    "accept",
    [
        pytest.param("application/json", id="json"),
        pytest.param("*/*", id="any"),
        pytest.param(None, id="none"),
        pytest.param(f"application/json, {GRAPHQL_RESPONSE_MEDIA_TYPE};q=0.5", id="json-first"),
    ],
)
@pytest.mark.parametrize(("body", "settings", "status", "code"), ANSWERS)
async def test_application_json_answers_200_with_data_as_before(
    accept: str | None,
    body: dict[str, Any],
    settings: dict[str, Any],
    status: int,
    code: str | None,
) -> None:
    overrides = dict(settings)
    handler = overrides.pop("handler", None)
    headers = {"Accept": accept} if accept is not None else {}
    async with app_gateway(handler, **overrides) as (client, _):
        response = await client.post("/graphql", json=body, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer = orjson.loads(response.content)
    assert "data" in answer
    assert [e["extensions"]["code"] for e in answer.get("errors", ())] == ([code] if code else [])


async def test_refusals_of_the_http_request_keep_their_status_in_both_modes() -> None:
    async with app_gateway() as (client, _):
        response = await client.post(
            "/graphql", content=b"[1", headers={**ASKS_FOR_IT, "Content-Type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


# --- batches ------------------------------------------------------------------------------


async def _write_users(gw: GatewayHttp) -> None:
    users = [{"key": {"uuid": u}, "attributes": {"name": u.upper()}} for u in USERS]
    data = await gw.ok(UPSERT, {"users": users})
    assert data["upsertUsers"]["failureCount"] == 0


async def _batch(gw: GatewayHttp, operations: list[dict[str, Any]], **headers: str) -> Any:
    response = await gw.client.post("/graphql", json=operations, headers=headers)
    assert response.status_code == 200, response.text
    return orjson.loads(response.content)


async def test_a_batch_of_five_user_reads_costs_what_one_users_read_costs(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    await _write_users(gateway_http)
    ucd_calls.clear()
    many = await gateway_http.ok(MANY, {"keys": [{"uuid": u} for u in USERS]})
    users_calls = len(ucd_calls.profiles)
    ucd_calls.clear()
    batch = await _batch(
        gateway_http, [{"query": ONE, "variables": {"key": {"uuid": u}}} for u in USERS]
    )
    assert [answer["data"]["user"] for answer in batch] == many["users"]
    assert len(ucd_calls.profiles) == users_calls == 5


async def test_the_operations_of_a_batch_share_one_loader(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    """Two operations reading one user, each other attributes: one profile call asking
    for both (separate loaders would make two, neither covering the other)."""
    await _write_users(gateway_http)
    ucd_calls.clear()
    batch = await _batch(
        gateway_http,
        [
            {"query": '{ user(key: {uuid: "u-1"}) { name } }'},
            {"query": '{ user(key: {uuid: "u-1"}) { city } }'},
            {"query": '{ user(key: {uuid: "u-1"}) { age } }'},
        ],
    )
    assert [answer["data"]["user"] for answer in batch] == [
        {"name": "U-1"},
        {"city": None},
        {"age": None},
    ]
    (call,) = ucd_calls.profiles
    assert {"name", "city", "age"} <= set(call.body["attributes"])


async def test_the_budget_of_a_batch_is_the_sum_of_its_operations(
    ucd_calls: CallLog, ucd_http: httpx.AsyncClient, gateway_http: GatewayHttp
) -> None:
    await _write_users(gateway_http)
    ucd_calls.clear()
    limit = gateway_http.runtime.settings.max_ucd_calls_per_operation
    keys = [{"uuid": f"k-{i}"} for i in range(limit - 1)]
    batch = await _batch(
        gateway_http,
        [
            {"query": MANY, "variables": {"keys": keys}},
            {"query": MANY, "variables": {"keys": [{"uuid": "u-1"}, {"uuid": "u-2"}]}},
            {"query": ONE, "variables": {"key": {"uuid": "u-3"}}},
        ],
    )
    assert batch[0]["extensions"]["cost"]["ucdCalls"]["planned"] == limit - 1
    (refused,) = batch[1]["errors"]
    assert refused["extensions"] == {"code": "MAX_COST_EXCEEDED"}
    assert f"the limit is {limit} for the whole batch" in refused["message"]
    assert f"other operations planned {limit - 1}" in refused["message"]
    assert batch[2]["data"] == {"user": {"uuid": "u-3", "name": "U-3"}}
    assert len(ucd_calls.profiles) == limit


async def test_a_batch_answers_each_operation_in_its_order(gateway_http: GatewayHttp) -> None:
    """Each entry tells its own outcome: an error in one does not fail the others, a
    persisted document may be named in one, and the batch is 200 in either mode."""
    batch = await _batch(
        gateway_http,
        [
            {"query": "{ nope }"},
            {"query": "{ __typename }"},
            {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}},
        ],
        **ASKS_FOR_IT,
    )
    assert [e["extensions"]["code"] for e in batch[0]["errors"]] == ["GRAPHQL_VALIDATION_FAILED"]
    assert "data" not in batch[0]
    assert batch[1]["data"] == {"__typename": "Query"}
    assert batch[2]["errors"][0]["message"] == "PersistedQueryNotFound"


async def test_a_batch_over_its_limit_is_refused_before_any_operation_runs() -> None:
    calls: list[httpx.Request] = []

    def ucd(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    async with app_gateway(ucd, max_batch=2) as (client, _):
        response = await client.post(
            "/graphql", json=[{"query": ONE, "variables": {"key": {"uuid": "u"}}}] * 3
        )
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_REQUEST"}
    assert error["message"] == (
        "The batch has 3 operations; at most 2 are allowed (UCD_GATEWAY_MAX_BATCH)."
    )
    assert calls == []


def test_the_accept_negotiations_kept_are_bounded() -> None:
    """Callers choose the header: however many they send, a bounded number is kept."""
    for n in range(ACCEPT_CACHE_SIZE * 3):
        assert prefers_graphql_response(f"application/json, text/x-{n}") is False
    assert prefers_graphql_response.cache_info().currsize <= ACCEPT_CACHE_SIZE
