"""Query root: users by key (selection pushed down) and export jobs."""

from __future__ import annotations

from typing import Annotated, Any, cast

import strawberry

from gateway.api.authorization import require
from gateway.api.catalog import Catalog
from gateway.api.context import Context
from gateway.api.described import described_field
from gateway.api.inputs import UserKey
from gateway.api.reading import read_user, read_users
from gateway.api.types import ExportFormat, ExportJob, ExportStatus, User
from gateway.api.ucd_requests import key_ref
from gateway.api.validation import check_key, raise_first
from gateway.errors import BadUserInput
from gateway.exports import ExportJobRecord

__all__ = ["Query", "export_job"]

Info = strawberry.Info[Context, Any]


def export_job(record: ExportJobRecord) -> ExportJob:
    return ExportJob(
        id=strawberry.ID(record.id),
        status=ExportStatus(record.status.value),
        format=ExportFormat(record.format),
        segment_id=strawberry.ID(record.segment_id),
        requested_at=record.requested_at,
        ready_at=record.ready_at,
        url=record.url,
        expires_at=record.expires_at,
        error=record.error,
    )


@strawberry.type
class Query:
    @described_field("Null when the UCD has no such user.")
    async def user(
        self,
        info: Info,
        key: UserKey,
        fresh: Annotated[
            bool,
            strawberry.argument(
                description="True: read from the UCD, past the profile cache (whose answer "
                "it refreshes); no effect when the cache is off."
            ),
        ] = False,
    ) -> User | None:
        raise_first(check_key(key, "key"))
        require(info, "Query")
        return await read_user(info, key_ref(key), fresh=fresh)

    @described_field("In the order of keys; null for each key the UCD does not know.")
    def users(self, info: Info, keys: list[UserKey]) -> list[User | None]:
        limit = info.context.settings.max_user_keys
        if len(keys) > limit:
            raise BadUserInput(
                f"keys must not contain more than {limit} keys (UCD_GATEWAY_MAX_USER_KEYS)",
                path="keys",
            )
        # Every key is checked before any UCD call, so bad input costs nothing upstream.
        for index, key in enumerate(keys):
            raise_first(check_key(key, f"keys.{index}"))
        require(info, "Query")
        # graphql-core awaits list items one by one (a failed user nulls only its item);
        # the schema type stays [User]!, hence the cast.
        return cast("list[User | None]", read_users(info, [key_ref(key) for key in keys]))

    @described_field(
        "The partner's attributes and events (the UCD's metadata), to explore the names "
        "user, users and events take."
    )
    def catalog(self, info: Info) -> Catalog:
        require(info, "Query")
        return Catalog()

    @strawberry.field
    async def export_job(self, info: Info, id: strawberry.ID) -> ExportJob | None:
        require(info, "Query")
        record = await info.context.exports.get(str(id))
        return None if record is None else export_job(record)
