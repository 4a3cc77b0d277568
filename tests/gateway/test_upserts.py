"""Batched writes (gateway.ucd.batching) and the upsert coalescer (gateway.upserts)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from gateway.app import create_app
from gateway.errors import UpstreamError, UpstreamOutcomeUnknown, UpstreamUnavailable
from gateway.listening import listening_socket
from gateway.settings import Settings
from gateway.ucd import deadline as deadlines
from gateway.ucd.batching import (
    MAX_BODY_BYTES,
    TOO_BIG,
    plan_chunks,
    send_batches,
    wire_bytes,
)
from gateway.ucd.client import UcdClient
from gateway.ucd.envelope import DataEnvelope, UserOutcome
from gateway.ucd.paths import UPSERT_PATH
from gateway.ucd.requests import (
    AttributeDeleteRequest,
    AttributeDeleteUser,
    EncodedUser,
    ProfileRequest,
    UpsertRequest,
    UpsertUser,
    UserRef,
)
from gateway.ucd.transport import build_http_client
from gateway.upserts import UpsertCoalescer
from tests.gateway.conftest import TOKEN, UPSERT, CallLog, GatewayHttp, UcdWire, wire_user
from tests.gateway.loopback_ucd import loopback_ucd

#: The size of an E1 request without users.
FRAME = wire_bytes(UpsertRequest((), skip_hook=False))


def user(i: int) -> UpsertUser:
    return wire_user({"identifiers": {"uuid": f"u-{i}"}, "attributes": {"age": i}})


def skipping_hooks(users: Sequence[EncodedUser]) -> UpsertRequest:
    return UpsertRequest(users, skip_hook=True)


@dataclass(frozen=True, slots=True)
class CountedUser(UpsertUser):
    """An E1 user that counts how often its body is written."""

    writes: list[int] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        self.writes.append(1)
        return UpsertUser.to_wire(self)


def counted(i: int) -> CountedUser:
    return CountedUser(UserRef(uuid=f"u-{i}"), attributes={"age": i})


def test_a_data_envelope_splits_into_each_users_own_errors() -> None:
    envelope = DataEnvelope(
        1,
        2,
        {
            "users.1.identifiers.*.regexp(^.+@.+\\..+$)": ["not a valid email address: x"],
            "users.2.identifiers.required": ["either"],
            "users.2.insider_id.required": ["either"],
        },
    )
    outcomes = envelope.split(3)
    assert [o.ok for o in outcomes] == [True, False, False]
    assert outcomes[1].errors == {
        "identifiers.*.regexp(^.+@.+\\..+$)": ["not a valid email address: x"]
    }
    assert set(outcomes[2].errors) == {"identifiers.required", "insider_id.required"}


def test_plan_chunks_cuts_at_1000_users() -> None:
    chunks, too_big = plan_chunks([10] * 2500, FRAME)
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    assert too_big == []
    assert [i for c in chunks for i in c] == list(range(2500))


def test_plan_chunks_keeps_every_body_under_5_000_000_bytes() -> None:
    frame = len(orjson.dumps({"users": [], "skip_hook": False}))
    assert frame == FRAME
    size = 1_000_000
    chunks, _ = plan_chunks([size] * 12, FRAME)
    for chunk in chunks:
        assert frame + size * len(chunk) + len(chunk) - 1 <= MAX_BODY_BYTES
    assert [len(c) for c in chunks] == [4, 4, 4]


def test_plan_chunks_reports_a_user_too_big_for_any_request() -> None:
    chunks, too_big = plan_chunks([10, MAX_BODY_BYTES, 10], wire_bytes(UpsertRequest(())))
    assert chunks == [[0, 2]]
    assert too_big == [1]


@pytest.mark.parametrize(
    ("plain", "request_of"),
    [
        pytest.param(user(1), lambda users: UpsertRequest(users, skip_hook=True), id="E1"),
        pytest.param(
            AttributeDeleteUser(UserRef(uuid="u-1"), whole=("age",), custom_partial={"t": [1]}),
            AttributeDeleteRequest,
            id="E4",
        ),
    ],
)
def test_a_rendered_user_is_sent_byte_for_byte_as_it_was_measured(
    plain: UpsertUser | AttributeDeleteUser, request_of: Any
) -> None:
    encoded = EncodedUser.of(plain)
    assert encoded.size == len(orjson.dumps(plain.to_wire()))
    sent = orjson.dumps(request_of([encoded, encoded]).to_wire())
    assert sent == orjson.dumps(request_of([plain, plain]).to_wire())
    assert len(sent) == wire_bytes(request_of(())) + 2 * encoded.size + 1


async def test_send_batches_writes_each_user_once(ucd: UcdClient, ucd_calls: CallLog) -> None:
    """Measuring a user's size and sending it share one to_wire() and one encoding."""
    users = [counted(i) for i in range(1500)]
    outcomes = await send_batches(users, UpsertRequest, ucd.upsert)
    assert [len(c.body["users"]) for c in ucd_calls.upserts] == [1000, 500]
    assert all(not isinstance(o, BaseException) and o.ok for o in outcomes)
    assert [len(u.writes) for u in users] == [1] * 1500


async def test_the_coalescer_writes_each_user_once(ucd: UcdClient, ucd_calls: CallLog) -> None:
    coalescer = UpsertCoalescer(ucd, window_ms=1)
    users = [counted(i) for i in range(10)]
    outcomes = await asyncio.gather(*(coalescer.submit(u) for u in users))
    assert len(ucd_calls.upserts) == 1
    assert ucd_calls.upserts[0].body["users"][3] == {
        "identifiers": {"uuid": "u-3"},
        "attributes": {"age": 3},
    }
    assert all(o.ok for o in outcomes)
    assert [len(u.writes) for u in users] == [1] * 10


async def test_2500_users_cost_3_upsert_calls_sent_concurrently(
    ucd_transport: UcdWire, ucd: UcdClient, ucd_calls: CallLog
) -> None:
    ucd_transport.delay = 0.02
    outcomes = await send_batches([user(i) for i in range(2500)], skipping_hooks, ucd.upsert)
    assert len(ucd_calls.upserts) == 3
    assert [len(c.body["users"]) for c in ucd_calls.upserts] == [1000, 1000, 500]
    assert all(c.body["skip_hook"] is True for c in ucd_calls.upserts)
    assert all(not isinstance(o, BaseException) and o.ok for o in outcomes)
    assert ucd_transport.max_in_flight == 3  # concurrent, not one after the other
    last = await ucd.profile(ProfileRequest(UserRef(uuid="u-2499"), attributes=("age",)))
    assert last is not None
    assert last.attributes["age"] == 2499


async def test_send_batches_maps_errors_back_to_the_input_index(
    ucd: UcdClient, ucd_calls: CallLog
) -> None:
    users = [user(i) for i in range(1500)]
    users[1200] = wire_user({"identifiers": {"email": "nope"}, "attributes": {"age": 1}})
    outcomes = await send_batches(users, UpsertRequest, ucd.upsert)
    failed = [i for i, o in enumerate(outcomes) if isinstance(o, BaseException) or not o.ok]
    assert failed == [1200]
    bad = outcomes[1200]
    assert not isinstance(bad, BaseException)
    assert list(bad.errors) == ["identifiers.*.regexp(^.+@.+\\..+$)"]


@pytest.mark.parametrize(
    "ucd_faults", [{"endpoints": {"upsert": {"error_500_rate": 1}}}], indirect=True
)
async def test_send_batches_reports_a_failed_request_per_user(ucd: UcdClient) -> None:
    outcomes = await send_batches([user(1), user(2)], UpsertRequest, ucd.upsert)
    assert all(isinstance(o, UpstreamError) for o in outcomes)


async def test_200_concurrent_single_user_upserts_in_one_window_cost_one_call(
    ucd: UcdClient, ucd_calls: CallLog
) -> None:
    coalescer = UpsertCoalescer(ucd, window_ms=20)
    users = [user(i) for i in range(200)]
    users[7] = wire_user({"identifiers": {"phone_number": "12345"}, "attributes": {"age": 1}})
    outcomes = await asyncio.gather(*(coalescer.submit(u) for u in users))
    assert len(ucd_calls.upserts) == 1
    assert len(ucd_calls.upserts[0].body["users"]) == 200
    assert [i for i, o in enumerate(outcomes) if not o.ok] == [7]
    assert list(outcomes[7].errors) == ["identifiers.*.regexp(^\\+[1-9]\\d{6,14}$)"]
    await coalescer.aclose()


async def test_each_caller_waits_for_the_ucd_answer(ucd_transport: UcdWire, ucd: UcdClient) -> None:
    ucd_transport.delay = 0.05
    coalescer = UpsertCoalescer(ucd, window_ms=1)
    task = asyncio.ensure_future(coalescer.submit(user(1)))
    await asyncio.sleep(0.02)
    assert not task.done()  # the window passed; the UCD has not answered yet
    assert (await task).ok
    assert await ucd.profile(ProfileRequest(UserRef(uuid="u-1"), attributes=("age",))) is not None


async def test_skip_hook_values_never_share_a_call(ucd: UcdClient, ucd_calls: CallLog) -> None:
    coalescer = UpsertCoalescer(ucd, window_ms=5)
    await asyncio.gather(
        coalescer.submit(user(1)),
        coalescer.submit(user(2), skip_hook=True),
        coalescer.submit(user(3)),
    )
    bodies = sorted((c.body["skip_hook"], len(c.body["users"])) for c in ucd_calls.upserts)
    assert bodies == [(False, 2), (True, 1)]


async def test_a_full_batch_is_sent_without_waiting_for_the_window(
    ucd: UcdClient, ucd_calls: CallLog
) -> None:
    coalescer = UpsertCoalescer(ucd, window_ms=60_000)
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(coalescer.submit(user(i)) for i in range(1000))), timeout=5
    )
    assert len(outcomes) == 1000
    assert len(ucd_calls.upserts) == 1


async def test_aclose_flushes_waiting_users(ucd: UcdClient, ucd_calls: CallLog) -> None:
    coalescer = UpsertCoalescer(ucd, window_ms=60_000)
    task = asyncio.ensure_future(coalescer.submit(user(1)))
    await asyncio.sleep(0)
    assert ucd_calls.upserts == []
    await asyncio.wait_for(coalescer.aclose(), timeout=5)
    assert len(ucd_calls.upserts) == 1
    assert (await task).ok


@pytest.mark.parametrize(
    "ucd_faults", [{"endpoints": {"upsert": {"error_500_rate": 1}}}], indirect=True
)
async def test_a_failed_call_fails_every_caller_with_its_error(
    ucd: UcdClient, ucd_calls: CallLog
) -> None:
    coalescer = UpsertCoalescer(ucd, window_ms=1)
    results = await asyncio.gather(
        coalescer.submit(user(1)), coalescer.submit(user(2)), return_exceptions=True
    )
    assert all(isinstance(r, UpstreamError) for r in results)
    assert len(ucd_calls.upserts) == 3  # one call for both, retried twice


@pytest.mark.parametrize(
    "window_ms", [pytest.param(0, id="zero-window"), pytest.param(2, id="2ms")]
)
async def test_same_tick_submissions_batch_even_with_a_tiny_window(
    ucd: UcdClient, ucd_calls: CallLog, window_ms: float
) -> None:
    coalescer = UpsertCoalescer(ucd, window_ms=window_ms)
    await asyncio.gather(*(coalescer.submit(user(i)) for i in range(10)))
    assert len(ucd_calls.upserts) == 1


# --- group commit ---------------------------------------------------------------------------


async def on_the_wire(wire: UcdWire, count: int = 1) -> None:
    """Turns of the loop until ``count`` requests are on the wire (no clock involved)."""
    for _ in range(200):
        if wire.in_flight >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{wire.in_flight} requests on the wire, expected {count}")


@pytest.mark.parametrize(
    ("window_ms", "sent"),
    [pytest.param(0, True, id="default"), pytest.param(60_000, False, id="linger")],
)
async def test_a_lone_upsert_goes_on_the_wire_at_once_unless_a_linger_is_set(
    ucd_transport: UcdWire, ucd: UcdClient, ucd_calls: CallLog, window_ms: float, sent: bool
) -> None:
    ucd_transport.delay = 0.05
    coalescer = UpsertCoalescer(ucd, window_ms=window_ms)
    task = asyncio.ensure_future(coalescer.submit(user(1)))
    # A few turns of the loop, no clock: only a write sent without a timer gets there.
    for _ in range(50):
        await asyncio.sleep(0)
    assert ucd_transport.in_flight == (1 if sent else 0)
    assert len(ucd_calls.upserts) == (1 if sent else 0)
    await coalescer.aclose()
    assert (await task).ok


async def test_writes_that_arrive_during_a_call_go_together_in_the_next(
    ucd_transport: UcdWire, ucd: UcdClient, ucd_calls: CallLog
) -> None:
    """Group commit: 200 single-user upserts, the first alone, cost exactly 2 calls."""
    ucd_transport.delay = 0.05
    coalescer = UpsertCoalescer(ucd)
    first = asyncio.ensure_future(coalescer.submit(user(0)))
    await on_the_wire(ucd_transport)
    users = [user(i) for i in range(1, 200)]
    users[6] = wire_user({"identifiers": {"phone_number": "12345"}, "attributes": {"age": 1}})
    rest = asyncio.gather(*(coalescer.submit(u) for u in users))
    await asyncio.sleep(0)
    assert len(ucd_calls.upserts) == 1  # the others wait for the call on the wire
    outcomes = [await first, *await rest]
    assert [len(c.body["users"]) for c in ucd_calls.upserts] == [1, 199]
    # Each caller gets its own user's outcome: the bad phone is the 8th caller's only.
    assert [i for i, o in enumerate(outcomes) if not o.ok] == [7]
    assert list(outcomes[7].errors) == ["identifiers.*.regexp(^\\+[1-9]\\d{6,14}$)"]
    await coalescer.aclose()


async def test_writes_of_one_person_in_one_call_apply_in_arrival_order(
    ucd_transport: UcdWire, ucd: UcdClient, ucd_calls: CallLog
) -> None:
    ucd_transport.delay = 0.02
    coalescer = UpsertCoalescer(ucd)
    first = asyncio.ensure_future(coalescer.submit(user(0)))
    await on_the_wire(ucd_transport)
    same = [
        wire_user({"identifiers": {"uuid": "twin"}, "attributes": {"age": age}})
        for age in (1, 2, 3)
    ]
    outcomes = await asyncio.gather(first, *(coalescer.submit(u) for u in same))
    assert all(o.ok for o in outcomes)
    assert [len(c.body["users"]) for c in ucd_calls.upserts] == [1, 3]
    twin = await ucd.profile(ProfileRequest(UserRef(uuid="twin"), attributes=("age",)))
    assert twin is not None
    assert twin.attributes["age"] == 3


async def test_a_write_whose_deadline_passed_while_waiting_is_not_sent(
    ucd_transport: UcdWire, ucd: UcdClient, ucd_calls: CallLog
) -> None:
    """Its caller was told UPSTREAM_UNAVAILABLE: writing it afterwards would contradict that."""
    ucd_transport.delay = 0.3
    coalescer = UpsertCoalescer(ucd)
    first = asyncio.ensure_future(coalescer.submit(user(1)))
    await on_the_wire(ucd_transport)
    with deadlines.operation_deadline(0.05):
        late = asyncio.ensure_future(coalescer.submit(user(2)))
    with pytest.raises(UpstreamUnavailable):
        await late
    assert (await first).ok
    await coalescer.aclose()
    assert [len(c.body["users"]) for c in ucd_calls.upserts] == [1]
    ucd_transport.delay = 0
    assert await ucd.profile(ProfileRequest(UserRef(uuid="u-2"), attributes=("age",))) is None


@pytest.mark.parametrize(
    "ucd_faults", [{"endpoints": {"upsert": {"error_500_rate": 1}}}], indirect=True
)
async def test_a_failed_call_still_sends_the_writes_that_waited_for_it(
    ucd_transport: UcdWire, ucd: UcdClient, ucd_calls: CallLog
) -> None:
    ucd_transport.delay = 0.01
    coalescer = UpsertCoalescer(ucd)
    first = asyncio.ensure_future(coalescer.submit(user(1)))
    await on_the_wire(ucd_transport)
    waiting = asyncio.ensure_future(coalescer.submit(user(2)))
    results = await asyncio.gather(first, waiting, return_exceptions=True)
    assert all(isinstance(r, UpstreamError) for r in results)
    # The first call tried 3 times (2 retries); user 2 went in a call of its own after it
    # (tried until the endpoint's circuit opened at 5 consecutive failures).
    sent = [c.body["users"] for c in ucd_calls.upserts]
    assert [users[0]["identifiers"]["uuid"] for users in sent] == ["u-1"] * 3 + ["u-2"] * 2
    assert all(len(users) == 1 for users in sent)


async def test_aclose_sends_the_writes_waiting_behind_a_call(
    ucd_transport: UcdWire, ucd: UcdClient, ucd_calls: CallLog
) -> None:
    ucd_transport.delay = 0.05
    coalescer = UpsertCoalescer(ucd)
    first = asyncio.ensure_future(coalescer.submit(user(1)))
    await on_the_wire(ucd_transport)
    waiting = asyncio.ensure_future(coalescer.submit(user(2)))
    await asyncio.sleep(0)
    await asyncio.wait_for(coalescer.aclose(), timeout=5)
    assert first.done()
    assert waiting.done()
    assert (await first).ok
    assert (await waiting).ok
    # A write submitted after close is sent at once, not left waiting.
    assert (await asyncio.wait_for(coalescer.submit(user(3)), timeout=5)).ok
    assert [len(c.body["users"]) for c in ucd_calls.upserts] == [1, 1, 1]


def deleting(i: int) -> AttributeDeleteUser:
    return AttributeDeleteUser(UserRef(uuid=f"u-{i}"), whole=("age",))


async def test_attribute_deletes_are_group_committed_in_their_own_lane(
    ucd_transport: UcdWire, ucd: UcdClient, ucd_calls: CallLog
) -> None:
    await send_batches([user(i) for i in range(50)], UpsertRequest, ucd.upsert)
    ucd_calls.clear()
    ucd_transport.delay = 0.02
    coalescer = UpsertCoalescer(ucd)
    first = asyncio.ensure_future(coalescer.delete_attributes(deleting(0)))
    await on_the_wire(ucd_transport)
    # An upsert does not wait for the delete on the wire: another lane, another call.
    upserted = asyncio.ensure_future(coalescer.submit(user(99)))
    await on_the_wire(ucd_transport, 2)
    rest = [deleting(i) for i in range(1, 50)]
    rest[9] = AttributeDeleteUser(UserRef(uuid="nobody"), whole=("age",))
    outcomes = [await first, *await asyncio.gather(*(coalescer.delete_attributes(u) for u in rest))]
    assert (await upserted).ok
    deletes = ucd_calls.to("/api/user/v1/attribute/delete")
    assert [len(c.body["users"]) for c in deletes] == [1, 49]
    assert len(ucd_calls.upserts) == 1
    assert [i for i, o in enumerate(outcomes) if not o.ok] == [10]
    gone = await ucd.profile(ProfileRequest(UserRef(uuid="u-30"), attributes=("age",)))
    assert gone is not None
    assert "age" not in gone.attributes
    await coalescer.aclose()


async def test_an_attribute_delete_too_big_for_any_call_is_refused_without_a_call(
    ucd: UcdClient, ucd_calls: CallLog
) -> None:
    coalescer = UpsertCoalescer(ucd)
    huge = AttributeDeleteUser(UserRef(uuid="u-1"), whole=tuple(f"a{i:07}" for i in range(500_000)))
    assert await coalescer.delete_attributes(huge) == TOO_BIG
    assert ucd_calls.calls == []


# --- group commit over HTTP -----------------------------------------------------------------

DELETE_ATTRIBUTES = """
mutation($users: [DeleteAttributesInput!]!) {
  deleteAttributes(users: $users) { successCount results { ok errors { path message } } }
}
"""


@pytest.mark.parametrize(
    "delay", [pytest.param(0.0, id="fast-ucd"), pytest.param(0.01, id="10ms-ucd")]
)
async def test_200_concurrent_single_user_upserts_over_http_cost_at_most_10_calls(
    ucd_transport: UcdWire, gateway_http: GatewayHttp, ucd_calls: CallLog, delay: float
) -> None:
    """The issue's goal, with the default settings (no linger): group commit, not a window."""
    assert gateway_http.runtime.settings.upsert_window_ms == 0
    ucd_transport.delay = delay
    items = [{"key": {"uuid": f"h-{i}"}, "attributes": {"age": i}} for i in range(200)]
    items[42] = {"key": {"insiderId": "iid-404"}, "attributes": {"age": 1}}
    answers = await asyncio.gather(
        *(gateway_http.ok(UPSERT, {"input": {"users": [item]}}) for item in items)
    )
    calls = [len(c.body["users"]) for c in ucd_calls.upserts]
    assert 1 <= len(calls) <= 10, calls
    assert sum(calls) == 200
    # Each request hears its own user: only the 43rd names an insider_id the UCD lacks.
    failed = [i for i, a in enumerate(answers) if a["upsertUsers"]["failureCount"]]
    assert failed == [42]
    assert answers[42]["upsertUsers"]["results"][0]["errors"] == [
        {"path": "users.0.key.insiderId", "message": "no such user for this insider_id"}
    ]
    read = await gateway_http.ok('{ user(key: {uuid: "h-199"}) { age } }')
    assert read == {"user": {"age": 199}}


async def test_concurrent_single_user_attribute_deletes_over_http_share_calls(
    ucd_transport: UcdWire, gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    await gateway_http.ok(
        UPSERT,
        {
            "input": {
                "users": [{"key": {"uuid": f"d-{i}"}, "attributes": {"age": i}} for i in range(100)]
            }
        },
    )
    ucd_calls.clear()
    ucd_transport.delay = 0.01
    answers = await asyncio.gather(
        *(
            gateway_http.ok(
                DELETE_ATTRIBUTES, {"users": [{"key": {"uuid": f"d-{i}"}, "names": ["age"]}]}
            )
            for i in range(100)
        )
    )
    calls = [len(c.body["users"]) for c in ucd_calls.to("/api/user/v1/attribute/delete")]
    assert 1 <= len(calls) <= 10, calls
    assert sum(calls) == 100
    assert all(a["deleteAttributes"]["successCount"] == 1 for a in answers)
    ucd_transport.delay = 0
    read = await gateway_http.ok('{ user(key: {uuid: "d-7"}) { age } }')
    assert read == {"user": {"age": None}}


async def test_200_concurrent_upserts_from_200_tcp_connections_cost_at_most_10_calls(
    ucd_transport: UcdWire, ucd_http: httpx.AsyncClient, settings: Settings, ucd_calls: CallLog
) -> None:
    """The same over real loopback sockets and uvicorn, where requests arrive spread out
    (in-process, all 200 reach the coalescer in one tick): still group-committed."""
    ucd_transport.delay = 0.005
    app = create_app(settings, http_client=ucd_http)
    sock = listening_socket("127.0.0.1", 0, backlog=512)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        for _ in range(1000):
            if server.started:
                break
            await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/graphql"
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:

            async def upsert(i: int) -> Any:
                item = {"key": {"uuid": f"t-{i}"}, "attributes": {"age": i}}
                response = await client.post(
                    url, json={"query": UPSERT, "variables": {"input": {"users": [item]}}}
                )
                return orjson.loads(response.content)

            answers = await asyncio.gather(*(upsert(i) for i in range(200)))
    finally:
        server.should_exit = True
        await serving
        sock.close()
    assert all(a["data"]["upsertUsers"]["successCount"] == 1 for a in answers)
    calls = [len(c.body["users"]) for c in ucd_calls.upserts]
    assert 1 <= len(calls) <= 10, calls
    assert sum(calls) == 200


async def _submit_within_a_minute(coalescer: UpsertCoalescer) -> UserOutcome:
    with deadlines.operation_deadline(60):
        return await coalescer.submit(user(1))


async def test_a_bounded_aclose_gives_up_on_a_call_the_ucd_never_answers() -> None:
    settings = Settings(_env_file=None, request_timeout=60)  # type: ignore[call-arg]
    async with (
        loopback_ucd(upsert="hang") as wire,
        build_http_client(settings, base_url=wire.url) as http,
    ):
        coalescer = UpsertCoalescer(UcdClient(http, partner="acme", token=TOKEN), window_ms=1)
        caller = asyncio.ensure_future(_submit_within_a_minute(coalescer))
        while wire.seen[UPSERT_PATH] == 0:  # noqa: ASYNC110  # the server only counts
            await asyncio.sleep(0.01)
        began = time.monotonic()
        await coalescer.aclose(within=0.3)
        assert time.monotonic() - began < 2  # the bound, not the caller's minute
        # Sent, never answered: it may have been applied, and it is not sent again.
        with pytest.raises(UpstreamOutcomeUnknown, match="may or may not have been applied"):
            await caller
        assert wire.seen[UPSERT_PATH] == 1


async def test_a_batch_a_bounded_aclose_sends_ends_by_the_bound_with_the_clients_error() -> None:
    settings = Settings(_env_file=None, request_timeout=60)  # type: ignore[call-arg]
    async with (
        loopback_ucd(upsert="hang") as wire,
        build_http_client(settings, base_url=wire.url) as http,
    ):
        coalescer = UpsertCoalescer(UcdClient(http, partner="acme", token=TOKEN), window_ms=60_000)
        caller = asyncio.ensure_future(_submit_within_a_minute(coalescer))
        await asyncio.sleep(0)
        assert wire.seen[UPSERT_PATH] == 0  # still waiting for its window
        began = time.monotonic()
        await coalescer.aclose(within=0.3)
        assert time.monotonic() - began < 2
        with pytest.raises(UpstreamUnavailable, match="did not answer in time"):
            await caller
        assert wire.seen[UPSERT_PATH] == 1
