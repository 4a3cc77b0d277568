"""The audit trail over HTTP: a line per mutation (attempt, outcome), export link and PII
read, none with a PII value; a sink that cannot be written stops mutations before the UCD."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.api.audit_trail import subject
from gateway.audit import AuditLog, AuditUnavailable
from gateway.ucd.client import UcdClient
from tests.gateway.auth.conftest import auth_settings, authed_gateway, body, call
from tests.gateway.conftest import CallLog, HookRelay, insider_id, put_users

ADA = {
    "identifiers": {"uuid": "u-1", "email": "ada@example.com", "phone_number": "+905551112233"},
    "attributes": {"name": "Ada", "surname": "Lovelace", "city": "London"},
}
GRACE = {
    "identifiers": {"uuid": "u-2", "email": "grace@example.com", "phone_number": "+905559998877"},
    "attributes": {"name": "Grace", "surname": "Hopper", "city": "Arlington"},
}
#: Every PII value the session below seeds, writes or reads: none may be in the log.
PII_VALUES = (
    "ada@example.com",
    "905551112233",
    "Ada",
    "Lovelace",
    "grace@example.com",
    "905559998877",
    "Grace",
    "Hopper",
    "linus@example.com",
    "905550001122",
    "Linus",
)


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture
async def seeded(ucd: UcdClient) -> dict[str, str]:
    await put_users(ucd, ADA, GRACE)
    return {
        "ada": await insider_id(ucd, {"uuid": "u-1"}),
        "grace": await insider_id(ucd, {"uuid": "u-2"}),
    }


async def test_a_mixed_session_leaves_one_line_per_mutation_export_and_pii_read(
    tmp_path: Path,
    keys_file: Path,
    ucd_http: httpx.AsyncClient,
    hooks: HookRelay,
    seeded: dict[str, str],
) -> None:
    log = tmp_path / "audit.jsonl"
    settings = auth_settings(keys_file, None, audit_log=str(log))
    async with authed_gateway(settings, ucd_http, hooks) as gw:
        # Two principals: "everything" and "writer" (and a reader, whose reads hold no PII).
        session: list[tuple[str, str]] = [
            (
                "everything",
                'mutation { upsertUsers(input: {users: [{key: {email: "linus@example.com"}, '
                'attributes: {name: "Linus", phoneNumber: "+905550001122"}}, '
                '{key: {uuid: "u-2"}, attributes: {city: "Paris"}}]}) { successCount } }',
            ),
            (
                "writer",
                'mutation { upsertUsers(input: {users: [{key: {uuid: "u-1"}, '
                'attributes: {city: "Leeds"}}]}) { successCount } }',
            ),
            (
                "writer",
                'mutation { deleteAttributes(users: [{key: {uuid: "u-1"}, names: ["city"]}]) '
                "{ successCount } }",
            ),
            ("everything", '{ user(key: {uuid: "u-1"}) { email name city } }'),
            ("pii-reader", '{ users(keys: [{uuid: "u-1"}, {uuid: "u-2"}]) { phoneNumber } }'),
            ("reader", '{ user(key: {uuid: "u-1"}) { city } }'),
            ("everything", 'mutation { deletePii(key: {email: "linus@example.com"}) { ok } }'),
            (
                "everything",
                'mutation { startExport(input: {segmentId: "1", attributes: ["city"]}) '
                "{ status } }",
            ),
            ("everything", '{ exportJob(id: "job-x") { id } }'),
            ("reader", 'mutation { deleteUser(key: {uuid: "u-1"}) { ok } }'),
        ]
        for persona, query in session:
            response = await call(gw, query, persona=persona)
            assert response.status_code == 200, response.text
        response = await gw.client.post(
            "/graphql",
            json={"query": 'mutation Rename { deleteUser(key: {uuid: "nobody"}) { ok } }'},
            headers={"Authorization": "Bearer ucdg_test-key-of-eraser", "X-Request-Id": "req-42"},
        )
        assert response.headers["x-request-id"] == "req-42"

    written = lines(log)
    phases = Counter((line["phase"], line["field"]) for line in written)
    assert phases == {
        # One attempt and one outcome per mutation that ran; one outcome for the refused.
        ("attempt", "upsertUsers"): 2,
        ("outcome", "upsertUsers"): 2,
        ("attempt", "deleteAttributes"): 1,
        ("outcome", "deleteAttributes"): 1,
        ("attempt", "deletePii"): 1,
        ("outcome", "deletePii"): 1,
        ("attempt", "startExport"): 1,
        ("outcome", "startExport"): 1,
        ("attempt", "deleteUser"): 1,
        ("outcome", "deleteUser"): 2,
        # An export's link, and each PII attribute answered (per operation).
        ("read", "exportJob"): 1,
        ("read", "email"): 1,
        ("read", "name"): 1,
        ("read", "phone_number"): 1,
    }
    text = log.read_text()
    for value in PII_VALUES:
        assert value not in text, value

    by = {(line["phase"], line["field"], line["principal"]): line for line in written}
    assert by["read", "email", "everything"]["insiderIds"] == [seeded["ada"]]
    assert by["read", "phone_number", "pii-reader"]["insiderIds"] == sorted(seeded.values())
    first = by["attempt", "upsertUsers", "everything"]["insiderIds"]
    assert len(first) == 2
    assert "u-2" not in first  # a uuid is an identifier: hashed like an email
    assert all(name.startswith("hmac:") for name in first)
    # The same email hashes alike in every line, so an auditor can follow one user.
    assert by["attempt", "deletePii", "everything"]["insiderIds"][0] in first
    assert by["outcome", "deleteUser", "reader"]["outcome"] == "refused"
    assert by["outcome", "deleteUser", "reader"]["code"] == "FORBIDDEN"
    missing = by["outcome", "deleteUser", "eraser"]
    assert (missing["outcome"], missing["code"], missing["requestId"]) == (
        "error",
        "NOT_FOUND",
        "req-42",
    )
    assert missing["operation"] == "Rename"
    assert by["outcome", "upsertUsers", "writer"]["outcome"] == "ok"
    for line in written:
        assert line["time"].endswith("Z")
        assert line["requestId"]


@pytest.mark.usefixtures("seeded")
async def test_a_mutation_whose_line_cannot_be_written_is_refused_before_the_ucd(
    keys_file: Path, ucd_http: httpx.AsyncClient, hooks: HookRelay, ucd_calls: CallLog
) -> None:
    settings = auth_settings(keys_file, None, audit_log="/dev/full")
    async with authed_gateway(settings, ucd_http, hooks) as gw:
        ucd_calls.clear()
        response = await call(
            gw, 'mutation { deleteUser(key: {uuid: "u-1"}) { ok } }', persona="everything"
        )
        assert body(response)["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
        assert body(response)["data"] is None
        assert ucd_calls.calls == []
        # A read of PII is withheld too; a read without PII is answered.
        withheld = body(
            await call(gw, '{ user(key: {uuid: "u-1"}) { email } }', persona="everything")
        )
        assert withheld["data"] is None
        assert withheld["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
        plain = body(await call(gw, '{ user(key: {uuid: "u-1"}) { city } }', persona="everything"))
        assert plain == {"data": {"user": {"city": "London"}}, "extensions": plain["extensions"]}


@pytest.mark.usefixtures("seeded")
async def test_a_missing_audit_folder_refuses_mutations_until_it_exists(
    tmp_path: Path,
    keys_file: Path,
    ucd_http: httpx.AsyncClient,
    hooks: HookRelay,
    ucd_calls: CallLog,
) -> None:
    folder = tmp_path / "audit"
    settings = auth_settings(keys_file, None, audit_log=str(folder / "audit.jsonl"))
    mutation = 'mutation { upsertUsers(input: {users: [{key: {uuid: "u-1"}, attributes: {city: "Rome"}}]}) { successCount } }'  # noqa: E501
    async with authed_gateway(settings, ucd_http, hooks) as gw:
        ucd_calls.clear()
        refused = body(await call(gw, mutation, persona="everything"))
        assert refused["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
        assert ucd_calls.calls == []
        folder.mkdir()
        done = body(await call(gw, mutation, persona="everything"))
        assert done["data"] == {"upsertUsers": {"successCount": 1}}
    assert [line["phase"] for line in lines(folder / "audit.jsonl")] == ["attempt", "outcome"]


async def test_audit_lines_go_to_stderr_with_a_dash(capfd: pytest.CaptureFixture[str]) -> None:
    log = AuditLog("-")
    await log.write([{"field": "deleteUser"}])
    await log.aclose()
    assert capfd.readouterr().err == '{"field":"deleteUser"}\n'


async def test_concurrent_writes_keep_each_line_whole(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))
    await asyncio.gather(*(log.write([{"n": n, "pad": "x" * 500}] * 3) for n in range(50)))
    await log.write([])
    await log.aclose()
    written = lines(path)
    assert len(written) == 150
    assert Counter(line["n"] for line in written) == {n: 3 for n in range(50)}


async def test_an_unwritable_target_raises_audit_unavailable(tmp_path: Path) -> None:
    log = AuditLog(str(tmp_path))  # a directory: cannot be opened for writing
    with pytest.raises(AuditUnavailable, match="cannot be written"):
        await log.write([{"field": "x"}])
    await log.aclose()


async def test_a_line_costs_under_the_event_loops_patience(tmp_path: Path) -> None:
    """Per-line cost, fsync included, off the loop: the loop stays free meanwhile."""
    log = AuditLog(str(tmp_path / "audit.jsonl"))
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    for n in range(50):
        await log.write([{"n": n}])
    elapsed = time.perf_counter() - started
    ticker.cancel()
    await log.aclose()
    # The loop ran other work while the writes (and their fsyncs) were on the writer thread.
    assert ticks >= 50
    print(f"audit: {elapsed / 50 * 1e6:.0f} µs a line (write + fsync), measured on this machine")


def test_users_are_named_by_insider_id_or_a_keyed_hash() -> None:
    assert subject({"insiderId": "iid-1", "email": "a@example.com"}, b"k") == "iid-1"
    by_email = subject({"email": "A@Example.com"}, b"k")
    assert by_email == subject({"email": "a@example.com"}, b"k")  # normalised, as the UCD
    assert by_email != subject({"email": "a@example.com"}, b"other key")
    assert subject({"custom": {"name": "crm", "value": "7"}}, b"k") == subject(
        {"custom": [{"name": "crm", "value": "7"}]}, b"k"
    )


async def test_a_callers_request_id_is_kept_only_when_it_is_a_plain_token(
    ucd_http: httpx.AsyncClient, hooks: HookRelay, keys_file: Path
) -> None:
    async with authed_gateway(auth_settings(keys_file, None), ucd_http, hooks) as gw:
        kept = await gw.client.get("/healthz", headers={"X-Request-Id": "abc-123"})
        replaced = await gw.client.get("/healthz", headers={"X-Request-Id": "ada@example.com"})
        made = await gw.client.get("/healthz")
    assert kept.headers["x-request-id"] == "abc-123"
    assert uuid.UUID(replaced.headers["x-request-id"])
    assert uuid.UUID(made.headers["x-request-id"])


async def test_each_operation_of_a_batch_has_its_own_read_lines(
    tmp_path: Path,
    keys_file: Path,
    ucd_http: httpx.AsyncClient,
    hooks: HookRelay,
    seeded: dict[str, str],
) -> None:
    """A batch's operations share one context and run concurrently; their lines do not mix."""
    log = tmp_path / "audit.jsonl"
    settings = auth_settings(keys_file, None, audit_log=str(log))
    async with authed_gateway(settings, ucd_http, hooks) as gw:
        response = await gw.client.post(
            "/graphql",
            json=[
                {"query": 'query A { user(key: {uuid: "u-1"}) { email } }'},
                {"query": 'query B { user(key: {uuid: "u-2"}) { email } }'},
            ],
            headers={"Authorization": "Bearer ucdg_test-key-of-everything"},
        )
        assert response.status_code == 200
    reads = {line["operation"]: line["insiderIds"] for line in lines(log)}
    assert reads == {"A": [seeded["ada"]], "B": [seeded["grace"]]}


async def test_an_export_read_refused_by_the_rate_limit_is_recorded_as_an_error(
    tmp_path: Path, keys_file: Path, ucd_http: httpx.AsyncClient, hooks: HookRelay
) -> None:
    log = tmp_path / "audit.jsonl"
    settings = auth_settings(keys_file, None, audit_log=str(log), rate_limit="1/hour")
    async with authed_gateway(settings, ucd_http, hooks) as gw:
        query = '{ exportJob(id: "job-x") { id } }'
        assert (await call(gw, query, persona="exporter")).status_code == 200
        assert (await call(gw, query, persona="exporter")).status_code == 429
    outcomes = [(line["outcome"], line["code"]) for line in lines(log)]
    assert outcomes == [("ok", None), ("error", "RATE_LIMITED")]
