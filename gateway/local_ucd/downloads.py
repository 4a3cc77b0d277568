"""TEMPORARY placeholder written by the lead so the app imports; its owner replaces it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.local_ucd.http import go_error, json_response


async def handle_download(request: Request) -> Response:
    return json_response(go_error("export not found: no data"), status=404)
