"""Seeding a UCD with the demo data of :mod:`gateway.ucd.demo_data` (``ucd-gateway seed``).

Users go in batched upserts through :class:`UcdClient`, then the demo segments are created
over the local UCD's segment endpoint (through the same client), reusing those a previous
run created. The target is
a running UCD at a URL, or a local UCD opened in-process on its data folder. Printing the
outcome and choosing an exit code are the command's business (:mod:`gateway.cli`).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import httpx
from pydantic import SecretStr
from tqdm import tqdm

from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import LocalUcdConfig
from gateway.local_ucd.transport import LocalUcdTransport
from gateway.ucd.client import UcdClient
from gateway.ucd.demo_data import SEGMENTS, demo_users
from gateway.ucd.local_segments import SegmentDefinition
from gateway.ucd.requests import UpsertRequest

__all__ = ["BATCH_SIZE", "SeedResult", "ensure_segments", "seed_demo_data", "seed_target"]

#: Users per upsert: the most one E1 request may carry (§3.1.1).
BATCH_SIZE = 1000


@dataclass(frozen=True)
class SeedResult:
    """Users the UCD accepted and refused, and the ids of the demo segments."""

    ok: int
    failed: int
    segment_ids: tuple[int, ...]


async def seed_demo_data(
    http: httpx.AsyncClient,
    *,
    partner: str,
    token: SecretStr,
    users: int,
    seed: int,
    progress: bool = True,
) -> SeedResult:
    """Upsert ``users`` demo users (same ``seed``, same users) and make the demo segments.

    Raises what :class:`UcdClient` raises (``GatewayError``), also when the segment
    endpoint refuses.
    """
    ucd = UcdClient(http, partner=partner, token=token)
    ok = failed = 0
    stream = demo_users(users, seed=seed)
    with tqdm(total=users, unit="user", disable=not progress) as bar:
        while batch := list(itertools.islice(stream, BATCH_SIZE)):
            envelope = await ucd.upsert(UpsertRequest(batch))
            ok, failed = ok + envelope.successful_count, failed + envelope.fail_count
            bar.update(len(batch))
    segment_ids = await ensure_segments(ucd, SEGMENTS)
    return SeedResult(ok=ok, failed=failed, segment_ids=segment_ids)


async def ensure_segments(ucd: UcdClient, segments: Iterable[SegmentDefinition]) -> tuple[int, ...]:
    """The ids of ``segments`` on the local UCD, creating those not there yet.

    Seeding again must not pile up copies, so a segment whose name exists is reused.
    """
    existing = {segment.name: segment.segment_id for segment in await ucd.local_segments()}
    segment_ids = []
    for segment in segments:
        segment_id = existing.get(segment.name)
        if segment_id is None:
            segment_id = await ucd.create_local_segment(segment)
        segment_ids.append(segment_id)
    return tuple(segment_ids)


@contextlib.asynccontextmanager
async def seed_target(target: str | LocalUcdConfig) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the UCD to seed: a running one at a URL, or a local UCD whose
    config is given, run in-process (its lifespan opens the data folder) for the duration.
    """
    if isinstance(target, str):
        async with httpx.AsyncClient(base_url=target, timeout=60.0) as http:
            yield http
        return
    app = create_local_ucd_app(target)
    async with app.router.lifespan_context(app):
        transport = LocalUcdTransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://local-ucd") as http:
            yield http
