"""Profile needs, their merging, and the per-request loader: gateway.loaders."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.coalesce import ProfileReads
from gateway.errors import UpstreamUnavailable
from gateway.loaders import (
    ALL_ATTRIBUTES,
    ProfileLoader,
    ProfileNeed,
    UserRef,
    limits_may_hide_events,
    profile_body,
)
from gateway.ucd.client import UcdClient
from tests.gateway.conftest import CallLog, UcdWire, fail_when_body_mentions, put_users

PURCHASE = ("purchase", frozenset({"product_id"}))
VIEW = ("view", frozenset({"url"}))


def test_user_ref_normalises_the_email_and_orders_custom_identifiers() -> None:
    a = UserRef.of(email="  Ada@Example.COM ", custom=[("b", "2"), ("a", "1")])
    b = UserRef.of(email="ada@example.com", custom=[("a", "1"), ("b", "2")])
    assert a == b
    assert hash(a) == hash(b)
    assert a.body() == {"identifiers": {"email": "ada@example.com", "custom": {"a": "1", "b": "2"}}}


def test_user_ref_body_sends_insider_id_and_identifiers() -> None:
    ref = UserRef.of(insider_id="iid-1", uuid="u")
    assert ref.body() == {"insider_id": "iid-1", "identifiers": {"uuid": "u"}}


def test_merge_unions_attributes_and_params_and_takes_the_window_hull() -> None:
    a = ProfileNeed(frozenset({"email"}), (PURCHASE,), (100, 200))
    b = ProfileNeed(frozenset({"name"}), (("purchase", frozenset({"url"})), VIEW), (300, 400))
    merged = a.merge(b)
    assert merged.attributes == frozenset({"email", "name"})
    assert dict(merged.events) == {
        "purchase": frozenset({"product_id", "url"}),
        "view": frozenset({"url"}),
    }
    assert merged.window == (100, 400)


def test_all_attributes_absorbs_names() -> None:
    merged = ProfileNeed(frozenset({"email"})).merge(ProfileNeed(ALL_ATTRIBUTES))
    assert merged.all_attributes


def test_covers_needs_attributes_events_params_and_window() -> None:
    wide = ProfileNeed(frozenset({"email", "name"}), (PURCHASE, VIEW), (100, 400))
    assert wide.covers(ProfileNeed(frozenset({"email"}), (PURCHASE,), (150, 400)))
    assert wide.covers(ProfileNeed(frozenset({"name"})))
    assert not wide.covers(ProfileNeed(frozenset({"city"})))
    assert not wide.covers(ProfileNeed(ALL_ATTRIBUTES))
    assert not wide.covers(ProfileNeed(events=(PURCHASE,), window=(99, 400)))
    assert not wide.covers(ProfileNeed(events=(PURCHASE,), window=(100, 401)))
    assert not wide.covers(
        ProfileNeed(events=(("purchase", frozenset({"url"})),), window=(100, 400))
    )
    assert not wide.covers(ProfileNeed(events=(("other", frozenset()),), window=(100, 400)))
    assert ProfileNeed(ALL_ATTRIBUTES).covers(ProfileNeed(frozenset({"c_tier"})))


def test_profile_body_has_one_window_for_every_wanted_event() -> None:
    need = ProfileNeed(frozenset({"name", "email"}), (PURCHASE, VIEW), (100, 400))
    assert profile_body(UserRef.of(uuid="u"), need) == {
        "identifiers": {"uuid": "u"},
        "attributes": ["email", "name"],
        "events": {
            "start_date": 100,
            "end_date": 400,
            "wanted": [
                {"event_name": "purchase", "params": ["product_id"]},
                {"event_name": "view", "params": ["url"]},
            ],
        },
    }


WEEK = (1_000, 2_000)


def last(n: int, *names: str, window: tuple[int, int] = WEEK) -> ProfileNeed:
    """The need of ``events(names: [...], last: n) { productId }`` over ``window``."""
    return ProfileNeed(
        events=tuple((name, frozenset({"product_id"})) for name in sorted(names)),
        window=window,
        lasts=tuple((name, n, window) for name in sorted(names)),
    )


def unbounded(*names: str, window: tuple[int, int] = WEEK) -> ProfileNeed:
    return ProfileNeed(
        events=tuple((name, frozenset({"product_id"})) for name in sorted(names)), window=window
    )


@pytest.mark.parametrize(
    ("needs", "limits"),
    [
        pytest.param([last(20, "purchase")], {"purchase": 20}, id="one-last"),
        pytest.param([last(5, "purchase"), last(20, "purchase")], {"purchase": 20}, id="max"),
        pytest.param([last(20, "purchase"), last(5, "purchase")], {"purchase": 20}, id="max-rev"),
        pytest.param([last(5, "purchase"), unbounded("purchase")], {}, id="one-without-last"),
        pytest.param([unbounded("purchase"), last(5, "purchase")], {}, id="without-last-first"),
        pytest.param(
            [last(5, "purchase"), unbounded("purchase"), last(7, "purchase")],
            {},
            id="unbounded-stays-unbounded",
        ),
        pytest.param(
            [last(5, "purchase", "view"), unbounded("view")],
            {"purchase": 5},
            id="per-name",
        ),
        pytest.param(
            [last(5, "purchase"), last(5, "purchase", window=(1_000, 1_500))],
            {},
            id="windows-differ",
        ),
        pytest.param(
            [last(5, "purchase"), unbounded("view", window=(500, 2_000))],
            {},
            id="another-name-widens-the-hull",
        ),
        pytest.param(
            [last(5, "purchase"), unbounded("view", window=(1_200, 1_800))],
            {"purchase": 5},
            id="another-name-inside-the-hull",
        ),
        pytest.param(
            [last(5, "purchase"), ProfileNeed(frozenset({"email"}))],
            {"purchase": 5},
            id="attributes-change-nothing",
        ),
    ],
)
def test_limits_are_the_largest_last_only_when_every_selection_has_one_over_the_hull(
    needs: list[ProfileNeed], limits: dict[str, int]
) -> None:
    merged = ProfileNeed.merge_all(needs)
    assert merged.limits() == limits
    wanted = profile_body(UserRef.of(uuid="u"), merged)["events"]["wanted"]
    assert {w["event_name"]: w["limit_per_source"] for w in wanted if "limit_per_source" in w} == (
        limits
    )


def test_a_limited_need_covers_only_needs_limited_as_tightly_over_its_window() -> None:
    flying = last(5, "purchase")
    assert flying.covers(last(5, "purchase"))
    assert flying.covers(last(3, "purchase"))
    assert flying.covers(ProfileNeed(frozenset()))
    assert not flying.covers(last(6, "purchase"))
    assert not flying.covers(unbounded("purchase"))
    # A narrower window may need events older than the newest 5 of the wider one.
    assert not flying.covers(last(3, "purchase", window=(1_000, 1_500)))
    # Without limits the window rule alone decides, as before.
    assert unbounded("purchase").covers(last(3, "purchase", window=(1_000, 1_500)))
    assert flying.unlimited().covers(unbounded("purchase"))


def event(created: str, source: str = "web") -> dict[str, Any]:
    return {"created_date": created, "source": source}


# 2,000 epoch seconds is 1970-01-01T00:33:20Z: the window's last second.
@pytest.mark.parametrize(
    ("events", "hides"),
    [
        pytest.param([event("1970-01-01T00:33:19Z")] * 2, False, id="full-before-the-last-second"),
        pytest.param(
            [event("1970-01-01T00:33:20.5Z"), event("1970-01-01T00:33:19Z")],
            True,
            id="full-reaching-the-last-second",
        ),
        pytest.param(
            [event("1970-01-01T00:33:20.5Z", "web"), event("1970-01-01T00:33:19Z", "app")],
            False,
            id="no-source-full",
        ),
        pytest.param([event("1970-01-01T00:33:20Z")], False, id="shorter-than-the-limit"),
        pytest.param([event("yesterday"), event("1970-01-01T00:33:19Z")], True, id="unparseable"),
    ],
)
def test_limits_may_hide_events_when_a_full_source_reaches_the_windows_last_second(
    events: list[dict[str, Any]], hides: bool
) -> None:
    answer = {"attributes": {}, "events": {"purchase": events}}
    assert limits_may_hide_events(last(2, "purchase"), answer) is hides
    assert limits_may_hide_events(unbounded("purchase"), answer) is False


async def test_keys_of_one_user_in_one_tick_cost_one_merged_call(
    ucd: UcdClient, ucd_calls: CallLog
) -> None:
    await put_users(
        ucd, {"identifiers": {"uuid": "u"}, "attributes": {"name": "Ada", "city": "Izmir"}}
    )
    ucd_calls.clear()
    loader = ProfileLoader(ProfileReads(ucd))
    ref = UserRef.of(uuid="u")
    first, second, third = await asyncio.gather(
        loader.load(ref, ProfileNeed(frozenset({"name"}))),
        loader.load(ref, ProfileNeed(frozenset({"city"}))),
        loader.load(ref, ProfileNeed(events=(VIEW,), window=(0, 10))),
    )
    assert len(ucd_calls.profiles) == 1
    assert ucd_calls.profiles[0].body["attributes"] == ["city", "name"]
    assert ucd_calls.profiles[0].body["events"]["wanted"] == [
        {"event_name": "view", "params": ["url"]}
    ]
    assert first is second is third
    assert first is not None
    assert first["attributes"]["name"] == "Ada"


async def test_distinct_users_cost_one_call_each_and_unknown_users_are_none(
    ucd: UcdClient, ucd_calls: CallLog
) -> None:
    await put_users(ucd, {"identifiers": {"uuid": "a"}, "attributes": {"name": "A"}})
    ucd_calls.clear()
    loader = ProfileLoader(ProfileReads(ucd))
    need = ProfileNeed(frozenset({"name"}))
    answers = await loader.load_many(
        [
            (UserRef.of(uuid="a"), need),
            (UserRef.of(uuid="nobody"), need),
            (UserRef.of(uuid="a"), need),
        ]
    )
    assert len(ucd_calls.profiles) == 2
    assert [a and a["attributes"]["name"] for a in answers] == ["A", None, "A"]


async def test_clear_makes_the_next_load_ask_again(ucd: UcdClient, ucd_calls: CallLog) -> None:
    await put_users(ucd, {"identifiers": {"uuid": "a"}, "attributes": {"name": "A"}})
    ucd_calls.clear()
    loader = ProfileLoader(ProfileReads(ucd))
    key = (UserRef.of(uuid="a"), ProfileNeed(frozenset({"name"})))
    await loader.load(*key)
    await loader.load(*key)
    assert len(ucd_calls.profiles) == 1
    loader.clear()
    await loader.load(*key)
    assert len(ucd_calls.profiles) == 2


async def test_a_failed_call_for_the_only_user_fails_every_key_of_it(
    ucd: UcdClient, ucd_transport: UcdWire
) -> None:
    ucd_transport.fail = fail_when_body_mentions('"uuid":"a"')
    loader = ProfileLoader(ProfileReads(ucd))
    ref = UserRef.of(uuid="a")
    results = await asyncio.gather(
        loader.load(ref, ProfileNeed(frozenset({"name"}))),
        loader.load(ref, ProfileNeed(frozenset({"city"}))),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [UpstreamUnavailable, UpstreamUnavailable]
