"""``GET /exports/{partner}/p/{file}`` (§5.4): download a published export file.

No authentication: the 32 random hex characters of the name are the capability. A file is
served only while its job row says ``ready`` for that partner and less than 24 hours have
passed since it became ready; anything else — unknown, expired, withdrawn by an erasure,
another partner's file — is the same 404, so the answer reveals nothing. An expired file
found here is deleted on the spot (the worker's sweep would delete it later anyway).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from gateway.local_ucd.exports.files import FORMATS
from gateway.local_ucd.exports.jobs import EXPIRY_US
from gateway.local_ucd.http import go_error, json_response
from gateway.local_ucd.services import Services
from gateway.local_ucd.timefmt import to_us

__all__ = ["handle_download"]

# Strict names, so a path can never leave <exports_dir>/<partner>/ ("..", "/", "%2F" …).
_PARTNER = re.compile(r"^[a-z0-9_-]{1,64}$")
_FILE = re.compile(r"^[0-9a-f]{32}\.(csv|json|parquet)$")


def _export_not_found() -> Response:
    return json_response(go_error("export not found: no data"), status=404)


async def handle_download(request: Request) -> Response:
    services: Services = request.app.state.services
    partner = str(request.path_params["partner"])
    file_name = str(request.path_params["file"])
    match = _FILE.match(file_name)
    if not _PARTNER.match(partner) or match is None:
        return _export_not_found()

    def find(conn: sqlite3.Connection) -> int | None:
        row = conn.execute(
            "SELECT ready_us FROM export_jobs"
            " WHERE partner = ? AND file_name = ? AND status = 'ready'",
            (partner, file_name),
        ).fetchone()
        return None if row is None else int(row[0])

    ready_us = await services.store.read(find)
    if ready_us is None:
        return _export_not_found()
    if to_us(services.now()) >= ready_us + EXPIRY_US:
        await services.exports.sweep_expired()
        return _export_not_found()
    path: Path = services.config.exports_dir / partner / file_name
    try:
        stat = await asyncio.to_thread(path.stat)
    except OSError:
        return _export_not_found()
    return FileResponse(
        path,
        stat_result=stat,
        media_type=FORMATS[match.group(1)].media_type,
        filename=file_name,
    )
