"""TEMPORARY placeholder written by the lead so the app imports; its owner replaces it."""

from __future__ import annotations


class RateLimiter:
    def __init__(self, *, strict: bool) -> None:
        self.strict = strict

    def admit(self, partner: str, pool: str, cost: float = 1) -> None:
        pass
