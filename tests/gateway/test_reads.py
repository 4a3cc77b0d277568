"""Profile reads: needs and their merging, in-flight sharing, the per-request loader."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.errors import UpstreamUnavailable
from gateway.reads.inflight import ProfileReads
from gateway.reads.loader import ProfileLoader
from gateway.reads.need import ProfileNeed, limits_may_hide_events
from gateway.ucd.answers import ProfileAnswer
from gateway.ucd.client import UcdClient
from gateway.ucd.names import ALL_ATTRIBUTES
from gateway.ucd.requests import UserRef
from tests.gateway.conftest import CallLog, UcdWire, fail_when_body_mentions, put_users

PURCHASE = ("purchase", frozenset({"product_id"}))
VIEW = ("view", frozenset({"url"}))


def test_user_ref_normalises_the_email_and_orders_custom_identifiers() -> None:
    a = UserRef.of(email="  Ada@Example.COM ", custom=[("b", "2"), ("a", "1")])
    b = UserRef.of(email="ada@example.com", custom=[("a", "1"), ("b", "2")])
    assert a == b
    assert hash(a) == hash(b)
    assert a.to_wire() == {
        "identifiers": {"email": "ada@example.com", "custom": {"a": "1", "b": "2"}}
    }


def test_user_ref_body_sends_insider_id_and_identifiers() -> None:
    ref = UserRef.of(insider_id="iid-1", uuid="u")
    assert ref.to_wire() == {"insider_id": "iid-1", "identifiers": {"uuid": "u"}}


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


def test_a_profile_request_has_one_window_for_every_wanted_event() -> None:
    need = ProfileNeed(frozenset({"name", "email"}), (PURCHASE, VIEW), (100, 400))
    assert need.request(UserRef.of(uuid="u")).to_wire() == {
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
    wanted = merged.request(UserRef.of(uuid="u")).to_wire()["events"]["wanted"]
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
        pytest.param(
            [event("1970-01-01T00:33Z"), event("1970-01-01T00:33:19Z")],
            True,
            id="not-rfc-3339-though-fromisoformat-reads-it",
        ),
    ],
)
def test_limits_may_hide_events_when_a_full_source_reaches_the_windows_last_second(
    events: list[dict[str, Any]], hides: bool
) -> None:
    answer = ProfileAnswer({}, {"purchase": events})
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
    assert first.attributes["name"] == "Ada"


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
    assert [a and a.attributes["name"] for a in answers] == ["A", None, "A"]


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


# --- in-flight sharing across requests ------------------------------------------------------


async def test_concurrent_reads_of_one_user_share_one_call(
    ucd_transport: UcdWire, ucd: UcdClient, ucd_calls: CallLog
) -> None:
    await put_users(ucd, {"identifiers": {"uuid": "u"}, "attributes": {"name": "A", "city": "X"}})
    ucd_calls.clear()
    ucd_transport.delay = 0.02
    reads = ProfileReads(ucd)
    ref = UserRef.of(uuid="u")
    wide = ProfileNeed(frozenset({"name", "city"}))
    answers = await asyncio.gather(
        reads.fetch(ref, wide),
        reads.fetch(ref, ProfileNeed(frozenset({"name"}))),
        reads.fetch(ref, wide),
    )
    assert len(ucd_calls.profiles) == 1
    assert reads.shared == 2
    assert answers[0] is answers[1] is answers[2]


async def test_a_read_the_flying_call_does_not_cover_sends_its_own(
    ucd_transport: UcdWire, ucd: UcdClient, ucd_calls: CallLog
) -> None:
    await put_users(ucd, {"identifiers": {"uuid": "u"}, "attributes": {"name": "A"}})
    ucd_calls.clear()
    ucd_transport.delay = 0.02
    reads = ProfileReads(ucd)
    ref = UserRef.of(uuid="u")
    await asyncio.gather(
        reads.fetch(ref, ProfileNeed(frozenset({"name"}))),
        reads.fetch(ref, ProfileNeed(frozenset({"city"}))),
        reads.fetch(UserRef.of(uuid="other"), ProfileNeed(frozenset({"name"}))),
    )
    assert len(ucd_calls.profiles) == 3
    # Landed calls are forgotten: a later read asks again.
    await reads.fetch(ref, ProfileNeed(frozenset({"name"})))
    assert len(ucd_calls.profiles) == 4


def views(*, last: int | None) -> ProfileNeed:
    window = (0, 2_000_000_000)
    return ProfileNeed(
        events=(("view", frozenset({"url"})),),
        window=window,
        lasts=() if last is None else (("view", last, window),),
    )


@pytest.mark.parametrize(
    ("flying", "joining", "calls"),
    [
        pytest.param(5, None, 2, id="limited-call-unlimited-need"),
        pytest.param(5, 6, 2, id="limited-call-larger-last"),
        pytest.param(5, 3, 1, id="limited-call-smaller-last"),
        pytest.param(None, 3, 1, id="unlimited-call-limited-need"),
    ],
)
async def test_a_read_joins_a_limited_call_only_when_the_limit_cuts_nothing_it_needs(
    ucd_transport: UcdWire,
    ucd: UcdClient,
    ucd_calls: CallLog,
    flying: int | None,
    joining: int | None,
    calls: int,
) -> None:
    now = datetime.now(UTC)
    events = [
        {"event_name": "view", "timestamp": (now - timedelta(hours=i)).isoformat()}
        for i in range(8)
    ]
    await put_users(ucd, {"identifiers": {"uuid": "u"}, "events": events})
    ucd_calls.clear()
    ucd_transport.delay = 0.02
    reads = ProfileReads(ucd)
    ref = UserRef.of(uuid="u")
    first, second = await asyncio.gather(
        reads.fetch(ref, views(last=flying)), reads.fetch(ref, views(last=joining))
    )
    assert len(ucd_calls.profiles) == calls
    assert reads.shared == 2 - calls
    assert first is not None
    assert second is not None
    assert len(first.events["view"]) == (flying or 8)
    if calls == 2:
        assert len(second.events["view"]) == (joining or 8)
    else:
        assert second is first
