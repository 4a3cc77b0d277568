"""The compiled execution path (gateway/compiled/) answers byte for byte as graphql-core.

Two apps over one local UCD, the same seeded users: one with the compiled path (the
default), one with ``UCD_GATEWAY_COMPILED_EXECUTION=false``. Every request goes to both
and the response bodies must be the same bytes (key order, nulls, number and date
formatting, errors, ``extensions.cost``). The property test draws random documents over
``User``'s fields; the others pin the fallbacks (a UCD error, a value graphql-core
refuses, a batch, an extension added later, the setting).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from strawberry.extensions import SchemaExtension

from gateway.app import create_app
from gateway.compiled import CompiledExecution
from gateway.compiled.serializer import is_formatted
from gateway.ucd.times import format_datetime, parse_instant
from tests.gateway.conftest import app_gateway, app_settings, upstream

NOW = datetime.now(UTC).replace(microsecond=0)


def _at(hours: float) -> str:
    """An instant ``hours`` before now: far from the 30-day default window's edges."""
    return (NOW - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: What the UCD requires of every purchase (§4.8.2).
PAID = {"currency": "EUR", "unitSalePrice": 1, "eventGroupId": "O-2", "productId": "P-2"}

#: Seeded users, by uuid: attributes of every kind, events of two names with equal
#: instants across names (the resolver's stable sort), fractions, missing parameters.
USERS: list[dict[str, Any]] = [
    {
        "key": {"uuid": "u-1"},
        "attributes": {
            "name": "Ada",
            "surname": "Lovelace",
            "email": "ada@example.com",
            "age": 36,
            "birthday": "1815-12-10T00:00:00Z",
            "emailOptin": True,
            "gdprOptin": False,
            "country": "GB",
            "staticSegmentIds": [1, 2, 3],
            "custom": [{"name": "tier", "value": "gold"}],
        },
        "events": [
            {
                "name": "purchase",
                "timestamp": _at(1),
                "productId": "P-1",
                "productName": "Engine",
                "taxonomy": ["math", "machines"],
                "currency": "GBP",
                "unitPrice": 10,
                "unitSalePrice": 9.5,
                "quantity": 2,
                "eventGroupId": "O-1",
                "url": "https://example.com/p/1",
            },
            {"name": "view", "timestamp": _at(1), "productId": "P-1"},
            {"name": "purchase", "timestamp": _at(30.25), "unitPrice": 0.1, **PAID},
            {"name": "view", "timestamp": _at(50), "url": "https://example.com/"},
            {"name": "purchase", "timestamp": _at(24 * 40), "productId": "P-old", **PAID},
        ],
    },
    {"key": {"uuid": "u-2"}, "attributes": {"name": "Grace", "smsOptin": True, "age": 0}},
    {
        "key": {"uuid": "u-3"},
        "events": [
            {"name": "view", "timestamp": _at(h), "productId": f"V-{h}", "quantity": h}
            for h in range(2, 12)
        ],
    },
]
UUIDS = ["u-1", "u-2", "u-3", "u-unknown"]

UPSERT = (
    "mutation($i: UpsertUsersInput!) "
    "{ upsertUsers(input: $i) { failureCount results { errors { path message } } } }"
)


@dataclass
class Both:
    """The same UCD behind two gateways: compiled (``fast``) and graphql-core only."""

    runner: asyncio.Runner
    fast: httpx.AsyncClient
    slow: httpx.AsyncClient
    compiled: CompiledExecution

    def post(self, body: object) -> tuple[httpx.Response, httpx.Response]:
        async def both() -> tuple[httpx.Response, httpx.Response]:
            return (
                await self.fast.post("/graphql", json=body),
                await self.slow.post("/graphql", json=body),
            )

        return self.runner.run(both())


def _compiled(app: Starlette) -> CompiledExecution:
    compiled = app.routes[0].endpoint._compiled  # type: ignore[attr-defined]
    assert isinstance(compiled, CompiledExecution)
    return compiled


@contextlib.asynccontextmanager
async def _both(data_dir: Path) -> AsyncIterator[list[Any]]:
    async with upstream(None) as http, contextlib.AsyncExitStack() as stack:
        clients: list[Any] = []
        for compiled in (True, False):
            app = create_app(
                app_settings(
                    compiled_execution=compiled, local_ucd_data_dir=data_dir / str(compiled)
                ),
                http_client=http,
            )
            manager = await stack.enter_async_context(LifespanManager(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(manager.app), base_url="http://gw")
            )
            clients += [client, app]
        seeded = await clients[0].post(
            "/graphql", json={"query": UPSERT, "variables": {"i": {"users": USERS}}}
        )
        assert seeded.json()["data"]["upsertUsers"]["failureCount"] == 0, seeded.json()
        yield clients


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    """One event loop for the module (hypothesis calls the test synchronously)."""
    with asyncio.Runner() as runner:
        context = _both(tmp_path_factory.mktemp("compiled"))
        fast, fast_app, slow, _ = runner.run(context.__aenter__())
        try:
            yield Both(runner, fast, slow, _compiled(fast_app))
        finally:
            runner.run(context.__aexit__(None, None, None))


class _NoOpExtension(SchemaExtension):
    """A request hook of no consequence: its presence is what counts."""


# --- random documents ----------------------------------------------------------------------

USER_SCALARS = [
    "insiderId", "email", "phoneNumber", "uuid", "name", "surname", "birthday", "gender",
    "age", "language", "country", "city", "locale", "emailOptin", "smsOptin",
    "whatsappOptin", "gdprOptin", "staticSegmentIds", "__typename",
]  # fmt: skip
EVENT_SCALARS = [
    "name", "timestamp", "source", "productId", "productName", "taxonomy", "currency",
    "unitPrice", "unitSalePrice", "quantity", "eventGroupId", "url", "__typename",
]  # fmt: skip
#: Mostly compiled fields, now and then one graphql-core answers (the fallback, in bytes).
OTHER_USER_FIELDS = ["identifiers { value }", 'attribute(name: "tier", custom: true) { value }']


@dataclass
class Doc:
    fragments: list[str]
    booleans: set[str]

    def condition(self, draw: st.DrawFn) -> str:
        kind = draw(st.sampled_from(["", "", "", "@skip", "@include"]))
        if not kind:
            return ""
        value = draw(st.sampled_from(["true", "false", "$b1", "$b2"]))
        if value.startswith("$"):
            self.booleans.add(value[1:])
        return f" {kind}(if: {value})"


def _alias(draw: st.DrawFn, name: str) -> str:
    # Few aliases, so one key now and then gathers several fields (merged) or clashes
    # with another field (a validation error, which both paths answer the same).
    alias = draw(st.sampled_from(["", "", "", "", "", "", "a", name]))
    return f"{alias}: " if alias else ""


def _selection(draw: st.DrawFn, doc: Doc, scalars: list[str], depth: int, on: str) -> str:
    items: list[str] = []
    for _ in range(draw(st.integers(1, 5))):
        kinds = ["field"] * 6 + ["inline", "spread"]
        if on == "User":
            kinds += ["events", "events"] + (["other"] if draw(st.integers(0, 3)) == 0 else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "field" or (depth > 2 and kind in ("inline", "spread")):
            name = draw(st.sampled_from(scalars))
            items.append(f"{_alias(draw, name)}{name}{doc.condition(draw)}")
        elif kind == "other":
            items.append(draw(st.sampled_from(OTHER_USER_FIELDS)))
        elif kind == "events":
            items.append(_events(draw, doc, depth))
        elif kind == "inline":
            on_type = draw(st.sampled_from(["", f" on {on}"]))
            inner = _selection(draw, doc, scalars, depth + 1, on)
            items.append(f"...{on_type}{doc.condition(draw)} {{ {inner} }}")
        else:
            name = f"F{len(doc.fragments)}"
            inner = _selection(draw, doc, scalars, depth + 1, on)
            doc.fragments.append(f"fragment {name} on {on} {{ {inner} }}")
            items.append(f"...{name}{doc.condition(draw)}")
    return " ".join(items)


def _events(draw: st.DrawFn, doc: Doc, depth: int) -> str:
    names = draw(st.lists(st.sampled_from(["purchase", "view", "none"]), min_size=0, max_size=3))
    args = [f"names: {orjson.dumps(names).decode()}"]
    since = draw(st.sampled_from([None, _at(40), _at(24 * 60), _at(0.5)]))
    if since is not None:
        args.append(f'from: "{since}"')
    if draw(st.booleans()):
        args.append(f'to: "{_at(draw(st.sampled_from([0, 10, 45])))}"')
    last = draw(st.sampled_from([None, None, None, 0, 1, 3, 3, -1]))
    if last is not None:
        args.append(f"last: {last}")
    inner = _selection(draw, doc, EVENT_SCALARS, depth + 1, "Event")
    return f"{_alias(draw, 'events')}events({', '.join(args)}){doc.condition(draw)} {{ {inner} }}"


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    doc = Doc([], set())
    roots: list[str] = []
    keys: dict[str, str] = {}
    for index in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["user", "user", "users", "__typename"]))
        alias = f"r{index}: "
        if kind == "__typename":
            roots.append(f"{alias}__typename")
            continue
        inner = _selection(draw, doc, USER_SCALARS, 0, "User")
        if kind == "user":
            keys[f"k{index}"] = draw(st.sampled_from(UUIDS))
            roots.append(
                f"{alias}user(key: {{uuid: $k{index}}}){doc.condition(draw)} {{ {inner} }}"
            )
        else:
            picked = draw(st.lists(st.sampled_from(UUIDS), max_size=3))
            listed = ", ".join(f'{{uuid: "{u}"}}' for u in picked)
            roots.append(f"{alias}users(keys: [{listed}]){doc.condition(draw)} {{ {inner} }}")
    definitions = [f"${k}: String!" for k in keys] + [
        f"${b}: Boolean!" for b in sorted(doc.booleans)
    ]
    header = f"query Q({', '.join(definitions)})" if definitions else "query Q"
    variables: dict[str, Any] = dict(keys)
    for name in doc.booleans:
        variables[name] = draw(st.booleans())
    text = " ".join([header, "{", *roots, "}", *doc.fragments])
    return text, variables


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=documents())
def test_random_documents_answer_the_same_bytes_on_both_paths(
    both: Both, document: tuple[str, dict[str, Any]]
) -> None:
    text, variables = document
    fast, slow = both.post({"query": text, "variables": variables})
    assert (fast.status_code, fast.content) == (slow.status_code, slow.content), text


def test_the_property_test_reaches_the_compiled_path(both: Both) -> None:
    """The comparison above must not pass only because everything fell back."""
    before = both.compiled.answered
    query = (
        "query($u: String!, $b: Boolean!) { user(key: {uuid: $u}) { name "
        "... on User @include(if: $b) { age } "
        'events(names: ["purchase", "view"]) { timestamp unitPrice taxonomy } } }'
    )
    fast, slow = both.post({"query": query, "variables": {"u": "u-1", "b": True}})
    assert fast.content == slow.content
    assert both.compiled.answered == before + 1
    body = fast.json()
    assert body["data"]["user"]["name"] == "Ada"
    assert [e["unitPrice"] for e in body["data"]["user"]["events"]] == [10.0, None, 0.1, None]
    assert body["extensions"] == {"cost": {"ucdCalls": {"planned": 1, "actual": 1}}}


def test_a_batch_shares_one_context_on_both_paths(both: Both) -> None:
    query = "query($u: String!) { user(key: {uuid: $u}) { name } }"
    batch = [{"query": query, "variables": {"u": u}} for u in ("u-1", "u-2", "u-1")]
    fast, slow = both.post(batch)
    assert (fast.status_code, fast.content) == (slow.status_code, slow.content)
    assert [item["data"]["user"]["name"] for item in fast.json()] == ["Ada", "Grace", "Ada"]


# --- fallbacks, against a scripted UCD ----------------------------------------------------


async def _scripted(
    answer: httpx.Response, query: str, **variables: Any
) -> list[tuple[bytes, int]]:
    """The body each path answers and the UCD calls each made, for one request."""
    results: list[tuple[bytes, int]] = []
    for compiled in (True, False):
        calls = 0

        def handler(request: httpx.Request) -> httpx.Response:
            nonlocal calls
            calls += 1
            return answer

        async with app_gateway(handler, compiled_execution=compiled) as (client, _):
            response = await client.post("/graphql", json={"query": query, "variables": variables})
        results.append((response.content, calls))
    return results


USER_QUERY = (
    'query($u: String!) { user(key: {uuid: $u}) { name age events(names: ["view"]) { name } } }'
)


async def test_a_ucd_error_is_answered_as_graphql_core_does_with_no_call_sent_twice() -> None:
    fast, slow = await _scripted(httpx.Response(500, json={"error": "boom"}), USER_QUERY, u="u-1")
    assert fast == slow
    assert b'"errors"' in fast[0]
    assert fast[1] == 1


async def test_a_value_graphql_core_refuses_is_answered_by_graphql_core() -> None:
    """An age past Int's 32 bits: graphql-core's error, from the answer already read."""
    profile = {"attributes": {"iid": "i-1", "name": "Big", "age": 2**40}}
    fast, slow = await _scripted(httpx.Response(200, json=profile), USER_QUERY, u="u-1")
    assert fast == slow
    assert b"Int cannot represent" in fast[0]
    assert fast[1] == 1


async def test_a_bad_key_costs_no_call_on_either_path() -> None:
    fast, slow = await _scripted(httpx.Response(200, json={}), USER_QUERY, u="")
    assert fast == slow
    assert fast[1] == 0


async def test_the_setting_turns_the_path_off() -> None:
    async with app_gateway(compiled_execution=False) as (client, app):
        await client.post("/graphql", json={"query": '{ user(key: {uuid: "u-1"}) { name } }'})
        assert _compiled(app).answered == 0
    async with app_gateway() as (client, app):
        await client.post("/graphql", json={"query": '{ user(key: {uuid: "u-1"}) { name } }'})
        assert _compiled(app).answered == 1


async def test_an_extension_added_after_start_up_sends_every_operation_to_graphql_core() -> None:
    """A request hook added to the schema later (tracing, say) must see execution."""
    async with app_gateway() as (client, app):
        schema = app.routes[0].endpoint.schema  # type: ignore[attr-defined]
        schema.extensions = (*schema.extensions, _NoOpExtension)
        response = await client.post(
            "/graphql", json={"query": '{ user(key: {uuid: "u-1"}) { name } }'}
        )
        assert response.json()["data"] == {"user": None}
        assert _compiled(app).answered == 0


# --- the instant written as the UCD sent it -----------------------------------------------


@given(
    instant=st.datetimes(timezones=st.just(UTC)),
    fraction=st.sampled_from(["", ".5", ".50", ".123456", ".1234567", ".000000"]),
    zone=st.sampled_from(["Z", "z", "+00:00", "+03:00"]),
)
def test_an_instant_passes_through_only_when_formatting_would_give_the_same_text(
    instant: datetime, fraction: str, zone: str
) -> None:
    text = instant.replace(microsecond=0).isoformat()[:19].rjust(19, "0") + fraction + zone
    stamp = parse_instant(text)
    if stamp is not None and is_formatted(text):
        assert format_datetime(stamp) == text
