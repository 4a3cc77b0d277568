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
    timeouts, refused or dropped connections -> UpstreamUnavailable

Retries: a 429 means the UCD did not run the request (§2.6: "A 429 is never
counted"), so every call retries it. 5xx answers and transport errors are retried
only for calls that are safe to repeat (profile, metadata, upsert, attribute
delete, the local segment list); repeating an identity change, an export or a segment
creation could do the work twice.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal

import httpx
import orjson
from pydantic import SecretStr

from gateway.errors import (
    BadUserInput,
    Conflict,
    NotFound,
    RateLimited,
    UpstreamAuth,
    UpstreamError,
    UpstreamUnavailable,
)
from gateway.ucd.answers import MetadataColumn, ProfileAnswer, check_metadata, parse_metadata
from gateway.ucd.call_count import count_call
from gateway.ucd.envelope import DataEnvelope, error_text
from gateway.ucd.local_segments import (
    LocalSegment,
    SegmentDefinition,
    parse_created_segment,
    parse_local_segments,
)
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

logger = logging.getLogger("gateway.ucd")

# §3.5.2 check 7: the only 400 that means "someone else holds this value".
_CONFLICT_TEXT: Final = "new identifier already has a user assigned to it"
# §2.2 checks 1-3: a 400 about the gateway's own headers, not the caller's input.
_AUTH_400_TEXTS: Final = frozenset({"Empty Partner", "Empty Token", "Partner is invalid."})

Sleep = Callable[[float], Awaitable[None]]
MetadataTable = Literal["contacts", "events"]


class UcdClient:
    """One object per gateway process; safe to share between requests."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        partner: str,
        token: str | SecretStr,
        max_concurrency: int = 16,
        max_retries: int = 2,
        max_retry_after: float = 5.0,
        backoff_base: float = 0.05,
        sleep: Sleep = asyncio.sleep,
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
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._max_retries = max_retries
        self._max_retry_after = max_retry_after
        self._backoff_base = backoff_base
        self._sleep = sleep
        self.calls = 0

    def __repr__(self) -> str:
        # Deliberately leaves out the headers: they hold the token.
        return f"UcdClient(base_url={str(self._http.base_url)!r}, partner={self._partner!r})"

    # --- endpoints ------------------------------------------------------------------

    async def upsert(self, request: UpsertRequest) -> DataEnvelope:
        """E1: create or update users; per-user outcomes in the data envelope."""
        answer = await self._call("POST", UPSERT_PATH, request.to_wire(), retry_safe=True)
        return DataEnvelope.from_wire(answer)

    async def profile(self, request: ProfileRequest) -> ProfileAnswer | None:
        """E2: one user's attributes and events; None when the UCD has no such user."""
        try:
            answer = await self._call("POST", PROFILE_PATH, request.to_wire(), retry_safe=True)
        except NotFound:
            return None
        return ProfileAnswer.from_wire(answer)

    async def export(self, request: ExportRequest) -> None:
        """E3: start an export; the link arrives later on the request's ``hook``."""
        # Any 200 body is acceptable (§3.3.3 gateway note), so it is not parsed.
        await self._call("POST", EXPORT_PATH, request.to_wire(), retry_safe=False, parse=False)

    async def delete_attributes(self, request: AttributeDeleteRequest) -> DataEnvelope:
        """E4: delete whole attributes or array values; answers ``{}`` or the envelope."""
        body = request.to_wire()
        answer = await self._call("POST", ATTRIBUTE_DELETE_PATH, body, retry_safe=True)
        return DataEnvelope.from_wire(answer)

    async def update_identity(self, request: IdentityUpdateRequest) -> None:
        """E5: replace the value of one identifier."""
        body = request.to_wire()
        await self._call("PATCH", IDENTITY_PATH, body, retry_safe=False, parse=False)

    async def delete_identity(self, request: IdentityDeleteRequest) -> None:
        """E6: remove one identifier from its profile (a DELETE with a JSON body)."""
        body = request.to_wire()
        await self._call("DELETE", IDENTITY_PATH, body, retry_safe=False, parse=False)

    async def anonymize_contact(self, request: ContactAnonymizeRequest) -> None:
        """E7: delete the PII of the user with this insider_id."""
        body = request.to_wire()
        await self._call("POST", CONTACT_ANONYMIZE_PATH, body, retry_safe=False, parse=False)

    async def anonymize_user(self, request: UserAnonymizeRequest) -> None:
        """E8: delete the PII of the user given by identifiers (or insider_id)."""
        body = request.to_wire()
        await self._call("POST", USER_ANONYMIZE_PATH, body, retry_safe=False, parse=False)

    async def delete_user(self, request: DeleteUserRequest) -> None:
        """E9: delete a user profile and all its data."""
        body = request.to_wire()
        await self._call("POST", USER_DELETE_PATH, body, retry_safe=False, parse=False)

    async def metadata_columns(self, table: MetadataTable) -> list[MetadataColumn]:
        """E10: the partner's attribute columns (``contacts``) or events (``events``);
        entries without a string ``key`` are skipped (``answers.parse_metadata``)."""
        return parse_metadata(await self._metadata(table))

    async def check_ready(self) -> None:
        """``/readyz``: E10 on ``contacts`` answers a JSON array of objects.

        Nothing reads the columns, so they are not parsed: the UCD is ready when it
        answers the gateway's credentials with the shape E10 has (§3.9).
        """
        check_metadata(await self._metadata("contacts"))

    async def _metadata(self, table: MetadataTable) -> Any:
        body = MetadataRequest(table).to_wire()
        return await self._call("POST", METADATA_COLUMNS_PATH, body, retry_safe=True)

    # --- the local UCD only (§5.5) -----------------------------------------------------

    async def local_segments(self) -> list[LocalSegment]:
        """The local UCD's segments, "All users" (id 1) first.

        Insider's UCD has no such endpoint (it answers 404, an ``UpstreamError``): the
        local UCD's own, for the seed command.
        """
        answer = await self._call("GET", LOCAL_SEGMENTS_PATH, None, retry_safe=True)
        return parse_local_segments(answer)

    async def create_local_segment(self, segment: SegmentDefinition) -> int:
        """Define a segment on the local UCD; its new id. The local UCD's own endpoint,
        like ``local_segments``; not retried, since a repeat would define it twice."""
        body = segment.to_wire()
        answer = await self._call("POST", LOCAL_SEGMENTS_PATH, body, retry_safe=False)
        return parse_created_segment(answer)

    # --- the one request path ---------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        retry_safe: bool,
        parse: bool = True,
    ) -> Any:
        # None: a request without a body (the local UCD's GET).
        content = orjson.dumps(body) if body is not None else None
        attempt = 0
        while True:
            try:
                response = await self._send(method, path, content)
            except httpx.TransportError as exc:
                if retry_safe and attempt < self._max_retries:
                    await self._backoff(attempt, path, type(exc).__name__)
                    attempt += 1
                    continue
                raise _unavailable(method, path, exc) from exc

            status = response.status_code
            if status == 429:
                retry_after = _retry_after_seconds(response)
                # Honour Retry-After, but never sleep longer than the cap inside one
                # GraphQL request: past the cap the caller is better served by the error.
                if attempt < self._max_retries and retry_after <= self._max_retry_after:
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
            if status >= 500 and retry_safe and attempt < self._max_retries:
                await self._backoff(attempt, path, f"HTTP {status}")
                attempt += 1
                continue
            return _answer(method, path, response, parse=parse)

    async def _send(self, method: str, path: str, content: bytes | None) -> httpx.Response:
        url = self._url(path)
        async with self._semaphore:
            self.calls += 1
            count_call()
            return await self._http.request(method, url, content=content, headers=self._headers)

    def _url(self, path: str) -> httpx.URL:
        """``path`` merged with the client's ``base_url``, as httpx merges it.

        Given a relative path, httpx parses it and the base URL again on every request
        (about half of ``build_request``'s time); an absolute URL is used as it is. The
        merge is done by httpx itself, once per path, and redone if ``base_url`` changes.
        """
        base = self._http.base_url
        if base is not self._urls_base:
            self._urls.clear()
            self._urls_base = base
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = self._http.build_request("GET", path).url
        return url

    async def _backoff(self, attempt: int, path: str, reason: str) -> None:
        # Exponential backoff with full jitter: 0..base, 0..2*base, 0..4*base ...
        delay = random.uniform(0, self._backoff_base * 2**attempt)
        logger.warning("UCD call to %s failed (%s); retry %d", path, reason, attempt + 1)
        await self._sleep(delay)


def _answer(method: str, path: str, response: httpx.Response, *, parse: bool) -> Any:
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


def _json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        logger.error("the UCD sent a body that is not JSON (HTTP %d)", response.status_code)
        raise UpstreamError(
            "the UCD sent a body that is not JSON", status=response.status_code
        ) from None


def _retry_after_seconds(response: httpx.Response) -> int:
    """Whole seconds from ``Retry-After`` (§2.6: whole seconds, minimum 1); 1 if absent."""
    raw = response.headers.get("Retry-After", "")
    try:
        seconds = float(raw)
    except ValueError:
        # The HTTP-date form is legal but neither UCD sends it; wait the minimum.
        return 1
    if not math.isfinite(seconds):
        return 1
    return max(1, math.ceil(seconds))


def _unavailable(method: str, path: str, exc: httpx.TransportError) -> UpstreamUnavailable:
    if isinstance(exc, httpx.TimeoutException):
        what = "did not answer in time"
    elif isinstance(exc, httpx.ConnectError):
        what = "refused the connection"
    else:
        what = "dropped the connection"
    logger.error("UCD %s on %s %s (%s)", what, method, path, type(exc).__name__)
    return UpstreamUnavailable(f"the UCD {what} ({method} {path})")
