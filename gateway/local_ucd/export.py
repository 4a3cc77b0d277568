"""TEMPORARY placeholder written by the lead so the app imports; its owner replaces it."""

from __future__ import annotations

from typing import Any

from gateway.local_ucd.http import UNKNOWN_ERROR, ApiError
from gateway.local_ucd.services import Services, UcdRequest


async def handle_export(req: UcdRequest) -> Any:
    raise ApiError(500, UNKNOWN_ERROR)


class ExportWorker:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
