"""The compiled execution path (gateway/compiled/) answers byte for byte as graphql-core.

Two apps over one local UCD, the same seeded users: one with the compiled path (the
default), one with ``UCD_GATEWAY_COMPILED_EXECUTION=false``, both with API keys (the
personas of tests/gateway/auth/conftest.py) and ``tier`` as a PII custom attribute.
Every request goes to both as the same caller and the response bodies must be the same
bytes (key order, nulls, number and date formatting, errors, ``extensions.cost``). The
property test draws random documents over ``User``'s fields and the caller (every
scope, ``profile:read`` with and without ``pii:read``, no read scope at all); the
others pin the fallbacks (FORBIDDEN, PII, a UCD error, a value graphql-core refuses, a
batch, persisted documents, an extension added later or unknown, the setting) and the
UCD calls each path makes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
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
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from strawberry.extensions import SchemaExtension

from gateway import tracing
from gateway.api.schema import build_schema
from gateway.app import create_app
from gateway.compiled import CompiledExecution, compiled_execution
from gateway.compiled.serializer import is_formatted
from gateway.limits import schema_extensions
from gateway.persisted.manifest import sha256_hex
from gateway.reads.inflight import ProfileReads
from gateway.ucd.times import format_datetime, parse_instant
from tests.gateway.auth.conftest import key_of, keys_toml
from tests.gateway.conftest import CallLog, UcdCall, app_gateway, app_settings, upstream

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


#: Callers of the comparison: API keys of tests/gateway/auth/conftest.py's personas.
#: "writer" holds no read scope; "reader" holds profile:read without pii:read.
CALLERS = ["everything", "reader", "pii-reader", "writer"]


def _as(persona: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key_of(persona)}"}


#: Less than this left in the current second: the pair of requests waits for the next.
SAME_SECOND_MARGIN_S = 0.2


@dataclass
class Both:
    """The same UCD behind two gateways: compiled (``fast``) and graphql-core only;
    ``calls``: every request either sent to the UCD."""

    runner: asyncio.Runner
    fast: httpx.AsyncClient
    slow: httpx.AsyncClient
    compiled: CompiledExecution
    calls: CallLog
    #: Each app's in-flight reads: a read still on the wire from an earlier request
    #: (one a failing field left behind) would be joined, and not counted, by the next.
    reads: tuple[ProfileReads, ...]

    def post(
        self, body: object, persona: str = "everything"
    ) -> tuple[httpx.Response, httpx.Response]:
        (fast, _), (slow, _) = self.each(body, persona)
        return fast, slow

    def each(
        self, body: object, persona: str = "everything"
    ) -> list[tuple[httpx.Response, list[UcdCall]]]:
        """Each path's answer (compiled first) and the UCD calls it made."""

        async def both() -> list[tuple[httpx.Response, list[UcdCall]]]:
            answers = []
            # Both requests in one second: an event window ends at the request's second
            # (``to`` defaults to now), so a cache entry stored in one second does not
            # cover the next one's. Two requests either side of a second's end would
            # leave the two caches unlike, and the next example would count a hit on one
            # path and a UCD call on the other.
            left = 1 - time.time() % 1
            if left < SAME_SECOND_MARGIN_S:
                await asyncio.sleep(left + 0.001)
            for client in (self.fast, self.slow):
                await self._settled()
                self.calls.clear()
                response = await client.post("/graphql", json=body, headers=_as(persona))
                answers.append((response, list(self.calls.calls)))
            return answers

        return self.runner.run(both())

    async def _settled(self) -> None:
        for _ in range(5_000):  # 5 s at most
            if not any(reads.on_the_wire for reads in self.reads):
                return
            await asyncio.sleep(0.001)
        raise AssertionError("profile reads still on the wire after 5 s")


def _compiled(app: Starlette) -> CompiledExecution:
    compiled = app.routes[0].endpoint._compiled  # type: ignore[attr-defined]
    assert isinstance(compiled, CompiledExecution)
    return compiled


@contextlib.asynccontextmanager
async def _both(data_dir: Path, calls: CallLog, *, cache: bool) -> AsyncIterator[list[Any]]:
    keys = data_dir / "api-keys.toml"
    keys.write_text(keys_toml())
    async with upstream(None) as http, contextlib.AsyncExitStack() as stack:
        http.event_hooks = {"request": [calls.record], "response": []}
        clients: list[Any] = []
        for compiled in (True, False):
            app = create_app(
                app_settings(
                    compiled_execution=compiled,
                    local_ucd_data_dir=data_dir / str(compiled),
                    api_keys_file=keys,
                    pii_attributes="tier",
                    profile_cache_ttl=600.0 if cache else None,
                ),
                http_client=http,
            )
            manager = await stack.enter_async_context(LifespanManager(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(manager.app), base_url="http://gw")
            )
            clients += [client, app]
        seeded = await clients[0].post(
            "/graphql",
            json={"query": UPSERT, "variables": {"i": {"users": USERS}}},
            headers=_as("everything"),
        )
        assert seeded.json()["data"]["upsertUsers"]["failureCount"] == 0, seeded.json()
        yield clients


@contextlib.contextmanager
def _both_apps(tmp_path_factory: pytest.TempPathFactory, *, cache: bool) -> Iterator[Both]:
    """One event loop for the module (hypothesis calls the test synchronously)."""
    with asyncio.Runner() as runner:
        calls = CallLog()
        context = _both(tmp_path_factory.mktemp("compiled"), calls, cache=cache)
        fast, fast_app, slow, slow_app = runner.run(context.__aenter__())
        reads = tuple(app.state.runtime.get().reads for app in (fast_app, slow_app))
        try:
            yield Both(runner, fast, slow, _compiled(fast_app), calls, reads)
        finally:
            runner.run(context.__aexit__(None, None, None))


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    """Both paths, the profile cache off: every read is a UCD call to compare."""
    with _both_apps(tmp_path_factory, cache=False) as apps:
        yield apps


@pytest.fixture(scope="module")
def both_cached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    """Both paths with the profile cache on (UCD_GATEWAY_PROFILE_CACHE_TTL), each app its
    own: the same requests in the same order leave both caches alike, so the answers
    (``extensions.cost.ucdCalls.cacheHits`` included) and the calls must be the same."""
    with _both_apps(tmp_path_factory, cache=True) as apps:
        yield apps


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
            fresh = draw(st.sampled_from(["", "", "", ", fresh: true", ", fresh: false"]))
            roots.append(
                f"{alias}user(key: {{uuid: $k{index}}}{fresh}){doc.condition(draw)} {{ {inner} }}"
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


@pytest.mark.parametrize("apps", ["both", "both_cached"], ids=["cache-off", "cache-on"])
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=documents(), persona=st.sampled_from(CALLERS))
def test_random_documents_answer_the_same_bytes_on_both_paths_for_every_caller(
    request: pytest.FixtureRequest, apps: str, document: tuple[str, dict[str, Any]], persona: str
) -> None:
    text, variables = document
    both: Both = request.getfixturevalue(apps)
    (fast, fast_calls), (slow, slow_calls) = both.each(
        {"query": text, "variables": variables}, persona
    )
    assert (fast.status_code, fast.content) == (slow.status_code, slow.content), (persona, text)
    # The same push-down: what the UCD is asked (PII only of those who may read it).
    assert _asked(fast_calls) == _asked(slow_calls), (persona, text)


def _asked(calls: list[UcdCall]) -> list[bytes]:
    """What each call asked, in any order (one tick's loads may leave in either), without
    the default window's instants: the two requests were not sent in the same second."""
    asked = []
    for call in calls:
        body = dict(call.body or {})
        if "events" in body:
            body["events"] = body["events"]["wanted"]
        asked.append(orjson.dumps([call.method, call.path, body], option=orjson.OPT_SORT_KEYS))
    return sorted(asked)


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


# --- callers: scopes and PII ----------------------------------------------------------------

READER_QUERY = (
    "query($u: String!, $b: Boolean!) { user(key: {uuid: $u}) { city age "
    "n: name @include(if: $b) "
    'events(names: ["view"], last: 1) { name productId } } }'
)


def _answered(both: Both, body: object, persona: str) -> tuple[Any, list[UcdCall], int]:
    """The compiled path's answer (the same bytes as graphql-core's), its UCD calls, and
    how many operations the compiled path answered itself."""
    before = both.compiled.answered
    (fast, fast_calls), (slow, slow_calls) = both.each(body, persona)
    assert (fast.status_code, fast.content) == (slow.status_code, slow.content)
    assert _asked(fast_calls) == _asked(slow_calls)
    return orjson.loads(fast.content), fast_calls, both.compiled.answered - before


def test_a_reader_without_pii_read_is_answered_by_the_compiled_path_when_no_pii_is_selected(
    both: Both,
) -> None:
    query = (
        'query { user(key: {uuid: "u-1"}) { city age '
        'events(names: ["view"], last: 1) { name productId } } }'
    )
    body, calls, answered = _answered(both, {"query": query}, "reader")
    assert answered == 1
    assert body["data"]["user"]["events"] == [{"name": "view", "productId": "P-1"}]
    (call,) = calls
    assert sorted(call.body["attributes"]) == ["age", "city"]


def test_pii_a_reader_may_not_see_is_forbidden_through_the_compiled_path_and_never_asked(
    both: Both,
) -> None:
    body, calls, answered = _answered(
        both, {"query": READER_QUERY, "variables": {"u": "u-1", "b": True}}, "reader"
    )
    assert answered == 0  # an error to answer: graphql-core's
    assert body["data"]["user"]["n"] is None
    (error,) = body["errors"]
    assert error["path"] == ["user", "n"]
    assert error["extensions"] == {"code": "FORBIDDEN", "scope": "pii:read"}
    assert "Ada" not in orjson.dumps(body).decode()
    (call,) = calls
    assert sorted(call.body["attributes"]) == ["age", "city"]


def test_a_pii_field_skipped_by_a_variable_still_sends_the_operation_to_graphql_core(
    both: Both,
) -> None:
    """The plan may select PII under some variables: the reader's operation is
    graphql-core's whatever they are, and answered without an error."""
    body, calls, answered = _answered(
        both, {"query": READER_QUERY, "variables": {"u": "u-1", "b": False}}, "reader"
    )
    assert answered == 0
    assert "errors" not in body
    assert len(calls) == 1


def test_with_pii_read_the_compiled_path_answers_pii(both: Both) -> None:
    body, calls, answered = _answered(
        both, {"query": READER_QUERY, "variables": {"u": "u-1", "b": True}}, "pii-reader"
    )
    assert answered == 1
    assert body["data"]["user"]["n"] == "Ada"
    (call,) = calls
    assert sorted(call.body["attributes"]) == ["age", "city", "name"]


@pytest.mark.parametrize("field", ["user", "users"])
def test_without_profile_read_the_field_is_forbidden_and_the_ucd_never_called(
    both: Both, field: str
) -> None:
    key = '{uuid: "u-1"}'
    args = f"key: {key}" if field == "user" else f"keys: [{key}]"
    query = f"{{ {field}({args}) {{ city }} }}"
    body, calls, answered = _answered(both, {"query": query}, "writer")
    assert answered == 0
    # users is [User]!: its null reaches the root
    assert body["data"] == ({field: None} if field == "user" else None)
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "FORBIDDEN", "scope": "profile:read"}
    assert calls == []


# --- persisted documents --------------------------------------------------------------------


def test_a_persisted_document_is_answered_by_the_compiled_path(both: Both) -> None:
    """APQ: registered with its text by POST, then named by its hash alone over GET
    (the answer cacheable): both paths answer the same bytes and headers."""
    query = "query Name($u: String!) { user(key: {uuid: $u}) { name city } }"
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(query)}}
    registered = {"query": query, "variables": {"u": "u-1"}, "extensions": extensions}
    body, _, answered = _answered(both, registered, "pii-reader")
    assert answered == 1
    assert body["data"] == {"user": {"name": "Ada", "city": None}}
    params = {
        "extensions": orjson.dumps(extensions).decode(),
        "variables": orjson.dumps({"u": "u-2"}).decode(),
    }

    async def get_both() -> list[httpx.Response]:
        return [
            await client.get("/graphql", params=params, headers=_as("pii-reader"))
            for client in (both.fast, both.slow)
        ]

    before = both.compiled.answered
    fast, slow = both.runner.run(get_both())
    assert both.compiled.answered == before + 1
    assert (fast.status_code, fast.content) == (slow.status_code, slow.content)
    assert fast.headers["cache-control"] == slow.headers["cache-control"] != ""
    assert orjson.loads(fast.content)["data"] == {"user": {"name": "Grace", "city": None}}


# --- observed, rate-limited, audited as on graphql-core's path ------------------------------


def _operations_total(text: str, name: str) -> dict[str, float]:
    """``ucd_gateway_operations_total`` of operation ``name``, by outcome."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "ucd_gateway_operations_total"
                and sample.labels.get("operation") == name
            ):
                found[sample.labels["outcome"]] = float(sample.value)
    return found


def test_metrics_and_the_log_line_count_a_compiled_operation_once(
    both: Both, caplog: pytest.LogCaptureFixture
) -> None:
    query = "query Counted($u: String!) { user(key: {uuid: $u}) { age } }"
    before = both.compiled.answered
    with caplog.at_level(logging.INFO, logger="gateway.operations"):
        for uuid in ("u-1", "u-2"):
            both.post({"query": query, "variables": {"u": uuid}})
    assert both.compiled.answered == before + 2
    lines = [m for m in caplog.messages if m.startswith("query Counted: OK in ")]
    assert len(lines) == 4  # two operations on each app, one line each

    async def scrape() -> list[str]:
        return [
            (await client.get("/metrics", headers=_as("everything"))).text
            for client in (both.fast, both.slow)
        ]

    fast, slow = both.runner.run(scrape())
    assert _operations_total(fast, "Counted") == _operations_total(slow, "Counted") == {"OK": 2}


async def test_a_fallback_after_the_reads_is_observed_and_rate_limited_once(
    tmp_path: Path,
) -> None:
    """A UCD error after the compiled reads: graphql-core answers the operation, which
    the metrics count once and the caller's limit charges once (refusals count too, so
    a second charge would refuse the second operation here)."""
    keys = tmp_path / "keys.toml"
    keys.write_text(keys_toml())
    query = 'query Failing { user(key: {uuid: "u-1"}) { city } }'
    statuses = {}
    for compiled in (True, False):

        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(500, json={"error": "boom"})

        async with app_gateway(
            handler, compiled_execution=compiled, api_keys_file=keys, rate_limit="2/hour"
        ) as (client, app):
            answers = [
                await client.post("/graphql", json={"query": query}, headers=_as("reader"))
                for _ in range(3)
            ]
            metrics = (await client.get("/metrics", headers=_as("reader"))).text
            assert _compiled(app).answered == 0
        statuses[compiled] = [
            (a.status_code, orjson.loads(a.content)["errors"][0]["extensions"]["code"])
            for a in answers
        ]
        assert sum(_operations_total(metrics, "Failing").values()) == 3
    assert statuses[True] == statuses[False]
    assert [status for status, _ in statuses[True]] == [200, 200, 429]
    assert statuses[True][2][1] == "RATE_LIMITED"


async def test_a_compiled_operation_over_the_rate_limit_is_refused_before_the_ucd(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text(keys_toml())
    query = '{ user(key: {uuid: "u-1"}) { city } }'
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, json={"attributes": {"iid": "i-1", "city": "Oslo"}})

    async with app_gateway(handler, api_keys_file=keys, rate_limit="1/hour") as (client, app):
        first = await client.post("/graphql", json={"query": query}, headers=_as("reader"))
        assert orjson.loads(first.content)["data"] == {"user": {"city": "Oslo"}}
        assert (_compiled(app).answered, calls) == (1, 1)
        refused = await client.post("/graphql", json={"query": query}, headers=_as("reader"))
        assert refused.status_code == 429
        assert refused.headers["retry-after"]
        (error,) = orjson.loads(refused.content)["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert (_compiled(app).answered, calls) == (1, 1)


async def test_with_an_audit_log_a_pii_read_is_graphql_cores_and_leaves_its_line(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text(keys_toml())
    audit = tmp_path / "audit.jsonl"
    async with app_gateway(api_keys_file=keys, audit_log=str(audit)) as (client, app):
        seeded = await client.post(
            "/graphql",
            json={"query": UPSERT, "variables": {"i": {"users": USERS[:1]}}},
            headers=_as("everything"),
        )
        assert orjson.loads(seeded.content)["data"]["upsertUsers"]["failureCount"] == 0
        written = len(audit.read_bytes().splitlines())
        pii = '{ user(key: {uuid: "u-1"}) { name } }'
        answer = await client.post("/graphql", json={"query": pii}, headers=_as("pii-reader"))
        assert orjson.loads(answer.content)["data"] == {"user": {"name": "Ada"}}
        assert _compiled(app).answered == 0
        (line,) = [orjson.loads(x) for x in audit.read_bytes().splitlines()[written:]]
        assert (line["field"], line["phase"], line["principal"]) == ("name", "read", "pii-reader")
        plain = '{ user(key: {uuid: "u-1"}) { age } }'
        answer = await client.post("/graphql", json={"query": plain}, headers=_as("pii-reader"))
        assert orjson.loads(answer.content)["data"] == {"user": {"age": 36}}
        assert _compiled(app).answered == 1
        assert len(audit.read_bytes().splitlines()) == written + 1  # nothing to audit


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


def test_an_extension_the_compiled_path_does_not_honour_turns_it_off_at_start_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A request hook on the schema when the app is built (a later branch's metrics, say)
    would be skipped by the compiled path: it stays off until it honours the hook."""
    settings = app_settings()
    schema = build_schema()
    schema.extensions = (*schema_extensions(settings), _NoOpExtension)
    with caplog.at_level(logging.WARNING, logger="gateway.compiled"):
        compiled = compiled_execution(schema, settings)
    assert compiled.plan('{ user(key: {uuid: "u-1"}) { name } }', None) is None
    assert caplog.messages == [
        "compiled execution is off: the schema has extensions it does not honour (_NoOpExtension)"
    ]
    schema.extensions = (*schema_extensions(settings), tracing.OperationSpans)
    assert compiled_execution(schema, settings).plan("{ __typename }", None) is not None


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
