"""E3 — export raw user data (§3.3): validation, jobs, files, webhooks, restarts, erasures.

Webhooks go to an ``httpx.MockTransport`` recorder handed to the app as its hook client.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import io
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import LocalUcdConfig
from gateway.local_ucd.endpoints.export import enqueue_job, run_export_job
from gateway.local_ucd.exports import files as export_files
from gateway.local_ucd.services import Services
from tests.local_ucd.conftest import OTHER_PARTNER, OTHER_TOKEN, make_client

ADA_IID = "3b9a6c1e-8f3d-4c1a-9e57-2d8f0b6a4c11"
BOB_IID = "9d2f0c4b-1e7a-4b6f-8c3d-5a9e1f2b7c60"
JAN_2025 = {"start_date": 1735689600, "end_date": 1738367999}


def purchases(*params: str) -> dict[str, Any]:
    """An ``events`` object asking for January 2025's purchases with these parameters."""
    return {**JAN_2025, "wanted": [{"event_name": "purchase", "params": list(params)}]}


#: The request of §3.3.1, whose file is the CSV example of §3.3.4.
SPEC_REQUEST: dict[str, Any] = {
    "segment": {"segment_id": 1},
    "attributes": ["email", "name", "c_tier"],
    "events": purchases("product_id", "quantity", "c_gift_wrap", "timestamp"),
    "format": "csv",
    "hook": "http://127.0.0.1:9000/export-ready",
}

SPEC_CSV = (
    "iid,a_email,a_name,a_c_tier,e_event_name,e_created_date,e_product_id,e_quantity,e_c_gift_wrap\r\n"
    f"{ADA_IID},ada@example.com,Ada,gold,purchase,2025-01-10T21:35:20Z,ABC21000,1,true\r\n"
    f"{BOB_IID},bob@example.com,Bob,,,,,,\r\n"
)


class HookRecorder:
    """The webhook receiver: records every POST and answers from a script (default 200)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.script: list[int] = []
        self.block = False

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.block:
            await asyncio.Event().wait()  # never answers (a delivery that a stop interrupts)
        return httpx.Response(self.script.pop(0) if self.script else 200)

    @property
    def urls(self) -> list[str]:
        return [orjson.loads(r.content)["url"] for r in self.requests]

    async def wait_for(self, count: int) -> None:
        await eventually(lambda: len(self.requests) >= count)


async def eventually(check: Callable[[], bool | Awaitable[bool]], within: float = 10.0) -> None:
    """Poll ``check`` until it holds: the worker runs in the background on its own time."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.01)


async def hook_states(services: Services) -> set[str]:
    return {job["hook_state"] for job in await jobs(services)}


async def statuses(services: Services) -> set[str]:
    return {job["status"] for job in await jobs(services)}


@contextlib.asynccontextmanager
async def running_app(
    config: LocalUcdConfig, hooks: HookRecorder
) -> AsyncIterator[tuple[Starlette, Services]]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(hooks)) as hook_client:
        app = create_local_ucd_app(config, hook_client=hook_client)
        async with LifespanManager(app):
            services: Services = app.state.services
            services.exports.hook_delays = (0.0, 0.0)
            yield app, services


@pytest.fixture
def hooks() -> HookRecorder:
    return HookRecorder()


@pytest.fixture
def config(ucd_config: LocalUcdConfig) -> LocalUcdConfig:
    # Test events are dated January 2025: keep them past the retention periods (§4.8.4).
    days = {"page_view": 36500, "sign_up": 36500, "purchase": 36500}
    return dataclasses.replace(ucd_config, event_retention_days=days)


@pytest.fixture
async def app_services(
    config: LocalUcdConfig, hooks: HookRecorder
) -> AsyncIterator[tuple[Starlette, Services]]:
    async with running_app(config, hooks) as pair:
        yield pair


@pytest.fixture
def services(app_services: tuple[Starlette, Services]) -> Services:
    return app_services[1]


@pytest.fixture
async def client(app_services: tuple[Starlette, Services]) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app_services[0]) as c:
        yield c


async def upsert(client: httpx.AsyncClient, *users: dict[str, Any]) -> None:
    response = await client.post("/api/user/v1/upsert", json={"users": list(users)})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["fail"] == {}, response.text


async def set_insider_id(services: Services, email: str, insider_id: str) -> None:
    """Give a profile a known id, so row order and file contents can be asserted exactly."""

    def update(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE profiles SET insider_id = ? WHERE pk ="
            " (SELECT profile_pk FROM identifiers WHERE kind = 'email' AND value = ?)",
            (insider_id, email),
        )

    await services.store.write(update)


async def seed_spec_example(client: httpx.AsyncClient, services: Services) -> None:
    """Ada (with the spec's purchase) and Bob (no event), under the spec's ids."""
    await upsert(
        client,
        {
            "identifiers": {"email": "ada@example.com"},
            "attributes": {"name": "Ada", "custom": {"tier": "gold"}},
            "events": [
                {
                    "event_name": "purchase",
                    "timestamp": "2025-01-10T21:35:20Z",
                    "event_params": {
                        "product_id": "ABC21000",
                        "name": "Phone",
                        "currency": "USD",
                        "unit_price": 990.9,
                        "unit_sale_price": 890.9,
                        "quantity": 1,
                        "event_group_id": "ORDER123",
                        "taxonomy": ["Electronic", "Phone"],
                        "custom": {"gift_wrap": True},
                    },
                }
            ],
        },
        {"identifiers": {"email": "bob@example.com"}, "attributes": {"name": "Bob"}},
    )
    await set_insider_id(services, "ada@example.com", ADA_IID)
    await set_insider_id(services, "bob@example.com", BOB_IID)


async def export(
    client: httpx.AsyncClient, hooks: HookRecorder, body: dict[str, Any]
) -> httpx.Response:
    """Request an export, wait for its webhook, and download the file it names."""
    before = len(hooks.requests)
    response = await client.post("/api/raw/v1/export", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {}
    await hooks.wait_for(before + 1)
    download = await client.get(hooks.urls[before])
    assert download.status_code == 200, download.text
    return download


async def _is(states: Awaitable[set[str]], wanted: set[str]) -> bool:
    return await states == wanted


async def jobs(services: Services) -> list[dict[str, Any]]:
    def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        cursor = conn.execute(
            "SELECT id, status, file_name, hook_state, hook FROM export_jobs ORDER BY id"
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    return await services.store.read(read)


# -- files ------------------------------------------------------------------------------


async def test_spec_example_csv_is_reproduced_byte_for_byte(
    client: httpx.AsyncClient, services: Services, hooks: HookRecorder
) -> None:
    await seed_spec_example(client, services)
    download = await export(client, hooks, SPEC_REQUEST)
    assert download.content == SPEC_CSV.encode()
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    name = hooks.urls[0].rsplit("/", 1)[1]
    assert download.headers["content-disposition"] == f'attachment; filename="{name}"'


async def test_webhook_gets_the_public_link_of_a_32_hex_file(
    client: httpx.AsyncClient, services: Services, hooks: HookRecorder
) -> None:
    await seed_spec_example(client, services)
    await export(client, hooks, SPEC_REQUEST)
    request = hooks.requests[0]
    assert str(request.url) == "http://127.0.0.1:9000/export-ready"
    assert request.headers["content-type"] == "application/json"
    url = orjson.loads(request.content)["url"]
    prefix = "http://local-ucd.test/exports/local/p/"
    assert url.startswith(prefix)
    name = url[len(prefix) :]
    assert len(name) == 36
    assert name.endswith(".csv")
    assert all(c in "0123456789abcdef" for c in name[:32])
    assert (services.config.exports_dir / "local" / name).is_file()
    [job] = await jobs(services)
    assert (job["status"], job["file_name"]) == ("ready", name)
    await eventually(lambda: _is(hook_states(services), {"delivered"}))


async def test_json_export_is_ndjson_with_json_types_and_nulls(
    client: httpx.AsyncClient, services: Services, hooks: HookRecorder
) -> None:
    await seed_spec_example(client, services)
    body = {
        **SPEC_REQUEST,
        "attributes": ["name", "c_tier", "static_segment_id"],
        "events": purchases("unit_price", "taxonomy", "c_gift_wrap", "source"),
        "format": "json",
    }
    download = await export(client, hooks, body)
    assert download.headers["content-type"] == "application/x-ndjson"
    assert download.content.endswith(b"\n")
    lines = download.content.decode().split("\n")[:-1]
    rows = [orjson.loads(line) for line in lines]
    assert rows == [
        {
            "iid": ADA_IID,
            "a_name": "Ada",
            "a_c_tier": "gold",
            "a_static_segment_id": None,
            "e_event_name": "purchase",
            "e_created_date": "2025-01-10T21:35:20Z",
            "e_unit_price": 990.9,
            "e_taxonomy": ["Electronic", "Phone"],
            "e_c_gift_wrap": True,
            "e_source": "api",
        },
        {
            "iid": BOB_IID,
            "a_name": "Bob",
            "a_c_tier": None,
            "a_static_segment_id": None,
            "e_event_name": None,
            "e_created_date": None,
            "e_unit_price": None,
            "e_taxonomy": None,
            "e_c_gift_wrap": None,
            "e_source": None,
        },
    ]
    assert list(rows[0]) == list(rows[1])  # keys in column order on every line


async def test_parquet_export_is_version_1_strings_with_csv_rendering(
    client: httpx.AsyncClient, services: Services, hooks: HookRecorder
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    await seed_spec_example(client, services)
    body = {
        **SPEC_REQUEST,
        "events": purchases("quantity", "taxonomy", "c_gift_wrap"),
        "format": "parquet",
    }
    download = await export(client, hooks, body)
    assert download.headers["content-type"] == "application/vnd.apache.parquet"
    parquet = pq.ParquetFile(io.BytesIO(download.content))
    assert parquet.metadata.format_version == "1.0"
    schema = parquet.schema_arrow
    assert schema.names == [
        "iid",
        "a_email",
        "a_name",
        "a_c_tier",
        "e_event_name",
        "e_created_date",
        "e_quantity",
        "e_taxonomy",
        "e_c_gift_wrap",
    ]
    assert all(field.type == pa.string() and field.nullable for field in schema)
    assert parquet.read().to_pylist() == [
        {
            "iid": ADA_IID,
            "a_email": "ada@example.com",
            "a_name": "Ada",
            "a_c_tier": "gold",
            "e_event_name": "purchase",
            "e_created_date": "2025-01-10T21:35:20Z",
            "e_quantity": "1",
            "e_taxonomy": '["Electronic","Phone"]',
            "e_c_gift_wrap": "true",
        },
        {
            "iid": BOB_IID,
            "a_email": "bob@example.com",
            "a_name": "Bob",
            "a_c_tier": None,
            "e_event_name": None,
            "e_created_date": None,
            "e_quantity": None,
            "e_taxonomy": None,
            "e_c_gift_wrap": None,
        },
    ]


async def test_events_are_ascending_over_items_with_filters_and_limit_per_source(
    client: httpx.AsyncClient, services: Services, hooks: HookRecorder
) -> None:
    def view(day: int, page: str, source: str = "web") -> dict[str, Any]:
        return {
            "event_name": "page_view",
            "timestamp": f"2025-01-{day:02d}T10:00:00Z",
            "event_params": {"url": page, "source": source},
        }

    await upsert(
        client,
        {
            "identifiers": {"email": "ada@example.com"},
            "events": [
                view(5, "/a"),
                view(3, "/b"),
                view(4, "/a", "app"),
                view(6, "/a"),
                view(7, "/a"),
                {
                    "event_name": "sign_up",
                    "timestamp": "2025-01-04T10:00:00Z",
                    "event_params": {"custom": {"plan": "pro"}},
                },
            ],
        },
    )
    await set_insider_id(services, "ada@example.com", ADA_IID)
    body = {
        "segment": {"segment_id": 1},
        "events": {
            **JAN_2025,
            "wanted": [
                {
                    "event_name": "page_view",
                    "params": ["url", "source"],
                    "limit_per_source": 2,
                    "filters": [{"key": "url", "operator": "eq", "values": ["/a"]}],
                },
                {"event_name": "sign_up", "params": ["c_plan"]},
                {"event_name": "page_view", "params": ["ignored_repeat"]},
            ],
        },
        "format": "csv",
        "hook": "hooks.example.com/x",
    }
    download = await export(client, hooks, body)
    lines = download.text.split("\r\n")
    assert lines == [
        "iid,e_event_name,e_created_date,e_url,e_source,e_c_plan",
        # /b is filtered out; "web" keeps its first two (ascending): the 5th and the 6th.
        f"{ADA_IID},page_view,2025-01-04T10:00:00Z,/a,app,",
        f"{ADA_IID},sign_up,2025-01-04T10:00:00Z,,,pro",
        f"{ADA_IID},page_view,2025-01-05T10:00:00Z,/a,web,",
        f"{ADA_IID},page_view,2025-01-06T10:00:00Z,/a,web,",
        "",
    ]


async def test_star_exports_every_default_then_the_catalogue_by_name(
    client: httpx.AsyncClient, services: Services, hooks: HookRecorder
) -> None:
    await upsert(
        client,
        {
            "identifiers": {"email": "ada@example.com", "custom": {"crm_id": "c-9"}},
            "attributes": {
                "gdpr_optin": False,
                "locale": "tr_TR",
                "custom": {"zeta": 1, "alpha": 'a,b "q"'},
            },
        },
    )
    await set_insider_id(services, "ada@example.com", ADA_IID)
    download = await export(client, hooks, {**SPEC_REQUEST, "attributes": ["*"], "events": None})
    header, row, end = download.text.split("\r\n")
    assert header == (
        "iid,a_email,a_phone_number,a_uuid,a_name,a_surname,a_gender,a_age,a_birthday,"
        "a_language,a_country,a_city,a_lo,a_email_optin,a_sms_optin,a_whatsapp_optin,a_gdpr,"
        "a_static_segment_id,a_c_alpha,a_c_crm_id,a_c_zeta"
    )
    assert row == f'{ADA_IID},ada@example.com,,,,,,,,,,,tr_TR,,,,false,,"a,b ""q""",c-9,1'
    assert end == ""


async def test_segment_conditions_choose_the_users(
    client: httpx.AsyncClient, services: Services, hooks: HookRecorder
) -> None:
    await seed_spec_example(client, services)
    response = await client.post(
        "/api/local/v1/segments",
        json={
            "name": "gold",
            "conditions": [{"attribute": "c_tier", "operator": "eq", "value": "gold"}],
        },
    )
    assert response.status_code == 200, response.text
    segment_id = response.json()["segment_id"]
    body = {
        **SPEC_REQUEST,
        "segment": {"segment_id": segment_id},
        "attributes": ["name"],
        "events": None,
    }
    download = await export(client, hooks, body)
    assert download.text == f"iid,a_name\r\n{ADA_IID},Ada\r\n"


async def test_an_empty_segment_gives_a_header_only_file(
    client: httpx.AsyncClient, hooks: HookRecorder
) -> None:
    download = await export(client, hooks, {**SPEC_REQUEST, "events": None})
    assert download.text == "iid,a_email,a_name,a_c_tier\r\n"


async def test_partners_see_only_their_own_users(
    app_services: tuple[Starlette, Services], client: httpx.AsyncClient, hooks: HookRecorder
) -> None:
    await seed_spec_example(client, app_services[1])
    other_headers = {"X-PARTNER-NAME": OTHER_PARTNER, "X-REQUEST-TOKEN": OTHER_TOKEN}
    async with make_client(app_services[0], other_headers) as other:
        await upsert(
            other, {"identifiers": {"email": "eve@example.com"}, "attributes": {"name": "Eve"}}
        )
        download = await export(
            other, hooks, {**SPEC_REQUEST, "attributes": ["name"], "events": None}
        )
    lines = download.text.split("\r\n")
    assert lines[0] == "iid,a_name"
    assert lines[1].endswith(",Eve")
    assert len(lines) == 3
    assert "/exports/other/p/" in hooks.urls[0]


# -- request validation (§3.3.2) --------------------------------------------------------


VALID = {**SPEC_REQUEST}


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        pytest.param({"segment": None}, "segment not found", id="no-segment"),
        pytest.param({"segment": {}}, "segment not found", id="no-segment-id"),
        pytest.param({"segment": {"segment_id": "1"}}, "segment not found", id="string-id"),
        pytest.param({"segment": {"segment_id": 1.5}}, "segment not found", id="fraction-id"),
        pytest.param({"segment": {"segment_id": True}}, "segment not found", id="boolean-id"),
        pytest.param({"segment": {"segment_id": 7}}, "segment not found", id="unknown-id"),
        pytest.param({"segment": {"segment_id": 2**70}}, "segment not found", id="huge-id"),
        pytest.param({"segment": None, "format": "xml"}, "segment not found", id="segment-first"),
        pytest.param(
            {"attributes": None, "events": None},
            "either attributes or events must be specified",
            id="neither",
        ),
        pytest.param({"attributes": "name"}, "attributes must be array", id="attributes-string"),
        pytest.param({"attributes": [1]}, "attributes must be array", id="attributes-number"),
        pytest.param(
            {"events": {"start_date": 1, "wanted": []}},
            "events.end_date is required",
            id="events-end",
        ),
        pytest.param(
            {"events": {"start_date": 2, "end_date": 1, "wanted": []}},
            "events.start_date must not be after events.end_date",
            id="events-range",
        ),
        pytest.param(
            {"attributes": "name", "format": "xml"},
            "attributes must be array",
            id="attributes-before-format",
        ),
        pytest.param(
            {"format": None}, "format must be one of csv, json or parquet", id="no-format"
        ),
        pytest.param(
            {"format": "CSV"}, "format must be one of csv, json or parquet", id="upper-format"
        ),
        pytest.param({"format": "csv", "hook": None}, "hook must be defined", id="no-hook"),
        pytest.param({"hook": ""}, "hook must be defined", id="empty-hook"),
        pytest.param({"hook": 5}, "hook must be defined", id="number-hook"),
        pytest.param(
            {"hook": "ftp://example.com/x"}, "hook must be an http or https URL", id="ftp-hook"
        ),
        pytest.param(
            {"hook": "mailto:ops@example.com"},
            "hook must be an http or https URL",
            id="mailto-hook",
        ),
        pytest.param({"hook": "http:///nohost"}, "hook must be an http or https URL", id="no-host"),
        pytest.param(
            {"hook": " http://x.example"}, "hook must be an http or https URL", id="leading-blank"
        ),
        pytest.param(
            {"hook": "http://x y.example"}, "hook must be an http or https URL", id="inner-blank"
        ),
        pytest.param(
            {"format": "xml", "hook": None},
            "format must be one of csv, json or parquet",
            id="format-before-hook",
        ),
    ],
)
async def test_request_errors_in_the_spec_order(
    client: httpx.AsyncClient, services: Services, changes: dict[str, Any], error: str
) -> None:
    body = {key: value for key, value in {**VALID, **changes}.items() if value is not None}
    response = await client.post("/api/raw/v1/export", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": f"{error}: bad request"}
    assert await jobs(services) == []


async def test_parquet_without_pyarrow_is_refused(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:
        return None if name == "pyarrow" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    response = await client.post(
        "/api/raw/v1/export", json={**VALID, "format": "parquet", "hook": None}
    )
    assert response.json() == {
        "error": "parquet export needs the optional pyarrow package: bad request"
    }
    assert await jobs(services) == []


async def test_another_partners_segment_is_not_found(
    app_services: tuple[Starlette, Services], client: httpx.AsyncClient
) -> None:
    response = await client.post("/api/local/v1/segments", json={"name": "mine", "conditions": []})
    segment_id = response.json()["segment_id"]
    other_headers = {"X-PARTNER-NAME": OTHER_PARTNER, "X-REQUEST-TOKEN": OTHER_TOKEN}
    async with make_client(app_services[0], other_headers) as other:
        refused = await other.post(
            "/api/raw/v1/export", json={**VALID, "segment": {"segment_id": segment_id}}
        )
    assert refused.json() == {"error": "segment not found: bad request"}


@pytest.mark.parametrize(
    ("hook", "sent_to"),
    [
        pytest.param("hooks.example.com/ready", "https://hooks.example.com/ready", id="bare-host"),
        pytest.param("localhost:9000/ready", "https://localhost:9000/ready", id="host-and-port"),
        pytest.param("HTTP://hooks.example.com/r", "http://hooks.example.com/r", id="upper-scheme"),
    ],
)
async def test_a_hook_without_scheme_gets_https(
    client: httpx.AsyncClient, hooks: HookRecorder, hook: str, sent_to: str
) -> None:
    await export(client, hooks, {**VALID, "hook": hook})
    assert str(hooks.requests[0].url) == sent_to


async def test_the_job_is_committed_before_the_answer(
    client: httpx.AsyncClient, services: Services
) -> None:
    response = await client.post("/api/raw/v1/export", json=VALID)
    assert response.status_code == 200
    [job] = await jobs(services)
    assert job["hook"] == "http://127.0.0.1:9000/export-ready"
    assert job["status"] in ("queued", "ready")


async def test_strict_limits_allow_one_export_per_day_and_count_only_200s(
    config: LocalUcdConfig, hooks: HookRecorder
) -> None:
    strict = dataclasses.replace(config, strict_rate_limits=True)
    async with running_app(strict, hooks) as (app, services), make_client(app) as client:
        refused = await client.post("/api/raw/v1/export", json={**VALID, "format": "xml"})
        assert refused.status_code == 400
        first = await client.post("/api/raw/v1/export", json=VALID)
        assert first.status_code == 200
        second = await client.post("/api/raw/v1/export", json=VALID)
        assert second.status_code == 429
        assert second.json() == {"error": "rejected: too many requests"}
        assert int(second.headers["retry-after"]) >= 1
        assert len(await jobs(services)) == 1


# -- webhooks ---------------------------------------------------------------------------


async def test_hook_is_retried_then_delivered(
    client: httpx.AsyncClient, services: Services, hooks: HookRecorder
) -> None:
    hooks.script = [500, 503]
    response = await client.post("/api/raw/v1/export", json=VALID)
    assert response.status_code == 200
    await hooks.wait_for(3)
    await eventually(lambda: _is(hook_states(services), {"delivered"}))
    assert len(set(hooks.urls)) == 1


async def test_hook_gives_up_after_three_attempts_and_the_file_stays(
    client: httpx.AsyncClient, services: Services, hooks: HookRecorder
) -> None:
    hooks.script = [500, 500, 500, 200]
    response = await client.post("/api/raw/v1/export", json=VALID)
    assert response.status_code == 200
    await hooks.wait_for(3)
    await eventually(lambda: _is(hook_states(services), {"gave_up"}))
    await asyncio.sleep(0.05)
    assert len(hooks.requests) == 3
    download = await client.get(hooks.urls[0])
    assert download.status_code == 200


# -- failures, restarts, expiry ---------------------------------------------------------


async def test_a_failed_job_leaves_no_file_and_calls_no_hook(
    client: httpx.AsyncClient, services: Services, hooks: HookRecorder
) -> None:
    # The partner's export folder cannot be created: a file is in its place.
    (services.config.exports_dir / "local").write_text("in the way")
    response = await client.post("/api/raw/v1/export", json=VALID)
    assert response.status_code == 200
    await eventually(lambda: _is(statuses(services), {"failed"}))
    [job] = await jobs(services)
    assert job["file_name"] is None
    await asyncio.sleep(0.05)
    assert hooks.requests == []
    # The worker goes on with the next job.
    (services.config.exports_dir / "local").unlink()
    await export(client, hooks, VALID)


async def test_queued_jobs_and_pending_hooks_survive_a_restart(
    config: LocalUcdConfig, hooks: HookRecorder
) -> None:
    async with running_app(config, hooks) as (app, services), make_client(app) as client:
        await seed_spec_example(client, services)
        hooks.block = True  # the first delivery never completes: still pending at the stop
        await client.post("/api/raw/v1/export", json=VALID)
        await hooks.wait_for(1)

        # A second job committed but not yet picked up (no wake-up): still queued at the stop.
        def queue_job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO export_jobs (partner, request, hook, status, created_us)"
                " SELECT partner, request, 'http://second.example/h', 'queued', created_us"
                " FROM export_jobs WHERE id = 1"
            )

        await services.store.write(queue_job)
    first_url = hooks.urls[0]

    restarted = HookRecorder()
    async with running_app(config, restarted) as (app, services), make_client(app) as client:
        await restarted.wait_for(2)
        by_hook = {str(r.url): orjson.loads(r.content)["url"] for r in restarted.requests}
        assert by_hook["http://127.0.0.1:9000/export-ready"] == first_url
        assert (await client.get(first_url)).content == SPEC_CSV.encode()
        second = await client.get(by_hook["http://second.example/h"])
        assert second.content == SPEC_CSV.encode()
        await eventually(lambda: _is(hook_states(services), {"delivered"}))
        assert await statuses(services) == {"ready"}


async def test_files_expire_24_hours_after_ready(
    client: httpx.AsyncClient, services: Services, hooks: HookRecorder
) -> None:
    download = await export(client, hooks, VALID)
    assert download.status_code == 200
    path = services.config.exports_dir / "local" / hooks.urls[0].rsplit("/", 1)[1]
    real_now = services.now
    services.now = lambda: real_now() + timedelta(hours=23, minutes=59)
    assert (await client.get(hooks.urls[0])).status_code == 200
    services.now = lambda: real_now() + timedelta(hours=24)
    expired = await client.get(hooks.urls[0])
    assert expired.status_code == 404
    assert expired.json() == {"error": "export not found: no data"}
    assert not path.exists()
    assert await jobs(services) == []


async def test_the_sweep_deletes_expired_files_without_a_download(
    client: httpx.AsyncClient, services: Services, hooks: HookRecorder
) -> None:
    await export(client, hooks, VALID)
    await export(client, hooks, {**VALID, "format": "json"})
    real_now = services.now
    services.now = lambda: real_now() + timedelta(days=1, seconds=1)
    assert await services.exports.sweep_expired() == 2
    assert list((services.config.exports_dir / "local").iterdir()) == []


# -- erasures (§3.3.3, §4.9) ------------------------------------------------------------


async def delete_user(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post("/api/user/v1/delete", json={"identifiers": {"email": email}})
    assert response.status_code == 200, response.text


async def test_an_erasure_withdraws_published_files_with_the_user(
    client: httpx.AsyncClient, services: Services, hooks: HookRecorder
) -> None:
    await seed_spec_example(client, services)
    await export(client, hooks, VALID)
    response = await client.post(
        "/api/local/v1/segments",
        json={
            "name": "bob",
            "conditions": [{"attribute": "name", "operator": "eq", "value": "Bob"}],
        },
    )
    bob_segment = {"segment_id": response.json()["segment_id"]}
    await export(client, hooks, {**VALID, "segment": bob_segment})
    ada_file, bob_only = hooks.urls
    await delete_user(client, "ada@example.com")
    gone = await client.get(ada_file)
    assert gone.status_code == 404
    assert gone.json() == {"error": "export not found: no data"}
    assert not (services.config.exports_dir / "local" / ada_file.rsplit("/", 1)[1]).exists()
    assert (await client.get(bob_only)).status_code == 200


async def test_an_erasure_after_the_snapshot_makes_the_job_rebuild(
    client: httpx.AsyncClient,
    services: Services,
    hooks: HookRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ada is erased between the snapshot and publishing: the file is rebuilt without her."""
    await seed_spec_example(client, services)
    loop = asyncio.get_running_loop()
    real_write_export = export_files.write_export
    calls: list[int] = []

    def write_export(*args: Any, **kwargs: Any) -> int:
        count = real_write_export(*args, **kwargs)
        calls.append(count)
        if len(calls) == 1:
            # Queued now, it runs once the snapshot is released, before the publishing write.
            asyncio.run_coroutine_threadsafe(delete_user(client, "ada@example.com"), loop)
            while not services.store.erasure_waiting:
                threading.Event().wait(0.001)
        return count

    monkeypatch.setattr("gateway.local_ucd.exports.worker.write_export", write_export)
    download = await export(client, hooks, {**VALID, "events": None, "attributes": ["name"]})
    assert calls == [2, 1]
    assert download.text == f"iid,a_name\r\n{BOB_IID},Bob\r\n"


async def test_a_waiting_erasure_makes_the_snapshot_give_up_and_restart(
    client: httpx.AsyncClient,
    services: Services,
    hooks: HookRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await seed_spec_example(client, services)
    loop = asyncio.get_running_loop()
    real_chunks = export_files.iter_profile_chunks
    runs: list[str] = []

    def iter_profile_chunks(conn: sqlite3.Connection, pks: Iterator[int]) -> Iterator[Any]:
        runs.append("run")
        if len(runs) == 1:
            # The erasure asks for the exclusive lock while our snapshot holds the shared one.
            asyncio.run_coroutine_threadsafe(delete_user(client, "ada@example.com"), loop)
            while not services.store.erasure_waiting:
                threading.Event().wait(0.001)
        return real_chunks(conn, pks)

    monkeypatch.setattr(export_files, "iter_profile_chunks", iter_profile_chunks)
    download = await export(client, hooks, {**VALID, "events": None, "attributes": ["name"]})
    assert runs == ["run", "run"]
    assert download.text == f"iid,a_name\r\n{BOB_IID},Bob\r\n"
    assert [p.name for p in (services.config.exports_dir / "local").iterdir()] == [
        hooks.urls[0].rsplit("/", 1)[1]
    ]


async def test_note_erasure_keeps_nothing_while_no_job_runs(services: Services) -> None:
    worker = services.exports
    worker.note_erasure("local", [ADA_IID])
    assert worker._erasures == []  # idle: nothing to compare against, nothing kept


async def test_run_export_job_runs_one_job_synchronously(
    client: httpx.AsyncClient, services: Services, hooks: HookRecorder
) -> None:
    """The benchmark path: a job queued without waking the worker, then run and awaited."""
    await seed_spec_example(client, services)
    request = {
        "segment_id": 1,
        "attributes": SPEC_REQUEST["attributes"],
        "events": SPEC_REQUEST["events"],
        "format": "csv",
    }
    job_id = await enqueue_job(services, "local", request, "http://bench.example/h", wake=False)
    path = await run_export_job(services, job_id)
    assert path is not None
    assert path.read_bytes() == SPEC_CSV.encode()
    assert await run_export_job(services, job_id) == path  # already ran: same file
    await hooks.wait_for(1)
    assert str(hooks.requests[0].url) == "http://bench.example/h"


async def test_a_stop_during_the_snapshot_leaves_the_job_queued_for_the_next_start(
    config: LocalUcdConfig, hooks: HookRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_chunks = export_files.iter_profile_chunks
    building = threading.Event()

    def iter_profile_chunks(conn: sqlite3.Connection, pks: Iterator[int]) -> Iterator[Any]:
        if not building.is_set():
            building.set()
            # Hold the snapshot until the worker is told to stop.
            while not worker._closing.is_set():
                threading.Event().wait(0.001)
        return real_chunks(conn, pks)

    monkeypatch.setattr(export_files, "iter_profile_chunks", iter_profile_chunks)
    async with running_app(config, hooks) as (app, services), make_client(app) as client:
        worker = services.exports
        await seed_spec_example(client, services)
        await client.post("/api/raw/v1/export", json=VALID)
        await eventually(building.is_set)
    assert hooks.requests == []
    with contextlib.closing(sqlite3.connect(config.database_path)) as conn:
        assert conn.execute("SELECT status FROM export_jobs").fetchall() == [("queued",)]
    assert [p.name for p in (config.exports_dir / "local").iterdir()] == []
    async with running_app(config, hooks) as (app, services), make_client(app) as client:
        await hooks.wait_for(1)
        assert (await client.get(hooks.urls[0])).content == SPEC_CSV.encode()
        assert [p.name for p in (config.exports_dir / "local").iterdir()] == [
            hooks.urls[0].rsplit("/", 1)[1]
        ]


async def test_a_failure_while_publishing_leaves_no_file_and_calls_no_hook(
    client: httpx.AsyncClient,
    services: Services,
    hooks: HookRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def disk_full(source: Any, target: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("gateway.local_ucd.exports.worker.os.replace", disk_full)
    await seed_spec_example(client, services)
    response = await client.post("/api/raw/v1/export", json=VALID)
    assert response.status_code == 200
    await eventually(lambda: _is(statuses(services), {"failed"}))
    assert list((services.config.exports_dir / "local").iterdir()) == []
    members = await services.store.read(
        lambda conn: conn.execute("SELECT COUNT(*) FROM export_members").fetchone()[0]
    )
    assert members == 0
    await asyncio.sleep(0.05)
    assert hooks.requests == []


async def test_window_is_inclusive_and_ties_keep_storage_order(
    client: httpx.AsyncClient, services: Services, hooks: HookRecorder
) -> None:
    def event(name: str, when: str, url: str) -> dict[str, Any]:
        return {"event_name": name, "timestamp": when, "event_params": {"url": url}}

    await upsert(
        client,
        {
            "identifiers": {"email": "ada@example.com"},
            "events": [
                event("sign_up", "2025-01-10T10:00:00Z", "/first"),
                event("page_view", "2025-01-10T10:00:00Z", "/second"),
                event("page_view", "2025-01-01T00:00:00Z", "/start"),
                event("page_view", "2025-01-31T23:59:59.999Z", "/end"),
                event("page_view", "2025-02-01T00:00:00Z", "/after"),
                event("page_view", "2024-12-31T23:59:59.999Z", "/before"),
            ],
        },
    )
    await set_insider_id(services, "ada@example.com", ADA_IID)
    wanted = [
        {"event_name": "page_view", "params": ["url"]},
        {"event_name": "sign_up", "params": ["url"]},
    ]
    body = {**VALID, "attributes": None, "events": {**JAN_2025, "wanted": wanted}}
    download = await export(client, hooks, body)
    assert download.text.split("\r\n") == [
        "iid,e_event_name,e_created_date,e_url",
        f"{ADA_IID},page_view,2025-01-01T00:00:00Z,/start",
        f"{ADA_IID},sign_up,2025-01-10T10:00:00Z,/first",
        f"{ADA_IID},page_view,2025-01-10T10:00:00Z,/second",
        f"{ADA_IID},page_view,2025-01-31T23:59:59.999Z,/end",
        "",
    ]
