"""``Query.catalog`` over HTTP against the local UCD: content, names, the cache (calls counted
on the wire, a hit is 0 calls), its TTL, per-partner keys, failures and the budget."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.catalog import CatalogCache
from gateway.graphiql.page import DEFAULT_QUERY
from gateway.settings import Settings
from gateway.ucd.client import UcdClient
from tests.gateway.conftest import (
    GATEWAY_BASE,
    TOKEN,
    CallLog,
    GatewayHttp,
    UcdWire,
    app_gateway,
    graphql,
    put_users,
    serve_gateway,
)

METADATA = "/api/user/v3/metadata/columns"

CATALOG = """
{ catalog {
    attributes { name custom type displayName }
    events { name params { name custom type } }
} }
"""

ADA = {
    "identifiers": {"email": "ada@example.com"},
    "attributes": {"name": "Ada", "custom": {"favorite_color": ["red"], "tier": "gold"}},
    "events": [
        {
            "event_name": "purchase",
            "timestamp": "2026-11-20T10:00:00Z",
            "event_params": {
                "event_group_id": "ORDER-1",
                "currency": "EUR",
                "unit_sale_price": 19.9,
                "referrer": "newsletter",
                "custom": {"gift_wrap": True},
            },
        }
    ],
}


def cost(body: dict[str, Any]) -> dict[str, int]:
    calls: dict[str, int] = body["extensions"]["cost"]["ucdCalls"]
    return calls


async def catalog(gateway: GatewayHttp, query: str = CATALOG) -> dict[str, Any]:
    body: dict[str, Any] = await gateway.post(query)
    assert "errors" not in body, body
    return body


# --- content -----------------------------------------------------------------------------


async def test_catalog_lists_attributes_and_events_with_names_the_other_fields_take(
    gateway_http: GatewayHttp, ucd: UcdClient, ucd_calls: CallLog
) -> None:
    await put_users(ucd, ADA)
    ucd_calls.clear()
    body = await catalog(gateway_http)
    attributes = {a["name"]: a for a in body["data"]["catalog"]["attributes"]}
    assert attributes["iid"] == {
        "name": "iid",
        "custom": False,
        "type": "string",
        "displayName": "Profile ID",
    }
    assert attributes["email"]["type"] == "string"
    # Read names, as the UCD answers them and attribute(name:) finds them.
    assert attributes["gdpr"] == {
        "name": "gdpr",
        "custom": False,
        "type": "boolean",
        "displayName": "GDPR Opt-In",
    }
    # Custom attributes without their c_ prefix, as attribute(name:, custom: true) takes them.
    assert attributes["favorite_color"] == {
        "name": "favorite_color",
        "custom": True,
        "type": "array",
        "displayName": "favorite_color",
    }
    assert attributes["tier"]["custom"] is True
    (purchase,) = [e for e in body["data"]["catalog"]["events"] if e["name"] == "purchase"]
    params = {(p["name"], p["custom"]): p["type"] for p in purchase["params"]}
    assert params == {
        ("currency", False): "string",
        ("event_group_id", False): "string",
        ("unit_sale_price", False): "number",
        # A default parameter the UCD does not type, and a custom one: any JSON value.
        ("referrer", False): None,
        ("gift_wrap", True): None,
    }
    assert sorted(orjson.dumps(c.body).decode() for c in ucd_calls.calls) == [
        '{"table":"contacts"}',
        '{"table":"events"}',
    ]
    assert cost(body) == {"planned": 2, "actual": 2}


async def test_catalog_names_read_back_a_user_through_attribute_and_param(
    gateway_http: GatewayHttp, ucd: UcdClient
) -> None:
    """What the catalogue lists is what user(...) takes: the explorer's whole point."""
    await put_users(ucd, ADA)
    listed = (await catalog(gateway_http))["data"]["catalog"]
    custom = next(a for a in listed["attributes"] if a["custom"] and a["name"] == "tier")
    (event,) = [e for e in listed["events"] if e["name"] == "purchase"]
    param = next(p for p in event["params"] if p["custom"])
    data = await gateway_http.ok(
        """query ($attr: String!, $event: String!, $param: String!) {
          user(key: {email: "ada@example.com"}) {
            attribute(name: $attr, custom: true) { value }
            events(names: [$event], from: "2026-11-01T00:00:00Z") {
              param(name: $param, custom: true)
            }
          } }""",
        {"attr": custom["name"], "event": event["name"], "param": param["name"]},
    )
    assert data["user"] == {"attribute": {"value": "gold"}, "events": [{"param": True}]}


async def test_graphiqls_default_query_runs_without_errors(gateway_http: GatewayHttp) -> None:
    body = await catalog(gateway_http, DEFAULT_QUERY)
    assert body["data"]["catalog"]["attributes"][0]["name"] == "iid"
    assert body["data"]["catalog"]["events"] == []


# --- the cache -----------------------------------------------------------------------------


async def test_a_second_catalog_query_within_the_ttl_makes_no_ucd_call(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    first = await catalog(gateway_http)
    ucd_calls.clear()
    second = await catalog(gateway_http)
    assert ucd_calls.calls == []
    assert second["data"] == first["data"]
    # Planned as if cold (the plan does not look into the cache); actual counts the wire.
    assert cost(second) == {"planned": 2, "actual": 0}


async def test_a_query_of_one_list_asks_only_its_table(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    body = await catalog(gateway_http, "{ catalog { events { name } } }")
    assert [c.body for c in ucd_calls.calls] == [{"table": "events"}]
    assert cost(body) == {"planned": 1, "actual": 1}
    # The other table is still cold; the one asked for is kept.
    body = await catalog(
        gateway_http, "{ a: catalog { attributes { name } } b: catalog { events { name } } }"
    )
    assert [c.body for c in ucd_calls.calls] == [{"table": "events"}, {"table": "contacts"}]
    assert cost(body) == {"planned": 2, "actual": 1}


async def test_concurrent_queries_on_a_cold_cache_share_one_call_per_table(
    gateway_http: GatewayHttp, ucd_transport: UcdWire, ucd_calls: CallLog
) -> None:
    ucd_transport.delay = 0.05  # all five are waiting while the first calls are on the wire
    bodies = await asyncio.gather(*(catalog(gateway_http) for _ in range(5)))
    assert sorted(c.body["table"] for c in ucd_calls.calls) == ["contacts", "events"]
    assert sum(cost(b)["actual"] for b in bodies) == 2
    assert all(b["data"] == bodies[0]["data"] for b in bodies)


async def test_with_ttl_zero_every_catalog_query_asks_the_ucd(
    ucd_http: httpx.AsyncClient, ucd_calls: CallLog
) -> None:
    settings = Settings(_env_file=None, public_url=GATEWAY_BASE, catalog_ttl=0)  # type: ignore[call-arg]
    async with serve_gateway(settings, ucd_http) as gateway:
        for _ in range(3):
            await catalog(gateway, "{ catalog { attributes { name } } }")
    assert [c.path for c in ucd_calls.calls] == [METADATA] * 3


async def test_a_failed_catalog_call_answers_a_typed_error_and_is_not_kept(
    gateway_http: GatewayHttp, ucd_transport: UcdWire, ucd_calls: CallLog
) -> None:
    def refuse(request: httpx.Request) -> BaseException | None:
        return httpx.ConnectError("connection refused", request=request)

    ucd_transport.fail = refuse
    error = await gateway_http.error("{ catalog { attributes { name } } }")
    assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert error["path"] == ["catalog", "attributes"]
    ucd_transport.fail = None
    ucd_calls.clear()
    body = await catalog(gateway_http, "{ catalog { attributes { name } } }")
    assert body["data"]["catalog"]["attributes"][0] == {"name": "iid"}
    assert len(ucd_calls.calls) == 1


async def test_catalog_calls_count_against_the_operation_budget(
    ucd_http: httpx.AsyncClient, ucd_calls: CallLog
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, public_url=GATEWAY_BASE, max_ucd_calls_per_operation=2
    )
    async with serve_gateway(settings, ucd_http) as gateway:
        body = await gateway.post(
            '{ catalog { events { name } attributes { name } } user(key: {uuid: "u-1"}) { name } }'
        )
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "MAX_COST_EXCEEDED"}
    assert cost(body) == {"planned": 3, "actual": 0}
    assert ucd_calls.calls == []


# --- the cache alone: expiry and partners (a scripted UCD that counts per partner) -----------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scripted_ucd(seen: list[tuple[str, str]]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        partner = request.headers["x-partner-name"]
        seen.append((partner, orjson.loads(request.content)["table"]))
        return httpx.Response(200, json=[{"key": f"c_{partner}", "type": "string"}])

    return httpx.MockTransport(answer)


async def test_kept_columns_expire_after_the_ttl() -> None:
    seen: list[tuple[str, str]] = []
    clock = Clock()
    cache = CatalogCache(60.0, clock=clock)
    async with httpx.AsyncClient(transport=scripted_ucd(seen), base_url="http://ucd") as http:
        ucd = UcdClient(http, partner="acme", token=TOKEN)
        await cache.columns(ucd, "contacts")
        clock.now += 59.9
        await cache.columns(ucd, "contacts")
        assert seen == [("acme", "contacts")]
        clock.now += 0.1
        (column,) = await cache.columns(ucd, "contacts")
    assert seen == [("acme", "contacts"), ("acme", "contacts")]
    assert column.key == "c_acme"


async def test_each_partner_has_its_own_entries() -> None:
    seen: list[tuple[str, str]] = []
    cache = CatalogCache(60.0)
    async with httpx.AsyncClient(transport=scripted_ucd(seen), base_url="http://ucd") as http:
        acme = UcdClient(http, partner="acme", token=TOKEN)
        globex = UcdClient(http, partner="globex", token=TOKEN)
        answers = [
            (await cache.columns(client, "contacts"))[0].key
            for client in (acme, globex, acme, globex)
        ]
    assert answers == ["c_acme", "c_globex", "c_acme", "c_globex"]
    assert seen == [("acme", "contacts"), ("globex", "contacts")]


@pytest.mark.parametrize("ttl", [pytest.param(-1.0, id="negative")])
def test_a_negative_ttl_is_refused(ttl: float) -> None:
    with pytest.raises(ValueError, match="catalog_ttl"):
        Settings(_env_file=None, catalog_ttl=ttl)  # type: ignore[call-arg]


# --- the README's prose ------------------------------------------------------------------------
# The README's catalogue example (query and answer) runs with all the others, in
# tests/gateway/test_readme_examples.py; what its prose claims about the attributes is here.

README = Path(__file__).resolve().parents[2] / "README.md"


async def test_the_readmes_catalogue_attributes_are_as_it_says() -> None:
    upsert = re.search(r"```graphql\n(mutation.*?)```", README.read_text("utf-8"), re.S)
    assert upsert is not None, "README.md's first mutation (the upsert of Ada) is gone"
    async with app_gateway() as (client, _):
        assert (await graphql(client, upsert[1]))["data"]["upsertUsers"]["failureCount"] == 0
        listed = await graphql(
            client, "{ catalog { attributes { name type custom displayName } } }"
        )
    attributes = listed["data"]["catalog"]["attributes"]
    shown = '{"name": "tier", "type": "string", "custom": true, "displayName": "tier"}'
    assert shown in README.read_text("utf-8")
    assert orjson.loads(shown) in attributes
    assert [a["name"] for a in attributes[:1]] == ["iid"]
    assert {"gdpr", "lo"} <= {a["name"] for a in attributes}
