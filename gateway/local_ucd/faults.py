"""TEMPORARY placeholder written by the lead so the app imports; its owner replaces it."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.local_ucd.config import FaultConfig


@dataclass(frozen=True)
class FaultAction:
    kind: str  # "none" | "error_500" | "error_429" | "drop" | "drop_after_commit"
    retry_after_s: int = 1


class FaultInjector:
    def __init__(self, config: FaultConfig) -> None:
        self.config = config

    async def draw(self, key: str) -> FaultAction:
        return FaultAction("none")
