"""E1 — ``POST /api/user/v1/upsert`` (§3.1): request checks, then one write transaction.

Users are processed in array order inside one transaction: a user that fails (validation,
or an unknown ``insider_id``) changes nothing, because both are decided before the user's
first write; a later user sees what earlier users wrote. Any exception rolls the whole
transaction back (a 500, §2.5), so no per-user SAVEPOINT is needed. Error callbacks (§4.6)
are enqueued only after the transaction committed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from gateway.local_ucd.attributes.writing import (
    AttributeRow,
    CustomNames,
    insert_attributes,
    write_attributes,
)
from gateway.local_ucd.endpoints.upsert_validation import (
    CheckedEvents,
    append_flag,
    check_user_events,
    validate_user,
)
from gateway.local_ucd.events.writing import (
    CatalogKey,
    EventRow,
    insert_events,
    queue_events,
    write_catalog,
)
from gateway.local_ucd.http import ApiError, data_envelope
from gateway.local_ucd.identity.identifiers import DEFAULT_KINDS
from gateway.local_ucd.identity.resolution import Conflict, Resolver
from gateway.local_ucd.services import UcdRequest
from gateway.local_ucd.timefmt import to_us
from gateway.ucd.rules import normalise_identifier

__all__ = ["MAX_USERS", "UpsertOutcome", "handle_upsert", "upsert_users"]

MAX_USERS = 1000


@dataclass
class UpsertOutcome:
    """What one upsert did: counts, per-user failures, and the conflicts to report."""

    successful: int = 0
    failed: int = 0
    errors: dict[str, list[str]] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)

    def envelope(self) -> dict[str, Any]:
        """The data envelope of §3.1.5."""
        return data_envelope(self.successful, self.failed, self.errors)

    def fail(self, index: int, failures: Sequence[tuple[str, str]]) -> None:
        self.failed += 1
        for key, message in failures:
            self.errors.setdefault(f"users.{index}.{key}", []).append(message)


def _check_request(body: dict[str, Any]) -> tuple[list[Any], str | None]:
    """The request-level errors of §3.1.2, in the table's order."""
    users = body.get("users")
    if not isinstance(users, list):
        raise ApiError.bad_request("users must be defined")
    if len(users) > MAX_USERS:
        raise ApiError.bad_request(f"users must not contain more than {MAX_USERS} items")
    for flag in ("skip_hook", "append", "not_append"):
        value = body.get(flag)
        # [LOCAL] null is treated as an absent flag.
        if value is not None and not isinstance(value, bool):
            raise ApiError.bad_request(f"{flag} must be boolean")
    url = body.get("error_callback_endpoint")
    if url is not None and not _is_http_url(url):
        raise ApiError.bad_request("error_callback_endpoint must be an http or https URL")
    return users, url


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


async def handle_upsert(req: UcdRequest) -> Any:
    users, callback_url = _check_request(req.body)
    req.admit("upsert")
    if not users:
        return UpsertOutcome().envelope()
    services = req.services
    default_append = append_flag(req.body, True)
    now_us = to_us(services.now())
    retention = services.config.event_retention_days
    # Event checks need no database: run them off the event loop and outside the write
    # lock, so one request's checks overlap another's transaction.
    checked = await asyncio.to_thread(lambda: [check_user_events(raw) for raw in users])
    outcome = await services.store.write(
        lambda conn: upsert_users(
            conn, req.partner, users, default_append, now_us, retention, checked
        )
    )
    if callback_url is not None:
        for conflict in outcome.conflicts:
            services.callbacks.enqueue(
                req.partner, conflict.insider_id, callback_url, conflict.payload()
            )
    return outcome.envelope()


class _PendingWrites:
    """Rows batched across users: one ``executemany`` per table instead of one per user.

    Only writes nobody reads back before the flush are batched: events (``INSERT OR
    IGNORE`` needs no read) and attributes of profiles created in this request. A merge
    or a write to an existing profile reads stored rows, so it flushes first.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.attributes: list[AttributeRow] = []
        self.events: list[EventRow] = []

    def flush(self) -> None:
        insert_attributes(self.conn, self.attributes)
        insert_events(self.conn, self.events)
        self.attributes = []
        self.events = []


def upsert_users(
    conn: sqlite3.Connection,
    partner: str,
    users: Sequence[Any],
    default_append: bool,
    now_us: int,
    retention: Mapping[str, int],
    checked_events: Sequence[CheckedEvents],
) -> UpsertOutcome:
    """Apply ``users`` inside the caller's write transaction (§3.1.4).

    ``checked_events`` holds :func:`check_user_events` of each user, done beforehand.
    """
    outcome = UpsertOutcome()
    names = CustomNames(conn, partner)
    pending = _PendingWrites(conn)
    resolver = Resolver(conn, partner, now_us, before_merge=pending.flush)
    resolver.prefetch(_likely_identifiers(users))
    catalog: set[CatalogKey] = set()
    for index, raw in enumerate(users):
        plan, failures = validate_user(raw, names, default_append, checked_events[index])
        if plan is None:
            outcome.fail(index, failures)
            continue
        conflicts: list[Conflict] = []
        # An unknown insider_id is found before resolve() writes anything.
        target = resolver.resolve(plan.insider_id, plan.identifiers, plan.attach_only, conflicts)
        if target is None:
            outcome.fail(index, [("insider_id.exists", "no such user for this insider_id")])
            continue
        if not target.new:
            pending.flush()
            conn.execute("UPDATE profiles SET updated_us = ? WHERE pk = ?", (now_us, target.pk))
        write_attributes(
            conn,
            target.pk,
            plan.attributes,
            append=plan.append,
            new_profile=target.new,
            pending=pending.attributes,
        )
        queue_events(
            target.pk,
            plan.events,
            now_us=now_us,
            overrides=retention,
            rows=pending.events,
            catalog=catalog,
        )
        outcome.successful += 1
        outcome.conflicts.extend(conflicts)
        names.accept(plan.names)
    resolver.flush()
    pending.flush()
    names.flush()
    if catalog:
        write_catalog(conn, partner, catalog)
    return outcome


def _likely_identifiers(users: Sequence[Any]) -> list[tuple[str, str, str]]:
    """``(kind, name, value)`` of the identifiers the users probably name, read straight
    from the request.

    Only a cache warm-up for :meth:`Resolver.prefetch`: a value missed here is looked up
    when needed, and an extra one costs a row in the cache, so no check is repeated here.
    """
    found: list[tuple[str, str, str]] = []
    for raw in users:
        if type(raw) is not dict:
            continue
        for source in (raw.get("identifiers"), raw.get("attributes")):
            if type(source) is not dict:
                continue
            for kind in DEFAULT_KINDS:
                value = source.get(kind)
                if type(value) is str:
                    found.append((kind, "", normalise_identifier(kind, value)))
            custom = source.get("custom")
            if type(custom) is dict:
                found.extend(
                    ("custom", name, value) for name, value in custom.items() if type(value) is str
                )
    return found
