"""Queries through the schema: push-down, call counts, coalescing and results."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from gateway.exports import ExportJobs
from gateway.state.memory import MemoryState
from gateway.ucd.requests import EventsQuery, ProfileRequest, WantedEvents
from tests.gateway.conftest import (
    GATEWAY_BASE,
    TYPED_READ_NAMES,
    CallLog,
    Gateway,
    UcdWire,
    seed,
    wire_ref,
)

TWENTY_FIELDS = """
query($key: UserKey!) { user(key: $key) {
  insiderId email phoneNumber uuid name surname birthday gender age language country city
  locale emailOptin smsOptin whatsappOptin gdprOptin staticSegmentIds
  tier: attribute(name: "tier", custom: true) { name custom value }
  purchases: events(names: ["purchase"]) { name timestamp productId unitSalePrice }
} }
"""


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def seed_ada(gateway: Gateway) -> None:
    await seed(
        gateway,
        [
            {
                "key": {"email": "ada@example.com", "custom": [{"name": "crm_id", "value": "c-9"}]},
                "attributes": {
                    "name": "Ada",
                    "surname": "Lovelace",
                    "birthday": "1989-12-10T00:00:00Z",
                    "age": 36,
                    "locale": "en_GB",
                    "gdprOptin": True,
                    "emailOptin": False,
                    "staticSegmentIds": [1, 2],
                    "custom": [{"name": "tier", "value": "gold"}],
                },
                "events": [
                    {
                        "name": "purchase",
                        "timestamp": ago(days=1),
                        "productId": "p-new",
                        "currency": "USD",
                        "unitSalePrice": 10,
                        "eventGroupId": "o-1",
                        "custom": {"gift_wrap": True},
                    },
                    {
                        "name": "purchase",
                        "timestamp": ago(days=10),
                        "productId": "p-mid",
                        "currency": "USD",
                        "unitSalePrice": 20,
                        "eventGroupId": "o-2",
                    },
                    {
                        "name": "purchase",
                        "timestamp": ago(days=100),
                        "productId": "p-old",
                        "currency": "USD",
                        "unitSalePrice": 30,
                        "eventGroupId": "o-3",
                    },
                    {"name": "view", "timestamp": ago(days=5), "url": "https://x.test/a"},
                ],
            }
        ],
    )


async def test_one_user_with_twenty_selected_fields_costs_one_profile_call(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    await seed_ada(gateway)
    ucd_calls.clear()
    data = await gateway.ok(TWENTY_FIELDS, {"key": {"email": " ADA@example.com "}})
    assert len(ucd_calls.calls) == 1
    body = ucd_calls.profiles[0].body
    assert body["identifiers"] == {"email": "ada@example.com"}
    assert body["attributes"] == sorted(TYPED_READ_NAMES | {"c_tier"})
    assert body["events"]["wanted"] == [
        {"event_name": "purchase", "params": ["product_id", "unit_sale_price"]}
    ]
    user = data["user"]
    assert user["insiderId"]
    assert user["email"] == "ada@example.com"
    assert user["phoneNumber"] is None
    assert user["name"] == "Ada"
    assert user["locale"] == "en_GB"
    assert user["gdprOptin"] is True
    assert user["emailOptin"] is False
    assert user["staticSegmentIds"] == [1, 2]
    assert user["birthday"] == "1989-12-10T00:00:00Z"
    assert user["age"] == 36
    assert user["tier"] == {"name": "tier", "custom": True, "value": "gold"}
    # Default window: the last 30 days, newest first.
    assert [e["productId"] for e in user["purchases"]] == ["p-new", "p-mid"]
    assert user["purchases"][0]["unitSalePrice"] == 10.0
    assert user["purchases"][0]["timestamp"].endswith("Z")


async def test_users_with_50_keys_of_which_10_repeat_cost_40_calls_in_key_order(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    await seed(gateway, [{"key": {"uuid": f"u-{i}"}, "attributes": {"age": i}} for i in range(30)])
    ucd_calls.clear()
    distinct = [{"uuid": f"u-{i}"} for i in range(40)]  # u-30..u-39 are unknown
    keys = distinct + [{"uuid": f"u-{i}"} for i in range(10)]  # 10 repeats
    data = await gateway.ok(
        "query($keys: [UserKey!]!) { users(keys: $keys) { uuid age } }", {"keys": keys}
    )
    assert len(ucd_calls.profiles) == 40
    assert sorted(c.body["identifiers"]["uuid"] for c in ucd_calls.profiles) == sorted(
        f"u-{i}" for i in range(40)
    )
    users = data["users"]
    assert len(users) == 50
    assert [u and u["age"] for u in users[:30]] == list(range(30))
    assert [u and u["uuid"] for u in users[:3]] == ["u-0", "u-1", "u-2"]
    assert users[30:40] == [None] * 10
    assert [u["age"] for u in users[40:]] == list(range(10))


async def test_keys_naming_one_user_differently_are_one_call(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    await seed_ada(gateway)
    ucd_calls.clear()
    data = await gateway.ok(
        """{ users(keys: [{email: "ada@example.com"}, {email: "  Ada@Example.com"}]) { name } }"""
    )
    assert len(ucd_calls.profiles) == 1
    assert data["users"] == [{"name": "Ada"}, {"name": "Ada"}]


async def test_user_reads_run_concurrently_under_the_client_bound(
    gateway: Gateway, ucd_transport: UcdWire, ucd_calls: CallLog
) -> None:
    ucd_transport.delay = 0.01
    keys = ", ".join(f'{{uuid: "u-{i}"}}' for i in range(30))
    await gateway.ok(f"{{ users(keys: [{keys}]) {{ uuid }} }}")
    assert len(ucd_calls.profiles) == 30
    # The conftest's UcdClient allows 8 calls at a time.
    assert ucd_transport.max_in_flight == 8


async def test_several_selections_of_one_user_merge_into_one_call_and_filter_per_selection(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    await seed_ada(gateway)
    ucd_calls.clear()
    data = await gateway.ok(
        f"""{{
          a: user(key: {{email: "ada@example.com"}}) {{
            name
            recent: events(names: ["purchase"], last: 1) {{ productId }}
          }}
          b: user(key: {{email: "ada@example.com"}}) {{
            city
            old: events(names: ["purchase"], from: "{ago(days=200)}", to: "{ago(days=50)}") {{
              productId url
            }}
            views: events(names: ["view", "purchase"]) {{ name url }}
          }}
        }}"""
    )
    assert len(ucd_calls.profiles) == 1
    body = ucd_calls.profiles[0].body
    assert body["attributes"] == ["city", "name"]
    assert body["events"]["wanted"] == [
        {"event_name": "purchase", "params": ["product_id", "url"]},
        {"event_name": "view", "params": ["url"]},
    ]
    # One window for the call: from 200 days ago (b.old) to now (a.recent's default).
    span = body["events"]["end_date"] - body["events"]["start_date"]
    assert abs(span - 200 * 86_400) <= 2
    assert data["a"]["recent"] == [{"productId": "p-new"}]
    assert data["b"]["old"] == [{"productId": "p-old", "url": None}]
    assert [e["name"] for e in data["b"]["views"]] == ["purchase", "view", "purchase"]


async def test_attributes_without_names_lists_everything_but_iid(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    await seed_ada(gateway)
    ucd_calls.clear()
    data = await gateway.ok(
        '{ user(key: {email: "ada@example.com"}) { attributes { name custom value } } }'
    )
    assert ucd_calls.profiles[0].body["attributes"] == "*"
    by_name = {(a["name"], a["custom"]): a["value"] for a in data["user"]["attributes"]}
    assert by_name[("tier", True)] == "gold"
    assert by_name[("crm_id", True)] == "c-9"
    assert by_name[("gdpr", False)] is True
    assert ("iid", False) not in by_name


async def test_attributes_by_name_in_request_order(gateway: Gateway) -> None:
    await seed_ada(gateway)
    data = await gateway.ok(
        """{ user(key: {email: "ada@example.com"}) {
            attributes(names: ["surname", "gdpr_optin", "missing"], customNames: ["tier"]) {
                name value
            }
        } }"""
    )
    assert data["user"]["attributes"] == [
        {"name": "surname", "value": "Lovelace"},
        {"name": "gdpr", "value": True},
        {"name": "tier", "value": "gold"},
    ]


async def test_attribute_is_null_when_the_user_has_no_value(gateway: Gateway) -> None:
    await seed_ada(gateway)
    data = await gateway.ok(
        '{ user(key: {email: "ada@example.com"}) { attribute(name: "city") { value } } }'
    )
    assert data["user"] == {"attribute": None}


async def test_identifiers_list_defaults_and_the_custom_names_of_the_key(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    await seed_ada(gateway)
    ucd_calls.clear()
    data = await gateway.ok(
        """{ user(key: {custom: [{name: "crm_id", value: "c-9"}]}) {
            identifiers { type name value }
        } }"""
    )
    assert ucd_calls.profiles[0].body["attributes"] == ["c_crm_id", "email", "phone_number", "uuid"]
    assert data["user"]["identifiers"] == [
        {"type": "EMAIL", "name": "email", "value": "ada@example.com"},
        {"type": "CUSTOM", "name": "crm_id", "value": "c-9"},
    ]


async def test_unknown_user_is_null(gateway: Gateway) -> None:
    data = await gateway.ok('{ user(key: {uuid: "nobody"}) { name } }')
    assert data == {"user": None}


async def test_event_params_and_custom_params(gateway: Gateway, ucd_calls: CallLog) -> None:
    await seed_ada(gateway)
    ucd_calls.clear()
    data = await gateway.ok(
        """{ user(key: {email: "ada@example.com"}) { events(names: ["purchase"], last: 1) {
            source currency eventGroupId gift: param(name: "gift_wrap", custom: true)
            cur: param(name: "currency")
        } } }"""
    )
    wanted = ucd_calls.profiles[0].body["events"]["wanted"]
    assert wanted == [
        {
            "event_name": "purchase",
            "params": ["c_gift_wrap", "currency", "event_group_id"],
            "limit_per_source": 1,
        }
    ]
    assert data["user"]["events"] == [
        {"source": "api", "currency": "USD", "eventGroupId": "o-1", "gift": True, "cur": "USD"}
    ]


async def test_concurrent_requests_for_one_user_share_one_call(
    gateway: Gateway, ucd_transport: UcdWire, ucd_calls: CallLog
) -> None:
    await seed_ada(gateway)
    ucd_calls.clear()
    ucd_transport.delay = 0.02
    query = '{ user(key: {email: "ada@example.com"}) { name surname } }'
    results = await asyncio.gather(*(gateway.ok(query) for _ in range(20)))
    assert len(ucd_calls.profiles) == 1
    assert all(r == {"user": {"name": "Ada", "surname": "Lovelace"}} for r in results)


@dataclass
class HoldProfileAnswer(httpx.AsyncBaseTransport):
    """Holds the UCD's answer to the next profile call until ``release`` is set."""

    inner: httpx.AsyncBaseTransport
    release: asyncio.Event = field(default_factory=asyncio.Event)
    held: asyncio.Event = field(default_factory=asyncio.Event)
    armed: bool = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.armed and request.url.path == "/api/user/v1/profile":
            self.armed = False
            await response.aread()
            self.held.set()
            await self.release.wait()
        return response


async def test_a_read_after_a_write_never_joins_a_call_older_than_the_write(
    gateway: Gateway, ucd_transport: UcdWire
) -> None:
    """In-flight sharing must not hand a caller the answer the UCD gave before its write."""
    await seed(gateway, [{"key": {"uuid": "u"}, "attributes": {"name": "Old"}}])
    hold = HoldProfileAnswer(ucd_transport.inner)
    ucd_transport.inner = hold
    query = '{ user(key: {uuid: "u"}) { name } }'
    early = asyncio.ensure_future(gateway.ok(query))
    await asyncio.wait_for(hold.held.wait(), 5)  # the UCD answered "Old"; still on the wire
    await seed(gateway, [{"key": {"uuid": "u"}, "attributes": {"name": "New"}}])
    late = asyncio.ensure_future(gateway.ok(query))
    await asyncio.sleep(0.05)  # time to (wrongly) join the held call
    hold.release.set()
    assert await asyncio.wait_for(early, 5) == {"user": {"name": "Old"}}
    assert await asyncio.wait_for(late, 5) == {"user": {"name": "New"}}


async def test_export_job_reports_the_registry_state(gateway: Gateway) -> None:
    job = await gateway.exports.create(format="json", segment_id="1")
    query = "query($id: ID!) { exportJob(id: $id) { id status format segmentId requestedAt url } }"
    data = await gateway.ok(query, {"id": job.id})
    assert data["exportJob"]["status"] == "PENDING"
    assert data["exportJob"]["format"] == "JSON"
    assert data["exportJob"]["requestedAt"].endswith("Z")
    assert await gateway.exports.mark_ready(
        job.id, job.token, "http://ucd.test/exports/local/p/f.json"
    )
    data = await gateway.ok(query, {"id": job.id})
    assert data["exportJob"]["status"] == "READY"
    assert data["exportJob"]["url"] == "http://ucd.test/exports/local/p/f.json"
    assert (await gateway.ok(query, {"id": "nope"})) == {"exportJob": None}


async def test_a_ready_export_job_reads_expired_24_hours_later(gateway: Gateway) -> None:
    clock = [datetime(2025, 3, 1, 12, 0, tzinfo=UTC)]
    gateway.exports = ExportJobs(GATEWAY_BASE, MemoryState(), now=lambda: clock[0])
    job = await gateway.exports.create(format="csv", segment_id="1")
    assert await gateway.exports.mark_ready(
        job.id, job.token, "http://ucd.test/exports/local/p/f.csv"
    )
    query = "query($id: ID!) { exportJob(id: $id) { status readyAt expiresAt url } }"
    clock[0] += timedelta(hours=24)
    ready = await gateway.ok(query, {"id": job.id})
    assert ready["exportJob"] == {
        "status": "READY",
        "readyAt": "2025-03-01T12:00:00Z",
        "expiresAt": "2025-03-02T12:00:00Z",
        "url": "http://ucd.test/exports/local/p/f.csv",
    }
    clock[0] += timedelta(seconds=1)
    expired = await gateway.ok(query, {"id": job.id})
    assert expired["exportJob"]["status"] == "EXPIRED"


async def test_users_with_no_keys_is_an_empty_list_without_a_call(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    assert await gateway.ok("{ users(keys: []) { name } }") == {"users": []}
    assert ucd_calls.calls == []


async def test_the_default_window_is_the_30_days_before_now_and_times_come_back_in_utc(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    inside = datetime.now(UTC).replace(microsecond=0) - timedelta(days=29, hours=23)
    outside = inside - timedelta(hours=2)
    plus3 = timezone(timedelta(hours=3))
    await seed(
        gateway,
        [
            {
                "key": {"uuid": "u"},
                "events": [
                    # Sent with a +03:00 offset: the same instant comes back with Z.
                    {"name": "view", "timestamp": inside.astimezone(plus3).isoformat()},
                    {"name": "view", "timestamp": outside.strftime("%Y-%m-%dT%H:%M:%SZ")},
                ],
            }
        ],
    )
    ucd_calls.clear()
    data = await gateway.ok('{ user(key: {uuid: "u"}) { events(names: ["view"]) { timestamp } } }')
    assert data == {"user": {"events": [{"timestamp": inside.strftime("%Y-%m-%dT%H:%M:%SZ")}]}}
    window = ucd_calls.profiles[0].body["events"]
    assert window["end_date"] - window["start_date"] in range(30 * 86_400 - 1, 30 * 86_400 + 2)


async def test_a_custom_attribute_holding_a_date_string_comes_back_as_sent(
    gateway: Gateway,
) -> None:
    """Attribute.value is JSON: a string attribute is not reinterpreted as a DateTime."""
    value = "2025-01-01T00:00:00+03:00"
    await seed(
        gateway,
        [{"key": {"uuid": "u"}, "attributes": {"custom": [{"name": "since", "value": value}]}}],
    )
    data = await gateway.ok(
        '{ user(key: {uuid: "u"}) { attribute(name: "since", custom: true) { name custom value } '
        "} }"
    )
    assert data == {"user": {"attribute": {"name": "since", "custom": True, "value": value}}}


async def test_events_identifiers_and_attributes_of_one_user_share_one_call(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    await seed_ada(gateway)
    ucd_calls.clear()
    data = await gateway.ok(
        f"""{{ user(key: {{email: "ada@example.com"}}) {{
            last: events(names: ["purchase"], last: 1) {{ productId }}
            old: events(names: ["purchase"], from: "{ago(days=200)}", to: "{ago(days=50)}") {{
              productId
            }}
            identifiers {{ type name value }}
            attributes {{ name custom }}
        }} }}"""
    )
    (call,) = ucd_calls.calls
    assert call.body["attributes"] == "*"
    assert call.body["events"]["wanted"] == [{"event_name": "purchase", "params": ["product_id"]}]
    user = data["user"]
    assert user["last"] == [{"productId": "p-new"}]
    assert user["old"] == [{"productId": "p-old"}]
    assert {"type": "EMAIL", "name": "email", "value": "ada@example.com"} in user["identifiers"]
    assert {"name": "crm_id", "custom": True} in user["attributes"]


# --- push-down, asserted on the bodies the real UCD received -------------------------------

FRAGMENTS = """
query { user(key: {email: "ada@example.com"}) {
  ...Names
  ... on User { age }
  ... { locale }
  t: attribute(name: "tier", custom: true) { value }
  g: attribute(name: "gdpr_optin") { name value }
} }
fragment Names on User { first: name ...More }
fragment More on User { surname }
"""

DIRECTIVES = """
query($withAge: Boolean!, $skipName: Boolean!, $events: [String!]!) {
  user(key: {email: "ada@example.com"}) {
    age @include(if: $withAge)
    name @skip(if: $skipName)
    ... on User @skip(if: $skipName) { surname }
    ...Place @include(if: $withAge)
    events(names: $events) { name url }
  }
}
fragment Place on User { city }
"""

NAMED_ATTRIBUTES = """
{ user(key: {email: "ada@example.com"}) {
  attributes(names: ["surname", "gdpr_optin", "list_id", "missing"], customNames: ["tier"]) {
    name custom value
  }
} }
"""


def windows() -> str:
    """Built when the test runs: the windows are relative to now."""
    return f"""
{{ user(key: {{email: "ada@example.com"}}) {{
  recent: events(names: ["purchase"], last: 1) {{
    productId gift: param(name: "gift_wrap", custom: true)
  }}
  old: events(names: ["purchase"], from: "{ago(days=200)}", to: "{ago(days=50)}") {{
    productId cur: param(name: "currency")
  }}
  views: events(names: ["view"], from: "{ago(days=7)}") {{ url source }}
}} }}
"""


@pytest.mark.parametrize(
    ("query", "variables", "attributes", "wanted", "span_days", "user"),
    [
        pytest.param(
            FRAGMENTS,
            {},
            ["age", "c_tier", "gdpr", "lo", "name", "surname"],
            None,
            None,
            {
                "first": "Ada",
                "surname": "Lovelace",
                "age": 36,
                "locale": "en_GB",
                "t": {"value": "gold"},
                "g": {"name": "gdpr", "value": True},
            },
            id="fragments-inline-fragments-aliases",
        ),
        pytest.param(
            DIRECTIVES,
            {"withAge": True, "skipName": True, "events": ["view"]},
            ["age", "city"],
            [{"event_name": "view", "params": ["url"]}],
            30,
            {"age": 36, "city": None, "events": [{"name": "view", "url": "https://x.test/a"}]},
            id="variables-include-skip",
        ),
        pytest.param(
            DIRECTIVES,
            {"withAge": False, "skipName": False, "events": ["purchase"]},
            ["name", "surname"],
            [{"event_name": "purchase", "params": ["url"]}],
            30,
            {
                "name": "Ada",
                "surname": "Lovelace",
                "events": [{"name": "purchase", "url": None}] * 2,
            },
            id="variables-include-skip-flipped",
        ),
        pytest.param(
            NAMED_ATTRIBUTES,
            {},
            ["c_tier", "gdpr", "missing", "static_segment_id", "surname"],
            None,
            None,
            {
                "attributes": [
                    {"name": "surname", "custom": False, "value": "Lovelace"},
                    {"name": "gdpr", "custom": False, "value": True},
                    {"name": "static_segment_id", "custom": False, "value": [1, 2]},
                    {"name": "tier", "custom": True, "value": "gold"},
                ]
            },
            id="attributes-names-and-custom-names",
        ),
        pytest.param(
            windows,
            {},
            None,
            [
                {"event_name": "purchase", "params": ["c_gift_wrap", "currency", "product_id"]},
                {"event_name": "view", "params": ["url"]},
            ],
            200,
            {
                "recent": [{"productId": "p-new", "gift": True}],
                "old": [{"productId": "p-old", "cur": "USD"}],
                "views": [{"url": "https://x.test/a", "source": "api"}],
            },
            id="event-params-and-windows-merged",
        ),
    ],
)
async def test_the_selection_is_pushed_down_into_one_profile_body(
    gateway: Gateway,
    ucd_calls: CallLog,
    query: str | Callable[[], str],
    variables: dict[str, Any],
    attributes: list[str] | None,
    wanted: list[dict[str, Any]] | None,
    span_days: int | None,
    user: dict[str, Any],
) -> None:
    await seed_ada(gateway)
    ucd_calls.clear()
    data = await gateway.ok(query if isinstance(query, str) else query(), variables)
    (call,) = ucd_calls.calls
    assert call.path == "/api/user/v1/profile"
    assert call.body["identifiers"] == {"email": "ada@example.com"}
    assert call.body.get("attributes") == attributes
    if wanted is None:
        assert "events" not in call.body
    else:
        assert span_days is not None
        events = call.body["events"]
        assert events["wanted"] == wanted
        # One window for the call: the hull of the selections' windows, ending now.
        assert abs(events["end_date"] - datetime.now(UTC).timestamp()) <= 5
        assert abs(events["end_date"] - events["start_date"] - span_days * 86_400) <= 5
    assert data["user"] == user


# --- last pushed down as limit_per_source (§3.2.4) ---------------------------------------------

#: (productId, source) newest first: 4 web purchases, 2 app ones, interleaved.
TWO_SOURCES = [("p-1", "web"), ("p-2", "app"), ("p-3", "web"), ("p-4", "web"), ("p-5", "web")]
TWO_SOURCES += [("p-6", "app")]


def purchase(product: str, source: str, timestamp: str) -> dict[str, Any]:
    return {
        "name": "purchase",
        "timestamp": timestamp,
        "productId": product,
        "currency": "EUR",
        "unitSalePrice": 1.5,
        "eventGroupId": f"o-{product}",
        "params": {"source": source},
    }


async def seed_two_sources(gateway: Gateway) -> None:
    """p-N was bought N minutes ago, on the web or in the app."""
    events = [
        purchase(product, source, ago(minutes=int(product[2:]))) for product, source in TWO_SOURCES
    ]
    await seed(gateway, [{"key": {"uuid": "two"}, "events": events}])


def newest(n: int) -> list[dict[str, str]]:
    return [{"productId": p, "source": s} for p, s in TWO_SOURCES[:n]]


LAST = """query($last: Int) { user(key: {uuid: "two"}) {
  events(names: ["purchase"], last: $last) { productId source }
} }"""


@pytest.mark.parametrize("last", [1, 2, 3, 5, 6, 7])
async def test_last_travels_as_limit_per_source_and_still_answers_the_newest_n(
    gateway: Gateway, ucd_calls: CallLog, last: int
) -> None:
    """The newest N overall are among the newest N of each source, whatever the mix."""
    await seed_two_sources(gateway)
    ucd_calls.clear()
    data = await gateway.ok(LAST, {"last": last})
    (call,) = ucd_calls.calls
    assert call.body["events"]["wanted"] == [
        {"event_name": "purchase", "params": ["product_id"], "limit_per_source": last}
    ]
    assert data["user"]["events"] == newest(last)
    # The UCD itself sent at most N per source: 4 web and 2 app purchases exist.
    window = call.body["events"]
    wanted = (WantedEvents("purchase", ("product_id",), last),)
    events = EventsQuery(window["start_date"], window["end_date"], wanted)
    answer = await gateway.ucd.profile(ProfileRequest(wire_ref(call.body), events=events))
    assert answer is not None
    assert len(answer.events["purchase"]) == min(last, 4) + min(last, 2)


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(
            """{ user(key: {uuid: "two"}) {
              a: events(names: ["purchase"], last: 2) { productId source }
              b: events(names: ["purchase"], last: 3) { productId source }
            } }""",
            id="one-user-field",
        ),
        pytest.param(
            """{ x: user(key: {uuid: "two"}) {
              a: events(names: ["purchase"], last: 2) { productId source }
            }
            y: user(key: {uuid: "two"}) {
              b: events(names: ["purchase"], last: 3) { productId source }
            } }""",
            id="two-user-fields-merged-by-the-loader",
        ),
    ],
)
async def test_two_lasts_of_one_name_push_down_the_larger(
    gateway: Gateway, ucd_calls: CallLog, query: str
) -> None:
    await seed_two_sources(gateway)
    ucd_calls.clear()
    data = await gateway.ok(query)
    (call,) = ucd_calls.calls
    assert call.body["events"]["wanted"] == [
        {"event_name": "purchase", "params": ["product_id"], "limit_per_source": 3}
    ]
    found = {key: value for user in data.values() for key, value in user.items()}
    assert found == {"a": newest(2), "b": newest(3)}


async def test_a_selection_of_the_name_without_last_sends_no_limit(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    await seed_two_sources(gateway)
    ucd_calls.clear()
    data = await gateway.ok(
        """{ user(key: {uuid: "two"}) {
          recent: events(names: ["purchase"], last: 2) { productId source }
          all: events(names: ["purchase"]) { productId source }
        } }"""
    )
    (call,) = ucd_calls.calls
    assert call.body["events"]["wanted"] == [{"event_name": "purchase", "params": ["product_id"]}]
    assert data["user"] == {"recent": newest(2), "all": newest(6)}


@pytest.mark.parametrize(
    ("other", "wanted", "answer"),
    [
        pytest.param(
            'recent: events(names: ["purchase"], last: 2) { productId source }',
            [{"event_name": "purchase", "params": ["product_id"]}],
            newest(2),
            id="same-name",
        ),
        pytest.param(
            'views: events(names: ["view"]) { url }',
            [
                {"event_name": "purchase", "params": ["product_id"]},
                {"event_name": "view", "params": ["url"]},
            ],
            [],
            id="another-name-widens-the-hull",
        ),
    ],
)
async def test_selections_with_different_windows_send_no_limit(
    gateway: Gateway,
    ucd_calls: CallLog,
    other: str,
    wanted: list[dict[str, Any]],
    answer: list[dict[str, str]],
) -> None:
    """With limit 2 over the hull (to = now), the UCD would send p-1, p-3 (web) and p-2,
    p-6 (app): the window ending 3.5 minutes ago would find p-6 alone, not p-4 and p-5."""
    await seed_two_sources(gateway)
    ucd_calls.clear()
    data = await gateway.ok(
        f"""{{ user(key: {{uuid: "two"}}) {{
          {other}
          older: events(names: ["purchase"], to: "{ago(minutes=3.5)}", last: 2) {{
            productId source
          }}
        }} }}"""
    )
    (call,) = ucd_calls.calls
    assert call.body["events"]["wanted"] == wanted
    older = [{"productId": "p-4", "source": "web"}, {"productId": "p-5", "source": "web"}]
    assert data["user"].pop("older") == older
    assert list(data["user"].values()) == [answer]


async def test_a_limited_list_reaching_past_to_in_its_last_second_is_read_again_in_full(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    """The UCD's end_date is a whole second: an event half a second after ``to`` comes back,
    takes the only slot of limit 1, and is dropped by the resolver."""
    to = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    events = [
        purchase("late", "web", (to + timedelta(seconds=0.5)).isoformat()),
        purchase("early", "web", (to - timedelta(seconds=1)).isoformat()),
    ]
    await seed(gateway, [{"key": {"uuid": "edge"}, "events": events}])
    ucd_calls.clear()
    data = await gateway.ok(
        """query($to: DateTime!) { user(key: {uuid: "edge"}) {
          events(names: ["purchase"], to: $to, last: 1) { productId }
        } }""",
        {"to": to.isoformat()},
    )
    assert data["user"]["events"] == [{"productId": "early"}]
    first, second = ucd_calls.profiles
    assert first.body["events"]["wanted"][0]["limit_per_source"] == 1
    assert "limit_per_source" not in second.body["events"]["wanted"][0]


async def test_an_unlimited_read_does_not_join_a_limited_call_in_flight(
    gateway: Gateway, ucd_transport: UcdWire, ucd_calls: CallLog
) -> None:
    """The limited call holds the newest event of each source only; sharing it would
    answer ``events`` without ``last`` with 2 purchases instead of 6."""
    await seed_two_sources(gateway)
    ucd_calls.clear()
    hold = HoldProfileAnswer(ucd_transport.inner)
    ucd_transport.inner = hold
    limited = asyncio.ensure_future(gateway.ok(LAST, {"last": 1}))
    await asyncio.wait_for(hold.held.wait(), 5)  # answered with 2 events; still on the wire
    unlimited = asyncio.ensure_future(gateway.ok(LAST, {"last": None}))
    await asyncio.sleep(0.05)  # time to (wrongly) join the held call
    hold.release.set()
    assert (await asyncio.wait_for(limited, 5))["user"]["events"] == newest(1)
    assert (await asyncio.wait_for(unlimited, 5))["user"]["events"] == newest(6)
    assert len(ucd_calls.profiles) == 2
    assert gateway.reads.shared == 0


@dataclass
class RewriteProfileAnswers(httpx.AsyncBaseTransport):
    """Between the gateway and the local UCD: replaces text in E2 answers, so an event's
    ``created_date`` reaches the gateway in a form the local UCD itself never writes."""

    inner: httpx.AsyncBaseTransport
    replace: dict[str, str]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path != "/api/user/v1/profile":
            return response
        body = await response.aread()
        for old, new in self.replace.items():
            body = body.replace(old.encode(), new.encode())
        return httpx.Response(
            response.status_code,
            headers={"content-type": response.headers["content-type"]},
            content=body,
        )


async def test_last_answers_n_events_when_the_newest_has_a_time_the_resolvers_cannot_read(
    gateway: Gateway, ucd_transport: UcdWire, ucd_calls: CallLog
) -> None:
    """``2026-01-10T10:00Z`` (no seconds) is an instant to ``datetime.fromisoformat`` but
    not RFC 3339, so the resolvers drop the event. The ``last`` check read it with
    fromisoformat and kept the limited answer: ``last: 2`` answered one event."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    stamps = [(now - timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ") for m in (1, 2, 3)]
    events = [purchase(f"p-{m}", "web", stamp) for m, stamp in zip((1, 2, 3), stamps, strict=True)]
    await seed(gateway, [{"key": {"uuid": "two"}, "events": events}])
    ucd_transport.inner = RewriteProfileAnswers(
        ucd_transport.inner, {stamps[0]: stamps[0].replace(":00Z", "Z")}
    )
    ucd_calls.clear()
    data = await gateway.ok(LAST, {"last": 2})
    assert data["user"]["events"] == [
        {"productId": "p-2", "source": "web"},
        {"productId": "p-3", "source": "web"},
    ]
    # The limited call, then the same read without limit_per_source.
    assert [("limit_per_source" in c.body["events"]["wanted"][0]) for c in ucd_calls.profiles] == [
        True,
        False,
    ]
