"""``GET /exports/{partner}/p/{file}`` (§5.4): capability downloads and their 404s."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from gateway.local_ucd.services import Services
from tests.local_ucd import test_export
from tests.local_ucd.conftest import make_client
from tests.local_ucd.test_export import VALID, HookRecorder, export, seed_spec_example

# The export tests' fixtures (an app with a webhook recorder), shared by name.
config = test_export.config
hooks = test_export.hooks
app_services = test_export.app_services
services = test_export.services
client = test_export.client

NOT_FOUND = {"error": "export not found: no data"}


async def published(client: httpx.AsyncClient, hooks: HookRecorder, fmt: str = "csv") -> str:
    """Publish one export and return its download path (``/exports/local/p/<file>``)."""
    await export(client, hooks, {**VALID, "format": fmt})
    return "/" + hooks.urls[-1].split("/", 3)[3]


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [
        pytest.param("csv", "text/csv; charset=utf-8", id="csv"),
        pytest.param("json", "application/x-ndjson", id="json"),
        pytest.param("parquet", "application/vnd.apache.parquet", id="parquet"),
    ],
)
async def test_download_needs_no_headers_and_names_the_file(
    app_services: tuple[Starlette, Services],
    client: httpx.AsyncClient,
    hooks: HookRecorder,
    fmt: str,
    media_type: str,
) -> None:
    path = await published(client, hooks, fmt)
    async with make_client(app_services[0], headers={}) as anonymous:
        response = await anonymous.get(path)
    assert response.status_code == 200
    name = path.rsplit("/", 1)[1]
    assert name.endswith(f".{fmt}")
    assert response.headers["content-type"] == media_type
    assert response.headers["content-disposition"] == f'attachment; filename="{name}"'
    on_disk = app_services[1].config.exports_dir / "local" / name
    assert response.content == on_disk.read_bytes()


async def test_another_partners_path_is_not_found(
    client: httpx.AsyncClient, hooks: HookRecorder
) -> None:
    path = await published(client, hooks)
    response = await client.get(path.replace("/exports/local/", "/exports/other/"))
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda name: name.upper().replace(".CSV", ".csv"), id="upper-hex"),
        pytest.param(lambda name: name.replace(".csv", ".json"), id="other-extension"),
        pytest.param(lambda name: name.replace(".csv", ".txt"), id="unknown-extension"),
        pytest.param(lambda name: name[1:], id="31-hex"),
        pytest.param(lambda name: "0" * 32 + ".csv", id="unknown-file"),
        pytest.param(lambda name: ".tmp-" + name, id="temporary-name"),
        pytest.param(lambda name: "ucd.sqlite3", id="database-name"),
    ],
)
async def test_malformed_or_unknown_names_are_not_found(
    client: httpx.AsyncClient, hooks: HookRecorder, mangle: object
) -> None:
    path = await published(client, hooks)
    folder, name = path.rsplit("/", 1)
    assert callable(mangle)
    response = await client.get(f"{folder}/{mangle(name)}")
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


async def test_an_encoded_slash_never_reaches_the_files(
    client: httpx.AsyncClient, services: Services
) -> None:
    """``%2F`` decodes to ``/``: no route matches, so the routing 404 of §2.1 answers."""
    response = await client.get("/exports/local/p/..%2F..%2Fucd.sqlite3")
    assert response.status_code == 404
    assert response.json() == {"error": "not found"}
    assert services.config.database_path.exists()


async def test_an_invalid_partner_segment_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/exports/Local/p/" + "0" * 32 + ".csv")
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


async def test_a_file_missing_from_disk_is_not_found_not_an_error(
    client: httpx.AsyncClient, services: Services, hooks: HookRecorder
) -> None:
    path = await published(client, hooks)
    (services.config.exports_dir / "local" / path.rsplit("/", 1)[1]).unlink()
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


async def test_withdraw_for_removes_the_row_and_returns_the_path(
    client: httpx.AsyncClient, services: Services, hooks: HookRecorder
) -> None:
    await seed_spec_example(client, services)
    path = await published(client, hooks)
    name = path.rsplit("/", 1)[1]
    worker = services.exports
    unrelated = await services.store.write(
        lambda conn: worker.withdraw_for(conn, "local", ["00000000-0000-4000-8000-000000000000"])
    )
    assert unrelated == []
    other_partner = await services.store.write(
        lambda conn: worker.withdraw_for(conn, "other", ["3b9a6c1e-8f3d-4c1a-9e57-2d8f0b6a4c11"])
    )
    assert other_partner == []
    assert (await client.get(path)).status_code == 200
    files = await services.store.write(
        lambda conn: worker.withdraw_for(conn, "local", ["9d2f0c4b-1e7a-4b6f-8c3d-5a9e1f2b7c60"])
    )
    assert files == [services.config.exports_dir / "local" / name]
    assert (await client.get(path)).status_code == 404
    members = await services.store.read(
        lambda conn: conn.execute("SELECT COUNT(*) FROM export_members").fetchone()[0]
    )
    assert members == 0
