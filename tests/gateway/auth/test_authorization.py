"""What each caller may do: every query and mutation with no credential, the wrong scope
and the right one; PII without pii:read is neither answered nor asked of the UCD."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.api.schema import build_schema
from gateway.api.strawberry_internals import graphql_core_schema
from gateway.auth.scopes import FIELD_SCOPES
from gateway.ucd.client import UcdClient
from tests.gateway.auth.conftest import (
    auth_settings,
    authed_gateway,
    body,
    call,
)
from tests.gateway.conftest import CallLog, GatewayHttp, HookRelay, put_users

ADA = {
    "identifiers": {"uuid": "u-1", "email": "ada@example.com", "phone_number": "+905551112233"},
    "attributes": {
        "name": "Ada",
        "surname": "Lovelace",
        "birthday": "1815-12-10T00:00:00Z",
        "city": "London",
        "custom": {"loyalty_card": "LC-4711", "tier": "gold"},
    },
}
#: Every PII value of ADA: none may appear in an answer to a caller without pii:read.
PII_VALUES = ("ada@example.com", "905551112233", "Ada", "Lovelace", "1815", "LC-4711")


@pytest.fixture
async def ada(ucd: UcdClient) -> None:
    await put_users(ucd, ADA)


@dataclass(frozen=True)
class Operation:
    field: str
    query: str
    right: str  # a persona holding the field's scope
    wrong: str  # a persona holding other scopes only


OPERATIONS = [
    Operation("user", '{ user(key: {uuid: "u-1"}) { city } }', "reader", "writer"),
    Operation("users", '{ users(keys: [{uuid: "u-1"}]) { city } }', "reader", "exporter"),
    Operation("exportJob", '{ exportJob(id: "job-x") { id } }', "exporter", "reader"),
    Operation("catalog", "{ catalog { attributes { name } } }", "reader", "writer"),
    Operation(
        "upsertUsers",
        'mutation { upsertUsers(input: {users: [{key: {uuid: "u-2"}, '
        'attributes: {city: "Oslo"}}]}) { successCount } }',
        "writer",
        "reader",
    ),
    Operation(
        "deleteAttributes",
        'mutation { deleteAttributes(users: [{key: {uuid: "u-1"}, names: ["city"]}]) '
        "{ successCount } }",
        "writer",
        "eraser",
    ),
    Operation(
        "updateIdentifier",
        'mutation { updateIdentifier(old: {uuid: "u-1"}, new: {uuid: "u-9"}) { ok } }',
        "identity",
        "writer",
    ),
    Operation(
        "deleteIdentifier",
        'mutation { deleteIdentifier(identifier: {email: "ada@example.com"}) { ok } }',
        "identity",
        "eraser",
    ),
    Operation("deletePii", 'mutation { deletePii(key: {uuid: "u-1"}) { ok } }', "eraser", "writer"),
    Operation(
        "deleteUser", 'mutation { deleteUser(key: {uuid: "u-1"}) { ok } }', "eraser", "identity"
    ),
    Operation(
        "startExport",
        'mutation { startExport(input: {segmentId: "1", attributes: ["city"]}) { status } }',
        "exporter",
        "writer",
    ),
]
CASES = [pytest.param(op, id=op.field) for op in OPERATIONS]


def test_every_root_field_has_a_scope_and_a_case_here() -> None:
    """A new query or mutation cannot go unguarded, or untested here."""
    core = graphql_core_schema(build_schema())
    assert core.query_type is not None
    assert core.mutation_type is not None
    fields = {("Query", name) for name in core.query_type.fields}
    fields |= {("Mutation", name) for name in core.mutation_type.fields}
    assert set(FIELD_SCOPES) == fields
    assert {op.field for op in OPERATIONS} == {name for _, name in fields}


@pytest.mark.usefixtures("ada")
@pytest.mark.parametrize("op", CASES)
async def test_without_a_credential_nothing_runs(
    secured: GatewayHttp, ucd_calls: CallLog, op: Operation
) -> None:
    ucd_calls.clear()
    response = await call(secured, op.query)
    assert response.status_code == 401
    assert body(response)["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert ucd_calls.calls == []


@pytest.mark.usefixtures("ada")
@pytest.mark.parametrize("op", CASES)
async def test_with_the_wrong_scope_the_field_is_forbidden_and_the_ucd_never_called(
    secured: GatewayHttp, ucd_calls: CallLog, op: Operation
) -> None:
    ucd_calls.clear()
    response = await call(secured, op.query, persona=op.wrong)
    assert response.status_code == 200
    answer = body(response)
    (error,) = answer["errors"]
    assert error["extensions"] == {"code": "FORBIDDEN", "scope": FIELD_SCOPES_BY_NAME[op.field]}
    assert error["path"] == [op.field]
    assert error["message"] == f"{op.field} needs the {FIELD_SCOPES_BY_NAME[op.field]} scope"
    # Queries answer null at the field; a refused mutation refuses the operation.
    assert answer["data"] in ({op.field: None}, None)
    assert ucd_calls.calls == []


FIELD_SCOPES_BY_NAME = {name: scope.value for (_, name), scope in FIELD_SCOPES.items()}


@pytest.mark.usefixtures("ada")
@pytest.mark.parametrize("op", CASES)
async def test_with_the_right_scope_the_operation_runs(
    secured: GatewayHttp, ucd_calls: CallLog, op: Operation
) -> None:
    ucd_calls.clear()
    response = await call(secured, op.query, persona=op.right)
    answer = body(response)
    assert "errors" not in answer, answer
    value = answer["data"][op.field]
    if op.field == "exportJob":
        assert value is None  # no such job; the point is that it was looked up
    else:
        assert value not in (None, [None])
        assert ucd_calls.calls != []


async def test_one_refused_mutation_refuses_the_whole_operation(
    secured: GatewayHttp, ucd_calls: CallLog
) -> None:
    """Mutations run in order: were the second checked in its resolver, the first would
    already have written."""
    response = await call(
        secured,
        'mutation { a: upsertUsers(input: {users: [{key: {uuid: "u-3"}}]}) { successCount } '
        'b: deleteUser(key: {uuid: "u-3"}) { ok } }',
        persona="writer",
    )
    answer = body(response)
    assert answer["data"] is None
    assert [e["path"] for e in answer["errors"]] == [["b"]]
    assert ucd_calls.calls == []


async def test_a_payload_user_needs_profile_read(secured: GatewayHttp, ucd_calls: CallLog) -> None:
    response = await call(
        secured,
        'mutation { deletePii(key: {email: "ada@example.com"}) { ok user { city } } }',
        persona="eraser",
    )
    (error,) = body(response)["errors"]
    assert error["message"] == "deletePii { user } needs the profile:read scope"
    assert ucd_calls.calls == []


@pytest.mark.parametrize(
    "export",
    [
        pytest.param('{segmentId: "1"}', id="every-attribute"),
        pytest.param('{segmentId: "1", attributes: ["city", "email"]}', id="email"),
        pytest.param('{segmentId: "1", customAttributes: ["loyalty_card"]}', id="custom-pii"),
    ],
)
async def test_an_export_of_pii_needs_pii_read(
    keys_file: Path,
    ucd_http: httpx.AsyncClient,
    hooks: HookRelay,
    ucd_calls: CallLog,
    export: str,
) -> None:
    settings = auth_settings(keys_file, None, pii_attributes="loyalty_card")
    async with authed_gateway(settings, ucd_http, hooks) as gateway:
        response = await call(
            gateway, f"mutation {{ startExport(input: {export}) {{ id }} }}", persona="exporter"
        )
    (error,) = body(response)["errors"]
    assert error["extensions"] == {"code": "FORBIDDEN", "scope": "pii:read"}
    assert ucd_calls.calls == []


# --- PII ----------------------------------------------------------------------------------

PII_QUERY = """{ user(key: {uuid: "u-1"}) {
  insiderId uuid city email phoneNumber name surname birthday
  tier: attribute(name: "tier", custom: true) { value }
  card: attribute(name: "loyalty_card", custom: true) { value }
  mail: attribute(name: "email") { value }
} }"""


@pytest.fixture
async def pii_gateway(keys_file: Path, ucd_http: httpx.AsyncClient, hooks: HookRelay) -> Any:
    settings = auth_settings(keys_file, None, pii_attributes="loyalty_card, home_address")
    async with authed_gateway(settings, ucd_http, hooks) as gateway:
        yield gateway


@pytest.mark.usefixtures("ada")
async def test_without_pii_read_pii_is_forbidden_and_never_asked_of_the_ucd(
    pii_gateway: GatewayHttp, ucd_calls: CallLog
) -> None:
    ucd_calls.clear()
    response = await call(pii_gateway, PII_QUERY, persona="reader")
    answer = body(response)
    user = answer["data"]["user"]
    assert user["city"] == "London"
    assert user["uuid"] == "u-1"
    assert user["tier"] == {"value": "gold"}
    for field in ("email", "phoneNumber", "name", "surname", "birthday", "card", "mail"):
        assert user[field] is None
    forbidden = {tuple(e["path"]) for e in answer["errors"]}
    assert forbidden == {
        ("user", f) for f in ("email", "phoneNumber", "name", "surname", "birthday", "card", "mail")
    }
    assert {e["extensions"]["code"] for e in answer["errors"]} == {"FORBIDDEN"}
    assert not any(value in response.text for value in PII_VALUES)
    # Data minimization: the one profile call asked for no PII at all.
    (profile,) = ucd_calls.profiles
    assert sorted(profile.body["attributes"]) == ["c_tier", "city", "uuid"]


@pytest.mark.usefixtures("ada")
async def test_with_pii_read_pii_is_answered(pii_gateway: GatewayHttp) -> None:
    response = await call(pii_gateway, PII_QUERY, persona="pii-reader")
    answer = body(response)
    assert "errors" not in answer, answer
    user = answer["data"]["user"]
    assert (user["email"], user["phoneNumber"], user["name"]) == (
        "ada@example.com",
        "+905551112233",
        "Ada",
    )
    assert user["card"] == {"value": "LC-4711"}


@pytest.mark.usefixtures("ada")
@pytest.mark.parametrize(
    ("selection", "path"),
    [
        pytest.param("attributes { name value }", ["user", "attributes"], id="every-attribute"),
        pytest.param(
            'attributes(names: ["city", "surname"]) { value }', ["user", "attributes"], id="named"
        ),
        pytest.param(
            'attributes(customNames: ["loyalty_card"]) { value }',
            ["user", "attributes"],
            id="custom",
        ),
        pytest.param("identifiers { type }", ["user", "identifiers"], id="identifiers"),
    ],
)
async def test_lists_that_would_hold_pii_are_forbidden_without_pii_read(
    pii_gateway: GatewayHttp, ucd_calls: CallLog, selection: str, path: list[str]
) -> None:
    ucd_calls.clear()
    response = await call(
        pii_gateway, f'{{ user(key: {{uuid: "u-1"}}) {{ city {selection} }} }}', persona="reader"
    )
    answer = body(response)
    (error,) = answer["errors"]
    assert error["path"] == path
    assert error["extensions"] == {"code": "FORBIDDEN", "scope": "pii:read"}
    assert not any(value in response.text for value in PII_VALUES)
    for call_ in ucd_calls.profiles:
        asked = call_.body.get("attributes")
        assert asked != "*"
        assert not {"email", "phone_number", "surname", "c_loyalty_card"} & set(asked or ())


@pytest.mark.usefixtures("ada")
async def test_users_and_aliases_get_the_same_protection(
    pii_gateway: GatewayHttp, ucd_calls: CallLog
) -> None:
    ucd_calls.clear()
    response = await call(
        pii_gateway,
        '{ users(keys: [{uuid: "u-1"}, {email: "ada@example.com"}]) { n: name c: city } }',
        persona="reader",
    )
    answer = body(response)
    assert answer["data"]["users"] == [{"n": None, "c": "London"}] * 2
    assert sorted(tuple(e["path"]) for e in answer["errors"]) == [
        ("users", 0, "n"),
        ("users", 1, "n"),
    ]
    assert all(c.body["attributes"] == ["city"] for c in ucd_calls.profiles)
