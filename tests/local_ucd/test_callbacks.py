"""Error-callback delivery (§4.6): background, after the commit, 3 attempts, discardable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.callbacks import CallbackDispatcher
from gateway.local_ucd.config import LocalUcdConfig

from .conftest import make_client

URL = "https://hooks.example.com/ucd-errors"
PAYLOAD = {
    "insider_id": "i-1",
    "identifiers": {"email": "a@example.com"},
    "reason": "identifier belongs to another profile",
}


class Receiver:
    """Answers each POST with the next status of ``statuses`` (an exception is raised)."""

    def __init__(self, *statuses: int | Exception) -> None:
        self.statuses = list(statuses)
        self.requests: list[httpx.Request] = []
        self.answered: list[Any] = []  # bodies of the requests that got past the gate
        self.gate: asyncio.Event | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        self.answered.append(orjson.loads(request.content))
        status = self.statuses.pop(0) if self.statuses else 200
        if isinstance(status, Exception):
            raise status
        return httpx.Response(status)

    @property
    def bodies(self) -> list[Any]:
        return [orjson.loads(request.content) for request in self.requests]


class Sleeps:
    """A sleep that records its delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def dispatcher(receiver: Receiver, sleeps: Sleeps) -> AsyncIterator[CallbackDispatcher]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as client:
        callbacks = CallbackDispatcher(client, sleep=sleeps)
        yield callbacks
        await callbacks.aclose()


async def test_a_callback_is_posted_as_json(
    dispatcher: CallbackDispatcher, receiver: Receiver, sleeps: Sleeps
) -> None:
    dispatcher.enqueue("local", "i-1", URL, PAYLOAD)
    assert dispatcher.pending == 1  # enqueue never waits for the delivery
    await dispatcher.join()
    assert dispatcher.pending == 0
    [request] = receiver.requests
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["content-type"] == "application/json"
    assert orjson.loads(request.content) == PAYLOAD
    assert sleeps.delays == []


@pytest.mark.parametrize(
    ("statuses", "attempts", "delays"),
    [
        pytest.param((500, 503), 3, [1.0, 2.0], id="third-attempt-succeeds"),
        pytest.param((500, 500, 500), 3, [1.0, 2.0], id="gives-up-after-three"),
        pytest.param((404, 204), 2, [1.0], id="any-2xx-is-success"),
        pytest.param((httpx.ConnectError("refused"), 200), 2, [1.0], id="transport-error-retried"),
    ],
)
async def test_retries(
    dispatcher: CallbackDispatcher,
    receiver: Receiver,
    sleeps: Sleeps,
    statuses: tuple[int | Exception, ...],
    attempts: int,
    delays: list[float],
) -> None:
    receiver.statuses = list(statuses)
    dispatcher.enqueue("local", "i-1", URL, PAYLOAD)
    await dispatcher.join()
    assert len(receiver.requests) == attempts
    assert sleeps.delays == delays
    assert dispatcher.pending == 0


async def test_discard_drops_pending_callbacks_of_erased_profiles(
    dispatcher: CallbackDispatcher, receiver: Receiver
) -> None:
    receiver.gate = asyncio.Event()
    dispatcher.enqueue("local", "erased", URL, {**PAYLOAD, "insider_id": "erased"})
    dispatcher.enqueue("local", "alias", URL, {**PAYLOAD, "insider_id": "alias"})
    dispatcher.enqueue("other", "erased", URL, {**PAYLOAD, "insider_id": "other-partner"})
    dispatcher.enqueue("local", "kept", URL, {**PAYLOAD, "insider_id": "kept"})
    await asyncio.sleep(0)  # the deliveries start and wait at the gate
    dispatcher.discard("local", ["erased", "alias", "never-enqueued"])
    assert dispatcher.pending == 2
    receiver.gate.set()
    await dispatcher.join()
    assert dispatcher.pending == 0
    assert len(receiver.requests) == 4  # all four had started
    assert sorted(body["insider_id"] for body in receiver.answered) == ["kept", "other-partner"]


async def test_aclose_cancels_what_is_pending(receiver: Receiver) -> None:
    receiver.gate = asyncio.Event()
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as client:
        callbacks = CallbackDispatcher(client)
        callbacks.enqueue("local", "i-1", URL, PAYLOAD)
        await asyncio.sleep(0)
        await callbacks.aclose()
        assert callbacks.pending == 0
        receiver.gate.set()
        await asyncio.sleep(0)
    assert len(receiver.requests) == 1
    assert receiver.answered == []


# -- through the app ---------------------------------------------------------------------------


@pytest.fixture
async def gated_app(ucd_config: LocalUcdConfig, receiver: Receiver) -> AsyncIterator[Starlette]:
    receiver.gate = asyncio.Event()
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as hook_client:
        app = create_local_ucd_app(ucd_config, hook_client=hook_client)
        async with LifespanManager(app):
            app.state.services.now = lambda: datetime(2025, 6, 1, tzinfo=UTC)
            yield app


async def test_the_answer_never_waits_for_the_callback(
    gated_app: Starlette, receiver: Receiver
) -> None:
    users = [{"identifiers": {"uuid": "u-1", "email": "a@example.com"}, "attributes": {"age": 1}}]
    async with make_client(gated_app) as client:
        await client.post("/api/user/v1/upsert", json={"users": users})
        users[0]["identifiers"]["email"] = "b@example.com"  # type: ignore[index]
        response = await asyncio.wait_for(
            client.post(
                "/api/user/v1/upsert", json={"users": users, "error_callback_endpoint": URL}
            ),
            5,
        )
    assert response.json() == {"data": {"successful": {"count": 1}, "fail": {}}}
    callbacks: CallbackDispatcher = gated_app.state.services.callbacks
    assert callbacks.pending == 1
    assert receiver.gate is not None
    receiver.gate.set()
    await callbacks.join()
    [body] = receiver.bodies
    assert body["identifiers"] == {"email": "b@example.com"}
    assert body["reason"] == "profile already has a different value for this identifier"
