"""Typed calls to the UCD REST API, with its statuses mapped to gateway errors.

The client receives an ``httpx.AsyncClient`` whose ``base_url`` is the UCD (the real
host, a local UCD server, or an in-process ``ASGITransport``); it never creates one.

Status mapping (docs/ucd-rest-api.md §2.2, §2.5, §3):

    200                      parsed body (or nothing, for calls that return None)
    400 "new identifier already has a user assigned to it"  -> Conflict
    400 Empty Partner / Empty Token / Partner is invalid.    -> UpstreamAuth (our config)
    400 anything else        -> BadUserInput(the UCD's text)
    401, 403                 -> UpstreamAuth, never retried
    404 "...: no data"       -> NotFound (profile() returns None instead)
    404 other (unknown path) -> UpstreamError: the base URL does not point at a UCD
    429                      -> retried after Retry-After, then RateLimited(retryAfter)
    5xx, unexpected status, unparseable body -> UpstreamError
    no answer: refused, reset or dropped connection, timeout -> UpstreamUnavailable,
        or UpstreamOutcomeUnknown for a call not safe to repeat that may have been sent

Retries: a 429 means the UCD did not run the request (§2.6: "A 429 is never
counted"), and a refused connection means it never left, so every call retries those.
5xx answers and answers lost after the request may have been sent are retried only for
calls that are safe to repeat:

* profile, metadata and the local segment list only read;
* an upsert sent twice leaves the same user: attributes are set to the same values,
  arrays append without duplicates (§4.7.4) and identical events are stored once
  (§4.8.3: same name, instant and parameters), so the repeat adds nothing;
* an attribute delete sent twice deletes what is already gone.

Repeating an identity change, a delete, an anonymization, an export or a segment
creation could do the work twice or answer as if the first had failed (a 404 after the
delete went through); when such a call's answer is lost, the caller hears that the
outcome is unknown (UpstreamOutcomeUnknown), never "unavailable", which would say it was
not done.

Circuit breakers (gateway/ucd/breaker.py): every attempt, retries included, asks the
endpoint's circuit first; an open circuit answers UpstreamUnavailable with a retry_after
at once, without a UCD call, and an attempt whose failure opens it is not retried.
Bulkheads (gateway/ucd/bulkheads.py): each endpoint waits for a slot in its own pool
(reads, writes, identity, exports, /readyz), so hung reads never hold up a write.

Quota (gateway/ucd/quota.py): with a ``QuotaGate``, every attempt of a call in one of
the UCD's rate-limit pools spends its units of the partner's budget first; without room,
the call waits like a 429's Retry-After or fails with RateLimited, without a UCD call.

Observers (gateway/ucd/observers.py): every attempt that went on the wire is reported,
once over, to each ``UcdCallObserver`` given (metrics, tracing): endpoint, status, seconds
and the users it carried.

Deadlines (gateway/ucd/deadline.py): inside a GraphQL operation, every attempt gets the
lesser of the request timeout and the time left, and no backoff or Retry-After wait
starts that would end past the deadline.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

import httpx
import orjson
from pydantic import SecretStr

from gateway import tracing
from gateway.errors import (
    BadUserInput,
    Conflict,
    NotFound,
    RateLimited,
    UpstreamAuth,
    UpstreamError,
    UpstreamOutcomeUnknown,
    UpstreamUnavailable,
)
from gateway.ucd import deadline as deadlines
from gateway.ucd.answers import MetadataColumn, ProfileAnswer, check_metadata, parse_metadata
from gateway.ucd.batching import users_in
from gateway.ucd.breaker import Admission, CircuitBreakers, LocalCircuitBreakers, Verdict
from gateway.ucd.bulkheads import Bulkheads, Pool
from gateway.ucd.call_count import count_call
from gateway.ucd.envelope import DataEnvelope, error_text
from gateway.ucd.lean import LeanAnswer, LeanPool
from gateway.ucd.local_segments import (
    LocalSegment,
    SegmentDefinition,
    parse_created_segment,
    parse_local_segments,
)
from gateway.ucd.observers import NETWORK_ERROR, TIMEOUT, UcdCallObserver, notify
from gateway.ucd.paths import (
    ATTRIBUTE_DELETE_PATH,
    CONTACT_ANONYMIZE_PATH,
    EXPORT_PATH,
    IDENTITY_PATH,
    LOCAL_SEGMENTS_PATH,
    METADATA_COLUMNS_PATH,
    PROFILE_PATH,
    UPSERT_PATH,
    USER_ANONYMIZE_PATH,
    USER_DELETE_PATH,
)
from gateway.ucd.quota import QuotaGate, pool_of, units_of
from gateway.ucd.requests import (
    AttributeDeleteRequest,
    ContactAnonymizeRequest,
    DeleteUserRequest,
    ExportRequest,
    IdentityDeleteRequest,
    IdentityUpdateRequest,
    MetadataRequest,
    ProfileRequest,
    UpsertRequest,
    UserAnonymizeRequest,
)
from gateway.ucd.transport import UcdHttpClient, direct_head_prefix

logger = logging.getLogger("gateway.ucd")

# §3.5.2 check 7: the only 400 that means "someone else holds this value".
_CONFLICT_TEXT: Final = "new identifier already has a user assigned to it"
# §2.2 checks 1-3: a 400 about the gateway's own headers, not the caller's input.
_AUTH_400_TEXTS: Final = frozenset({"Empty Partner", "Empty Token", "Partner is invalid."})

Sleep = Callable[[float], Awaitable[None]]


class Answer(Protocol):
    """What the client reads of an answer: an ``httpx.Response``, or a ``LeanAnswer`` of
    a direct call (headers by lower-case name there; httpx's are case-insensitive)."""

    @property
    def status_code(self) -> int: ...

    @property
    def content(self) -> bytes: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


MetadataTable = Literal["contacts", "events"]
#: E10's tables (§3.9): the attribute columns, and the events with their parameters.
ATTRIBUTE_COLUMNS: Final[MetadataTable] = "contacts"
EVENT_COLUMNS: Final[MetadataTable] = "events"


class UcdClient:
    """One object per gateway process; safe to share between requests."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        partner: str,
        token: str | SecretStr,
        bulkheads: Bulkheads | None = None,
        breakers: CircuitBreakers | None = None,
        max_retries: int = 2,
        max_retry_after: float = 5.0,
        backoff_base: float = 0.05,
        request_timeout: float | None = None,
        sleep: Sleep = asyncio.sleep,
        observers: Sequence[UcdCallObserver] = (),
        quota: QuotaGate | None = None,
    ) -> None:
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        self._http = http
        self._partner = partner
        # Built once as httpx.Headers: httpx would normalise a plain dict on every call.
        self._headers: Final = httpx.Headers(
            {
                "X-PARTNER-NAME": partner,
                "X-REQUEST-TOKEN": secret,
                "Content-Type": "application/json",
                "Accept": "application/json",
            }
        )
        # Absolute URLs per path, for the base URL they were merged with (see _url).
        self._urls: dict[str, httpx.URL] = {}
        self._urls_base = http.base_url
        # Request heads of direct calls per method and path, for that base URL (_head).
        self._heads: dict[tuple[str, str], bytes] = {}
        self._pools = (bulkheads or Bulkheads()).semaphores()
        self._breakers = breakers if breakers is not None else LocalCircuitBreakers()
        self._max_retries = max_retries
        self._max_retry_after = max_retry_after
        self._backoff_base = backoff_base
        # One attempt's bound as a whole (see _send); by default the read timeout ``http``
        # was built with (UCD_GATEWAY_REQUEST_TIMEOUT for build_http_client's client).
        self._request_timeout = (
            request_timeout if request_timeout is not None else http.timeout.read
        )
        self._sleep = sleep
        self._observers = tuple(observers)
        self._quota = quota
        self.calls = 0

    @property
    def partner(self) -> str:
        """The partner this client speaks for (what per-partner caches key on)."""
        return self._partner

    def __repr__(self) -> str:
        # Deliberately leaves out the headers: they hold the token.
        return f"UcdClient(base_url={str(self._http.base_url)!r}, partner={self._partner!r})"

    # --- endpoints ------------------------------------------------------------------

    async def upsert(self, request: UpsertRequest) -> DataEnvelope:
        """E1: create or update users; per-user outcomes in the data envelope."""
        body = request.to_wire()
        users = len(request.users)
        answer = await self._call("POST", UPSERT_PATH, body, "writes", retry_safe=True, users=users)
        return DataEnvelope.from_wire(answer)

    async def profile(self, request: ProfileRequest) -> ProfileAnswer | None:
        """E2: one user's attributes and events; None when the UCD has no such user."""
        try:
            answer = await self._call(
                "POST", PROFILE_PATH, request.to_wire(), "reads", retry_safe=True, users=1
            )
        except NotFound:
            return None
        return ProfileAnswer.from_wire(answer)

    async def export(self, request: ExportRequest) -> None:
        """E3: start an export; the link arrives later on the request's ``hook``."""
        # Any 200 body is acceptable (§3.3.3 gateway note), so it is not parsed.
        await self._call(
            "POST", EXPORT_PATH, request.to_wire(), "exports", retry_safe=False, parse=False
        )

    async def delete_attributes(self, request: AttributeDeleteRequest) -> DataEnvelope:
        """E4: delete whole attributes or array values; answers ``{}`` or the envelope."""
        body = request.to_wire()
        answer = await self._call(
            "POST", ATTRIBUTE_DELETE_PATH, body, "writes", retry_safe=True, users=len(request.users)
        )
        return DataEnvelope.from_wire(answer)

    async def update_identity(self, request: IdentityUpdateRequest) -> None:
        """E5: replace the value of one identifier."""
        body = request.to_wire()
        await self._call("PATCH", IDENTITY_PATH, body, "identity", retry_safe=False, parse=False)

    async def delete_identity(self, request: IdentityDeleteRequest) -> None:
        """E6: remove one identifier from its profile (a DELETE with a JSON body)."""
        body = request.to_wire()
        await self._call("DELETE", IDENTITY_PATH, body, "identity", retry_safe=False, parse=False)

    async def anonymize_contact(self, request: ContactAnonymizeRequest) -> None:
        """E7: delete the PII of the user with this insider_id."""
        body = request.to_wire()
        await self._call(
            "POST", CONTACT_ANONYMIZE_PATH, body, "identity", retry_safe=False, parse=False
        )

    async def anonymize_user(self, request: UserAnonymizeRequest) -> None:
        """E8: delete the PII of the user given by identifiers (or insider_id)."""
        body = request.to_wire()
        await self._call(
            "POST", USER_ANONYMIZE_PATH, body, "identity", retry_safe=False, parse=False
        )

    async def delete_user(self, request: DeleteUserRequest) -> None:
        """E9: delete a user profile and all its data."""
        body = request.to_wire()
        await self._call("POST", USER_DELETE_PATH, body, "identity", retry_safe=False, parse=False)

    async def metadata_columns(self, table: MetadataTable) -> list[MetadataColumn]:
        """E10: the partner's attribute columns (``contacts``) or events (``events``);
        entries without a string ``key`` are skipped (``answers.parse_metadata``)."""
        return parse_metadata(await self._metadata(table, "reads"))

    async def check_ready(self) -> None:
        """``/readyz``: E10 on ``contacts`` answers a JSON array of objects.

        Nothing reads the columns, so they are not parsed: the UCD is ready when it
        answers the gateway's credentials with the shape E10 has (§3.9).
        """
        check_metadata(await self._metadata("contacts", "readiness"))

    async def _metadata(self, table: MetadataTable, pool: Pool) -> Any:
        body = MetadataRequest(table).to_wire()
        return await self._call("POST", METADATA_COLUMNS_PATH, body, pool, retry_safe=True)

    # --- the local UCD only (§5.5) -----------------------------------------------------

    async def local_segments(self) -> list[LocalSegment]:
        """The local UCD's segments, "All users" (id 1) first.

        Insider's UCD has no such endpoint (it answers 404, an ``UpstreamError``): the
        local UCD's own, for the seed command.
        """
        answer = await self._call("GET", LOCAL_SEGMENTS_PATH, None, "exports", retry_safe=True)
        return parse_local_segments(answer)

    async def create_local_segment(self, segment: SegmentDefinition) -> int:
        """Define a segment on the local UCD; its new id. The local UCD's own endpoint,
        like ``local_segments``; not retried, since a repeat would define it twice."""
        body = segment.to_wire()
        answer = await self._call("POST", LOCAL_SEGMENTS_PATH, body, "exports", retry_safe=False)
        return parse_created_segment(answer)

    # --- the one request path ---------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        pool: Pool,
        *,
        retry_safe: bool,
        parse: bool = True,
        users: int = 0,
    ) -> Any:
        # None: a request without a body (the local UCD's GET).
        content = orjson.dumps(body) if body is not None else None
        deadline = deadlines.current()
        pool_spent = pool_of(method, path) if self._quota is not None else None
        units = units_of(pool_spent, body) if pool_spent is not None else 0
        attempt = 0
        while True:
            budget = self._budget(deadline)
            if budget is not None and budget <= 0:
                raise _out_of_time(method, path, sent_before=attempt > 0)
            if pool_spent is not None:
                assert self._quota is not None
                # The partner's budget across replicas (gateway/ucd/quota.py): waited for
                # like a 429's Retry-After, since the UCD would answer one.
                wait = await self._quota.take(pool_spent, units)
                if wait is not None:
                    if self._may_wait(attempt, wait, deadline):
                        await self._sleep(wait)
                        attempt += 1
                        continue
                    retry_after = max(1, math.ceil(wait))
                    raise RateLimited(
                        f"the gateway's share of the UCD's {pool_spent.name} quota is spent "
                        f"for now ({method} {path}); retry after {retry_after} s",
                        retry_after=retry_after,
                    )
            try:
                response, closed = await self._attempt(
                    method, path, content, pool, budget, body, users
                )
            except _AttemptFailed as failed:
                if failed.maybe_sent and not retry_safe:
                    # The UCD may have done it: repeating could do it twice, and calling
                    # it unavailable would tell the caller it was not done.
                    raise _outcome_unknown(method, path, failed) from failed.__cause__
                # A request that never left is safe to send again, whatever it is, unless
                # this failure opened the endpoint's circuit.
                if attempt < self._max_retries and failed.circuit_closed:
                    delay = self._backoff_delay(attempt)
                    if _fits(deadline, delay):
                        await self._backoff(attempt, path, failed.kind, delay)
                        attempt += 1
                        continue
                raise _unavailable(method, path, failed) from failed.__cause__

            status = response.status_code
            if status == 429:
                retry_after = _retry_after_seconds(response)
                # Honour Retry-After, but never sleep longer than the cap, nor past the
                # operation's deadline: then the caller is better served by the error.
                if self._may_wait(attempt, retry_after, deadline):
                    logger.warning(
                        "UCD rate limited %s %s; retrying in %d s", method, path, retry_after
                    )
                    await self._sleep(retry_after)
                    attempt += 1
                    continue
                raise RateLimited(
                    f"the UCD is rate limiting {method} {path}; retry after {retry_after} s",
                    retry_after=retry_after,
                )
            if status >= 500 and retry_safe and closed and attempt < self._max_retries:
                delay = self._backoff_delay(attempt)
                if _fits(deadline, delay):
                    await self._backoff(attempt, path, f"HTTP {status}", delay)
                    attempt += 1
                    continue
            return _answer(method, path, response, parse=parse)

    def _may_wait(self, attempt: int, seconds: float, deadline: float | None) -> bool:
        """Whether a call told to wait ``seconds`` (a 429's Retry-After, the quota's next
        window) waits and tries again: retries left, the wait under the cap, and never
        past the operation's deadline (then the caller is better served by the error)."""
        return (
            attempt < self._max_retries
            and seconds <= self._max_retry_after
            and _fits(deadline, seconds)
        )

    async def _attempt(
        self,
        method: str,
        path: str,
        content: bytes | None,
        pool: Pool,
        budget: float | None,
        body: dict[str, Any] | None,
        users: int,
    ) -> tuple[Answer, bool]:
        """One attempt through the endpoint's circuit breaker: the answer, and whether the
        circuit is still closed (a retry may go). An open circuit raises
        ``UpstreamUnavailable`` with its retry_after, before any wait or UCD call."""
        admission = await self._breakers.admit(path)
        if admission.retry_after is not None:
            raise _circuit_open(method, path, admission.retry_after)
        try:
            response = await self._send(method, path, content, pool, budget, body, users)
        except _AttemptFailed as failed:
            verdict: Verdict = "failure" if failed.reached else "abandoned"
            failed.circuit_closed = await self._record(path, admission, verdict)
            raise
        except BaseException:
            # Cancelled: the attempt says nothing about the UCD; a probe is handed on.
            await self._record(path, admission, "abandoned")
            raise
        # A 429 is the UCD rate limiting as designed (§2.6), a 4xx a refusal it read:
        # only a 5xx says the endpoint is failing.
        verdict = "failure" if response.status_code >= 500 else "success"
        return response, await self._record(path, admission, verdict)

    async def _record(self, path: str, admission: Admission, verdict: Verdict) -> bool:
        closed = await self._breakers.record(path, admission, verdict)
        if not closed and verdict == "failure":
            logger.error("the circuit of UCD endpoint %s is open", path)
        return closed

    def _budget(self, deadline: float | None) -> float | None:
        """Seconds one attempt may take: the request timeout, or less if the deadline is
        nearer. None: no bound (a client built with ``timeout=None``, outside operations)."""
        if deadline is None:
            return self._request_timeout
        left = deadline - time.monotonic()
        return left if self._request_timeout is None else min(self._request_timeout, left)

    async def _send(
        self,
        method: str,
        path: str,
        content: bytes | None,
        pool: Pool,
        budget: float | None,
        body: dict[str, Any] | None,
        users: int,
    ) -> Answer:
        """One attempt, bounded by ``budget`` as a whole: the wait for a slot in ``pool``,
        the answer and its body. httpx's and aiohttp's read timeouts apply to each read, so
        a UCD that sends a byte a second would otherwise never time out.

        Raises ``_AttemptFailed`` saying what happened and whether the request may have
        reached the UCD.
        """
        url = self._url(path)
        stage: _Stage = "queued"
        started = 0.0
        try:
            async with asyncio.timeout(budget):
                async with self._pools[pool]:
                    stage = "sent"
                    started = time.perf_counter()
                    self.calls += 1
                    count_call()
                    lean = self._direct() if tracing.tracer is None else None
                    response: Answer
                    if lean is not None:
                        # The lean pool, without httpx's objects (gateway/ucd/transport.py).
                        head = self._head(method, path, url, content)
                        connection = await lean.acquire()
                        try:
                            # No read timeout of its own: this attempt's budget bounds the
                            # whole exchange (lean's default for a client without one).
                            reads = None if budget is not None else lean.read_timeout
                            response = await connection.exchange(head, content, reads)
                            # Decoded here, inside the attempt: a body that does not
                            # decode is the DecodingError handled below, as with httpx.
                            response.content  # noqa: B018
                        finally:
                            if connection.answering:
                                stage = "reading"
                            lean.release(connection)
                        if response.sets_cookies:
                            self._keep_cookies(method, url, response)
                    else:
                        response = await self._send_httpx(method, path, url, content, body, users)
                        stage = "reading"
                        try:
                            await response.aread()
                        finally:
                            await response.aclose()
                    self._observe(path, str(response.status_code), started, users)
                    return response
        except TimeoutError as exc:
            if stage != "queued":
                self._observe(path, TIMEOUT, started, users)
            raise _timed_out(stage) from exc
        except httpx.TransportError as exc:
            if stage != "queued":
                status = TIMEOUT if isinstance(exc, httpx.TimeoutException) else NETWORK_ERROR
                self._observe(path, status, started, users)
            # Raised as built, never held in a local: this frame, kept by the exception's
            # traceback, would hold the exception back (a cycle per failed attempt).
            raise _transport_failure(exc, reading=stage == "reading") from exc
        except httpx.DecodingError as exc:
            # The UCD answered, but its body does not decode as its Content-Encoding says:
            # like a body that is not JSON, an answer the gateway cannot read (not retried;
            # a write it answered was applied or refused, the gateway cannot tell which).
            self._observe(path, NETWORK_ERROR, started, users)
            logger.error("the UCD sent a body that does not decode (%s %s)", method, path)
            raise UpstreamError(
                f"the UCD sent a body that does not decode ({method} {path})", status=None
            ) from exc

    async def _send_httpx(
        self,
        method: str,
        path: str,
        url: httpx.URL,
        content: bytes | None,
        body: dict[str, Any] | None,
        users: int,
    ) -> httpx.Response:
        """One request through httpx: its answer's head, the body still to be read."""
        request = self._http.build_request(method, url, content=content, headers=self._headers)
        if tracing.tracer is None:  # off: this check is all it costs
            return await self._http.send(request, stream=True)
        # A span, and its traceparent on the request (gateway/tracing.py).
        with tracing.ucd_call(request, path, body, users_in) as traced:
            response = await self._http.send(request, stream=True)
            traced.answered(response.status_code)
        return response

    def _direct(self) -> LeanPool | None:
        http = self._http
        return http.direct if isinstance(http, UcdHttpClient) else None

    def _head(self, method: str, path: str, url: httpx.URL, content: bytes | None) -> bytes:
        """The request head of a direct call: httpx's head for this method and path
        (built once, ``direct_head_prefix``), then the body's length."""
        key = (method, path)
        prefix = self._heads.get(key)
        if prefix is None:
            request = self._http.build_request(method, url, headers=self._headers)
            prefix = self._heads[key] = direct_head_prefix(request)
        if content is None:
            return prefix + b"\r\n"
        return b"%sContent-Length: %d\r\n\r\n" % (prefix, len(content))

    def _keep_cookies(self, method: str, url: httpx.URL, answer: LeanAnswer) -> None:
        http = self._http
        assert isinstance(http, UcdHttpClient)
        http.keep_cookies(method, url, answer)

    def _observe(self, path: str, status: str, started: float, users: int) -> None:
        if self._observers:
            notify(self._observers, path, status, time.perf_counter() - started, users)

    def _url(self, path: str) -> httpx.URL:
        """``path`` merged with the client's ``base_url``, as httpx merges it.

        Given a relative path, httpx parses it and the base URL again on every request
        (about half of ``build_request``'s time); an absolute URL is used as it is. The
        merge is done by httpx itself, once per path, and redone if ``base_url`` changes.
        """
        base = self._http.base_url
        if base is not self._urls_base:
            self._urls.clear()
            self._heads.clear()
            self._urls_base = base
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = self._http.build_request("GET", path).url
        return url

    def _backoff_delay(self, attempt: int) -> float:
        # Exponential backoff with full jitter: 0..base, 0..2*base, 0..4*base ...
        return random.uniform(0, self._backoff_base * 2**attempt)

    async def _backoff(self, attempt: int, path: str, reason: str, delay: float) -> None:
        logger.warning("UCD call to %s failed (%s); retry %d", path, reason, attempt + 1)
        await self._sleep(delay)


def _answer(method: str, path: str, response: Answer, *, parse: bool) -> Any:
    """Map one final (not retried) response to a parsed body or a gateway error."""
    status = response.status_code
    if status == 200:
        return _json(response) if parse else None
    if status in (401, 403):
        logger.error("the UCD refused the gateway's credentials (HTTP %d) on %s", status, path)
        raise UpstreamAuth(f"the UCD refused the gateway's credentials (HTTP {status})")
    text = error_text(response.content)
    if status == 400:
        if text is not None and _CONFLICT_TEXT in text:
            raise Conflict(text)
        if text in _AUTH_400_TEXTS:
            logger.error("the UCD rejected the gateway's partner headers on %s", path)
            raise UpstreamAuth(f"the UCD rejected the gateway's partner headers: {text}")
        raise BadUserInput(text or "the UCD rejected the request")
    if status == 404 and text is not None and text.endswith(": no data"):
        raise NotFound(text)
    # Only the status is logged: a UCD body may echo personal data from the request.
    logger.error("unexpected UCD answer: HTTP %d on %s %s", status, method, path)
    raise UpstreamError(f"the UCD answered HTTP {status} to {method} {path}", status=status)


def _json(response: Answer) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        logger.error("the UCD sent a body that is not JSON (HTTP %d)", response.status_code)
        raise UpstreamError(
            "the UCD sent a body that is not JSON", status=response.status_code
        ) from None


def _retry_after_seconds(response: Answer) -> int:
    """Whole seconds from ``Retry-After`` (§2.6: whole seconds, minimum 1); 1 if absent.

    RFC 9110 (section 10.2.3) allows seconds or an HTTP date; neither UCD sends a date, but a proxy
    in front of one may. A date is counted from now; one already past, or a header that
    is neither, waits the minimum.
    """
    raw = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(raw)
    except ValueError:
        seconds = _seconds_until(raw)
    if not math.isfinite(seconds):
        return 1
    return max(1, math.ceil(seconds))


def _seconds_until(http_date: str) -> float:
    """Seconds from now to an HTTP date (negative when past); 0 when it is not one.

    >>> _seconds_until("Wed, 21 Oct 2015 07:28:00 GMT") < 0, _seconds_until("soon")
    (True, 0.0)
    """
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return 0.0
    if when.tzinfo is None:
        # "-0000" parses without a zone; HTTP dates are GMT (RFC 9110, section 5.6.7).
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()


# --- an attempt without an answer ------------------------------------------------------

#: How far an attempt got: waiting for a slot (nothing sent), sent (no answer yet),
#: reading the answer's body.
_Stage = Literal["queued", "sent", "reading"]


class _AttemptFailed(Exception):
    """One attempt ended without an answer: what the UCD did, as a caller reads it
    ("reset the connection"), why, in a few words ("connection reset"), and whether the
    request may have reached the UCD."""

    def __init__(
        self, what: str, reason: str, *, maybe_sent: bool, kind: str, reached: bool = True
    ) -> None:
        super().__init__(what)
        self.what = what
        self.reason = reason
        self.maybe_sent = maybe_sent
        #: The exception's type, for the log (messages may echo the request).
        self.kind = kind
        #: The UCD was tried (a connection refused counts: the UCD is down); False when
        #: the attempt waited too long for a slot of the gateway's own, a bulkhead's or
        #: the connection pool's, which says nothing about the UCD's health.
        self.reached = reached
        #: Set by ``UcdClient._attempt``: the endpoint's circuit is still closed.
        self.circuit_closed = True


def _timed_out(stage: _Stage) -> _AttemptFailed:
    """The attempt's own timer (``_send``'s budget) ran out at ``stage``."""
    if stage == "reading":
        return _AttemptFailed(
            "did not finish its answer in time",
            "answer not finished in time",
            maybe_sent=True,
            kind="TimeoutError",
        )
    # "queued": every slot stayed busy; the request was never sent.
    return _AttemptFailed(
        "did not answer in time",
        "no answer in time",
        maybe_sent=stage == "sent",
        kind="TimeoutError",
        reached=stage == "sent",
    )


def _transport_failure(exc: httpx.TransportError, *, reading: bool) -> _AttemptFailed:
    """What an httpx error says happened. Verified over real sockets with both transports
    (tests/gateway/test_client_faults.py): refused -> ConnectError; reset -> ReadError
    (``UcdAiohttpTransport`` maps aiohttp's ECONNRESET there too); closed without an answer
    -> RemoteProtocolError; no answer -> ReadTimeout.

    Not sent: no connection was made (ConnectError, ConnectTimeout), none was free
    (PoolTimeout), or httpx refused the request itself (UnsupportedProtocol, ...).
    Every other error comes once the request may have been written.
    """
    kind = type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return _AttemptFailed(
            "refused the connection", "connection refused", maybe_sent=False, kind=kind
        )
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return _AttemptFailed(
            "did not answer in time",
            "no connection in time",
            maybe_sent=False,
            kind=kind,
            reached=not isinstance(exc, httpx.PoolTimeout),
        )
    if isinstance(exc, httpx.TimeoutException):
        if reading:
            return _AttemptFailed(
                "did not finish its answer in time",
                "answer not finished in time",
                maybe_sent=True,
                kind=kind,
            )
        return _AttemptFailed(
            "did not answer in time", "no answer in time", maybe_sent=True, kind=kind
        )
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
        if _is_reset(exc):
            return _AttemptFailed(
                "reset the connection", "connection reset", maybe_sent=True, kind=kind
            )
        return _AttemptFailed(
            "dropped the connection", "connection dropped", maybe_sent=True, kind=kind
        )
    return _AttemptFailed("could not be reached", "not reached", maybe_sent=False, kind=kind)


def _is_reset(exc: BaseException) -> bool:
    """True when the chain of causes holds a connection reset by the peer (ECONNRESET)."""
    seen: BaseException | None = exc
    for _ in range(8):  # the chains are short; the bound guards against a cycle
        if seen is None:
            return False
        if isinstance(seen, ConnectionResetError) or (
            isinstance(seen, OSError) and seen.errno == errno.ECONNRESET
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _fits(deadline: float | None, delay: float) -> bool:
    """A wait of ``delay`` seconds ends before the deadline (always, without one)."""
    return deadline is None or time.monotonic() + delay < deadline


def _out_of_time(method: str, path: str, *, sent_before: bool) -> UpstreamUnavailable:
    if sent_before:
        what = "did not answer within the operation's deadline"
    else:
        what = "was not called: the operation's deadline had passed"
    logger.error("UCD %s on %s %s", what, method, path)
    return UpstreamUnavailable(f"the UCD {what} ({method} {path})")


def _circuit_open(method: str, path: str, retry_after: int) -> UpstreamUnavailable:
    # Not logged per call: the opening was, and an open circuit may refuse thousands.
    return UpstreamUnavailable(
        f"the UCD is not called: {method} {path} kept failing; "
        f"the gateway tries it again in {retry_after} s",
        retry_after=retry_after,
    )


def _unavailable(method: str, path: str, failed: _AttemptFailed) -> UpstreamUnavailable:
    logger.error("UCD %s on %s %s (%s)", failed.what, method, path, failed.kind)
    return UpstreamUnavailable(f"the UCD {failed.what} ({method} {path})")


def _outcome_unknown(method: str, path: str, failed: _AttemptFailed) -> UpstreamOutcomeUnknown:
    logger.error(
        "UCD %s on %s %s (%s); the call may have been applied",
        failed.what,
        method,
        path,
        failed.kind,
    )
    return UpstreamOutcomeUnknown(
        f"the UCD may or may not have applied {method} {path}: its answer was lost "
        f"({failed.reason})"
    )
