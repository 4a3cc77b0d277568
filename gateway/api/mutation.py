"""Mutation root: batched writes, identity changes, erasure and exports.

Every mutation drops the request's cached profile answers afterwards (``_changing``), so
a later field of the same operation (a payload's ``user``, a second mutation) reads fresh
data, and no later read of any request shares a profile call sent before the change.
With the profile cache on, it also invalidates what it touched on every replica before
its payload is answered (``Touch``; erasure deletes the user's cached bytes:
``_erasing``), or answers STATE_UNAVAILABLE when it cannot (gateway/reads/cache.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import strawberry

from gateway.api.context import Context
from gateway.api.described import described_mutation
from gateway.api.errors_map import delete_errors, exception_errors, upsert_errors
from gateway.api.inputs import (
    DeleteAttributesInput,
    ExportInput,
    IdentifierInput,
    UpsertUsersInput,
    UserKey,
)
from gateway.api.payloads import (
    DeleteIdentifierPayload,
    DeletePiiPayload,
    DeleteUserPayload,
    UpdateIdentifierPayload,
)
from gateway.api.query import export_job
from gateway.api.selection import FieldScope, subfield_scope, user_selection
from gateway.api.strawberry_internals import raw_info
from gateway.api.types import (
    DeleteAttributesPayload,
    ExportJob,
    FieldError,
    ItemResult,
    UpsertUsersPayload,
)
from gateway.api.ucd_requests import (
    delete_attributes_user,
    export_request,
    key_ref,
    to_identifier,
    upsert_user,
)
from gateway.api.validation import (
    Problem,
    check_delete_item,
    check_identifier,
    check_key,
    check_upsert_item,
    raise_first,
)
from gateway.errors import BadUserInput, GatewayError, StateUnavailable
from gateway.reads.cache import Touch
from gateway.reads.need import ProfileNeed
from gateway.reads.touches import identity_touch, touch_of_delete, touch_of_upsert
from gateway.ucd.batching import send_batches
from gateway.ucd.envelope import UserOutcome
from gateway.ucd.requests import (
    AttributeDeleteRequest,
    ContactAnonymizeRequest,
    DeleteUserRequest,
    IdentityDeleteRequest,
    IdentityUpdateRequest,
    UpsertRequest,
    UserAnonymizeRequest,
    UserRef,
)

__all__ = ["Mutation"]

Info = strawberry.Info[Context, Any]
Item = TypeVar("Item")
Body = TypeVar("Body")


def _refused(index: int, problems: Sequence[Problem]) -> ItemResult:
    return ItemResult(
        index=index,
        ok=False,
        errors=[FieldError(path=p.path, message=p.message) for p in problems],
    )


def _checked(
    items: Sequence[Item],
    check: Callable[[Item, str], Sequence[Problem]],
    body_of: Callable[[Item], Body],
) -> tuple[dict[int, ItemResult], list[int], list[Body]]:
    """Items the UCD would refuse as refused results; the others' indexes and UCD users."""
    refused: dict[int, ItemResult] = {}
    sent: list[int] = []
    bodies: list[Body] = []
    for index, item in enumerate(items):
        problems = check(item, f"users.{index}")
        if problems:
            refused[index] = _refused(index, problems)
        else:
            sent.append(index)
            bodies.append(body_of(item))
    return refused, sent, bodies


def _results(
    total: int,
    refused: dict[int, ItemResult],
    sent: Sequence[int],
    outcomes: Sequence[UserOutcome | BaseException],
    errors_of: Callable[[int, UserOutcome], list[FieldError]],
) -> list[ItemResult]:
    """One ItemResult per input item, in input order.

    When every request of the operation failed as a whole (nothing was written), the
    error is raised so the caller sees its code (UPSTREAM_UNAVAILABLE, RATE_LIMITED...);
    when only some chunks failed, their items carry the message and the rest report
    what the UCD did.
    """
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    if failures and len(failures) == len(outcomes):
        raise failures[0]
    results = dict(refused)
    for index, outcome in zip(sent, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            results[index] = ItemResult(
                index=index, ok=False, errors=exception_errors(outcome, f"users.{index}")
            )
        else:
            errors = errors_of(index, outcome)
            results[index] = ItemResult(index=index, ok=not errors, errors=errors)
    return [results[i] for i in range(total)]


def _selects_user(info: Info) -> bool:
    """True when the payload's ``user`` is selected; raises BAD_USER_INPUT, before the
    change, for its arguments no read-back could serve (``events`` from after to...)."""
    payload_type = raw_info(info).return_type
    while hasattr(payload_type, "of_type"):
        payload_type = payload_type.of_type
    scope = subfield_scope(
        FieldScope.of(info), type_name=getattr(payload_type, "name", ""), field_name="user"
    )
    if scope is None:
        return False
    user_selection(scope, now=info.context.now)
    return True


@contextlib.asynccontextmanager
async def _changing(ctx: Context, touches: Sequence[Touch] = ()) -> AsyncIterator[None]:
    """Around a UCD write: cached and in-flight profile answers may be stale afterwards.

    Also after a write that failed: it may still have been applied (a dropped connection
    after the UCD's commit looks like any other dropped connection); then the write's
    own error is the answer, whatever the cache's invalidation does. After a write that
    succeeded, an invalidation that fails is the answer (STATE_UNAVAILABLE), so no
    acknowledged write leaves a replica serving the old value.
    """
    try:
        yield
    except Exception:
        ctx.profiles.clear()
        if ctx.cache is not None:
            with contextlib.suppress(StateUnavailable):
                await ctx.cache.invalidate(touches)
        raise
    ctx.profiles.clear()
    if ctx.cache is not None:
        try:
            await ctx.cache.invalidate(touches)
        except StateUnavailable as exc:
            raise StateUnavailable(
                "the UCD applied the write, but the profile cache of the gateway's replicas "
                "could not be invalidated: read with user(key:, fresh: true) until the "
                "shared state (Redis) is back"
            ) from exc


@contextlib.asynccontextmanager
async def _erasing(ctx: Context, ref: UserRef) -> AsyncIterator[None]:
    """Around an erasure: with the profile cache on, the user is found before the UCD
    call (a STATE_UNAVAILABLE then sends nothing), and every byte the cache holds of
    them is deleted after it, before the payload is answered."""
    cache = ctx.cache
    users = set() if cache is None else await cache.before_erasure(ref)
    try:
        async with _changing(ctx):
            yield
    except Exception:
        if cache is not None:  # a failed erasure may have been applied all the same
            with contextlib.suppress(StateUnavailable):
                await cache.erased(ref, users)
        raise
    if cache is not None:
        await cache.erased(ref, users)


async def _insider_id(info: Info, ref: UserRef) -> str | None:
    """The user's insider_id, read before a change that makes ``ref`` find nobody."""
    profile = await info.context.profiles.load(ref, ProfileNeed())
    return profile.insider_id if profile is not None else None


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def upsert_users(self, info: Info, input: UpsertUsersInput) -> UpsertUsersPayload:
        """Writes users in E1 calls of <= 1,000 users and < 5,000,000 bytes, concurrently.

        Items the UCD would refuse are refused here (ok: false, with paths) and not sent.
        A mutation with exactly one user goes through the process-wide coalescer, which
        group-commits concurrent single-user upserts into few E1 calls.
        """
        ctx = info.context
        refused, sent, bodies = _checked(input.users, check_upsert_item, upsert_user)
        outcomes: list[UserOutcome | BaseException] = []
        async with _changing(ctx, [touch_of_upsert(body) for body in bodies]):
            if len(input.users) == 1 and bodies:
                outcomes = [await ctx.upserts.submit(bodies[0], skip_hook=input.skip_hook)]
            elif bodies:
                skip_hook = input.skip_hook
                outcomes = await send_batches(
                    bodies, lambda users: UpsertRequest(users, skip_hook), ctx.ucd.upsert
                )

        def errors_of(index: int, outcome: UserOutcome) -> list[FieldError]:
            attributes = input.users[index].attributes
            names = [c.name for c in (attributes.custom or ())] if attributes else []
            return upsert_errors(outcome, f"users.{index}", custom_names=names)

        results = _results(len(input.users), refused, sent, outcomes, errors_of)
        ok = sum(r.ok for r in results)
        return UpsertUsersPayload(
            success_count=ok, failure_count=len(results) - ok, results=results
        )

    @strawberry.mutation
    async def delete_attributes(
        self, info: Info, users: list[DeleteAttributesInput]
    ) -> DeleteAttributesPayload:
        """Deletes attributes in E4 calls of <= 1,000 users and < 5,000,000 bytes.

        A mutation with exactly one user is group-committed with the concurrent ones
        (``gateway/upserts.py``), as single-user upserts are.
        """
        ctx = info.context
        refused, sent, bodies = _checked(users, check_delete_item, delete_attributes_user)
        outcomes: list[UserOutcome | BaseException] = []
        async with _changing(ctx, [touch_of_delete(body) for body in bodies]):
            if len(users) == 1 and bodies:
                outcomes = [await ctx.upserts.delete_attributes(bodies[0])]
            elif bodies:
                outcomes = await send_batches(
                    bodies, AttributeDeleteRequest, ctx.ucd.delete_attributes
                )
        results = _results(
            len(users),
            refused,
            sent,
            outcomes,
            lambda index, outcome: delete_errors(outcome, f"users.{index}"),
        )
        ok = sum(r.ok for r in results)
        return DeleteAttributesPayload(
            success_count=ok, failure_count=len(results) - ok, results=results
        )

    @described_mutation(
        "Deletes the user's PII; a user whose only identifiers were PII becomes anonymous."
    )
    async def delete_pii(self, info: Info, key: UserKey) -> DeletePiiPayload:
        raise_first(check_key(key, "key"))
        ctx = info.context
        ref = key_ref(key)
        selects_user = _selects_user(info)
        after: UserRef | None
        if ref.insider_id is not None:
            async with _erasing(ctx, ref):
                await ctx.ucd.anonymize_contact(ContactAnonymizeRequest(ref.insider_id))
            after = UserRef(insider_id=ref.insider_id)
        else:
            if ref.has_non_pii_identifier():
                # uuid and custom identifiers survive (§3.7.2) and still find the user.
                after = UserRef(uuid=ref.uuid, custom=ref.custom)
            elif selects_user:
                # Only email/phone: they are gone afterwards, so remember the insider_id.
                iid = await _insider_id(info, ref)
                after = UserRef(insider_id=iid) if iid is not None else None
            else:
                after = None
            async with _erasing(ctx, ref):
                await ctx.ucd.anonymize_user(UserAnonymizeRequest(ref))
        return DeletePiiPayload(ok=True, _ref=after)

    @strawberry.mutation
    async def update_identifier(
        self, info: Info, old: IdentifierInput, new: IdentifierInput
    ) -> UpdateIdentifierPayload:
        raise_first([*check_identifier(old, "old"), *check_identifier(new, "new")])
        old_id, new_id = to_identifier(old), to_identifier(new)
        if not old_id.same_type(new_id):
            raise BadUserInput("old and new identifiers must be of the same type", path="new")
        if old_id == new_id:
            # Compared after email normalisation, as the UCD compares them (§3.5.2 check 5).
            raise BadUserInput("identifier values are the same", path="new")
        _selects_user(info)  # its bad arguments are refused before the change
        async with _changing(info.context, [identity_touch(old_id.ref(), new_id.ref())]):
            await info.context.ucd.update_identity(IdentityUpdateRequest(old_id, new_id))
        return UpdateIdentifierPayload(ok=True, _ref=new_id.ref())

    @strawberry.mutation
    async def delete_identifier(
        self, info: Info, identifier: IdentifierInput
    ) -> DeleteIdentifierPayload:
        raise_first(check_identifier(identifier, "identifier"))
        ctx = info.context
        given = to_identifier(identifier)
        iid = await _insider_id(info, given.ref()) if _selects_user(info) else None
        async with _changing(ctx, [identity_touch(given.ref())]):
            await ctx.ucd.delete_identity(IdentityDeleteRequest(given))
        return DeleteIdentifierPayload(
            ok=True, _ref=UserRef(insider_id=iid) if iid is not None else None
        )

    @strawberry.mutation
    async def delete_user(self, info: Info, key: UserKey) -> DeleteUserPayload:
        raise_first(check_key(key, "key"))
        async with _erasing(info.context, key_ref(key)):
            await info.context.ucd.delete_user(DeleteUserRequest(key_ref(key)))
        return DeleteUserPayload(ok=True)

    @strawberry.mutation
    async def start_export(self, info: Info, input: ExportInput) -> ExportJob:
        """Registers a job, then asks the UCD for the export with the job's webhook.

        A call the UCD refuses (unknown segment, the 1-per-day limit...) or that fails
        is the UCD's typed error (its ``code``, plus ``jobId``); the job stays registered
        as FAILED with the message, so ``exportJob(jobId)`` tells the same story.
        """
        ctx = info.context
        request = export_request(input, hook="", now=ctx.now)  # validates before any job exists
        # Stored before the UCD hears of it: the webhook may reach any replica at once.
        record = await ctx.exports.create(
            format=input.format.value, segment_id=str(input.segment_id)
        )
        try:
            await ctx.ucd.export(replace(request, hook=ctx.exports.hook_url(record)))
        except GatewayError as exc:
            # The UCD's error is the answer; a shared state that fails now as well
            # leaves the job PENDING rather than hide it.
            with contextlib.suppress(StateUnavailable):
                await ctx.exports.mark_failed(record.id, exc.message)
            # The error is this call's own (exports are never coalesced), so adding
            # to its extensions cannot leak the id into another caller's answer.
            exc.extensions["jobId"] = record.id
            raise
        # PENDING: the webhook is answered by whichever replica it reaches, and the
        # caller polls exportJob, so reading the job back here would only cost a call.
        return export_job(record)
