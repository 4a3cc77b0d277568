"""The lean UCD connection pool (gateway/ucd/lean.py, the default transport) over sockets.

Against the real local UCD served by uvicorn in its own process (once per session):
reads and upserts written directly, without httpx's objects, on a bounded pool of
kept-alive connections. Against the loopback UCD (tests/gateway/loopback_ucd.py): every
framing and ending of an answer, the UCD's refusals, TLS with a throwaway CA (trustme),
cookies and event hooks (which route a call through httpx, on the same connections).
Faults (reset, drop, hang, trickle, refused) run through this transport in
tests/gateway/test_client_faults.py and test_client.py, parametrized with the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ssl
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import trustme
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from gateway.app import create_app
from gateway.errors import (
    RateLimited,
    UpstreamAuth,
    UpstreamError,
    UpstreamOutcomeUnknown,
    UpstreamUnavailable,
)
from gateway.settings import Settings
from gateway.ucd.client import UcdClient
from gateway.ucd.lean import LeanPool, decoded
from gateway.ucd.paths import METADATA_COLUMNS_PATH, PROFILE_PATH, UPSERT_PATH
from gateway.ucd.requests import (
    DeleteUserRequest,
    ProfileRequest,
    UpsertRequest,
    UpsertUser,
    UserRef,
)
from gateway.ucd.transport import LeanTransport, UcdHttpClient, build_http_client
from tests.gateway.conftest import GATEWAY_BASE, free_port_url, graphql
from tests.gateway.loopback_ucd import Behaviour, loopback_ucd
from tests.gateway.processes import local_ucd

#: ``ucd-gateway local-ucd``'s own partner and token when none is configured.
PARTNER = "local"
TOKEN = "local-dev-token"
PROFILE = ProfileRequest(UserRef(uuid="a"), attributes=("name",))


def lean_settings(**values: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, http_transport="lean", partner=PARTNER, token=SecretStr(TOKEN), **values
    )


@pytest.fixture(scope="session")
def served_ucd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``ucd-gateway local-ucd`` (uvicorn, uvloop) for this session: its URL."""
    with local_ucd(tmp_path_factory.mktemp("lean-wire")) as url:
        yield url


@contextlib.asynccontextmanager
async def lean_client(url: str, **values: Any) -> AsyncIterator[tuple[UcdClient, UcdHttpClient]]:
    """``UcdClient`` on ``build_http_client``'s lean client, whose httpx ``send`` fails:
    every call of these tests must go on the direct path (or say why not)."""
    http = build_http_client(lean_settings(**values), base_url=url)
    assert isinstance(http, UcdHttpClient)
    async with http:
        yield UcdClient(http, partner=PARTNER, token=TOKEN, max_retries=0), http


def _no_httpx(http: UcdHttpClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def send(*args: Any, **kwargs: Any) -> httpx.Response:
        raise AssertionError("a direct call went through httpx")

    monkeypatch.setattr(http, "send", send)


def _lean_pool(http: UcdHttpClient) -> LeanPool:
    pool = http.direct
    assert pool is not None
    return pool


# --- the real local UCD -----------------------------------------------------------------


async def test_upserts_and_reads_go_direct_on_at_most_max_connections(
    served_ucd: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = uuid.uuid4().hex[:8]
    async with lean_client(served_ucd, max_connections=2) as (client, http):
        _no_httpx(http, monkeypatch)
        users = [
            UpsertUser(UserRef(uuid=f"{run}-{i}"), {"name": f"User {i}", "email": f"u{i}@x.io"})
            for i in range(8)
        ]
        envelope = await client.upsert(UpsertRequest(users))
        assert envelope.successful_count == 8
        answers = await asyncio.gather(
            *(
                client.profile(ProfileRequest(UserRef(uuid=f"{run}-{i}"), ("name", "email")))
                for i in range(8)
            )
        )
        assert [{k: a.attributes[k] for k in ("name", "email")} for a in answers if a] == [
            {"name": f"User {i}", "email": f"u{i}@x.io"} for i in range(8)
        ]
        assert client.calls == 9
        assert 1 <= _lean_pool(http).opened <= 2


async def test_an_upsert_over_64_kb_is_written_whole(served_ucd: str) -> None:
    run = uuid.uuid4().hex[:8]
    async with lean_client(served_ucd) as (client, _):
        users = [UpsertUser(UserRef(uuid=f"{run}-{i}"), {"name": "x" * 200}) for i in range(400)]
        assert len(UpsertRequest(users).to_wire()["users"]) == 400
        envelope = await client.upsert(UpsertRequest(users))
        assert envelope.successful_count == 400
        answer = await client.profile(ProfileRequest(UserRef(uuid=f"{run}-399"), ("name",)))
    assert answer is not None
    assert answer.attributes["name"] == "x" * 200


async def test_an_unknown_user_and_a_wrong_token_answer_as_through_httpx(served_ucd: str) -> None:
    async with lean_client(served_ucd) as (client, http):
        assert (
            await client.profile(ProfileRequest(UserRef(uuid="nobody-at-all"), ("name",))) is None
        )
        intruder = UcdClient(http, partner=PARTNER, token="not-the-token", max_retries=0)
        with pytest.raises(UpstreamAuth):
            await intruder.profile(PROFILE)


async def test_the_apps_own_client_reads_on_the_direct_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``create_app`` without a client builds the lean one; a GraphQL read never touches
    httpx's ``send`` (nothing in production needs httpx's objects)."""

    async def send(*args: Any, **kwargs: Any) -> httpx.Response:
        raise AssertionError("the app's UCD call went through httpx")

    monkeypatch.setattr(UcdHttpClient, "send", send)
    async with loopback_ucd() as ucd:
        app = create_app(lean_settings(ucd_base_url=ucd.url, public_url=GATEWAY_BASE))
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(manager.app)
            async with httpx.AsyncClient(transport=transport, base_url=GATEWAY_BASE) as client:
                data = await graphql(client, '{ user(key: {uuid: "a"}) { name } }')
    assert data["data"] == {"user": {"name": "Ada"}}
    assert ucd.seen == {PROFILE_PATH: 1}


# --- the loopback UCD: statuses, framings, endings ------------------------------------------


async def test_a_429_is_rate_limited_with_its_retry_after_and_a_500_an_upstream_error() -> None:
    async with loopback_ucd(profile="429", upsert="500") as ucd, lean_client(ucd.url) as (c, _):
        with pytest.raises(RateLimited) as limited:
            await c.profile(PROFILE)
        with pytest.raises(UpstreamError) as failed:
            await c.upsert(UpsertRequest([UpsertUser(UserRef(uuid="a"), {"name": "A"})]))
    assert limited.value.retry_after == 1
    assert failed.value.extensions == {"code": "UPSTREAM_ERROR", "status": 500}
    assert ucd.connections == [1, 1]  # an error answer keeps the connection


@pytest.mark.parametrize(
    ("behaviour", "connections"),
    [
        pytest.param("chunked", [1, 1], id="chunked"),
        pytest.param("gzip", [1, 1], id="gzip"),
        pytest.param("continue", [1, 1], id="100-continue"),
        pytest.param("eof", [1, 2], id="until-close"),
        pytest.param("close", [1, 2], id="connection-close"),
    ],
)
async def test_each_framing_is_read_and_the_connection_kept_only_when_it_can_be(
    behaviour: Behaviour, connections: list[int]
) -> None:
    async with loopback_ucd(profile=behaviour) as ucd, lean_client(ucd.url) as (client, _):
        for _ in range(2):
            answer = await client.profile(PROFILE)
            assert answer is not None
            assert answer.attributes == {"name": "Ada"}
    assert ucd.connections == connections
    assert b"accept-encoding: gzip, deflate" in ucd.heads[0].lower()


async def test_a_connection_the_ucd_closed_while_idle_is_not_written_on() -> None:
    """No retries are allowed: a write on the dead connection would fail the call."""
    async with loopback_ucd(upsert="idle-close") as ucd, lean_client(ucd.url) as (client, _):
        for name in ("A", "B"):
            await client.upsert(UpsertRequest([UpsertUser(UserRef(uuid="a"), {"name": name})]))
            await asyncio.sleep(0.2)  # the server's FIN arrives while the connection idles
    assert ucd.requests == 2
    assert ucd.connections == [1, 2]


async def test_an_answer_that_is_not_http_drops_the_connection() -> None:
    async with loopback_ucd(profile="garbage") as ucd, lean_client(ucd.url) as (client, _):
        with pytest.raises(UpstreamUnavailable) as info:
            await client.profile(PROFILE)
    assert info.value.message == "the UCD dropped the connection (POST /api/user/v1/profile)"


async def test_an_answer_cut_short_drops_the_connection() -> None:
    async with loopback_ucd(profile="short") as ucd, lean_client(ucd.url) as (client, _):
        with pytest.raises(UpstreamUnavailable) as info:
            await client.profile(PROFILE)
    assert info.value.message == "the UCD dropped the connection (POST /api/user/v1/profile)"


async def test_a_connection_that_speaks_unasked_is_closed_and_not_reused() -> None:
    async with loopback_ucd(profile="chatty") as ucd, lean_client(ucd.url) as (client, _):
        for _ in range(2):
            assert await client.profile(PROFILE) is not None
            await asyncio.sleep(0.2)  # the stray bytes arrive while it idles
    assert ucd.connections == [1, 2]


async def test_an_idle_connection_past_its_keepalive_expiry_is_not_reused() -> None:
    head = b"POST %s HTTP/1.1\r\nHost: ucd\r\nContent-Length: 2\r\n\r\n" % PROFILE_PATH.encode()
    async with loopback_ucd() as ucd:
        pool = LeanPool(httpx.URL(ucd.url), max_connections=1, keepalive_expiry=0.05)
        first = await pool.request(head, b"{}")
        await asyncio.sleep(0.1)
        second = await pool.request(head, b"{}")
        await pool.aclose()
    assert first.status_code == second.status_code == 200
    assert second.headers["content-type"] == "application/json"
    assert ucd.connections == [1, 2]


async def test_a_reset_upsert_is_retried_and_a_reset_delete_not() -> None:
    """A reset after the request was written: maybe applied. An upsert is safe to send
    again (gateway/ucd/client.py); a delete is not, and says its outcome is unknown."""
    async with loopback_ucd(every="reset") as ucd:
        http = build_http_client(lean_settings(), base_url=ucd.url)
        async with http:
            client = UcdClient(http, partner=PARTNER, token=TOKEN, max_retries=2)
            with pytest.raises(UpstreamUnavailable, match="reset the connection"):
                await client.upsert(UpsertRequest([UpsertUser(UserRef(uuid="a"), {"n": 1})]))
            assert ucd.requests == 3
            with pytest.raises(UpstreamOutcomeUnknown) as info:
                await client.delete_user(DeleteUserRequest(UserRef(uuid="a")))
    assert info.value.extensions == {"code": "UPSTREAM_OUTCOME_UNKNOWN"}
    assert ucd.requests == 4


# --- what routes a call through httpx ---------------------------------------------------------


async def test_a_cookie_the_ucd_sets_is_sent_back_through_httpx() -> None:
    async with loopback_ucd(profile="cookie") as ucd, lean_client(ucd.url) as (client, http):
        assert http.direct is not None
        await client.profile(PROFILE)
        assert http.direct is None  # from now on: httpx sends the jar's cookies
        await client.profile(PROFILE)
    assert b"cookie: lb=node-1" not in ucd.heads[0].lower()
    assert b"cookie: lb=node-1" in ucd.heads[1].lower()
    assert ucd.connections == [1, 1]  # httpx's call went on the lean pool's connection


async def test_cookies_put_in_the_jar_by_hand_route_calls_through_httpx() -> None:
    async with loopback_ucd() as ucd, lean_client(ucd.url) as (client, http):
        http.cookies.set("session", "s-1")
        assert http.direct is None
        await client.profile(PROFILE)
        http.cookies = None  # an empty jar: direct again
        assert http.direct is not None
        http.cookies.update({"session": "s-2"})
        assert http.direct is None
    assert b"cookie: session=s-1" in ucd.heads[0].lower()


async def test_a_client_with_event_hooks_calls_through_httpx_on_the_same_pool() -> None:
    seen: list[str] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request.url.path)

    async with loopback_ucd() as ucd, lean_client(ucd.url) as (client, http):
        await client.profile(PROFILE)  # direct
        http.event_hooks["request"].append(record)
        assert http.direct is None
        await client.profile(PROFILE)
        await client.upsert(UpsertRequest([UpsertUser(UserRef(uuid="a"), {"name": "A"})]))
    assert seen == ["/api/user/v1/profile", "/api/user/v1/upsert"]
    assert ucd.connections == [1, 1, 1]


async def test_the_lean_transport_calls_only_the_ucds_origin() -> None:
    async with loopback_ucd() as ucd, lean_client(ucd.url) as (_, http):
        with pytest.raises(httpx.UnsupportedProtocol):
            await http.get("http://elsewhere.test/")
        with pytest.raises(httpx.UnsupportedProtocol):
            await http.head(PROFILE_PATH)


# --- TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    return trustme.CA()


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


async def test_https_is_verified_against_the_trusted_cas(test_ca: trustme.CA) -> None:
    trusting = ssl.create_default_context()
    test_ca.configure_trust(trusting)
    async with loopback_ucd(ssl=_server_context(test_ca)) as ucd:
        assert ucd.url.startswith("https://")
        limits = httpx.Limits(max_connections=4, keepalive_expiry=30)
        timeout = httpx.Timeout(5.0)
        transport = LeanTransport(ucd.url, limits=limits, timeout=timeout, ssl_context=trusting)
        async with UcdHttpClient(base_url=ucd.url, transport=transport, timeout=timeout) as http:
            client = UcdClient(http, partner=PARTNER, token=TOKEN, max_retries=0)
            for _ in range(2):
                answer = await client.profile(PROFILE)
                assert answer is not None
        assert ucd.connections == [1, 1]
        # build_http_client's default: httpx's context (certifi), which knows no test CA.
        async with lean_client(ucd.url, connect_timeout=5) as (untrusting, _):
            with pytest.raises(UpstreamUnavailable, match="refused the connection"):
                await untrusting.profile(PROFILE)
    assert ucd.requests == 2  # the unverified server was never sent the request


# --- the pool's own bounds -----------------------------------------------------------------


async def test_a_caller_waits_for_a_free_connection_up_to_the_pool_timeout() -> None:
    async with loopback_ucd() as ucd:
        pool = LeanPool(httpx.URL(ucd.url), max_connections=1, pool_timeout=0.05)
        held = await pool.acquire()
        with pytest.raises(httpx.PoolTimeout):
            await pool.acquire()
        waiting = asyncio.create_task(pool.acquire(pool_timeout=5))
        await asyncio.sleep(0.05)
        pool.release(held)  # not reusable (no exchange finished): closed, the slot freed
        again = await waiting
        pool.release(again)
        await pool.aclose()
        with pytest.raises(httpx.ConnectError, match="closed"):
            await pool.acquire()
    assert pool.opened == 2


async def test_a_connect_timeout_is_a_connect_timeout() -> None:
    async with loopback_ucd() as ucd:
        pool = LeanPool(httpx.URL(ucd.url), max_connections=1, connect_timeout=1e-9)
        with pytest.raises(httpx.ConnectTimeout):
            await pool.acquire()
    assert ucd.requests == 0


async def test_a_refused_connection_is_a_connect_error() -> None:
    pool = LeanPool(httpx.URL(free_port_url()), max_connections=1)
    with pytest.raises(httpx.ConnectError):
        await pool.acquire()


async def test_through_httpx_the_read_timeout_bounds_each_read_not_the_answer() -> None:
    """httpx's semantics: a silent server times out; one that trickles does not."""
    timeout = httpx.Timeout(0.5)
    async with loopback_ucd(profile="hang", upsert="trickle") as ucd:
        limits = httpx.Limits(max_connections=4)
        transport = LeanTransport(ucd.url, limits=limits, timeout=timeout)
        async with httpx.AsyncClient(
            base_url=ucd.url, transport=transport, timeout=timeout
        ) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.post(PROFILE_PATH, content=b"{}")
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(1.2):  # over two read timeouts, still reading
                    await http.post(UPSERT_PATH, content=b"{}")
            answer = await http.post(METADATA_COLUMNS_PATH, content=b"{}")
    assert answer.json() == [{"key": "name", "type": "string"}]


def test_gzip_and_deflate_bodies_are_decoded_and_broken_ones_refused() -> None:
    body = b'{"attributes": {}}'
    assert decoded(gzip.compress(body), b"gzip") == body
    assert decoded(zlib.compress(body)[2:-4], b"deflate") == body  # raw deflate
    assert decoded(body, b"br") == body  # never asked for: left as it is
    with pytest.raises(httpx.DecodingError):
        decoded(b"not gzip", b"gzip")


def test_the_lean_pool_speaks_only_http_and_https() -> None:
    with pytest.raises(ValueError, match="http or https"):
        LeanPool(httpx.URL("ftp://ucd.test"), max_connections=1)
