"""TEMPORARY placeholder written by the lead so the app imports; its owner replaces it."""

from __future__ import annotations

import httpx


class CallbackDispatcher:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def aclose(self) -> None:
        pass
