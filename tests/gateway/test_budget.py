"""The operation budget (gateway/api/budget.py): planned UCD calls, refusals over
UCD_GATEWAY_MAX_UCD_CALLS_PER_OPERATION, and ``extensions.cost`` over HTTP, with the
calls that really reached the UCD counted on the wire (``ucd_calls``)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from graphql import GraphQLObjectType

from gateway.api import budget
from gateway.api.budget import MUTATION_COSTS
from gateway.api.schema import build_schema
from gateway.api.strawberry_internals import graphql_core_schema
from gateway.settings import Settings
from tests.gateway.conftest import (
    GATEWAY_BASE,
    CallLog,
    GatewayHttp,
    HookRelay,
    UcdWire,
    serve_gateway,
)

LIMIT_MESSAGE = (
    "this operation would make {} UCD calls; the limit is 100 "
    "(UCD_GATEWAY_MAX_UCD_CALLS_PER_OPERATION)"
)


def cost(planned: int, actual: int) -> dict[str, Any]:
    return {"cost": {"ucdCalls": {"planned": planned, "actual": actual}}}


def keys(prefix: str, count: int) -> list[dict[str, str]]:
    """``count`` distinct keys (users the UCD does not know: each still costs a call)."""
    return [{"uuid": f"{prefix}-{i}"} for i in range(count)]


def literal(keys: list[dict[str, str]]) -> str:
    return "[" + ", ".join(f'{{uuid: "{k["uuid"]}"}}' for k in keys) + "]"


async def refused(gateway: GatewayHttp, calls: CallLog, query: str, **variables: Any) -> int:
    """Posts ``query``; insists on one MAX_COST_EXCEEDED error and no UCD call. The plan."""
    body = await gateway.post(query, variables)
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "MAX_COST_EXCEEDED"}
    assert body["data"] is None
    planned: int = body["extensions"]["cost"]["ucdCalls"]["planned"]
    assert error["message"] == LIMIT_MESSAGE.format(planned)
    assert body["extensions"] == cost(planned, 0)
    assert calls.calls == []
    return planned


async def ran(gateway: GatewayHttp, query: str, **variables: Any) -> dict[str, Any]:
    """Posts ``query``; insists on no error. The ``extensions.cost.ucdCalls``."""
    body = await gateway.post(query, variables)
    assert "errors" not in body, body
    calls: dict[str, Any] = body["extensions"]["cost"]["ucdCalls"]
    return calls


# --- refusals ------------------------------------------------------------------------------


async def test_fifty_aliases_of_a_hundred_keys_are_refused_before_any_ucd_call(
    ucd_http: httpx.AsyncClient, hooks: HookRelay, ucd_calls: CallLog
) -> None:
    """The issue's request: 5,000 profile calls from one operation, each field within
    UCD_GATEWAY_MAX_USER_KEYS (the tokens are raised so the document itself passes)."""
    query = (
        "{ "
        + " ".join(
            f"a{i}: users(keys: {literal(keys(f'a{i}', 100))}) {{ name }}" for i in range(50)
        )
        + " }"
    )
    settings = Settings(_env_file=None, public_url=GATEWAY_BASE, max_tokens=100_000)  # type: ignore[call-arg]
    async with serve_gateway(settings, ucd_http, hooks) as gateway:
        assert await refused(gateway, ucd_calls, query) == 5000


FIFTY_VARIABLES = (
    "query("
    + ", ".join(f"$k{i}: [UserKey!]!" for i in range(50))
    + ") { "
    + " ".join(f"a{i}: users(keys: $k{i}) {{ name }}" for i in range(50))
    + " }"
)


async def test_the_same_keys_given_as_variables_are_refused(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    variables = {f"k{i}": keys(f"k{i}", 100) for i in range(50)}
    assert await refused(gateway_http, ucd_calls, FIFTY_VARIABLES, **variables) == 5000


async def test_fields_inside_fragments_are_counted(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    """Named and inline fragments, nested, spread more than once: each field once."""
    query = """
    query($a: [UserKey!]!, $b: [UserKey!]!) { ...A ...A ... on Query { ...B } }
    fragment A on Query { a: users(keys: $a) { name } ...B ...B }
    fragment B on Query { b: users(keys: $b) { ...U } }
    fragment U on User { name }
    """
    planned = await refused(gateway_http, ucd_calls, query, a=keys("a", 60), b=keys("b", 60))
    assert planned == 120


async def test_one_call_over_the_limit_is_refused(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    query = (
        'query($k: [UserKey!]!) { users(keys: $k) { name } one: user(key: {uuid: "x"}) { name } }'
    )
    assert await refused(gateway_http, ucd_calls, query, k=keys("k", 100)) == 101


# --- what is counted ----------------------------------------------------------------------


async def test_an_operation_at_exactly_the_limit_runs(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    query = "query($k: [UserKey!]!) { users(keys: $k) { name } }"
    assert await ran(gateway_http, query, k=keys("k", 100)) == {"planned": 100, "actual": 100}
    assert len(ucd_calls.profiles) == 100


async def test_repeated_keys_are_one_call_each_across_fields(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    """The loader reads each distinct user once per operation, and so does the plan;
    an email is compared as the UCD compares it (normalised)."""
    query = """
    query($k: [UserKey!]!) {
      users(keys: $k) { name }
      again: users(keys: $k) { email }
      one: user(key: {email: "Ada@Example.com"}) { name }
    }
    """
    k = [{"email": "ada@example.com"}, {"uuid": "u-1"}, {"email": "ada@example.com"}]
    assert await ran(gateway_http, query, k=k) == {"planned": 2, "actual": 2}
    assert len(ucd_calls.profiles) == 2


@pytest.mark.parametrize(
    ("skip", "planned"), [pytest.param(True, 60, id="skipped"), pytest.param(False, 120, id="run")]
)
async def test_skipped_fields_are_not_counted(
    gateway_http: GatewayHttp, ucd_calls: CallLog, skip: bool, planned: int
) -> None:
    query = """
    query($a: [UserKey!]!, $b: [UserKey!]!, $skip: Boolean!) {
      a: users(keys: $a) { name }
      b: users(keys: $b) @skip(if: $skip) { name }
      c: users(keys: $b) @include(if: false) { name }
    }
    """
    variables = {"a": keys("a", 60), "b": keys("b", 60), "skip": skip}
    if skip:
        assert await ran(gateway_http, query, **variables) == {"planned": 60, "actual": 60}
    else:
        assert await refused(gateway_http, ucd_calls, query, **variables) == planned


async def test_a_field_its_resolver_refuses_costs_nothing(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    """More keys than UCD_GATEWAY_MAX_USER_KEYS, or a bad key: BAD_USER_INPUT, no call."""
    query = (
        'query($k: [UserKey!]!) { users(keys: $k) { name } bad: user(key: {email: "no"}) { name } }'
    )
    body = await gateway_http.post(query, {"k": keys("k", 101)})
    assert {e["extensions"]["code"] for e in body["errors"]} == {"BAD_USER_INPUT"}
    assert body["extensions"] == cost(0, 0)
    assert ucd_calls.calls == []


async def test_one_user_costs_one_call(gateway_http: GatewayHttp) -> None:
    query = '{ user(key: {uuid: "u-1"}) { name } }'
    assert await ran(gateway_http, query) == {"planned": 1, "actual": 1}


async def test_a_fault_in_the_planner_fails_closed_and_keeps_its_text_out(
    gateway_http: GatewayHttp,
    ucd_calls: CallLog,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A planner bug must neither let an operation of unknown cost run nor show the
    exception's text (which may echo the caller's input) to the caller or the log."""

    email = "ada@example.com"

    def broken(*_: object) -> int:
        raise ValueError(email)  # the frames are logged; their source line names no value

    monkeypatch.setattr(budget, "planned_calls", broken)
    body = await gateway_http.post(
        # identifiers: a selection the compiled path leaves to graphql-core and its budget.
        "query($e: String!) { user(key: {email: $e}) { identifiers { value } } }",
        {"e": email},
    )
    (error,) = body["errors"]
    assert error["message"] == "Internal server error"
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["errorId"] in caplog.text
    assert email not in caplog.text
    assert body["data"] is None
    assert ucd_calls.calls == []


async def test_an_upsert_of_2500_users_plans_three_calls(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    query = "mutation($input: UpsertUsersInput!) { upsertUsers(input: $input) { successCount } }"
    users = [{"key": {"uuid": f"u-{i}"}, "attributes": {"name": "U"}} for i in range(2500)]
    body = await gateway_http.post(query, {"input": {"users": users}})
    assert body["data"] == {"upsertUsers": {"successCount": 2500}}
    assert body["extensions"] == cost(3, 3)
    assert len(ucd_calls.upserts) == 3


MUTATIONS = [
    pytest.param(
        'mutation { deletePii(key: {email: "ada@example.com"}) { ok user { name } } }',
        3,
        id="deletePii-looks-up-and-reads-back",
    ),
    pytest.param(
        'mutation { deletePii(key: {uuid: "u-1"}) { ok user { name } } }', 2, id="deletePii"
    ),
    pytest.param('mutation { deletePii(key: {uuid: "u-1"}) { ok } }', 1, id="deletePii-no-user"),
    pytest.param(
        'mutation { updateIdentifier(old: {uuid: "u-1"}, new: {uuid: "u-2"}) '
        "{ ok ...P } } fragment P on UpdateIdentifierPayload { user { name } }",
        2,
        id="updateIdentifier",
    ),
    pytest.param(
        'mutation { deleteIdentifier(identifier: {email: "ada@example.com"}) '
        "{ ok user { name } } }",
        3,
        id="deleteIdentifier",
    ),
    pytest.param(
        'mutation { a: deleteAttributes(users: [{key: {uuid: "u-1"}, names: ["city"]}]) '
        '{ successCount } b: deleteUser(key: {uuid: "u-1"}) { ok } }',
        2,
        id="two-mutations",
    ),
]


@pytest.mark.parametrize(("mutation", "calls"), MUTATIONS)
async def test_mutations_make_the_calls_they_plan(
    gateway_http: GatewayHttp, ucd_calls: CallLog, mutation: str, calls: int
) -> None:
    await gateway_http.ok(
        'mutation { upsertUsers(input: {users: [{key: {email: "ada@example.com", uuid: "u-1"}, '
        'attributes: {name: "Ada", city: "Paris"}}]}) { successCount } }'
    )
    ucd_calls.clear()
    assert await ran(gateway_http, mutation) == {"planned": calls, "actual": calls}
    assert len(ucd_calls.calls) == calls


def test_every_mutation_has_a_planned_cost() -> None:
    """A new mutation must say what it costs the UCD."""
    mutation = graphql_core_schema(build_schema()).mutation_type
    assert isinstance(mutation, GraphQLObjectType)
    assert sorted(MUTATION_COSTS) == sorted(mutation.fields)


# --- extensions.cost ------------------------------------------------------------------------


async def test_a_refused_document_has_no_cost(gateway_http: GatewayHttp) -> None:
    """Parse and validation refusals never reach execution: nothing to report."""
    body = await gateway_http.post("{ nope }")
    assert "extensions" not in body


async def test_a_read_joining_another_requests_call_costs_nothing(
    gateway_http: GatewayHttp, ucd_transport: UcdWire, ucd_calls: CallLog
) -> None:
    """In-flight sharing: both requests plan one call, one call goes out, and only the
    request that sent it counts it."""
    ucd_transport.delay = 0.2
    query = '{ user(key: {uuid: "u-1"}) { name } }'
    first, second = await asyncio.gather(gateway_http.post(query), gateway_http.post(query))
    actual = sorted(b["extensions"]["cost"]["ucdCalls"]["actual"] for b in (first, second))
    assert actual == [0, 1]
    assert len(ucd_calls.profiles) == 1
