"""Erasure (§4.9): after E7/E8/E9 no byte of the erased values is left on disk.

The database file, its WAL and every export file under ``data_dir`` are scanned as raw
bytes. The population is large enough for multi-level b-trees (the identifiers' primary key
holds the values in interior pages too), and the erased user is written early and then
moved around by later writes, so stale copies would have had every chance to survive.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import LocalUcdConfig
from tests.local_ucd.conftest import make_client

EMAIL = "erase.me.7f3a@example.com"
PHONE = "+905551234567"
NAME = "Zebulon-Quixote-7f3a"
CUSTOM = "crm-7f3a-secret"
NOTE = "kept-note-7f3a"  # in a custom attribute and an event: not PII
HOOK = "http://hooks.test/export-ready"
ERASED = {"email": EMAIL}


@dataclass
class Hooks:
    """The hook side: records every POST; a callback URL answering 500 keeps retrying."""

    posts: list[tuple[str, Any]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.posts.append((str(request.url), json.loads(request.content)))
        if request.url.path == "/callbacks":
            return httpx.Response(500)
        return httpx.Response(200)

    def export_urls(self) -> list[str]:
        return [body["url"] for url, body in self.posts if url == HOOK]


@dataclass
class Ucd:
    client: httpx.AsyncClient
    app: Starlette
    hooks: Hooks
    config: LocalUcdConfig

    async def upsert(self, *users: dict[str, Any], **top: Any) -> None:
        response = await self.client.post("/api/user/v1/upsert", json={"users": list(users), **top})
        assert response.status_code == 200, response.text
        assert response.json()["data"]["fail"] == {}, response.text


@pytest.fixture
async def local(ucd_config: LocalUcdConfig) -> AsyncIterator[Ucd]:
    hooks = Hooks()
    async with httpx.AsyncClient(transport=httpx.MockTransport(hooks)) as hook_client:
        app = create_local_ucd_app(ucd_config, hook_client=hook_client)
        async with LifespanManager(app), make_client(app) as client:
            yield Ucd(client, app, hooks, ucd_config)


def others(start: int, count: int, group: str) -> list[dict[str, Any]]:
    return [
        {
            "identifiers": {
                "email": f"user{i:05d}.{'x' * (i % 40)}@example.org",
                "phone_number": f"+4470{i:08d}",
                "custom": {"crm_id": f"crm-{i:05d}"},
            },
            "attributes": {"name": f"User {i}", "custom": {"group": group}},
        }
        for i in range(start, start + count)
    ]


async def populate(ucd: Ucd) -> None:
    """The erased user among ~1,500 others, written first and then surrounded by later writes."""
    await ucd.upsert(*others(0, 300, "b"))
    await ucd.upsert(
        {
            "identifiers": {
                **ERASED,
                "phone_number": PHONE,
                "uuid": "u-7f3a",
                "custom": {"crm_id": CUSTOM},
            },
            "attributes": {
                "name": NAME,
                "surname": NAME,
                "city": NAME,
                "custom": {"group": "a", "note": NOTE},
            },
            "events": [
                {
                    "event_name": "purchase",
                    "timestamp": "2099-01-01T00:00:00Z",
                    "event_params": {
                        "event_group_id": NOTE,
                        "currency": "USD",
                        "unit_sale_price": 1,
                    },
                },
            ],
        }
    )
    for start in range(300, 1500, 300):
        await ucd.upsert(*others(start, 300, "b"))


async def export(ucd: Ucd, segment_id: int, fmt: str) -> str:
    """Run one export to the end; return its download path."""
    before = len(ucd.hooks.export_urls())
    response = await ucd.client.post(
        "/api/raw/v1/export",
        json={
            "segment": {"segment_id": segment_id},
            "attributes": ["email", "phone_number", "name", "c_crm_id", "c_note"],
            "events": {
                "start_date": 0,
                "end_date": 5_000_000_000,
                "wanted": [{"event_name": "purchase", "params": ["event_group_id"]}],
            },
            "format": fmt,
            "hook": HOOK,
        },
    )
    assert response.status_code == 200, response.text
    for _ in range(400):
        if len(ucd.hooks.export_urls()) > before:
            break
        await asyncio.sleep(0.025)
    url = ucd.hooks.export_urls()[-1]
    path = url.removeprefix("http://local-ucd.test")  # public_base_url of ucd_config
    download = await ucd.client.get(path)
    assert download.status_code == 200
    return path


async def group_b_segment(ucd: Ucd) -> int:
    response = await ucd.client.post(
        "/api/local/v1/segments",
        json={
            "name": "b",
            "conditions": [{"attribute": "c_group", "operator": "eq", "value": "b"}],
        },
    )
    assert response.status_code == 200, response.text
    segment_id: int = response.json()["segment_id"]
    return segment_id


def leftovers(data_dir: Path, values: list[str]) -> list[tuple[str, str]]:
    """(file, value) for each erased value still found in a file under ``data_dir``."""
    found = []
    for path in sorted(data_dir.rglob("*")):
        if path.is_file() and not path.name.endswith("-shm"):  # -shm holds page indexes only
            content = path.read_bytes()
            found += [(path.name, value) for value in values if value.encode() in content]
    return found


async def run_erasure_scenario(
    ucd: Ucd, path: str, body: dict[str, Any], erased: list[str]
) -> None:
    await populate(ucd)
    segment_b = await group_b_segment(ucd)
    with_user = [await export(ucd, 1, fmt) for fmt in ("csv", "json", "parquet")]
    without_user = await export(ucd, segment_b, "csv")
    assert leftovers(ucd.config.data_dir, erased), "the scenario must start with the values on disk"

    response = await ucd.client.post(path, json=body)
    assert (response.status_code, response.json()) == (200, {})

    assert leftovers(ucd.config.data_dir, erased) == []
    for download in with_user:
        assert (await ucd.client.get(download)).json() == {"error": "export not found: no data"}
        assert not (ucd.config.exports_dir / "local" / download.rsplit("/", 1)[1]).exists()
    assert (await ucd.client.get(without_user)).status_code == 200


async def test_anonymize_leaves_no_copy_of_the_pii(local: Ucd) -> None:
    await run_erasure_scenario(
        local, "/api/user/v1/anonymize", {"identifiers": ERASED}, [EMAIL, PHONE, NAME]
    )
    # Not PII: kept (and so still on disk) — the scan above is not vacuous.
    response = await local.client.post(
        "/api/user/v1/profile",
        json={"identifiers": {"uuid": "u-7f3a"}, "attributes": ["c_note", "email"]},
    )
    assert response.json()["attributes"] == {
        "iid": response.json()["attributes"]["iid"],
        "c_note": NOTE,
    }
    assert leftovers(local.config.data_dir, [NOTE])


async def test_delete_user_leaves_no_copy_of_anything(local: Ucd) -> None:
    await run_erasure_scenario(
        local,
        "/api/user/v1/delete",
        {"identifiers": ERASED},
        [EMAIL, PHONE, NAME, CUSTOM, NOTE, "u-7f3a"],
    )


async def test_contact_anonymize_by_alias_withdraws_files_of_the_merged_id(local: Ucd) -> None:
    """An export taken before a merge lists the old id; erasing the survivor withdraws it."""
    await local.upsert({"identifiers": ERASED, "attributes": {"name": NAME}})
    await local.upsert({"identifiers": {"uuid": "u-1"}, "attributes": {"age": 1}})
    download = await export(local, 1, "csv")
    await local.upsert({"identifiers": {"uuid": "u-1", **ERASED}, "attributes": {"age": 2}})
    profile = await local.client.post(
        "/api/user/v1/profile", json={"identifiers": ERASED, "attributes": ["name"]}
    )
    survivor = profile.json()["attributes"]["iid"]
    response = await local.client.post("/api/contact/v1/anonymize", json={"insider_id": survivor})
    assert response.status_code == 200
    assert (await local.client.get(download)).status_code == 404
    assert leftovers(local.config.data_dir, [EMAIL, NAME]) == []


async def test_pending_error_callbacks_about_the_profile_are_discarded(local: Ucd) -> None:
    await local.upsert({"identifiers": ERASED, "attributes": {"name": NAME}})
    await local.upsert({"identifiers": {"email": "bob@example.com"}, "attributes": {"name": "Bob"}})
    profile = await local.client.post(
        "/api/user/v1/profile", json={"identifiers": ERASED, "attributes": ["name"]}
    )
    iid = profile.json()["attributes"]["iid"]
    # insider_id mode: Bob's email cannot be attached -> one conflict callback about the user.
    await local.upsert(
        {"insider_id": iid, "identifiers": {"email": "bob@example.com"}, "attributes": {"age": 1}},
        error_callback_endpoint="http://hooks.test/callbacks",
    )
    callbacks = local.app.state.services.callbacks
    for _ in range(200):
        if local.hooks.posts:
            break
        await asyncio.sleep(0.01)
    assert len(local.hooks.posts) == 1  # first attempt failed (500); a retry is pending
    assert callbacks.pending == 1
    response = await local.client.post("/api/user/v1/delete", json={"insider_id": iid})
    assert response.status_code == 200
    assert callbacks.pending == 0
    await asyncio.sleep(1.3)  # past the first retry delay
    assert len(local.hooks.posts) == 1
