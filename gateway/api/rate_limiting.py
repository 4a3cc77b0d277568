"""The caller's rate limit, applied to an operation once its UCD calls are planned.

Called from the request extension's ``on_execute`` after the operation budget planned
the operation (gateway/api/budget.py), so the limit counts planned UCD calls (at least 1
an operation) and a refusal comes before any UCD call: RATE_LIMITED with ``retryAfter``,
which the view answers HTTP 429 with ``Retry-After`` (gateway/graphql_over_http.py).
The counting itself is gateway/rate_limits.py's.

The compiled execution path (gateway/compiled/) takes an operation's calls itself
(``take``); when it then hands the operation to graphql-core, it does so inside
``already_taken``, so the operation is counted once, as on graphql-core's path alone
(refused operations count too, so a second take would change later decisions).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from graphql import GraphQLError
from strawberry.types import ExecutionContext

from gateway.api.context import Context
from gateway.error_pipeline import over_rate_limit
from gateway.rate_limits import Decision

__all__ = ["already_taken", "rate_limit_refusal", "refusal_of", "take"]

#: The decision of the operation running in this task, when the compiled path took it.
_taken: ContextVar[Decision | None] = ContextVar("rate_limit_taken", default=None)


async def take(gateway: Context, planned: int) -> Decision | None:
    """Spends ``planned`` calls of the caller's window; None when it has no limit."""
    if gateway.rate_limiter is None:
        return None
    principal = gateway.principal
    return await gateway.rate_limiter.take(
        f"{principal.kind.value}:{principal.id}", principal.rate_limit, planned
    )


def refusal_of(decision: Decision | None) -> GraphQLError | None:
    """The refusal a decision stands for; None when the operation may run."""
    if decision is None or decision.retry_after is None:
        return None
    return over_rate_limit(decision.limit.text, decision.retry_after)


@contextlib.contextmanager
def already_taken(decision: Decision | None) -> Iterator[None]:
    """Inside, ``rate_limit_refusal`` answers with ``decision`` instead of taking again
    (None: not taken yet, so it is taken then)."""
    token = _taken.set(decision)
    try:
        yield
    finally:
        _taken.reset(token)


async def rate_limit_refusal(context: ExecutionContext, planned: int) -> GraphQLError | None:
    """The refusal of an operation over its caller's limit; None when it may run."""
    gateway = context.context
    if not isinstance(gateway, Context):
        return None
    decision = _taken.get()
    if decision is None:
        decision = await take(gateway, planned)
    return refusal_of(decision)
