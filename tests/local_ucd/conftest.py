"""Layered fixtures for the local UCD: config -> app (with lifespan) -> HTTP client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import LocalUcdConfig
from gateway.local_ucd.transport import LocalUcdTransport

PARTNER = "local"
TOKEN = "local-dev-token"
AUTH = {"X-PARTNER-NAME": PARTNER, "X-REQUEST-TOKEN": TOKEN}
OTHER_PARTNER = "other"
OTHER_TOKEN = "other-token"


@pytest.fixture
def ucd_config(tmp_path: Path) -> LocalUcdConfig:
    """Two partners, so isolation can be tested with the same app."""
    return LocalUcdConfig(
        data_dir=tmp_path / "ucd",
        partners={PARTNER: (TOKEN,), OTHER_PARTNER: (OTHER_TOKEN,)},
        public_base_url="http://local-ucd.test",
    )


@pytest.fixture
async def ucd_app(ucd_config: LocalUcdConfig) -> AsyncIterator[Starlette]:
    app = create_local_ucd_app(ucd_config)
    async with LifespanManager(app) as manager:
        yield manager.app  # type: ignore[misc]


def make_client(app: Any, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=LocalUcdTransport(app),
        base_url="http://local-ucd.test",
        headers=headers if headers is not None else AUTH,
    )


@contextlib.asynccontextmanager
async def serve(
    config: LocalUcdConfig, headers: dict[str, str] = AUTH
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """A local UCD of ``config`` (its app, to reach ``app.state.services``) and a client."""
    app = create_local_ucd_app(config)
    async with LifespanManager(app) as manager, make_client(manager.app, headers) as client:
        yield app, client


class FakeClock:
    """A monotonic clock and a UTC wall clock that move only when told."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.wall = datetime(2026, 3, 14, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> float:
        return self.t

    def now(self) -> datetime:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self.wall += timedelta(seconds=seconds)


@pytest.fixture
async def ucd(ucd_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client of partner ``local``, authenticated."""
    async with make_client(ucd_app) as client:
        yield client


@pytest.fixture
async def other_ucd(ucd_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client of partner ``other`` on the same local UCD."""
    async with make_client(
        ucd_app, {"X-PARTNER-NAME": OTHER_PARTNER, "X-REQUEST-TOKEN": OTHER_TOKEN}
    ) as client:
        yield client


@pytest.fixture
def upsert(ucd: httpx.AsyncClient) -> Callable[..., Any]:
    """POST users to E1 and return the parsed answer."""

    async def _upsert(*users: dict[str, Any], **top: Any) -> dict[str, Any]:
        response = await ucd.post("/api/user/v1/upsert", json={"users": list(users), **top})
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    return _upsert
