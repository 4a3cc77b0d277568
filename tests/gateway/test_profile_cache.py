"""The profile cache over HTTP against the local UCD, in process memory and in a real
Redis: UCD calls counted (and the captured E2 requests read), invalidation per mutation,
lookups by every identifier, erasure leaving no byte of an email or phone behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from gateway.settings import Settings
from tests.gateway.cache_helpers import person, stored_bytes
from tests.gateway.conftest import CallLog, GatewayHttp, HookRelay, serve_gateway
from tests.gateway.redis_server import RedisServer

TTL = 60.0

UPSERT = """
mutation($users: [UserUpsertInput!]!) {
  upsertUsers(input: {users: $users}) { failureCount results { errors { message } } }
}
"""
READ = "query($key: UserKey!) { user(key: $key) { insiderId name surname } }"
READ_NAME = "query($key: UserKey!) { user(key: $key) { name } }"


@pytest.fixture(params=["memory", "redis"])
async def cached(
    request: pytest.FixtureRequest,
    settings: Settings,
    ucd_http: httpx.AsyncClient,
    hooks: HookRelay,
) -> AsyncIterator[GatewayHttp]:
    update: dict[str, Any] = {"profile_cache_ttl": TTL}
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        update["redis_url"] = SecretStr(server.url)
    async with serve_gateway(settings.model_copy(update=update), ucd_http, hooks) as served:
        yield served


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def write(gateway: GatewayHttp, key: dict[str, Any], **attributes: Any) -> None:
    data = await gateway.ok(UPSERT, {"users": [{"key": key, "attributes": attributes}]})
    assert data["upsertUsers"]["failureCount"] == 0, data


async def read(gateway: GatewayHttp, query: str, **variables: Any) -> tuple[Any, dict[str, Any]]:
    """The user, and ``extensions.cost.ucdCalls``."""
    body = await gateway.post(query, variables)
    assert "errors" not in body, body
    return body["data"]["user"], body["extensions"]["cost"]["ucdCalls"]


def requested(calls: CallLog) -> list[Any]:
    """The ``attributes`` of each E2 request since the log was cleared."""
    return [call.body.get("attributes") for call in calls.profiles]


async def test_a_second_read_is_answered_without_a_ucd_call(
    cached: GatewayHttp, ucd_calls: CallLog
) -> None:
    ids = person()
    await write(cached, {"email": ids["email"]}, name="Ada", phoneNumber=ids["phoneNumber"])
    ucd_calls.clear()
    first, cost = await read(cached, READ_NAME, key={"email": ids["email"]})
    assert first == {"name": "Ada"}
    assert cost == {"planned": 1, "actual": 1}
    # The miss asked for the identifiers too (no quota cost), to learn the aliases.
    assert requested(ucd_calls) == [["email", "name", "phone_number", "uuid"]]
    ucd_calls.clear()
    again, cost = await read(cached, READ_NAME, key={"email": ids["email"]})
    assert again == {"name": "Ada"}
    assert cost == {"planned": 1, "actual": 0, "cacheHits": 1}
    assert ucd_calls.profiles == []


async def test_metrics_show_the_hits_and_the_hit_ratio(cached: GatewayHttp) -> None:
    ids = person()
    await write(cached, {"uuid": ids["uuid"]}, name="Ann")

    async def scraped() -> dict[tuple[str, str], float]:
        response = await cached.client.get("/metrics")
        assert response.status_code == 200
        return {
            (found.name, found.labels.get("result", "")): found.value
            for family in text_string_to_metric_families(response.text)
            for found in family.samples
            if found.name.startswith("ucd_gateway_profile_cache_")
        }

    before = await scraped()
    for _ in range(4):  # one miss, three hits
        await read(cached, READ_NAME, key={"uuid": ids["uuid"]})
    # A key of several identifiers reads past the cache: a miss as well.
    await read(cached, READ_NAME, key={"uuid": ids["uuid"], "email": ids["email"]})
    after = await scraped()
    hits = ("ucd_gateway_profile_cache_reads_total", "hit")
    misses = ("ucd_gateway_profile_cache_reads_total", "miss")
    assert after[hits] - before.get(hits, 0) == 3
    assert after[misses] - before.get(misses, 0) == 2
    assert after[("ucd_gateway_profile_cache_hit_ratio", "")] == pytest.approx(
        after[hits] / (after[hits] + after[misses])
    )


async def test_a_read_of_more_fields_fetches_only_the_difference(
    cached: GatewayHttp, ucd_calls: CallLog
) -> None:
    ids = person()
    await write(cached, {"uuid": ids["uuid"]}, name="Bo", surname="Berg")
    await read(cached, READ_NAME, key={"uuid": ids["uuid"]})
    ucd_calls.clear()
    user, cost = await read(cached, READ, key={"uuid": ids["uuid"]})
    assert user["name"] == "Bo"
    assert user["surname"] == "Berg"
    assert requested(ucd_calls) == [["surname"]]
    assert cost["actual"] == 1
    ucd_calls.clear()
    fewer, cost = await read(cached, READ_NAME, key={"uuid": ids["uuid"]})
    assert fewer == {"name": "Bo"}
    assert ucd_calls.profiles == []


async def test_every_identifier_of_a_user_finds_the_cached_entry(
    cached: GatewayHttp, ucd_calls: CallLog
) -> None:
    ids = person()
    await write(
        cached, {"email": ids["email"]}, name="Cy", phoneNumber=ids["phoneNumber"], uuid=ids["uuid"]
    )
    first, _ = await read(cached, READ, key={"email": ids["email"]})
    ucd_calls.clear()
    for key in (
        {"phoneNumber": ids["phoneNumber"]},
        {"uuid": ids["uuid"]},
        {"email": ids["email"].upper()},  # normalised, as the UCD does
    ):
        user, cost = await read(cached, READ, key=key)
        assert user == first
        assert cost["cacheHits"] == 1
    # By insiderId: learned from every answer's iid.
    user, _ = await read(cached, READ, key={"insiderId": first["insiderId"]})
    assert user == first
    assert ucd_calls.profiles == []


async def test_a_key_of_several_identifiers_reads_past_the_cache(
    cached: GatewayHttp, ucd_calls: CallLog
) -> None:
    ids = person()
    await write(cached, {"email": ids["email"]}, name="Di", phoneNumber=ids["phoneNumber"])
    key = {"email": ids["email"], "phoneNumber": ids["phoneNumber"]}
    await read(cached, READ_NAME, key=key)
    ucd_calls.clear()
    user, _ = await read(cached, READ_NAME, key=key)
    assert user == {"name": "Di"}
    assert len(ucd_calls.profiles) == 1


async def test_fresh_reads_past_the_cache_and_refreshes_it(
    cached: GatewayHttp, ucd_calls: CallLog
) -> None:
    ids = person()
    await write(cached, {"uuid": ids["uuid"]}, name="Ed")
    await read(cached, READ_NAME, key={"uuid": ids["uuid"]})
    ucd_calls.clear()
    fresh = "query($key: UserKey!) { user(key: $key, fresh: true) { name } }"
    user, cost = await read(cached, fresh, key={"uuid": ids["uuid"]})
    assert user == {"name": "Ed"}
    assert cost == {"planned": 1, "actual": 1}
    assert len(ucd_calls.profiles) == 1


async def test_an_upsert_by_one_identifier_invalidates_reads_by_another(
    cached: GatewayHttp, ucd_calls: CallLog
) -> None:
    ids = person()
    await write(cached, {"email": ids["email"]}, name="Old", phoneNumber=ids["phoneNumber"])
    await read(cached, READ_NAME, key={"phoneNumber": ids["phoneNumber"]})
    await write(cached, {"email": ids["email"]}, name="New")
    user, _ = await read(cached, READ_NAME, key={"phoneNumber": ids["phoneNumber"]})
    assert user == {"name": "New"}


async def test_an_upsert_invalidates_only_the_attributes_it_wrote(
    cached: GatewayHttp, ucd_calls: CallLog
) -> None:
    ids = person()
    await write(cached, {"uuid": ids["uuid"]}, name="Fay", surname="Ford")
    await read(cached, READ, key={"uuid": ids["uuid"]})
    await write(cached, {"uuid": ids["uuid"]}, surname="Fox")
    ucd_calls.clear()
    user, _ = await read(cached, READ, key={"uuid": ids["uuid"]})
    assert (user["name"], user["surname"]) == ("Fay", "Fox")
    assert requested(ucd_calls) == [["surname"]]


async def test_deleting_one_attribute_leaves_the_others_cached(
    cached: GatewayHttp, ucd_calls: CallLog
) -> None:
    ids = person()
    tier = [{"name": "tier", "value": "gold"}]
    await write(cached, {"uuid": ids["uuid"]}, name="Gus", custom=tier)
    query = (
        'query($key: UserKey!) { user(key: $key) { name tier: attribute(name: "tier", '
        "custom: true) { value } } }"
    )
    user, _ = await read(cached, query, key={"uuid": ids["uuid"]})
    assert user == {"name": "Gus", "tier": {"value": "gold"}}
    delete = (
        "mutation($key: UserKey!) { deleteAttributes(users: [{key: $key, customNames: "
        '["tier"]}]) { failureCount } }'
    )
    assert (await cached.ok(delete, {"key": {"uuid": ids["uuid"]}}))["deleteAttributes"] == {
        "failureCount": 0
    }
    ucd_calls.clear()
    user, cost = await read(cached, READ_NAME, key={"uuid": ids["uuid"]})
    assert user == {"name": "Gus"}
    assert cost["cacheHits"] == 1
    user, _ = await read(cached, query, key={"uuid": ids["uuid"]})
    assert user == {"name": "Gus", "tier": None}
    assert requested(ucd_calls) == [["c_tier"]]


async def test_an_event_written_is_read_back_while_attributes_stay_cached(
    cached: GatewayHttp, ucd_calls: CallLog
) -> None:
    ids = person()
    await write(cached, {"uuid": ids["uuid"]}, name="Hal")
    window = f'from: "{ago(days=3)}", to: "{ago(days=-1)}"'
    query = (
        f'query($key: UserKey!) {{ user(key: $key) {{ name events(names: ["visit"], '
        f"{window}) {{ timestamp }} }} }}"
    )
    user, _ = await read(cached, query, key={"uuid": ids["uuid"]})
    assert user == {"name": "Hal", "events": []}
    ucd_calls.clear()
    again, cost = await read(cached, query, key={"uuid": ids["uuid"]})
    assert again == user
    assert cost["cacheHits"] == 1
    stamp = ago(days=1)
    event = {"name": "visit", "timestamp": stamp}
    data = await cached.ok(UPSERT, {"users": [{"key": {"uuid": ids["uuid"]}, "events": [event]}]})
    assert data["upsertUsers"]["failureCount"] == 0, data
    ucd_calls.clear()
    user, _ = await read(cached, query, key={"uuid": ids["uuid"]})
    assert user["events"] == [{"timestamp": stamp}]
    # Only the event list was read again: the name stayed cached.
    assert [call.body.get("attributes") for call in ucd_calls.profiles] == [None]


async def test_an_identifier_update_moves_the_reads(cached: GatewayHttp) -> None:
    ids = person()
    new_email = "moved." + ids["email"]
    await write(cached, {"email": ids["email"]}, name="Ida", uuid=ids["uuid"])
    await read(cached, READ_NAME, key={"email": ids["email"]})
    await read(cached, READ_NAME, key={"uuid": ids["uuid"]})
    update = (
        "mutation($old: String!, $new: String!) { updateIdentifier(old: {email: $old}, "
        "new: {email: $new}) { ok } }"
    )
    await cached.ok(update, {"old": ids["email"], "new": new_email})
    assert (await read(cached, READ_NAME, key={"email": ids["email"]}))[0] is None
    assert (await read(cached, READ_NAME, key={"email": new_email}))[0] == {"name": "Ida"}
    email = "query($key: UserKey!) { user(key: $key) { email } }"
    assert (await read(cached, email, key={"uuid": ids["uuid"]}))[0] == {"email": new_email}


async def test_an_identifier_delete_is_seen_by_every_alias(cached: GatewayHttp) -> None:
    ids = person()
    await write(cached, {"uuid": ids["uuid"]}, name="Jo", phoneNumber=ids["phoneNumber"])
    phone = "query($key: UserKey!) { user(key: $key) { phoneNumber } }"
    assert (await read(cached, phone, key={"uuid": ids["uuid"]}))[0] == {
        "phoneNumber": ids["phoneNumber"]
    }
    delete = "mutation($p: String!) { deleteIdentifier(identifier: {phoneNumber: $p}) { ok } }"
    await cached.ok(delete, {"p": ids["phoneNumber"]})
    assert (await read(cached, phone, key={"uuid": ids["uuid"]}))[0] == {"phoneNumber": None}
    assert (await read(cached, phone, key={"phoneNumber": ids["phoneNumber"]}))[0] is None


async def test_a_merging_upsert_invalidates_both_users(cached: GatewayHttp) -> None:
    ids, other = person(), person()
    await write(cached, {"email": ids["email"]}, name="Kim")
    await write(cached, {"phoneNumber": other["phoneNumber"]}, name="Lou", surname="Lane")
    await read(cached, READ, key={"email": ids["email"]})
    await read(cached, READ, key={"phoneNumber": other["phoneNumber"]})
    # Both identifiers in one key: the phone's profile merges into the email's (§4.4).
    await write(cached, {"email": ids["email"], "phoneNumber": other["phoneNumber"]}, city="Oslo")
    by_email, _ = await read(cached, READ, key={"email": ids["email"]})
    by_phone, _ = await read(cached, READ, key={"phoneNumber": other["phoneNumber"]})
    assert by_email == by_phone
    assert by_email["surname"] == "Lane"


async def test_a_user_deleted_reads_as_null_on_every_alias(cached: GatewayHttp) -> None:
    ids = person()
    await write(cached, {"uuid": ids["uuid"]}, name="Max", email=ids["email"])
    await read(cached, READ_NAME, key={"email": ids["email"]})
    delete = "mutation($key: UserKey!) { deleteUser(key: $key) { ok } }"
    body = await cached.post(delete, {"key": {"uuid": ids["uuid"]}})
    assert body["data"] == {"deleteUser": {"ok": True}}
    assert body["extensions"]["cost"]["ucdCalls"]["planned"] == 2
    assert (await read(cached, READ_NAME, key={"email": ids["email"]}))[0] is None
    assert (await read(cached, READ_NAME, key={"uuid": ids["uuid"]}))[0] is None


# --- erasure: no byte of the email or phone left behind ------------------------------------


@pytest.mark.parametrize("by", ["email", "phoneNumber", "uuid"])
async def test_erasure_leaves_no_byte_of_the_email_or_phone_in_the_store(
    cached: GatewayHttp, by: str
) -> None:
    ids = person()
    await write(
        cached,
        {"uuid": ids["uuid"]},
        name="Nia",
        email=ids["email"],
        phoneNumber=ids["phoneNumber"],
    )
    every = "query($key: UserKey!) { user(key: $key) { insiderId email phoneNumber name } }"
    user, _ = await read(cached, every, key={"phoneNumber": ids["phoneNumber"]})
    await read(cached, every, key={"email": ids["email"]})
    pii = (ids["email"].encode(), ids["phoneNumber"].encode())
    assert any(p in blob for blob in stored_bytes(cached) for p in pii)  # the test can fail
    erase = "mutation($key: UserKey!) { deletePii(key: $key) { ok } }"
    assert (await cached.ok(erase, {"key": {by: ids[by]}}))["deletePii"] == {"ok": True}
    assert not [blob for blob in stored_bytes(cached) for p in pii if p in blob]
    again, _ = await read(cached, every, key={"insiderId": user["insiderId"]})
    assert again["email"] is None
    assert again["phoneNumber"] is None
    assert not [blob for blob in stored_bytes(cached) for p in pii if p in blob]


async def test_erasure_by_insider_id_of_a_user_read_by_email(cached: GatewayHttp) -> None:
    ids = person()
    await write(cached, {"email": ids["email"]}, name="Oz")
    every = "query($key: UserKey!) { user(key: $key) { insiderId email } }"
    user, _ = await read(cached, every, key={"email": ids["email"]})
    erase = "mutation($key: UserKey!) { deleteUser(key: $key) { ok } }"
    await cached.ok(erase, {"key": {"insiderId": user["insiderId"]}})
    assert not [b for b in stored_bytes(cached) if ids["email"].encode() in b]
    assert (await read(cached, every, key={"email": ids["email"]}))[0] is None


async def test_a_write_by_a_custom_identifier_the_cache_never_saw_invalidates_the_user(
    cached: GatewayHttp, ucd_calls: CallLog
) -> None:
    ids = person()
    crm = {"custom": [{"name": "crm", "value": f"crm-{ids['uuid']}"}]}
    await write(cached, crm, name="Pam", email=ids["email"])
    await read(cached, READ_NAME, key={"email": ids["email"]})
    # The entry learned the email, phone and uuid, not the custom identifier: the write
    # by it cannot be followed to the user, so it outranks every entry.
    await write(cached, crm, name="Pat")
    assert (await read(cached, READ_NAME, key={"email": ids["email"]}))[0] == {"name": "Pat"}
    # Once read by it, the custom identifier is an alias: later writes are exact.
    await read(cached, READ_NAME, key=crm)
    other = person()
    await write(cached, {"uuid": other["uuid"]}, name="Ray")
    await read(cached, READ_NAME, key={"uuid": other["uuid"]})
    await write(cached, crm, name="Pia")
    ucd_calls.clear()
    assert (await read(cached, READ_NAME, key={"uuid": other["uuid"]}))[1]["cacheHits"] == 1
    assert (await read(cached, READ_NAME, key={"email": ids["email"]}))[0] == {"name": "Pia"}


async def test_a_write_by_insider_id_invalidates_reads_by_email(cached: GatewayHttp) -> None:
    ids = person()
    await write(cached, {"email": ids["email"]}, name="Quin")
    user, _ = await read(cached, READ, key={"email": ids["email"]})
    await write(cached, {"insiderId": user["insiderId"]}, name="Quil")
    assert (await read(cached, READ_NAME, key={"email": ids["email"]}))[0] == {"name": "Quil"}
