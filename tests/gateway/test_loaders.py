"""Profile needs, their merging, and the per-request loader: gateway.loaders."""

from __future__ import annotations

import asyncio

from gateway.coalesce import ProfileReads
from gateway.loaders import ALL_ATTRIBUTES, ProfileLoader, ProfileNeed, UserRef, profile_body
from gateway.ucd.client import UcdClient
from tests.gateway.conftest import CallLog, put_users

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
