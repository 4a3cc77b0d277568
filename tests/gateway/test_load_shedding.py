"""Load shedding (gateway/load_shedding.py): over UCD_GATEWAY_MAX_IN_FLIGHT GraphQL
requests, or while draining, a request is refused at once with 503 OVERLOADED, without
a UCD call and without its body being read; probes are never refused."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from gateway.app import admission_of
from gateway.drain import GRACE_AFTER_DRAIN_S, DrainingServer
from gateway.load_shedding import Admission, ShedLoad
from gateway.local_ucd.transport import LocalUcdTransport
from gateway.settings import Settings
from tests.gateway.conftest import UCD_BASE, CallLog, GatewayHttp, serve_gateway


def user_query(uuid: str) -> dict[str, str]:
    return {"query": f'{{ user(key: {{uuid: "{uuid}"}}) {{ insiderId name }} }}'}


@dataclass
class HeldWire(httpx.AsyncBaseTransport):
    """The wire to the local UCD, holding every request until ``release`` is set."""

    inner: httpx.AsyncBaseTransport
    release: asyncio.Event = field(default_factory=asyncio.Event)
    held: int = 0
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.held += 1
        self._arrived.set()
        await self.release.wait()
        return await self.inner.handle_async_request(request)

    async def wait_held(self, count: int) -> None:
        while self.held < count:
            self._arrived.clear()
            await self._arrived.wait()


@contextlib.asynccontextmanager
async def held_gateway(
    local_ucd: Any, ucd_calls: CallLog, settings: Settings, **overrides: Any
) -> AsyncIterator[tuple[GatewayHttp, HeldWire]]:
    wire = HeldWire(LocalUcdTransport(app=local_ucd))
    async with (
        httpx.AsyncClient(
            transport=wire, base_url=UCD_BASE, event_hooks={"request": [ucd_calls.record]}
        ) as http,
        serve_gateway(settings.model_copy(update=overrides), http) as gateway,
    ):
        try:
            yield gateway, wire
        finally:
            wire.release.set()


def refusal(response: httpx.Response) -> dict[str, Any]:
    """The one error of a 503 refusal, after checking its HTTP shape."""
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/json"
    (error,) = orjson.loads(response.content)["errors"]
    assert error["extensions"] == {"code": "OVERLOADED", "retryAfter": 1}
    return error  # type: ignore[no-any-return]


async def test_the_request_over_the_limit_is_refused_at_once_and_makes_no_ucd_call(
    local_ucd: Any, ucd_calls: CallLog, settings: Settings
) -> None:
    async with held_gateway(local_ucd, ucd_calls, settings, max_in_flight=2) as (gateway, wire):
        client = gateway.client
        held = [
            asyncio.create_task(client.post("/graphql", json=user_query(uuid)))
            for uuid in ("u-1", "u-2")
        ]
        await asyncio.wait_for(wire.wait_held(2), 10)
        assert admission_of(gateway.app).in_flight == 2

        refused = await asyncio.wait_for(client.post("/graphql", json=user_query("u-3")), 5)
        error = refusal(refused)
        assert error["message"] == (
            "the gateway is at its limit of 2 GraphQL requests in flight "
            "(UCD_GATEWAY_MAX_IN_FLIGHT); retry after 1 s"
        )
        # Kept alive: an overloaded gateway should not also pay for new connections.
        assert "connection" not in refused.headers
        assert len(ucd_calls.profiles) == 2
        # Probes are never shed: a full gateway is alive, and ready.
        assert (await client.get("/healthz")).status_code == 200

        wire.release.set()
        for answer in await asyncio.gather(*held):
            assert answer.status_code == 200
            assert orjson.loads(answer.content)["data"] == {"user": None}
        assert admission_of(gateway.app).in_flight == 0

        again = await client.post("/graphql", json=user_query("u-3"))
        assert again.status_code == 200
        assert "errors" not in orjson.loads(again.content)
        assert len(ucd_calls.profiles) == 3


async def test_while_draining_graphql_is_refused_and_readyz_says_draining(
    local_ucd: Any, ucd_calls: CallLog, settings: Settings
) -> None:
    async with held_gateway(local_ucd, ucd_calls, settings) as (gateway, wire):
        wire.release.set()
        client = gateway.client
        assert (await client.get("/readyz")).status_code == 200
        calls = len(ucd_calls.calls)

        admission_of(gateway.app).start_draining()

        ready = await client.get("/readyz")
        assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
        refused = await client.post("/graphql", json=user_query("u-1"))
        assert refusal(refused)["message"] == "the gateway is shutting down; retry after 1 s"
        # The caller's next request should find another instance.
        assert refused.headers["connection"] == "close"
        assert (await client.get("/healthz")).status_code == 200
        assert len(ucd_calls.calls) == calls


# --- the middleware alone ----------------------------------------------------------------


async def _never_called(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("a refused request reached the app")


async def _no_body(*_: Any) -> Message:
    raise AssertionError("a refused request's body was read")


async def _no_send(message: Message) -> None:
    raise AssertionError("the app was to answer, not the middleware")


def _scope(path: str) -> Scope:
    return {"type": "http", "method": "POST", "path": path, "headers": []}


async def test_a_refusal_reads_no_body_and_reaches_no_app() -> None:
    admission = Admission(max_in_flight=1)
    admission.enter()
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await ShedLoad(_never_called, admission=admission)(_scope("/graphql"), _no_body, send)
    start, body = sent
    assert start["status"] == 503
    assert dict(start["headers"])[b"retry-after"] == b"1"
    assert orjson.loads(body["body"])["errors"][0]["extensions"]["code"] == "OVERLOADED"
    assert admission.in_flight == 1


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/hooks/exports/j/t"])
async def test_other_paths_pass_when_full_and_when_draining(path: str) -> None:
    admission = Admission(max_in_flight=1)
    admission.enter()
    admission.start_draining()
    reached: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])

    await ShedLoad(app, admission=admission)(_scope(path), _no_body, _no_send)
    assert reached == [path]
    assert admission.in_flight == 1


async def test_a_request_that_fails_still_leaves() -> None:
    admission = Admission(max_in_flight=1)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert admission.in_flight == 1
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        await ShedLoad(app, admission=admission)(_scope("/graphql"), _no_body, _no_send)
    assert admission.in_flight == 0
    async with asyncio.timeout(0):
        await admission.wait_idle()


async def _held_until_cancelled(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.Event().wait()


async def test_a_request_cancelled_by_the_shutdown_is_answered_outcome_unknown() -> None:
    """uvicorn cancels what still runs after the drain and its grace; the caller gets a
    GraphQL answer saying a write may have been applied, not a bare 500."""
    admission = Admission(max_in_flight=4)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    request = asyncio.create_task(
        ShedLoad(_held_until_cancelled, admission=admission)(_scope("/graphql"), _no_body, send)
    )
    await asyncio.sleep(0.01)
    admission.start_draining()
    request.cancel()
    await asyncio.wait_for(request, 5)  # answered, not cancelled
    start, body = sent
    assert start["status"] == 503
    headers = dict(start["headers"])
    assert headers[b"connection"] == b"close"
    assert b"retry-after" not in headers  # sending it again may apply a write twice
    (error,) = orjson.loads(body["body"])["errors"]
    assert error["extensions"] == {"code": "UPSTREAM_OUTCOME_UNKNOWN"}
    assert "may or may not have been applied" in error["message"]
    assert admission.in_flight == 0


async def test_a_cancelled_request_stays_cancelled_outside_a_drain_or_once_answering() -> None:
    admission = Admission(max_in_flight=4)

    async def answering(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.Event().wait()

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    for app, draining in ((_held_until_cancelled, False), (answering, True)):
        admission.draining = False
        request = asyncio.create_task(
            ShedLoad(app, admission=admission)(_scope("/graphql"), _no_body, send)
        )
        await asyncio.sleep(0.01)
        admission.draining = draining
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
    assert [m["status"] for m in sent] == [200]  # the app's start only
    assert admission.in_flight == 0


def test_the_shutdown_time_left_counts_down_from_the_drains_bound() -> None:
    admission = Admission(max_in_flight=4)
    assert admission.shutdown_time_left() is None  # no drain: nothing bounds it
    admission.start_draining(stop_by=time.monotonic() + 5)
    left = admission.shutdown_time_left()
    assert left is not None
    assert 4 < left <= 5
    admission.start_draining(stop_by=time.monotonic() - 1)
    assert admission.shutdown_time_left() == 0


async def test_wait_idle_returns_when_the_last_request_leaves() -> None:
    admission = Admission(max_in_flight=4)
    admission.enter()
    admission.enter()
    waiting = asyncio.create_task(admission.wait_idle())
    admission.leave()
    await asyncio.sleep(0)
    assert not waiting.done()
    admission.leave()
    await asyncio.wait_for(waiting, 5)


# --- the drain, in this process -------------------------------------------------------------


async def _started(server: uvicorn.Server) -> None:
    for _ in range(1000):
        if server.started:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the server did not start within 10 s")


async def test_the_first_signal_drains_and_the_server_stops_once_idle() -> None:
    """The server keeps serving while a request is in flight, and stops when it leaves;
    the signal is not re-raised (so the caller closes the lifespan, and exits 0)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("no request is sent")

    admission = Admission(max_in_flight=4)
    admission.enter()
    server = DrainingServer(
        uvicorn.Config(app, lifespan="off", log_level="warning"),
        admission=admission,
        drain_timeout=10,
    )
    assert server.config.timeout_graceful_shutdown == GRACE_AFTER_DRAIN_S
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        await _started(server)
        server.handle_exit(15, None)
        assert admission.draining
        await asyncio.sleep(0.3)
        assert not serving.done()
        assert not server.should_exit
        admission.leave()
        await asyncio.wait_for(serving, 10)
    assert server._captured_signals == []


async def test_a_drain_that_times_out_stops_anyway() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("no request is sent")

    admission = Admission(max_in_flight=4)
    admission.enter()
    server = DrainingServer(
        uvicorn.Config(app, lifespan="off", log_level="warning"),
        admission=admission,
        drain_timeout=0.05,
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        await _started(server)
        server.handle_exit(15, None)
        await asyncio.wait_for(serving, 10)
    assert admission.in_flight == 1
