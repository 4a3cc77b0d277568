"""The shared E2/E3 request parts (§3.2.2, §3.2.4): parsing and event selection.

Selection is tested on a bare in-memory database with the store's schema, in both orders
(E2 newest first, E3 oldest first).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from gateway.local_ucd.events.query import (
    EventFilter,
    WantedItem,
    distinct_wanted,
    lookup_param,
    parse_attributes_request,
    parse_events_request,
    parse_selection,
    render_event,
    resolve_attribute_names,
    select_events,
)
from gateway.local_ucd.http import ApiError
from gateway.local_ucd.store.database import SCHEMA
from gateway.local_ucd.timefmt import parse_rfc3339_us


def error_text(exc: pytest.ExceptionInfo[ApiError]) -> str:
    assert exc.value.status == 400
    text: str = exc.value.body["error"]
    return text


# -- parsing ----------------------------------------------------------------------------


def test_attributes_star_forms() -> None:
    assert parse_attributes_request("*") == "*"
    assert parse_attributes_request(["*"]) == "*"
    assert parse_attributes_request(["email", "*"]) == "*"
    assert parse_attributes_request(["email", "email"]) == ["email", "email"]
    assert parse_attributes_request([]) == []
    for bad in ("email", "**", 3, {"*": 1}, ["email", None]):
        with pytest.raises(ApiError) as exc:
            parse_attributes_request(bad)
        assert error_text(exc) == "attributes must be array: bad request"


def test_resolve_attribute_names_dedupes_after_resolution() -> None:
    names = ["gdpr_optin", "gdpr", "iid", "locale", "lo", "em", "c_tier", "c_tier", "mystery"]
    assert [(r.key, r.kind) for r in resolve_attribute_names(names)] == [
        ("gdpr", "default"),
        ("lo", "default"),
        ("email", "default"),
        ("c_tier", "custom"),
        ("mystery", "unknown"),
    ]


def test_parse_events_request_values() -> None:
    events = parse_events_request(
        {
            "start_date": 10.0,
            "end_date": 20,
            "wanted": [
                {"event_name": "a", "params": ["x", "c_y"]},
                {
                    "event_name": "b",
                    "params": [],
                    "filters": [{"key": "c_y", "operator": "eq", "values": [1, "1"]}],
                    "limit_per_source": 2.0,
                    "ignored": True,
                },
                {"event_name": "a", "params": ["z"], "filters": None, "limit_per_source": None},
            ],
        }
    )
    assert (events.start_s, events.end_s) == (10, 20)
    assert isinstance(events.start_s, int)
    assert events.wanted == (
        WantedItem("a", ("x", "c_y")),
        WantedItem("b", (), (EventFilter("c_y", (1, "1")),), 2),
        WantedItem("a", ("z",)),
    )
    assert [item.params for item in distinct_wanted(events)] == [("x", "c_y"), ()]
    assert distinct_wanted(None) == []


def test_equal_bounds_are_a_valid_window() -> None:
    events = parse_events_request({"start_date": 5, "end_date": 5, "wanted": []})
    assert (events.start_s, events.end_s, events.wanted) == (5, 5, ())


def test_parse_selection_order() -> None:
    """The 'neither' check first, then attributes, then events (E3 shares this order)."""
    with pytest.raises(ApiError) as exc:
        parse_selection({"attributes": None})
    assert error_text(exc) == "either attributes or events must be specified: bad request"
    with pytest.raises(ApiError) as exc:
        parse_selection({"attributes": 1, "events": 1})
    assert error_text(exc) == "attributes must be array: bad request"
    with pytest.raises(ApiError) as exc:
        parse_selection({"attributes": "*", "events": 1})
    assert error_text(exc) == "events must be object: bad request"
    selection = parse_selection({"events": {"start_date": 1, "end_date": 1, "wanted": []}})
    assert selection.attributes is None
    assert selection.events is not None


@pytest.mark.parametrize(
    ("filters", "text"),
    [
        pytest.param([None], "events.wanted.0.filters.0 must be object", id="item-null"),
        pytest.param(
            [{"key": 1, "operator": "eq", "values": [1]}],
            "events.wanted.0.filters.0.key must be string",
            id="key-number",
        ),
        pytest.param(
            [{"key": "a", "values": [1]}],
            "events.wanted.0.filters.0.operator is required",
            id="no-operator",
        ),
        pytest.param(
            [{"key": "a", "operator": "EQ", "values": [1]}],
            "events.wanted.0.filters.0.operator must be eq",
            id="upper",
        ),
        pytest.param(
            [{"key": "a", "operator": "eq", "values": 1}],
            "events.wanted.0.filters.0.values must be array",
            id="scalar",
        ),
        pytest.param(
            [
                {"key": "a", "operator": "eq", "values": [1]},
                {"key": "b", "operator": "in", "values": [1]},
            ],
            "events.wanted.0.filters.1.operator must be eq",
            id="second",
        ),
    ],
)
def test_filter_errors(filters: Any, text: str) -> None:
    with pytest.raises(ApiError) as exc:
        parse_events_request(
            {
                "start_date": 1,
                "end_date": 2,
                "wanted": [{"event_name": "a", "params": [], "filters": filters}],
            }
        )
    assert error_text(exc) == f"{text}: bad request"


@pytest.mark.parametrize("limit", [0, -1, 1.5, True, "1", [1]])
def test_limit_per_source_errors(limit: Any) -> None:
    with pytest.raises(ApiError) as exc:
        parse_events_request(
            {
                "start_date": 1,
                "end_date": 2,
                "wanted": [{"event_name": "a", "params": [], "limit_per_source": limit}],
            }
        )
    assert (
        error_text(exc) == "events.wanted.0.limit_per_source must be positive integer: bad request"
    )


# -- selection --------------------------------------------------------------------------


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:")
    connection.executescript(SCHEMA)
    connection.execute("INSERT INTO profiles VALUES (1, 'local', 'p-1', 0, 0)")
    connection.execute("INSERT INTO profiles VALUES (2, 'local', 'p-2', 0, 0)")
    yield connection
    connection.close()


def add(
    conn: sqlite3.Connection,
    name: str,
    timestamp: str,
    source: str = "api",
    profile: int = 1,
    **params: Any,
) -> None:
    custom = {k[2:]: v for k, v in params.items() if k.startswith("c_")}
    default = {k: v for k, v in params.items() if not k.startswith("c_")}
    conn.execute(
        "INSERT INTO events (profile_pk, name, ts_us, source, params, custom, dedupe)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            profile,
            name,
            parse_rfc3339_us(timestamp),
            source,
            orjson.dumps(default),
            orjson.dumps(custom),
            os.urandom(16),
        ),
    )


def numbers(
    conn: sqlite3.Connection, item: WantedItem, start: int, end: int, *, newest_first: bool
) -> list[Any]:
    return [
        row.params.get("n")
        for row in select_events(conn, 1, item, start, end, newest_first=newest_first)
    ]


def test_orders_both_ways_with_storage_order_ties(conn: sqlite3.Connection) -> None:
    add(conn, "view", "2025-01-02T00:00:00Z", n="tie-1")
    add(conn, "view", "2025-01-03T00:00:00Z", n="late")
    add(conn, "view", "2025-01-02T00:00:00Z", n="tie-2")
    add(conn, "view", "2025-01-01T00:00:00Z", n="early")
    add(conn, "view", "2025-01-01T00:00:00Z", profile=2, n="someone else")
    add(conn, "click", "2025-01-01T00:00:00Z", n="other name")
    item = WantedItem("view", ())
    assert numbers(conn, item, 0, 2**40, newest_first=True) == ["late", "tie-2", "tie-1", "early"]
    assert numbers(conn, item, 0, 2**40, newest_first=False) == ["early", "tie-1", "tie-2", "late"]


def test_limit_per_source_follows_the_order(conn: sqlite3.Connection) -> None:
    for second, source in enumerate(["web", "api", "web", "web", "api"]):
        add(conn, "view", f"2025-01-01T00:00:0{second}Z", source, n=second)
    item = WantedItem("view", (), limit_per_source=2)
    assert numbers(conn, item, 0, 2**40, newest_first=True) == [4, 3, 2, 1]
    assert numbers(conn, item, 0, 2**40, newest_first=False) == [0, 1, 2, 4]


def test_window_floors_seconds_before_1970(conn: sqlite3.Connection) -> None:
    """floor(-0.5 s) is -1, so an event at 1969-12-31T23:59:59.5Z belongs to second -1."""
    add(conn, "view", "1969-12-31T23:59:59.5Z", n=1)
    item = WantedItem("view", ())
    assert numbers(conn, item, -1, -1, newest_first=True) == [1]
    assert numbers(conn, item, 0, 10, newest_first=True) == []
    assert numbers(conn, item, -10, -2, newest_first=True) == []


def test_lookup_and_render(conn: sqlite3.Connection) -> None:
    add(conn, "view", "2025-01-01T00:00:00.250Z", "web", n=1, tags=["a"], c_n=2)
    (row,) = select_events(conn, 1, WantedItem("view", ()), 0, 2**40, newest_first=True)
    assert lookup_param(row, "n") == (True, 1)
    assert lookup_param(row, "c_n") == (True, 2)
    assert lookup_param(row, "source") == (True, "web")
    assert lookup_param(row, "c_missing") == (False, None)
    assert render_event(row, ["c_n", "tags", "n", "n", "source", "event_name", "missing"]) == {
        "created_date": "2025-01-01T00:00:00.25Z",
        "source": "web",
        "c_n": 2,
        "tags": ["a"],
        "n": 1,
    }
