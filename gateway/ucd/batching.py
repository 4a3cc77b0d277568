"""E1/E4 requests cut to the UCD's limits: <= 1,000 users and < 5,000,000 bytes each.

``plan_chunks`` decides which users share a request; ``send_batches`` sends the chunks of
one operation concurrently and hands each user its own outcome (or its request's error).
Sizes are measured as the client writes the body (orjson), so a planned request is never
refused for its size. Each user is written and encoded once (``EncodedUser``): that
encoding is both its measure and what its request sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Protocol, TypeVar

import orjson

from gateway.ucd.envelope import DataEnvelope, UserOutcome
from gateway.ucd.requests import AttributeDeleteUser, EncodedUser, UpsertUser

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_USERS_PER_CALL",
    "TOO_BIG",
    "Wire",
    "plan_chunks",
    "send_batches",
    "users_in",
    "wire_bytes",
]

#: E1/E4 accept 1 to 1,000 users per request (§3.1.1, §3.4.1).
MAX_USERS_PER_CALL: Final = 1000
#: The UCD's body limit is 5,000,000 bytes (§2.4); the issue asks for bodies *under* it.
MAX_BODY_BYTES: Final = 4_999_999

#: The outcome of a user that cannot fit any request on its own.
TOO_BIG: Final = UserOutcome(
    {"size": ["this user is bigger than the UCD's 5,000,000-byte request limit"]}
)


class Wire(Protocol):
    def to_wire(self) -> dict[str, Any]: ...


Request = TypeVar("Request", bound=Wire)


def users_in(body: Mapping[str, Any] | None) -> int | None:
    """The users a UCD request body carries: the batch of E1/E4, 1 for the endpoints
    about one user (E2, E5-E9), None for the others (export, metadata, segments).

    For traces (gateway/tracing.py), which may show how many users a call carried but
    never which.

    >>> users_in({"users": [{}, {}]}), users_in({"insider_id": "x"}), users_in({"table": "t"})
    (2, 1, None)
    """
    if body is None:
        return None
    users = body.get("users")
    if isinstance(users, list):
        return len(users)
    if any(key in body for key in _ONE_USER_KEYS):
        return 1
    return None


#: Body keys that name the one user of a request (E2, E5-E9).
_ONE_USER_KEYS: Final = ("insider_id", "identifiers", "old_identifier")


def wire_bytes(item: Wire) -> int:
    """Bytes of ``item`` as the client writes it; of a request without users
    (``{"users":[],...}``), what every chunk pays besides its users."""
    return len(orjson.dumps(item.to_wire()))


def plan_chunks(sizes: Sequence[int], frame: int) -> tuple[list[list[int]], list[int]]:
    """Group user indexes into requests: <= 1,000 users and < 5,000,000 bytes each.

    ``sizes`` are the users' encoded sizes, ``frame`` the size of the request without
    users. Returns the chunks and the indexes that fit no request at all. Users stay in
    input order (the UCD applies a request's users in order, §3.1.4, and so do we across
    chunks of one mutation as far as concurrency allows).
    """
    chunks: list[list[int]] = []
    too_big: list[int] = []
    current: list[int] = []
    used = frame
    for index, size in enumerate(sizes):
        if frame + size > MAX_BODY_BYTES:
            too_big.append(index)
            continue
        # +1 for the comma between two users.
        extra = size + (1 if current else 0)
        if current and (len(current) >= MAX_USERS_PER_CALL or used + extra > MAX_BODY_BYTES):
            chunks.append(current)
            current, used, extra = [], frame, size
        current.append(index)
        used += extra
    if current:
        chunks.append(current)
    return chunks, too_big


async def send_batches(
    users: Sequence[UpsertUser] | Sequence[AttributeDeleteUser],
    request: Callable[[Sequence[EncodedUser]], Request],
    send: Callable[[Request], Awaitable[DataEnvelope]],
) -> list[UserOutcome | BaseException]:
    """Send users in as few requests as the limits allow, concurrently.

    ``request(users)`` builds one E1 or E4 request of already written users
    (``request(())`` measures the frame); ``send`` is the client's call. Each item of the
    result is the user's outcome, or the exception its request raised (the caller decides
    whether one failed chunk fails the whole operation).
    """
    encoded = [EncodedUser.of(user) for user in users]
    chunks, _ = plan_chunks([user.size for user in encoded], wire_bytes(request(())))
    # Every user a chunk holds gets its own result below; the others keep TOO_BIG.
    results: list[UserOutcome | BaseException] = [TOO_BIG] * len(users)

    async def run(chunk: list[int]) -> None:
        try:
            envelope = await send(request([encoded[i] for i in chunk]))
        except Exception as exc:  # reported per user; the caller raises or maps it
            for i in chunk:
                results[i] = exc
            return
        for i, outcome in zip(chunk, envelope.split(len(chunk)), strict=True):
            results[i] = outcome

    await asyncio.gather(*(run(chunk) for chunk in chunks))
    return results
