"""UCD_GATEWAY_INTROSPECTION and UCD_GATEWAY_GRAPHIQL, on and off, over HTTP."""

from __future__ import annotations

import httpx
import orjson
import pytest

from gateway.settings import Settings
from tests.gateway.conftest import app_gateway, graphql

SCHEMA = "{ __schema { queryType { name } } }"
TYPE = '{ __type(name: "UserKey") { name } }'
MISSPELT_FIELD = '{ user(key: {uuid: "u-1"}) { nam } }'
MISSPELT_VARIABLE = "query($k: UserKey!) { user(key: $k) { name } }"


def refused_ucd(request: httpx.Request) -> httpx.Response:
    # Nothing here reaches the UCD; a call would answer 500 and show as UPSTREAM_ERROR.
    return httpx.Response(500)


@pytest.mark.parametrize("query", [SCHEMA, TYPE], ids=["__schema", "__type"])
async def test_introspection_on_answers_the_schema(query: str) -> None:
    async with app_gateway(refused_ucd) as (client, _):
        body = await graphql(client, query)
    assert "errors" not in body
    assert next(iter(body["data"].values())) in (
        {"queryType": {"name": "Query"}},
        {"name": "UserKey"},
    )


@pytest.mark.parametrize("query", [SCHEMA, TYPE], ids=["__schema", "__type"])
async def test_introspection_off_refuses_schema_and_type(query: str) -> None:
    async with app_gateway(refused_ucd, introspection=False) as (client, _):
        body = await graphql(client, query)
        typename = await graphql(client, "{ __typename }")
    # graphql-core's rule refuses each field of an introspection type (__schema, queryType).
    assert body["errors"]
    for error in body["errors"]:
        assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
        assert "introspection has been disabled" in error["message"]
    assert body["data"] is None
    assert typename["data"] == {"__typename": "Query"}
    assert "errors" not in typename


@pytest.mark.parametrize(
    ("introspection", "suggested"), [(True, True), (False, False)], ids=["on", "off"]
)
async def test_suggestions_go_with_introspection(introspection: bool, suggested: bool) -> None:
    """Field names are suggested only while the schema may be read anyway."""
    async with app_gateway(refused_ucd, introspection=introspection) as (client, _):
        field = await graphql(client, MISSPELT_FIELD)
        variable = await graphql(client, MISSPELT_VARIABLE, k={"uuiid": "u-1"})
    (field_error,) = field["errors"]
    (variable_error,) = variable["errors"]
    assert field_error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
    assert variable_error["extensions"]["code"] == "BAD_USER_INPUT"
    assert field_error["message"].startswith("Cannot query field 'nam' on type 'User'.")
    assert "'uuiid'" in variable_error["message"]
    for message in (field_error["message"], variable_error["message"]):
        assert ("Did you mean" in message) is suggested, message
        assert ("'name'" in message or "'uuid'" in message) is suggested, message


async def test_graphiql_on_serves_the_page() -> None:
    async with app_gateway(refused_ucd) as (client, _):
        page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "GraphiQL" in page.text


async def test_graphiql_off_is_404_and_queries_over_get_still_answer() -> None:
    async with app_gateway(refused_ucd, graphiql=False) as (client, _):
        page = await client.get("/graphql", headers={"Accept": "text/html"})
        query = await client.get("/graphql", params={"query": "{ __typename }"})
    assert page.status_code == 404
    assert page.headers["content-type"] == "application/json"
    (error,) = orjson.loads(page.content)["errors"]
    assert error["extensions"] == {"code": "BAD_REQUEST"}
    assert "GraphiQL" not in page.text
    assert query.json()["data"] == {"__typename": "Query"}
    assert "errors" not in query.json()


def test_both_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings(_env_file=None).introspection, Settings(_env_file=None).graphiql) == (  # type: ignore[call-arg]
        True,
        True,
    )
    monkeypatch.setenv("UCD_GATEWAY_INTROSPECTION", "false")
    monkeypatch.setenv("UCD_GATEWAY_GRAPHIQL", "0")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.introspection, settings.graphiql) == (False, False)
