"""Mutations through the schema: batching, coalescing, error paths, read-back."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import UPSERT, CallLog, FakeUcd, Gateway, HookLog, seed


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
    gateway: Gateway, fake_ucd: FakeUcd, ucd_calls: CallLog
) -> None:
    fake_ucd._apply({"identifiers": {"uuid": "known"}, "attributes": {"age": 1}}, append=True)
    good = {"key": {"insiderId": "iid-0"}, "attributes": {"age": 2}}
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
    gateway: Gateway, fake_ucd: FakeUcd, ucd_calls: CallLog
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


async def test_a_failed_upsert_call_is_an_error_with_its_code(
    gateway: Gateway, fake_ucd: FakeUcd
) -> None:
    fake_ucd.status["/api/user/v1/upsert"] = 503
    for users in ([upsert_item(1)], [upsert_item(1), upsert_item(2)]):
        result = await gateway.execute(UPSERT, {"input": {"users": users}})
        assert result.errors is not None
        assert result.errors[0].extensions == {"code": "UPSTREAM_ERROR", "status": 503}


DELETE_ATTRIBUTES = """
mutation($users: [DeleteAttributesInput!]!) {
  deleteAttributes(users: $users) {
    successCount failureCount results { index ok errors { path message } }
  }
}
"""


async def test_delete_attributes_sends_whole_and_partial_and_maps_failures(
    gateway: Gateway, fake_ucd: FakeUcd, ucd_calls: CallLog
) -> None:
    fake_ucd._apply(
        {
            "identifiers": {"uuid": "u"},
            "attributes": {
                "name": "A",
                "static_segment_id": [1, 2],
                "custom": {"tier": "x", "colors": ["g", "r"]},
            },
        },
        append=True,
    )
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
    assert fake_ucd.profiles["iid-0"].attrs == {"static_segment_id": [2], "c_colors": ["r"]}


async def test_delete_attributes_answered_with_an_empty_object_counts_as_success(
    gateway: Gateway, fake_ucd: FakeUcd
) -> None:
    # §3.4.4: the real UCD documents 200 {} for this endpoint.
    fake_ucd._attribute_delete = lambda body: (200, {})  # type: ignore[method-assign]
    data = await gateway.ok(DELETE_ATTRIBUTES, {"users": [{"key": {"uuid": "u"}, "names": ["x"]}]})
    assert data["deleteAttributes"]["successCount"] == 1


DELETE_PII = """
mutation($key: UserKey!) { deletePii(key: $key) { ok user { insiderId email uuid name } } }
"""


async def test_delete_pii_by_insider_id_uses_the_contact_endpoint_and_reads_back(
    gateway: Gateway, fake_ucd: FakeUcd, ucd_calls: CallLog
) -> None:
    fake_ucd._apply(
        {"identifiers": {"email": "a@b.co"}, "attributes": {"name": "A", "city": "X"}}, append=True
    )
    data = await gateway.ok(DELETE_PII, {"key": {"insiderId": "iid-0"}})
    assert [c.path for c in ucd_calls.calls] == [
        "/api/contact/v1/anonymize",
        "/api/user/v1/profile",
    ]
    assert ucd_calls.calls[0].body == {"insider_id": "iid-0"}
    assert data["deletePii"] == {
        "ok": True,
        "user": {"insiderId": "iid-0", "email": None, "uuid": None, "name": None},
    }


async def test_delete_pii_by_email_uses_the_user_endpoint_and_finds_the_user_by_iid(
    gateway: Gateway, fake_ucd: FakeUcd, ucd_calls: CallLog
) -> None:
    fake_ucd._apply({"identifiers": {"email": "a@b.co"}, "attributes": {"name": "A"}}, append=True)
    data = await gateway.ok(DELETE_PII, {"key": {"email": "A@b.co"}})
    assert [c.path for c in ucd_calls.calls] == [
        "/api/user/v1/profile",  # the insider_id, before the email stops finding the user
        "/api/user/v1/anonymize",
        "/api/user/v1/profile",
    ]
    assert ucd_calls.calls[1].body == {"identifiers": {"email": "a@b.co"}}
    assert ucd_calls.calls[2].body["insider_id"] == "iid-0"
    assert data["deletePii"]["user"] == {
        "insiderId": "iid-0",
        "email": None,
        "uuid": None,
        "name": None,
    }


async def test_delete_pii_without_user_selected_makes_one_call(
    gateway: Gateway, fake_ucd: FakeUcd, ucd_calls: CallLog
) -> None:
    fake_ucd._apply(
        {"identifiers": {"email": "a@b.co", "uuid": "u"}, "attributes": {"name": "A"}}, append=True
    )
    data = await gateway.ok('mutation { deletePii(key: {email: "a@b.co"}) { ok } }')
    assert data == {"deletePii": {"ok": True}}
    assert [c.path for c in ucd_calls.calls] == ["/api/user/v1/anonymize"]


async def test_delete_pii_of_an_unknown_user_is_not_found(gateway: Gateway) -> None:
    result = await gateway.execute('mutation { deletePii(key: {uuid: "nobody"}) { ok } }')
    assert result.errors is not None
    assert result.errors[0].extensions == {"code": "NOT_FOUND"}


async def test_update_identifier_changes_it_and_reads_the_user_by_the_new_value(
    gateway: Gateway, fake_ucd: FakeUcd, ucd_calls: CallLog
) -> None:
    fake_ucd._apply(
        {"identifiers": {"email": "old@b.co"}, "attributes": {"name": "A"}}, append=True
    )
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
    gateway: Gateway, fake_ucd: FakeUcd
) -> None:
    fake_ucd._apply({"identifiers": {"uuid": "a"}, "attributes": {"age": 1}}, append=True)
    fake_ucd._apply({"identifiers": {"uuid": "b"}, "attributes": {"age": 2}}, append=True)
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
    gateway: Gateway, fake_ucd: FakeUcd, ucd_calls: CallLog
) -> None:
    fake_ucd._apply(
        {"identifiers": {"uuid": "u", "custom": {"crm": "c-1"}}, "attributes": {"name": "A"}},
        append=True,
    )
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
        "user": {"insiderId": "iid-0", "uuid": "u", "name": "A"},
    }
    assert "c_crm" not in fake_ucd.profiles["iid-0"].ids


async def test_delete_user_uses_the_delete_endpoint(
    gateway: Gateway, fake_ucd: FakeUcd, ucd_calls: CallLog
) -> None:
    fake_ucd._apply({"identifiers": {"uuid": "u"}, "attributes": {"name": "A"}}, append=True)
    data = await gateway.ok('mutation { deleteUser(key: {uuid: "u"}) { ok } }')
    assert data == {"deleteUser": {"ok": True}}
    assert [(c.path, c.body) for c in ucd_calls.calls] == [
        ("/api/user/v1/delete", {"identifiers": {"uuid": "u"}})
    ]
    assert fake_ucd.profiles == {}


async def test_a_payload_user_after_an_upsert_in_the_same_operation_is_fresh(
    gateway: Gateway, fake_ucd: FakeUcd, ucd_calls: CallLog
) -> None:
    fake_ucd._apply({"identifiers": {"uuid": "u"}, "attributes": {"name": "Old"}}, append=True)
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
    record = gateway.exports.get(job["id"])
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


async def test_start_export_of_every_attribute_sends_star(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    await gateway.ok(START_EXPORT, {"input": {"segmentId": "1"}})
    (call,) = ucd_calls.to("/api/raw/v1/export")
    assert call.body["attributes"] == "*"
    assert call.body["format"] == "csv"


async def test_an_export_the_ucd_refuses_is_a_failed_job(gateway: Gateway) -> None:
    data = await gateway.ok(START_EXPORT, {"input": {"segmentId": "99"}})
    job = data["startExport"]
    assert job["status"] == "FAILED"
    assert job["error"] == "segment not found: bad request"
    polled = await gateway.ok(
        "query($id: ID!) { exportJob(id: $id) { status } }", {"id": job["id"]}
    )
    assert polled == {"exportJob": {"status": "FAILED"}}


async def test_a_non_numeric_segment_id_is_refused_before_the_ucd(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    result = await gateway.execute(START_EXPORT, {"input": {"segmentId": "abc"}})
    assert result.errors is not None
    assert result.errors[0].extensions == {"code": "BAD_USER_INPUT", "path": "input.segmentId"}
    assert ucd_calls.calls == []


class TestAgainstTheLocalUcd:
    """The write path against the real local UCD app, in-process."""

    @pytest.fixture
    def ucd_transport(self, local_transport: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        return local_transport

    async def test_2500_users_are_3_calls_and_all_readable(
        self, gateway: Gateway, ucd_calls: CallLog
    ) -> None:
        data = await gateway.ok(UPSERT, {"input": {"users": [upsert_item(i) for i in range(2500)]}})
        assert len(ucd_calls.upserts) == 3
        assert data["upsertUsers"]["successCount"] == 2500
        read = await gateway.ok('{ users(keys: [{uuid: "u-0"}, {uuid: "u-2499"}]) { age } }')
        assert read == {"users": [{"age": 0}, {"age": 2499}]}

    async def test_200_concurrent_single_user_upserts_are_one_call(
        self, gateway: Gateway, ucd_calls: CallLog
    ) -> None:
        results = await asyncio.gather(
            *(gateway.ok(UPSERT, {"input": {"users": [upsert_item(i)]}}) for i in range(200))
        )
        assert len(ucd_calls.upserts) == 1
        assert sum(r["upsertUsers"]["successCount"] for r in results) == 200

    async def test_ucd_refusal_maps_to_the_input_path(self, gateway: Gateway) -> None:
        users = [upsert_item(0), {"key": {"insiderId": "no-such-id"}, "attributes": {"age": 1}}]
        data = await gateway.ok(UPSERT, {"input": {"users": users}})
        assert data["upsertUsers"]["results"][1] == {
            "index": 1,
            "ok": False,
            "errors": [
                {"path": "users.1.key.insiderId", "message": "no such user for this insider_id"}
            ],
        }

    async def test_identity_mutations_and_read_back(
        self, gateway: Gateway, ucd_calls: CallLog
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
        assert data["deleteIdentifier"]["user"]["uuid"] == "u"
        data = await gateway.ok(
            'mutation { deletePii(key: {email: "n@b.co"}) { ok user { email name city uuid } } }'
        )
        assert data["deletePii"] == {
            "ok": True,
            "user": {"email": None, "name": None, "city": None, "uuid": "u"},
        }
        data = await gateway.ok(
            'mutation { deleteAttributes(users: [{key: {uuid: "u"}, names: ["city"]}]) { '
            "successCount } }"
        )
        assert data["deleteAttributes"]["successCount"] == 1
        assert (await gateway.ok('mutation { deleteUser(key: {uuid: "u"}) { ok } }')) == {
            "deleteUser": {"ok": True}
        }
        assert (await gateway.ok('{ user(key: {uuid: "u"}) { name } }')) == {"user": None}

    async def test_export_job_becomes_ready_when_the_webhook_arrives(
        self, gateway: Gateway, hook_log: HookLog
    ) -> None:
        await seed(gateway, [upsert_item(1)])
        data = await gateway.ok(
            'mutation { startExport(input: {segmentId: "1", attributes: ["age"], format: JSON}) '
            "{ id status } }"
        )
        job_id = data["startExport"]["id"]
        assert data["startExport"]["status"] == "PENDING"
        record = gateway.exports.get(job_id)
        assert record is not None
        for _ in range(200):
            if hook_log.posts:
                break
            await asyncio.sleep(0.02)
        ((hook, body),) = hook_log.posts
        assert hook == gateway.exports.hook_url(record)
        # What the app's webhook route does with it (G1's exports.mark_ready):
        assert gateway.exports.mark_ready(record.id, record.token, body["url"])
        polled = await gateway.ok(
            "query($id: ID!) { exportJob(id: $id) { status url expiresAt } }", {"id": job_id}
        )
        assert polled["exportJob"]["status"] == "READY"
        assert polled["exportJob"]["url"] == body["url"]
