"""Mutations through the schema: batching, coalescing, error paths, read-back."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from gateway.exports import ExportJobs
from gateway.reads.inflight import ProfileReads
from gateway.settings import Settings
from gateway.state.memory import MemoryState
from gateway.ucd.client import UcdClient
from gateway.ucd.requests import ProfileRequest, UserRef
from gateway.upserts import UpsertCoalescer
from tests.gateway.conftest import (
    UPSERT,
    CallLog,
    Gateway,
    HookRelay,
    insider_id,
    put_users,
    seed,
)


def upsert_item(i: int, **extra: Any) -> dict[str, Any]:
    return {"key": {"uuid": f"u-{i}"}, "attributes": {"age": i}, **extra}


async def test_one_mutation_upserting_2500_users_costs_3_upsert_calls(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    data = await gateway.ok(
        UPSERT, {"input": {"users": [upsert_item(i) for i in range(2500)], "skipHook": True}}
    )
    payload = data["upsertUsers"]
    assert len(ucd_calls.upserts) == 3
    assert [len(c.body["users"]) for c in ucd_calls.upserts] == [1000, 1000, 500]
    assert all(c.body["skip_hook"] is True for c in ucd_calls.upserts)
    assert payload["successCount"] == 2500
    assert payload["failureCount"] == 0
    assert [r["index"] for r in payload["results"]] == list(range(2500))
    read = await gateway.ok('{ users(keys: [{uuid: "u-0"}, {uuid: "u-2499"}]) { age } }')
    assert read == {"users": [{"age": 0}, {"age": 2499}]}


async def test_200_concurrent_single_user_upserts_cost_one_upsert_call(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    results = await asyncio.gather(
        *(gateway.ok(UPSERT, {"input": {"users": [upsert_item(i)]}}) for i in range(200))
    )
    assert len(ucd_calls.upserts) == 1
    assert len(ucd_calls.upserts[0].body["users"]) == 200
    assert all(r["upsertUsers"]["successCount"] == 1 for r in results)


async def test_each_coalesced_request_gets_only_its_own_result(
    gateway: Gateway, ucd: UcdClient, ucd_calls: CallLog
) -> None:
    await put_users(ucd, {"identifiers": {"uuid": "known"}, "attributes": {"age": 1}})
    iid = await insider_id(ucd, {"uuid": "known"})
    ucd_calls.clear()
    good = {"key": {"insiderId": iid}, "attributes": {"age": 2}}
    # The UCD alone knows this insider_id does not exist: only it can refuse the user.
    bad = {"key": {"insiderId": "iid-404"}, "attributes": {"age": 3}}
    first, second = await asyncio.gather(
        gateway.ok(UPSERT, {"input": {"users": [good]}}),
        gateway.ok(UPSERT, {"input": {"users": [bad]}}),
    )
    assert len(ucd_calls.upserts) == 1
    assert first["upsertUsers"] == {
        "successCount": 1,
        "failureCount": 0,
        "results": [{"index": 0, "ok": True, "errors": []}],
    }
    assert second["upsertUsers"] == {
        "successCount": 0,
        "failureCount": 1,
        "results": [
            {
                "index": 0,
                "ok": False,
                "errors": [
                    {"path": "users.0.key.insiderId", "message": "no such user for this insider_id"}
                ],
            }
        ],
    }


async def test_ucd_refusals_map_back_to_the_input_index_and_path(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    users = [upsert_item(i) for i in range(1500)]
    users[1203] = {"key": {"insiderId": "iid-missing"}, "attributes": {"age": 1}}
    data = await gateway.ok(UPSERT, {"input": {"users": users}})
    payload = data["upsertUsers"]
    assert len(ucd_calls.upserts) == 2
    assert payload["successCount"] == 1499
    assert payload["failureCount"] == 1
    assert payload["results"][1203] == {
        "index": 1203,
        "ok": False,
        "errors": [
            {"path": "users.1203.key.insiderId", "message": "no such user for this insider_id"}
        ],
    }


async def test_upsert_writes_the_ucd_names(gateway: Gateway, ucd_calls: CallLog) -> None:
    await seed(
        gateway,
        [
            {
                "key": {
                    "email": " Ada@Example.com",
                    "custom": [{"name": "crm_id", "value": "c-9"}],
                },
                "attributes": {
                    "gdprOptin": True,
                    "locale": "en_GB",
                    "staticSegmentIds": [3],
                    "birthday": "1989-12-10T03:00:00+03:00",
                    "custom": [{"name": "tier", "value": "gold"}],
                },
                "events": [
                    {
                        "name": "purchase",
                        "timestamp": "2025-01-11T00:35:20+03:00",
                        "productId": "p",
                        "productName": "Phone",
                        "currency": "USD",
                        "unitSalePrice": 1.5,
                        "eventGroupId": "o",
                        "params": {"referrer": "ad"},
                        "custom": {"gift_wrap": True},
                    }
                ],
                "appendArrays": False,
            }
        ],
    )
    (user,) = ucd_calls.upserts[0].body["users"]
    assert user == {
        "identifiers": {"email": "ada@example.com", "custom": {"crm_id": "c-9"}},
        "attributes": {
            "birthday": "1989-12-10T00:00:00Z",
            "locale": "en_GB",
            "gdpr_optin": True,
            "static_segment_id": [3],
            "custom": {"tier": "gold"},
        },
        "events": [
            {
                "event_name": "purchase",
                "timestamp": "2025-01-10T21:35:20Z",
                "event_params": {
                    "referrer": "ad",
                    "product_id": "p",
                    "name": "Phone",
                    "currency": "USD",
                    "unit_sale_price": 1.5,
                    "event_group_id": "o",
                    "custom": {"gift_wrap": True},
                },
            }
        ],
        "append": False,
    }


@pytest.mark.parametrize(
    "ucd_faults", [{"endpoints": {"upsert": {"error_500_rate": 1}}}], indirect=True
)
@pytest.mark.parametrize("count", [pytest.param(1, id="coalesced"), pytest.param(2, id="batched")])
async def test_a_failed_upsert_call_is_an_error_with_its_code(
    gateway: Gateway, ucd_calls: CallLog, count: int
) -> None:
    users = [upsert_item(i) for i in range(count)]
    result = await gateway.execute(UPSERT, {"input": {"users": users}})
    assert result.errors is not None
    assert result.errors[0].extensions == {"code": "UPSTREAM_ERROR", "status": 500}
    # The first answer and max_retries (2) more: upserts are safe to repeat.
    assert len(ucd_calls.upserts) == 3


DELETE_ATTRIBUTES = """
mutation($users: [DeleteAttributesInput!]!) {
  deleteAttributes(users: $users) {
    successCount failureCount results { index ok errors { path message } }
  }
}
"""


async def test_delete_attributes_sends_whole_and_partial_and_maps_failures(
    gateway: Gateway, ucd: UcdClient, ucd_calls: CallLog
) -> None:
    await put_users(
        ucd,
        {
            "identifiers": {"uuid": "u"},
            "attributes": {
                "name": "A",
                "static_segment_id": [1, 2],
                "custom": {"tier": "x", "colors": ["g", "r"]},
            },
        },
    )
    ucd_calls.clear()
    data = await gateway.ok(
        DELETE_ATTRIBUTES,
        {
            "users": [
                {
                    "key": {"uuid": "u"},
                    "names": ["name"],
                    "customNames": ["tier"],
                    "values": [
                        {"name": "static_segment_id", "values": [1]},
                        {"name": "colors", "custom": True, "values": ["g"]},
                    ],
                },
                {"key": {"uuid": "nobody"}, "names": ["name"]},
            ]
        },
    )
    assert len(ucd_calls.to("/api/user/v1/attribute/delete")) == 1
    assert ucd_calls.calls[0].body["users"][0] == {
        "identifiers": {"uuid": "u"},
        "whole": ["name"],
        "partial": {"static_segment_id": [1]},
        "custom": {"whole": ["tier"], "partial": {"colors": ["g"]}},
    }
    assert data["deleteAttributes"]["successCount"] == 1
    assert data["deleteAttributes"]["results"][1] == {
        "index": 1,
        "ok": False,
        "errors": [{"path": "users.1.key", "message": "no such user for these identifiers"}],
    }
    left = await gateway.ok(
        '{ user(key: {uuid: "u"}) { attributes(names: ["name", "static_segment_id"], '
        'customNames: ["tier", "colors"]) { name custom value } } }'
    )
    assert left["user"]["attributes"] == [
        {"name": "static_segment_id", "custom": False, "value": [2]},
        {"name": "colors", "custom": True, "value": ["r"]},
    ]


async def test_delete_attributes_answered_with_an_empty_object_counts_as_success(
    settings: Settings,
) -> None:
    """§3.4.4: Insider documents 200 {} for this endpoint; the local UCD sends the envelope."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={})

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(answer), base_url="http://ucd.test"
    ) as http:
        ucd = UcdClient(http, partner="local", token="t")
        gateway = Gateway(
            ucd=ucd,
            upserts=UpsertCoalescer(ucd, window_ms=1),
            exports=ExportJobs("http://gw.test", MemoryState()),
            settings=settings,
            reads=ProfileReads(ucd),
        )
        data = await gateway.ok(
            DELETE_ATTRIBUTES, {"users": [{"key": {"uuid": "u"}, "names": ["x"]}]}
        )
    assert data["deleteAttributes"]["successCount"] == 1
    assert seen == ["/api/user/v1/attribute/delete"]


DELETE_PII = """
mutation($key: UserKey!) { deletePii(key: $key) { ok user { insiderId email uuid name } } }
"""


async def test_delete_pii_by_insider_id_uses_the_contact_endpoint_and_reads_back(
    gateway: Gateway, ucd: UcdClient, ucd_calls: CallLog
) -> None:
    await put_users(
        ucd, {"identifiers": {"email": "a@b.co"}, "attributes": {"name": "A", "city": "X"}}
    )
    iid = await insider_id(ucd, {"email": "a@b.co"})
    ucd_calls.clear()
    data = await gateway.ok(DELETE_PII, {"key": {"insiderId": iid}})
    assert ucd_calls.paths == ["/api/contact/v1/anonymize", "/api/user/v1/profile"]
    assert ucd_calls.calls[0].body == {"insider_id": iid}
    assert data["deletePii"] == {
        "ok": True,
        "user": {"insiderId": iid, "email": None, "uuid": None, "name": None},
    }


async def test_delete_pii_by_email_uses_the_user_endpoint_and_finds_the_user_by_iid(
    gateway: Gateway, ucd: UcdClient, ucd_calls: CallLog
) -> None:
    await put_users(ucd, {"identifiers": {"email": "a@b.co"}, "attributes": {"name": "A"}})
    iid = await insider_id(ucd, {"email": "a@b.co"})
    ucd_calls.clear()
    data = await gateway.ok(DELETE_PII, {"key": {"email": "A@b.co"}})
    assert ucd_calls.paths == [
        "/api/user/v1/profile",  # the insider_id, before the email stops finding the user
        "/api/user/v1/anonymize",
        "/api/user/v1/profile",
    ]
    assert ucd_calls.calls[1].body == {"identifiers": {"email": "a@b.co"}}
    assert ucd_calls.calls[2].body["insider_id"] == iid
    assert data["deletePii"]["user"] == {
        "insiderId": iid,
        "email": None,
        "uuid": None,
        "name": None,
    }


async def test_delete_pii_without_user_selected_makes_one_call(
    gateway: Gateway, ucd: UcdClient, ucd_calls: CallLog
) -> None:
    await put_users(
        ucd, {"identifiers": {"email": "a@b.co", "uuid": "u"}, "attributes": {"name": "A"}}
    )
    ucd_calls.clear()
    data = await gateway.ok('mutation { deletePii(key: {email: "a@b.co"}) { ok } }')
    assert data == {"deletePii": {"ok": True}}
    assert [c.path for c in ucd_calls.calls] == ["/api/user/v1/anonymize"]


async def test_delete_pii_of_an_unknown_user_is_not_found(gateway: Gateway) -> None:
    result = await gateway.execute('mutation { deletePii(key: {uuid: "nobody"}) { ok } }')
    assert result.errors is not None
    assert result.errors[0].extensions == {"code": "NOT_FOUND"}


async def test_update_identifier_changes_it_and_reads_the_user_by_the_new_value(
    gateway: Gateway, ucd: UcdClient, ucd_calls: CallLog
) -> None:
    await put_users(ucd, {"identifiers": {"email": "old@b.co"}, "attributes": {"name": "A"}})
    ucd_calls.clear()
    data = await gateway.ok(
        'mutation { updateIdentifier(old: {email: "OLD@b.co"}, new: {email: "new@b.co"}) { ok '
        "user { email name } } }"
    )
    assert ucd_calls.calls[0].method == "PATCH"
    assert ucd_calls.calls[0].body == {
        "old_identifier": {"email": "old@b.co"},
        "new_identifier": {"email": "new@b.co"},
    }
    assert ucd_calls.calls[1].body["identifiers"] == {"email": "new@b.co"}
    assert data["updateIdentifier"] == {"ok": True, "user": {"email": "new@b.co", "name": "A"}}


async def test_update_identifier_to_a_taken_value_is_a_conflict(
    gateway: Gateway, ucd: UcdClient
) -> None:
    await put_users(
        ucd,
        {"identifiers": {"uuid": "a"}, "attributes": {"age": 1}},
        {"identifiers": {"uuid": "b"}, "attributes": {"age": 2}},
    )
    result = await gateway.execute(
        'mutation { updateIdentifier(old: {uuid: "a"}, new: {uuid: "b"}) { ok } }'
    )
    assert result.errors is not None
    assert result.errors[0].extensions == {"code": "CONFLICT"}


async def test_update_identifier_of_different_types_is_refused_before_the_ucd(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    result = await gateway.execute(
        'mutation { updateIdentifier(old: {uuid: "a"}, new: {email: "b@c.de"}) { ok } }'
    )
    assert result.errors is not None
    assert result.errors[0].extensions == {"code": "BAD_USER_INPUT", "path": "new"}
    assert ucd_calls.calls == []


async def test_delete_identifier_reads_back_by_insider_id(
    gateway: Gateway, ucd: UcdClient, ucd_calls: CallLog
) -> None:
    await put_users(
        ucd, {"identifiers": {"uuid": "u", "custom": {"crm": "c-1"}}, "attributes": {"name": "A"}}
    )
    iid = await insider_id(ucd, {"uuid": "u"})
    ucd_calls.clear()
    data = await gateway.ok(
        'mutation { deleteIdentifier(identifier: {custom: {name: "crm", value: "c-1"}}) { ok '
        "user { insiderId uuid name } } }"
    )
    delete = ucd_calls.to("/api/user/v1/identity")
    assert len(delete) == 1
    assert delete[0].method == "DELETE"
    assert delete[0].body == {"identifiers": {"custom": {"crm": "c-1"}}}
    assert data["deleteIdentifier"] == {
        "ok": True,
        "user": {"insiderId": iid, "uuid": "u", "name": "A"},
    }
    gone = await gateway.ok('{ user(key: {custom: [{name: "crm", value: "c-1"}]}) { uuid } }')
    assert gone == {"user": None}


async def test_delete_user_uses_the_delete_endpoint(
    gateway: Gateway, ucd: UcdClient, ucd_calls: CallLog
) -> None:
    await put_users(ucd, {"identifiers": {"uuid": "u"}, "attributes": {"name": "A"}})
    ucd_calls.clear()
    data = await gateway.ok('mutation { deleteUser(key: {uuid: "u"}) { ok } }')
    assert data == {"deleteUser": {"ok": True}}
    assert [(c.path, c.body) for c in ucd_calls.calls] == [
        ("/api/user/v1/delete", {"identifiers": {"uuid": "u"}})
    ]
    assert await ucd.profile(ProfileRequest(UserRef(uuid="u"), attributes=("iid",))) is None


async def test_a_payload_user_after_an_upsert_in_the_same_operation_is_fresh(
    gateway: Gateway, ucd: UcdClient
) -> None:
    await put_users(ucd, {"identifiers": {"uuid": "u"}, "attributes": {"name": "Old"}})
    data = await gateway.ok(
        """mutation {
            a: updateIdentifier(old: {uuid: "u"}, new: {uuid: "v"}) { user { name } }
            b: upsertUsers(input: {users: [{key: {uuid: "v"}, attributes: {name: "New"}}]}) {
                successCount
            }
            c: deleteIdentifier(identifier: {uuid: "zz"}) @skip(if: true) { ok }
            d: updateIdentifier(old: {uuid: "v"}, new: {uuid: "w"}) { user { name } }
        }"""
    )
    assert data["a"]["user"] == {"name": "Old"}
    assert data["d"]["user"] == {"name": "New"}


START_EXPORT = """
mutation($input: ExportInput!) { startExport(input: $input) { id status format segmentId error } }
"""


async def test_start_export_registers_a_job_and_hands_the_ucd_its_webhook(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    data = await gateway.ok(
        START_EXPORT,
        {
            "input": {
                "segmentId": "1",
                "attributes": ["email"],
                "customAttributes": ["tier"],
                "events": [{"name": "purchase", "params": ["product_id", "c_gift"]}],
                "from": "2025-01-01T00:00:00Z",
                "to": "2025-01-31T00:00:00Z",
                "format": "PARQUET",
            }
        },
    )
    job = data["startExport"]
    assert job["status"] == "PENDING"
    assert job["format"] == "PARQUET"
    assert job["segmentId"] == "1"
    record = await gateway.exports.get(job["id"])
    assert record is not None
    (call,) = ucd_calls.to("/api/raw/v1/export")
    assert call.body == {
        "segment": {"segment_id": 1},
        "format": "parquet",
        "hook": gateway.exports.hook_url(record),
        "attributes": ["email", "c_tier"],
        "events": {
            "start_date": 1735689600,
            "end_date": 1738281600,
            "wanted": [{"event_name": "purchase", "params": ["product_id", "c_gift"]}],
        },
    }


async def test_export_windows_floor_to_whole_seconds_like_reads(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    """Half a second before 1970 is second -1; ``int(timestamp())`` made it second 0."""
    await gateway.ok(
        START_EXPORT,
        {
            "input": {
                "segmentId": "1",
                "events": [{"name": "purchase", "params": []}],
                "from": "1969-12-31T23:59:59.5Z",
                "to": "1970-01-01T00:00:09.9Z",
            }
        },
    )
    (call,) = ucd_calls.to("/api/raw/v1/export")
    assert (call.body["events"]["start_date"], call.body["events"]["end_date"]) == (-1, 9)


async def test_start_export_of_every_attribute_sends_star(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    await gateway.ok(START_EXPORT, {"input": {"segmentId": "1"}})
    (call,) = ucd_calls.to("/api/raw/v1/export")
    assert call.body["attributes"] == "*"
    assert call.body["format"] == "csv"


async def test_an_export_the_ucd_refuses_is_an_error_naming_the_failed_job(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    result = await gateway.execute(START_EXPORT, {"input": {"segmentId": "99"}})
    assert result.data is None
    assert result.errors is not None
    (error,) = result.errors
    assert error.message == "segment not found: bad request"
    assert error.path == ["startExport"]
    assert error.extensions is not None
    job_id = error.extensions["jobId"]
    assert error.extensions == {"code": "BAD_USER_INPUT", "jobId": job_id}
    assert len(ucd_calls.to("/api/raw/v1/export")) == 1  # an export is never retried
    polled = await gateway.ok(
        "query($id: ID!) { exportJob(id: $id) { id status error } }", {"id": job_id}
    )
    assert polled == {
        "exportJob": {"id": job_id, "status": "FAILED", "error": "segment not found: bad request"}
    }


async def test_a_non_numeric_segment_id_is_refused_before_the_ucd(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    result = await gateway.execute(START_EXPORT, {"input": {"segmentId": "abc"}})
    assert result.errors is not None
    assert result.errors[0].extensions == {"code": "BAD_USER_INPUT", "path": "input.segmentId"}
    assert ucd_calls.calls == []


async def test_identity_mutations_in_sequence_read_back_what_the_ucd_did(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    await seed(
        gateway,
        [
            {
                "key": {
                    "email": "a@b.co",
                    "uuid": "u",
                    "custom": [{"name": "crm", "value": "c-1"}],
                },
                "attributes": {"name": "Ada", "city": "Izmir"},
            }
        ],
    )
    data = await gateway.ok(
        'mutation { updateIdentifier(old: {email: "a@b.co"}, new: {email: "n@b.co"}) { ok '
        "user { email name } } }"
    )
    assert data["updateIdentifier"] == {"ok": True, "user": {"email": "n@b.co", "name": "Ada"}}
    data = await gateway.ok(
        'mutation { deleteIdentifier(identifier: {custom: {name: "crm", value: "c-1"}}) { ok '
        "user { uuid identifiers { name } } } }"
    )
    assert data["deleteIdentifier"]["user"] == {
        "uuid": "u",
        "identifiers": [{"name": "email"}, {"name": "uuid"}],
    }
    data = await gateway.ok(
        'mutation { deletePii(key: {email: "n@b.co"}) { ok user { email name city uuid } } }'
    )
    assert data["deletePii"] == {
        "ok": True,
        "user": {"email": None, "name": None, "city": None, "uuid": "u"},
    }
    assert (await gateway.ok('mutation { deleteUser(key: {uuid: "u"}) { ok } }')) == {
        "deleteUser": {"ok": True}
    }
    assert (await gateway.ok('{ user(key: {uuid: "u"}) { name } }')) == {"user": None}


async def test_export_job_becomes_ready_when_the_webhook_arrives(
    gateway: Gateway, hooks: HookRelay
) -> None:
    await seed(gateway, [upsert_item(1)])
    data = await gateway.ok(
        'mutation { startExport(input: {segmentId: "1", attributes: ["age"], format: JSON}) '
        "{ id status } }"
    )
    job_id = data["startExport"]["id"]
    assert data["startExport"]["status"] == "PENDING"
    record = await gateway.exports.get(job_id)
    assert record is not None
    async with asyncio.timeout(10):
        await hooks.wait_for_posts()
    ((hook, body),) = hooks.posts
    assert hook == gateway.exports.hook_url(record)
    # What the app's webhook route does with it (tested over HTTP in test_http.py):
    assert await gateway.exports.mark_ready(record.id, record.token, body["url"])
    polled = await gateway.ok(
        "query($id: ID!) { exportJob(id: $id) { status url expiresAt } }", {"id": job_id}
    )
    assert polled["exportJob"]["status"] == "READY"
    assert polled["exportJob"]["url"] == body["url"]
