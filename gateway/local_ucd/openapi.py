"""TEMPORARY placeholder written by the lead so the app imports; its owner replaces it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.local_ucd.http import json_response


async def handle_openapi(request: Request) -> Response:
    return json_response({"openapi": "3.1.0"})
