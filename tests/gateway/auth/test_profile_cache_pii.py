"""The profile cache and the PII rule together, over HTTP against the local UCD, with API
keys on and the cache in process memory and in a real Redis.

The cache asks the UCD for a user's email, phone and uuid on a miss, to learn the
aliases invalidation follows. A caller without ``pii:read`` must never make the UCD be
asked for PII (gateway/auth/): its misses ask only for what it may see, and store
nothing (an entry that does not know its user's email and phone could not be found by a
write naming them). Hits on entries that callers with ``pii:read`` stored serve it what
it may see.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from pydantic import SecretStr

from gateway.auth.pii import pii_read_names
from gateway.settings import Settings
from tests.gateway.auth.conftest import auth_settings, body, call
from tests.gateway.cache_helpers import person, stored_bytes
from tests.gateway.conftest import CallLog, GatewayHttp, HookRelay, serve_gateway
from tests.gateway.redis_server import RedisServer

#: Custom attributes configured as PII besides the default ones.
CUSTOM_PII: Final = "loyalty_card"

UPSERT = """
mutation($users: [UserUpsertInput!]!) {
  upsertUsers(input: {users: $users}) { failureCount }
}
"""
#: What a caller without pii:read may see of a user (the rest of the query is withheld).
CITY = "query($key: UserKey!) { user(key: $key) { insiderId uuid city } }"
#: Every kind of PII and more: a reader gets FORBIDDEN at each PII field.
EVERY = """query($key: UserKey!) { user(key: $key) {
  insiderId uuid city email phoneNumber name
  card: attribute(name: "loyalty_card", custom: true) { value }
} }"""


@pytest.fixture(params=["memory", "redis"])
async def cached(
    request: pytest.FixtureRequest,
    keys_file: Path,
    ucd_http: httpx.AsyncClient,
    hooks: HookRelay,
) -> AsyncIterator[GatewayHttp]:
    """The gateway with API keys and the profile cache on."""
    update: dict[str, Any] = {"profile_cache_ttl": 60.0, "pii_attributes": CUSTOM_PII}
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        update["redis_url"] = SecretStr(server.url)
    async with serve_gateway(auth_settings(keys_file, None, **update), ucd_http, hooks) as served:
        yield served


def pii_names(settings: Settings) -> frozenset[str]:
    return pii_read_names(settings.pii_attributes)


def asked_pii(calls: CallLog, settings: Settings) -> list[Any]:
    """The E2 requests since the log was cleared that asked for PII (or every attribute)."""
    pii = pii_names(settings)
    return [
        call_.body
        for call_ in calls.profiles
        if call_.body.get("attributes") == "*" or pii & set(call_.body.get("attributes") or ())
    ]


async def as_(gateway: GatewayHttp, persona: str, query: str, **variables: Any) -> Any:
    response = await call(gateway, query, variables, persona=persona)
    assert response.status_code == 200, response.text
    return body(response)


async def seeded(gateway: GatewayHttp) -> dict[str, str]:
    """A user of this test alone, with every kind of PII; its identifiers."""
    ids = person()
    user = {
        "key": {"uuid": ids["uuid"]},
        "attributes": {
            "email": ids["email"],
            "phoneNumber": ids["phoneNumber"],
            "name": "Ada " + ids["uuid"],
            "city": "London",
            "custom": [{"name": "loyalty_card", "value": "LC-" + ids["uuid"]}],
        },
    }
    answer = await as_(gateway, "everything", UPSERT, users=[user])
    assert answer["data"]["upsertUsers"]["failureCount"] == 0, answer
    return ids


def pii_values(ids: dict[str, str]) -> list[str]:
    return [ids["email"], ids["phoneNumber"], "Ada " + ids["uuid"], "LC-" + ids["uuid"]]


def cost(answer: Any) -> dict[str, int]:
    calls: dict[str, int] = answer["extensions"]["cost"]["ucdCalls"]
    return calls


async def test_a_reader_without_pii_read_never_makes_the_cache_ask_for_pii(
    cached: GatewayHttp, ucd_calls: CallLog
) -> None:
    settings = cached.runtime.settings
    ids = await seeded(cached)
    ucd_calls.clear()
    for key in (
        {"email": ids["email"]},
        {"phoneNumber": ids["phoneNumber"]},
        {"uuid": ids["uuid"]},
    ):
        for _ in range(2):
            answer = await as_(cached, "reader", EVERY, key=key)
            user = answer["data"]["user"]
            assert (user["uuid"], user["city"]) == (ids["uuid"], "London")
            assert {tuple(e["path"]) for e in answer["errors"]} == {
                ("user", f) for f in ("email", "phoneNumber", "name", "card")
            }
            assert {e["extensions"]["code"] for e in answer["errors"]} == {"FORBIDDEN"}
            # Its misses store nothing: each read is one call, and none asked for PII.
            assert cost(answer) == {"planned": 1, "actual": 1}
    assert len(ucd_calls.profiles) == 6
    assert asked_pii(ucd_calls, settings) == []
    # Without PII the cache learned the uuid only: the reads asked for nothing else.
    assert {tuple(sorted(c.body["attributes"])) for c in ucd_calls.profiles} == {("city", "uuid")}
    assert cached.runtime.cache is not None
    assert cached.runtime.cache.hits == 0
    stored = stored_bytes(cached)
    assert not [b for b in stored for v in pii_values(ids) if v.encode() in b]
    # ``users`` goes through the same loader.
    ucd_calls.clear()
    many = "query($keys: [UserKey!]!) { users(keys: $keys) { city name } }"
    answer = await as_(cached, "reader", many, keys=[{"email": ids["email"]}, {"uuid": "nobody"}])
    assert answer["data"]["users"] == [{"city": "London", "name": None}, None]
    assert len(ucd_calls.profiles) == 2
    assert asked_pii(ucd_calls, settings) == []


async def test_entries_a_pii_reader_stored_serve_a_reader_only_what_it_may_see(
    cached: GatewayHttp, ucd_calls: CallLog
) -> None:
    ids = await seeded(cached)
    # A reader first: nothing stored, so the pii reader's read after it is a miss that
    # asks for (and gets) everything, correct.
    await as_(cached, "reader", CITY, key={"email": ids["email"]})
    ucd_calls.clear()
    answer = await as_(cached, "pii-reader", EVERY, key={"email": ids["email"]})
    assert "errors" not in answer, answer
    user = answer["data"]["user"]
    assert (user["email"], user["phoneNumber"], user["name"], user["city"]) == (
        ids["email"],
        ids["phoneNumber"],
        "Ada " + ids["uuid"],
        "London",
    )
    assert user["card"] == {"value": "LC-" + ids["uuid"]}
    assert cost(answer) == {"planned": 1, "actual": 1}
    again = await as_(cached, "pii-reader", EVERY, key={"phoneNumber": ids["phoneNumber"]})
    assert again["data"] == answer["data"]
    assert cost(again)["cacheHits"] == 1
    # The reader is now served from that entry, by any identifier, without PII.
    ucd_calls.clear()
    for key in (
        {"email": ids["email"]},
        {"phoneNumber": ids["phoneNumber"]},
        {"uuid": ids["uuid"]},
    ):
        response = await call(cached, EVERY, {"key": key}, persona="reader")
        hit = body(response)
        assert hit["data"]["user"]["city"] == "London"
        assert hit["data"]["user"]["insiderId"] == user["insiderId"]
        assert cost(hit) == {"planned": 1, "actual": 0, "cacheHits": 1}
        assert not [v for v in pii_values(ids) if v in response.text]
    assert ucd_calls.profiles == []


async def test_after_a_write_a_reader_reads_the_new_value_without_asking_for_pii(
    cached: GatewayHttp, ucd_calls: CallLog
) -> None:
    settings = cached.runtime.settings
    ids = await seeded(cached)
    await as_(cached, "pii-reader", EVERY, key={"uuid": ids["uuid"]})
    moved = {"key": {"email": ids["email"]}, "attributes": {"city": "Paris"}}
    assert (await as_(cached, "writer", UPSERT, users=[moved]))["data"]["upsertUsers"] == {
        "failureCount": 0
    }
    ucd_calls.clear()
    answer = await as_(cached, "reader", CITY, key={"phoneNumber": ids["phoneNumber"]})
    assert answer["data"]["user"]["city"] == "Paris"
    # Only the city was outranked; the entry still knows the identifiers, so only the
    # city is asked, and the entry is stored again: the next read is a hit.
    assert [c.body["attributes"] for c in ucd_calls.profiles] == [["city"]]
    again = await as_(cached, "reader", CITY, key={"uuid": ids["uuid"]})
    assert again["data"] == answer["data"]
    assert cost(again)["cacheHits"] == 1
    # An identifier change outranks the whole entry: a reader may not learn the
    # identifiers again, so its reads ask no PII and store nothing ...
    phone = "+4916999" + ids["phoneNumber"][-5:]
    update = (
        "mutation($old: String!, $new: String!) { updateIdentifier(old: {phoneNumber: $old}, "
        "new: {phoneNumber: $new}) { ok } }"
    )
    updated = await as_(cached, "identity", update, old=ids["phoneNumber"], new=phone)
    assert updated["data"] == {"updateIdentifier": {"ok": True}}, updated
    ucd_calls.clear()
    for _ in range(2):
        answer = await as_(cached, "reader", CITY, key={"email": ids["email"]})
        assert answer["data"]["user"]["city"] == "Paris"
        assert cost(answer)["actual"] == 1
    assert asked_pii(ucd_calls, settings) == []
    # ... and a pii reader after it sees every new value, by the new phone too.
    answer = await as_(cached, "pii-reader", EVERY, key={"email": ids["email"]})
    assert (answer["data"]["user"]["phoneNumber"], answer["data"]["user"]["city"]) == (
        phone,
        "Paris",
    )
    by_phone = await as_(cached, "pii-reader", EVERY, key={"phoneNumber": phone})
    assert by_phone["data"] == answer["data"]
    assert cost(by_phone)["cacheHits"] == 1


async def test_erasure_after_reads_with_and_without_pii_leaves_no_byte_of_it(
    cached: GatewayHttp, ucd_calls: CallLog
) -> None:
    settings = cached.runtime.settings
    ids = await seeded(cached)
    user = (await as_(cached, "pii-reader", EVERY, key={"email": ids["email"]}))["data"]["user"]
    await as_(cached, "reader", CITY, key={"phoneNumber": ids["phoneNumber"]})
    pii = [ids["email"].encode(), ids["phoneNumber"].encode()]
    assert [b for b in stored_bytes(cached) for p in pii if p in b]  # the test can fail
    erase = "mutation($key: UserKey!) { deletePii(key: $key) { ok } }"
    erased = await as_(cached, "eraser", erase, key={"phoneNumber": ids["phoneNumber"]})
    assert erased["data"] == {"deletePii": {"ok": True}}, erased
    assert not [b for b in stored_bytes(cached) for p in pii if p in b]
    ucd_calls.clear()
    answer = await as_(cached, "reader", CITY, key={"insiderId": user["insiderId"]})
    assert answer["data"]["user"]["insiderId"] == user["insiderId"]
    assert asked_pii(ucd_calls, settings) == []
    answer = await as_(cached, "pii-reader", EVERY, key={"insiderId": user["insiderId"]})
    assert (answer["data"]["user"]["email"], answer["data"]["user"]["phoneNumber"]) == (None, None)
    assert not [b for b in stored_bytes(cached) for p in pii if p in b]


async def test_a_write_by_email_is_seen_by_a_reader_that_read_by_uuid(
    cached: GatewayHttp, ucd_calls: CallLog
) -> None:
    # Were the reader's miss stored, its entry would not know the email, and a write by
    # email could not be followed to it: the reader would read London after the write.
    ids = await seeded(cached)
    first = await as_(cached, "reader", CITY, key={"uuid": ids["uuid"]})
    assert first["data"]["user"]["city"] == "London"
    moved = {"key": {"email": ids["email"]}, "attributes": {"city": "Oslo"}}
    assert (await as_(cached, "writer", UPSERT, users=[moved]))["data"]["upsertUsers"] == {
        "failureCount": 0
    }
    after = await as_(cached, "reader", CITY, key={"uuid": ids["uuid"]})
    assert after["data"]["user"]["city"] == "Oslo"
    assert asked_pii(ucd_calls, cached.runtime.settings) == []
