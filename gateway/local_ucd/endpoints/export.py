"""E3 — ``POST /api/raw/v1/export`` (§3.3): validate the request and queue the job.

    validate (§3.3.2, in order) -> rate stage -> job row committed -> 200 {} -> wake the worker

The file itself is written later by :class:`gateway.local_ucd.exports.worker.ExportWorker`;
the job table is described in :mod:`gateway.local_ucd.exports.jobs`. Benchmarks skip the
HTTP layer with :func:`enqueue_job` and :func:`run_export_job`.
"""

from __future__ import annotations

import importlib.util
import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx

from gateway.local_ucd.events.query import parse_selection
from gateway.local_ucd.exports import segments
from gateway.local_ucd.exports.files import FORMATS
from gateway.local_ucd.exports.jobs import load_job
from gateway.local_ucd.http import ApiError, dumps
from gateway.local_ucd.services import Services, UcdRequest
from gateway.local_ucd.store.json_values import is_integer
from gateway.local_ucd.timefmt import to_us

__all__ = ["enqueue_job", "handle_export", "normalise_hook", "run_export_job"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(?!\d)")


def _segment_id(segment: Any) -> int:
    if not isinstance(segment, dict):
        raise ApiError.bad_request("segment not found")
    raw: Any = segment.get("segment_id")
    if not is_integer(raw):
        raise ApiError.bad_request("segment not found")
    return int(raw)


def _segment_exists(conn: sqlite3.Connection, partner: str, segment_id: int) -> bool:
    # The iterator is lazy: only the existence check runs here.
    return segments.segment_profile_pks(conn, partner, segment_id) is not None


def normalise_hook(raw: Any) -> str:
    """The webhook URL of an E3 request, or the 400 of §3.3.2.

    Without a scheme ``https://`` is assumed (Insider's samples send a bare host):
    ``hooks.example.com/ready`` -> ``https://hooks.example.com/ready``; ``localhost:9000/x``
    has no scheme either (a port is not a scheme). ``ftp://x`` or ``mailto:x`` -> 400.
    """
    if not isinstance(raw, str) or not raw:
        raise ApiError.bad_request("hook must be defined")
    if any(c.isspace() or not c.isprintable() for c in raw):
        # httpx would quote them away; a URL with blanks is a mistake, not a host.
        raise ApiError.bad_request("hook must be an http or https URL")
    hook = raw if _SCHEME.match(raw) else f"https://{raw}"
    try:
        url = httpx.URL(hook)
    except httpx.InvalidURL:
        raise ApiError.bad_request("hook must be an http or https URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ApiError.bad_request("hook must be an http or https URL")
    return hook


async def handle_export(req: UcdRequest) -> Any:
    """Validate (§3.3.2, in order), pass the rate stage, commit the job, answer ``{}``."""
    body = req.body
    services = req.services
    partner = req.partner
    segment_id = _segment_id(body.get("segment"))
    if not await services.store.read(lambda conn: _segment_exists(conn, partner, segment_id)):
        raise ApiError.bad_request("segment not found")
    parse_selection(body)  # raises the E2 texts; the job re-parses the stored copy
    fmt = body.get("format")
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ApiError.bad_request("format must be one of csv, json or parquet")
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise ApiError.bad_request("parquet export needs the optional pyarrow package")
    hook = normalise_hook(body.get("hook"))
    request = {
        "segment_id": segment_id,
        "attributes": body.get("attributes"),
        "events": body.get("events"),
        "format": fmt,
    }
    # Check, commit and record without another E3 in between: with strict limits two
    # concurrent requests must not both take the day's one export.
    async with services.exports.accepting:
        services.limiter.check_export(partner)
        await enqueue_job(services, partner, request, hook)
        services.limiter.record_export(partner)  # only 200s count (§2.6)
    return {}


async def enqueue_job(
    services: Services,
    partner: str,
    request: dict[str, Any],
    hook: str,
    *,
    wake: bool = True,
) -> int:
    """Commit a queued job and return its id; ``wake=False`` leaves it to the caller.

    ``request`` is ``{"segment_id", "attributes", "events", "format"}`` as validated by E3
    (benchmarks build it directly and then call :func:`run_export_job`).
    """
    created_us = to_us(services.now())

    def insert(conn: sqlite3.Connection) -> int:
        cursor = conn.execute(
            "INSERT INTO export_jobs (partner, request, hook, status, created_us)"
            " VALUES (?, ?, ?, 'queued', ?)",
            (partner, dumps(request).decode(), hook, created_us),
        )
        return int(cursor.lastrowid or 0)

    job_id = await services.store.write(insert)
    if wake:
        services.exports.wake()
    return job_id


async def run_export_job(services: Services, job_id: int) -> Path | None:
    """Run one queued job now and wait for its file (benchmarks; the worker does the same).

    Returns the published file (also when the worker happened to run the job first), or
    ``None`` when the job failed. The webhook is delivered in the background.
    """
    path = await services.exports.run_job(job_id)
    if path is not None:
        return path
    job = await services.store.read(lambda conn: load_job(conn, job_id))
    if job is None or job.status != "ready" or job.file_name is None:
        return None
    return services.config.exports_dir / job.partner / job.file_name
