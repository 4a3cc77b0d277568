"""Layered fixtures: every gateway test talks to the real local UCD, in-process.

    ucd_config (tmp data dir; ``ucd_faults`` / ``ucd_strict`` by indirect parametrization)
    -> local_ucd: create_local_ucd_app(...) with its lifespan (store, export worker);
       its webhooks go out through ``hooks`` (a HookRelay)
    -> ucd_transport: UcdWire(LocalUcdTransport(app)) — the wire can delay, count
       requests in flight and fail chosen requests (what the local UCD cannot do itself)
    -> ucd_http: httpx.AsyncClient with an event hook recording every UCD request
    -> ucd: UcdClient
    -> (a) ``gateway``: schema.execute with build_context (resolver tests)
       (b) ``gateway_http``: create_app(settings, http_client=ucd_http) behind
           httpx.ASGITransport + LifespanManager (HTTP tests); the local UCD's webhooks
           reach this app in-process
    (c) ``app_gateway(handler=None, **settings)``: the same app over a scripted UCD
        (``handler``) or a fresh local UCD, for app tests that need no fixture

Push-down and call counts are asserted on ``ucd_calls``: the method, path and JSON body
of every request the gateway sent to the UCD, in order (retries included).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from strawberry.types import ExecutionResult

from gateway.api.context import build_context
from gateway.api.schema import build_schema
from gateway.app import Runtime, create_app
from gateway.catalog import CatalogCache
from gateway.exports import ExportJobs
from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import FaultConfig, LocalUcdConfig
from gateway.local_ucd.transport import LocalUcdTransport
from gateway.reads.inflight import ProfileReads
from gateway.settings import Settings
from gateway.state.memory import MemoryState
from gateway.ucd.bulkheads import Bulkheads
from gateway.ucd.client import UcdClient
from gateway.ucd.requests import ProfileRequest, UpsertEvent, UpsertRequest, UpsertUser, UserRef
from gateway.upserts import UpsertCoalescer
from tests.gateway.redis_server import RedisServer
from tests.gateway.served_gateway import ServedGateway, serving_gateway

UCD_BASE = "http://local-ucd.test"
GATEWAY_BASE = "http://gateway.test"
TOKEN = "local-dev-token"


# --- what went over the wire ------------------------------------------------------------


@dataclass(frozen=True)
class UcdCall:
    method: str
    path: str
    body: Any


@dataclass
class CallLog:
    """Every request sent to the UCD, in order."""

    calls: list[UcdCall] = field(default_factory=list)

    async def record(self, request: httpx.Request) -> None:
        body = orjson.loads(request.content) if request.content else None
        self.calls.append(UcdCall(request.method, request.url.path, body))

    def to(self, path: str) -> list[UcdCall]:
        return [c for c in self.calls if c.path == path]

    @property
    def profiles(self) -> list[UcdCall]:
        return self.to("/api/user/v1/profile")

    @property
    def upserts(self) -> list[UcdCall]:
        return self.to("/api/user/v1/upsert")

    @property
    def paths(self) -> list[str]:
        return [c.path for c in self.calls]

    def clear(self) -> None:
        self.calls.clear()


Failure = Callable[[httpx.Request], BaseException | None]


@dataclass
class UcdWire(httpx.AsyncBaseTransport):
    """The transport between the gateway and the local UCD.

    ``delay`` holds every request that long before the UCD sees it (to make calls
    overlap); ``fail`` may return an exception to raise instead of sending a request
    (a refused connection for one user only, say). ``max_in_flight`` is the most
    requests that were on the wire at once.
    """

    inner: httpx.AsyncBaseTransport
    delay: float = 0.0
    fail: Failure | None = None
    in_flight: int = 0
    max_in_flight: int = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            failure = self.fail(request) if self.fail is not None else None
            if failure is not None:
                raise failure
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        await self.inner.aclose()


def fail_when_body_mentions(text: str) -> Failure:
    """A ``UcdWire.fail`` that refuses the connection of every request naming ``text``."""

    def fail(request: httpx.Request) -> BaseException | None:
        if text.encode() in request.content:
            return httpx.ConnectError("connection refused", request=request)
        return None

    return fail


@dataclass
class HookRelay(httpx.AsyncBaseTransport):
    """The local UCD's outbound HTTP (export webhooks), recorded.

    The webhook URL names the gateway, and the gateway app is built after the local UCD
    (it needs the UCD client), so HTTP tests attach the app here once it runs: from then
    on each POST reaches it through ``httpx.ASGITransport``. Unattached, the relay
    answers 200 itself.
    """

    posts: list[tuple[str, Any]] = field(default_factory=list)
    target: httpx.AsyncBaseTransport | None = None
    _posted: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.posts.append((str(request.url), orjson.loads(body)))
        self._posted.set()
        if self.target is not None:
            return await self.target.handle_async_request(request)
        return httpx.Response(200, json={})

    async def wait_for_posts(self, count: int = 1) -> None:
        """Wait until ``count`` webhooks were posted (callers bound it with a timeout)."""
        while len(self.posts) < count:
            self._posted.clear()
            await self._posted.wait()


#: Bound, never listening, held until the process ends: a released port could be taken
#: by another test's server (two xdist workers) and answer instead of refusing.
_REFUSING: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _state_in_a_temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An app's in-process state file goes to the test's own folder, never to the
    repository's ./.local-ucd (shared by every test and worker otherwise)."""
    monkeypatch.setenv("UCD_GATEWAY_LOCAL_UCD_DATA_DIR", str(tmp_path / "local-data"))


@pytest.fixture(autouse=True)
def _no_shedding_on_loop_lag(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process apps neither shed on their event loop's lag nor lower their in-flight
    limit for it, unless a test asks (tests/gateway/test_loop_lag.py,
    test_in_flight_limit.py): a test worker that the machine leaves without a CPU for
    50 ms would otherwise refuse a concurrent request of an unrelated test at random."""
    monkeypatch.setenv("UCD_GATEWAY_MAX_LOOP_LAG_MS", "0")
    monkeypatch.setenv("UCD_GATEWAY_TARGET_LOOP_LAG_MS", "0")


@pytest.fixture(scope="session", autouse=True)
def _close_refusing_sockets() -> Iterator[None]:
    yield
    while _REFUSING:
        _REFUSING.pop().close()


def free_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connecting to it is refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _REFUSING.append(sock)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


# --- Redis -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real Redis for the session (per xdist worker), shared by the tests that only
    read and write it; a test that stops or pauses its server uses ``private_redis``."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, to stop, pause and restart."""
    server = RedisServer(tmp_path / "redis")
    server.folder.mkdir()
    server.start()
    yield server
    server.stop()


# --- the local UCD ------------------------------------------------------------------------


@pytest.fixture
def ucd_faults(request: pytest.FixtureRequest) -> Mapping[str, Any] | None:
    """§5.7 fault injection, as JSON; a test sets it with ``indirect=["ucd_faults"]``."""
    faults: Mapping[str, Any] | None = getattr(request, "param", None)
    return faults


@pytest.fixture
def ucd_strict(request: pytest.FixtureRequest) -> bool:
    """§2.6 rate limits enforced; a test sets it with ``indirect=["ucd_strict"]``."""
    return bool(getattr(request, "param", False))


@pytest.fixture
def ucd_config(
    tmp_path: Path, ucd_faults: Mapping[str, Any] | None, ucd_strict: bool
) -> LocalUcdConfig:
    return LocalUcdConfig(
        data_dir=tmp_path / "ucd",
        public_base_url=UCD_BASE,
        strict_rate_limits=ucd_strict,
        faults=FaultConfig.from_json(ucd_faults) if ucd_faults is not None else None,
    )


@pytest.fixture
def hooks() -> HookRelay:
    return HookRelay()


@contextlib.asynccontextmanager
async def running_local_ucd(
    config: LocalUcdConfig, hooks: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[Any]:
    """The local UCD app with its lifespan running; webhooks go out through ``hooks``."""
    async with httpx.AsyncClient(transport=hooks or HookRelay(), base_url=GATEWAY_BASE) as out:
        app = create_local_ucd_app(config, hook_client=out)
        async with LifespanManager(app) as manager:
            yield manager.app


@pytest.fixture
async def local_ucd(ucd_config: LocalUcdConfig, hooks: HookRelay) -> AsyncIterator[Any]:
    async with running_local_ucd(ucd_config, hooks) as app:
        yield app


@pytest.fixture
def ucd_transport(local_ucd: Any) -> UcdWire:
    return UcdWire(LocalUcdTransport(app=local_ucd))


@pytest.fixture
def ucd_calls() -> CallLog:
    return CallLog()


@pytest.fixture
async def ucd_http(ucd_transport: UcdWire, ucd_calls: CallLog) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=ucd_transport,
        base_url=UCD_BASE,
        event_hooks={"request": [ucd_calls.record]},
    ) as http:
        yield http


@pytest.fixture
def settings() -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, public_url=GATEWAY_BASE, max_concurrency=8
    )


@pytest.fixture
def ucd(ucd_http: httpx.AsyncClient, settings: Settings) -> UcdClient:
    return UcdClient(
        ucd_http, partner="local", token=TOKEN, bulkheads=Bulkheads(reads=settings.max_concurrency)
    )


def wire_ref(body: Mapping[str, Any]) -> UserRef:
    """The user a body in the UCD's own shape names (``insider_id``, ``identifiers``)."""
    ids = dict(body.get("identifiers") or {})
    return UserRef(
        insider_id=body.get("insider_id"),
        email=ids.get("email"),
        phone_number=ids.get("phone_number"),
        uuid=ids.get("uuid"),
        custom=tuple((ids.get("custom") or {}).items()),
    )


def wire_user(body: Mapping[str, Any]) -> UpsertUser:
    """An E1 user written in the UCD's own shape, as the typed request (test set-up)."""
    attributes = dict(body.get("attributes") or {})
    custom = attributes.pop("custom", {})
    events = []
    for event in body.get("events") or ():
        params = dict(event.get("event_params") or {})
        custom_params = params.pop("custom", {})
        events.append(UpsertEvent(event["event_name"], event["timestamp"], params, custom_params))
    return UpsertUser(
        wire_ref(body), attributes, custom, tuple(events), append=body.get("append", True)
    )


async def put_users(ucd: UcdClient, *users: Mapping[str, Any]) -> None:
    """Write users in the UCD's own E1 shape, straight to the UCD (test set-up)."""
    envelope = await ucd.upsert(UpsertRequest([wire_user(user) for user in users]))
    assert envelope.fail_count == 0, envelope.errors


async def insider_id(ucd: UcdClient, identifiers: Mapping[str, Any]) -> str:
    """The insider_id the UCD gave the user these identifiers name."""
    user = wire_ref({"identifiers": identifiers})
    answer = await ucd.profile(ProfileRequest(user, attributes=("iid",)))
    assert answer is not None
    assert answer.insider_id is not None
    return answer.insider_id


#: The read names of User's 17 typed fields (§4.7.1), written out rather than taken from
#: gateway.api.names so the tests check that table.
TYPED_READ_NAMES = frozenset(
    {
        "email",
        "phone_number",
        "uuid",
        "name",
        "surname",
        "birthday",
        "gender",
        "age",
        "language",
        "country",
        "city",
        "lo",
        "email_optin",
        "sms_optin",
        "whatsapp_optin",
        "gdpr",
        "static_segment_id",
    }
)


# --- (a) the schema, for resolver tests -----------------------------------------------------


@dataclass
class Gateway:
    """The schema with a fresh per-request context for every ``execute``."""

    ucd: UcdClient
    upserts: UpsertCoalescer
    exports: ExportJobs
    settings: Settings
    reads: ProfileReads
    schema: Any = field(default_factory=build_schema)
    catalog: CatalogCache = field(default_factory=lambda: CatalogCache(60.0))

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> ExecutionResult:
        context = await build_context(
            ucd=self.ucd,
            exports=self.exports,
            upserts=self.upserts,
            settings=self.settings,
            reads=self.reads,
            catalog=self.catalog,
        )
        result: ExecutionResult = await self.schema.execute(
            query, variable_values=variables, context_value=context
        )
        return result

    async def ok(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Execute and insist on no errors; the data."""
        result = await self.execute(query, variables)
        assert result.errors is None, [e.formatted for e in result.errors or ()]
        assert result.data is not None
        return result.data


@pytest.fixture
async def gateway(ucd: UcdClient, settings: Settings) -> AsyncIterator[Gateway]:
    upserts = UpsertCoalescer(ucd, window_ms=settings.upsert_window_ms)
    yield Gateway(
        ucd=ucd,
        upserts=upserts,
        exports=ExportJobs(GATEWAY_BASE, MemoryState()),
        settings=settings,
        reads=ProfileReads(ucd),
    )
    await upserts.aclose()


UPSERT = """
mutation Upsert($input: UpsertUsersInput!) {
  upsertUsers(input: $input) { successCount failureCount results { index ok errors { path message
      } } }
}
"""


async def seed(gateway: Gateway, users: list[dict[str, Any]]) -> None:
    """Write users through the gateway itself (the UCD is read-after-write consistent)."""
    data = await gateway.ok(UPSERT, {"input": {"users": users}})
    assert data["upsertUsers"]["failureCount"] == 0, data


# --- (b) the app, for HTTP tests ------------------------------------------------------------


@dataclass
class GatewayHttp:
    """A client of the gateway app (``POST /graphql``) and the app's runtime."""

    client: httpx.AsyncClient
    app: Starlette

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime.get()
        return runtime

    async def post(self, query: str, variables: Mapping[str, Any] | None = None) -> Any:
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": dict(variables or {})}
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        return orjson.loads(response.content)

    async def ok(self, query: str, variables: Mapping[str, Any] | None = None) -> Any:
        body = await self.post(query, variables)
        assert "errors" not in body, body
        return body["data"]

    async def error(self, query: str, variables: Mapping[str, Any] | None = None) -> Any:
        """The one error of the answer."""
        body = await self.post(query, variables)
        errors = body.get("errors")
        assert errors is not None, body
        assert len(errors) == 1, body
        return errors[0]


@contextlib.asynccontextmanager
async def serve_gateway(
    settings: Settings, http: httpx.AsyncClient, hooks: HookRelay | None = None
) -> AsyncIterator[GatewayHttp]:
    """Run ``create_app(settings, http_client=http)`` with its lifespan; see the module doc."""
    app = create_app(settings, http_client=http)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=GATEWAY_BASE) as client:
            if hooks is not None:
                hooks.target = transport
            try:
                yield GatewayHttp(client, app)
            finally:
                if hooks is not None:
                    hooks.target = None


@pytest.fixture
async def gateway_http(
    ucd_http: httpx.AsyncClient, hooks: HookRelay, settings: Settings
) -> AsyncIterator[GatewayHttp]:
    async with serve_gateway(settings, ucd_http, hooks) as served:
        yield served


# --- (c) the app over a scripted UCD or a fresh local UCD, without fixtures ----------------

#: A scripted UCD: answers each request (httpx.MockTransport's handler).
Handler = Callable[[httpx.Request], httpx.Response]


def app_settings(**overrides: Any) -> Settings:
    """Settings of an app under test: a UCD at a placeholder URL, no retries."""
    values: dict[str, Any] = {"ucd_base_url": "http://ucd.test", "max_retries": 0}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@contextlib.asynccontextmanager
async def upstream(handler: Handler | None) -> AsyncIterator[httpx.AsyncClient]:
    """The real local UCD (in a temporary data dir), or ``handler`` where it cannot answer
    as a test needs (a 400 echoing personal data, an exception inside the transport).

    Tests that need the local UCD with faults or a call log use the fixtures above."""
    if handler is not None:
        transport = httpx.MockTransport(handler)
        async with httpx.AsyncClient(transport=transport, base_url="http://ucd") as http:
            yield http
        return
    with tempfile.TemporaryDirectory() as data_dir:
        config = LocalUcdConfig(data_dir=Path(data_dir), public_base_url="http://ucd")
        async with (
            running_local_ucd(config) as ucd_app,
            httpx.AsyncClient(transport=LocalUcdTransport(ucd_app), base_url="http://ucd") as http,
        ):
            yield http


@contextlib.asynccontextmanager
async def app_gateway(
    handler: Handler | None = None, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Starlette]]:
    """``create_app`` with its lifespan over ``upstream(handler)``: a client and the app."""
    async with upstream(handler) as http:
        app = create_app(app_settings(**overrides), http_client=http)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                yield client, app


def runtime(app: Starlette) -> Runtime:
    return app.state.runtime.get()  # type: ignore[no-any-return]


async def graphql(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    return orjson.loads(response.content)  # type: ignore[no-any-return]


#: A query whose one field costs one profile call.
USER_QUERY = '{ user(key: {uuid: "u-1"}) { insiderId name } }'


# --- (d) the real gateway process, once per session ------------------------------------------


@pytest.fixture(scope="session")
def served_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedGateway]:
    """``python -m gateway serve`` on free ports (tests/gateway/served_gateway.py)."""
    with serving_gateway(tmp_path_factory.mktemp("served-gateway")) as served:
        yield served
