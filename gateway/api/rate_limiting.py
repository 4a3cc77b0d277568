"""The caller's rate limit, applied to an operation once its UCD calls are planned.

Called from the request extension's ``on_execute`` after the operation budget planned
the operation (gateway/api/budget.py), so the limit counts planned UCD calls (at least 1
an operation) and a refusal comes before any UCD call: RATE_LIMITED with ``retryAfter``,
which the view answers HTTP 429 with ``Retry-After`` (gateway/graphql_over_http.py).
The counting itself is gateway/rate_limits.py's.
"""

from __future__ import annotations

from graphql import GraphQLError
from strawberry.types import ExecutionContext

from gateway.api.context import Context
from gateway.error_pipeline import over_rate_limit

__all__ = ["rate_limit_refusal"]


async def rate_limit_refusal(context: ExecutionContext, planned: int) -> GraphQLError | None:
    """The refusal of an operation over its caller's limit; None when it may run."""
    gateway = context.context
    if not isinstance(gateway, Context) or gateway.rate_limiter is None:
        return None
    principal = gateway.principal
    decision = await gateway.rate_limiter.take(
        f"{principal.kind.value}:{principal.id}", principal.rate_limit, planned
    )
    if decision is None or decision.retry_after is None:
        return None
    return over_rate_limit(decision.limit.text, decision.retry_after)
