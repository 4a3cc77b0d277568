"""The embedded local UCD: served on a real socket when no UCD URL is configured."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.app import create_app
from gateway.embedded import EmbeddedUcdError, run_local_ucd
from tests.gateway.conftest import app_settings, graphql, runtime


async def test_without_a_ucd_url_the_embedded_local_ucd_is_reached_over_http(
    tmp_path: Path,
) -> None:
    app = create_app(
        app_settings(ucd_base_url=None, local_ucd_port=0, local_ucd_data_dir=tmp_path / "ucd")
    )
    async with LifespanManager(app) as manager:
        base_url = runtime(app).ucd_base_url
        assert base_url.startswith("http://127.0.0.1:")
        assert not base_url.endswith(":0")
        # The local UCD itself answers on that URL, over a real socket.
        async with httpx.AsyncClient() as direct:
            assert (await direct.get(f"{base_url}/healthz")).json() == {"status": "ok"}
        transport = httpx.ASGITransport(manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            body = await graphql(client, '{ user(key: {uuid: "nobody"}) { name } }')
    assert body == {
        "data": {"user": None},
        "extensions": {"cost": {"ucdCalls": {"planned": 1, "actual": 1}}},
    }
    assert (tmp_path / "ucd" / "ucd.sqlite3").exists()


async def test_a_taken_port_is_an_embedded_ucd_error_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        config = app_settings(local_ucd_port=port, local_ucd_data_dir=tmp_path / "ucd")
        with pytest.raises(EmbeddedUcdError, match=f"127.0.0.1:{port}.*LOCAL_UCD_PORT"):
            async with run_local_ucd(config):
                pass
