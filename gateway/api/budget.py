"""The operation budget: the UCD calls an operation will make, planned before it runs.

``users(keys)`` is capped per field (``UCD_GATEWAY_MAX_USER_KEYS``), but 50 aliases of it
were 5,000 profile calls from one request, against a profile quota of 1,000 a minute
(§2.6). So every operation is planned after validation, with its variables coerced, and
one that would make more than ``UCD_GATEWAY_MAX_UCD_CALLS_PER_OPERATION`` calls is
refused with MAX_COST_EXCEEDED before any of them. ``extensions.cost.ucdCalls`` reports
the plan and the calls actually made (gateway/ucd/call_count.py), as Shopify reports
query cost.

What each root field costs, as the resolvers and the loader spend it:

* ``user(key)``, ``users(keys)``: one profile call per distinct ``UserRef`` of the whole
  query: the loads of one operation start in one tick, and the loader merges the needs
  of one user into one call. A field its resolver refuses before any call (a bad key,
  more keys than ``UCD_GATEWAY_MAX_USER_KEYS``) costs nothing;
* ``upsertUsers``, ``deleteAttributes``: one E1/E4 call per 1,000 users
  (``ucd/batching.py``; a body over 5,000,000 bytes may take one more, rare);
* ``catalog``: one E10 call per table its selection reads (``attributes``: contacts,
  ``events``: events), once per operation however many times it is selected: the
  catalogue cache (gateway/catalog.py) shares one call per table, and answers a fresh
  table with none (then actual is 0);
* ``updateIdentifier``, ``deleteUser``, ``startExport``: one call; ``deletePii``,
  ``deleteIdentifier``: one, plus the payload's ``user`` read-back when selected, plus
  the read of the insider_id they make first when the key cannot find the user after
  the change (see gateway/api/mutation.py).

Mutations run one after the other and each clears the loader, so their costs add up.
The operations of a batch (a JSON array) share one budget: each is planned against what
the operations before it planned, and one that would cross the limit is refused.
Actual may be lower than planned (a read joined another request's call, a field failed)
or, rarely, higher: a retried call counts again, and a read whose ``last`` limit may
hide events is sent again without it (gateway/reads/need.py).

Example: ``{ a: users(keys: [K1, K2]) { name }  b: user(key: K1) { email } }`` plans 2;
``{ catalog { attributes { name } events { name } } }`` plans 2.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLObjectType,
    OperationType,
    get_named_type,
)
from graphql.execution.values import VariableValues, get_argument_values
from strawberry.types import ExecutionContext

from gateway.api.catalog import CATALOG_FIELD_TABLES
from gateway.api.context import Context
from gateway.api.inputs import CustomIdentifierInput, UserKey
from gateway.api.names import KEY_FIELDS
from gateway.api.root_fields import root_fields
from gateway.api.selection import FieldScope, response_fields
from gateway.api.strawberry_internals import (
    graphql_core_schema,
    refuse_execution,
)
from gateway.api.ucd_requests import key_ref
from gateway.api.validation import check_key
from gateway.error_pipeline import cost_exceeded, mask_unexpected
from gateway.ucd.batching import MAX_USERS_PER_CALL
from gateway.ucd.call_count import CallCount, counting_calls
from gateway.ucd.names import CUSTOM, EMAIL, INSIDER_ID, PHONE_NUMBER, UUID
from gateway.ucd.requests import UserRef

__all__ = [
    "MUTATION_COSTS",
    "CostLimits",
    "OperationBudget",
    "cost_extensions",
    "planned_calls",
    "user_key",
]


@dataclass(frozen=True)
class CostLimits:
    """The settings a plan needs: the budget, and the key cap the ``users`` resolver applies."""

    max_calls: int
    max_user_keys: int
    #: The profile cache is on: an erasure may first ask the UCD whose it is (one call),
    #: to delete that user's cached bytes (gateway/reads/cache.py ``before_erasure``).
    profile_cache: bool = False


class _Root:
    """One operation's root fields, with what planning them needs."""

    def __init__(
        self,
        scope: FieldScope,
        root: GraphQLObjectType,
        variables: VariableValues,
        limits: CostLimits,
    ) -> None:
        self.scope = scope
        self.root = root
        self.variables = variables
        self.limits = limits

    def raw_args(self, node: FieldNode) -> dict[str, Any]:
        """graphql-core's coerced arguments (GraphQL names, input objects as dicts)."""
        return get_argument_values(self.root.fields[node.name.value], node, self.variables)

    def reads_back(self, nodes: Sequence[FieldNode]) -> bool:
        """True when the payload's ``user`` is selected (each fragment walked once)."""
        payload = get_named_type(self.root.fields[nodes[0].name.value].type)
        scope = FieldScope(self.scope.schema, self.scope.fragments, self.scope.variables, nodes)
        selected = response_fields(scope, type_name=payload.name)
        return any(group[0].name.value == "user" for group in selected.values())

    def catalog_tables(self, fields: Iterable[Sequence[FieldNode]]) -> set[str]:
        """The E10 tables the query's ``catalog`` fields read (each fragment walked once)."""
        tables: set[str] = set()
        for nodes in fields:
            if nodes[0].name.value == "catalog":
                scope = FieldScope(
                    self.scope.schema, self.scope.fragments, self.scope.variables, nodes
                )
                for group in response_fields(scope, type_name="Catalog").values():
                    table = CATALOG_FIELD_TABLES.get(group[0].name.value)
                    if table is not None:
                        tables.add(table)
        return tables

    def users(self, fields: Iterable[Sequence[FieldNode]]) -> set[UserRef]:
        """The distinct users the query's ``user`` and ``users`` fields read."""
        refs: set[UserRef] = set()
        for nodes in fields:
            name = nodes[0].name.value
            if name == "user":
                refs.update(_refs([user_key(self.raw_args(nodes[0])["key"])]))
            elif name == "users":
                raw_keys: list[Mapping[str, Any]] = self.raw_args(nodes[0])["keys"]
                if len(raw_keys) <= self.limits.max_user_keys:  # else refused, no call
                    refs.update(_refs([user_key(raw) for raw in raw_keys]))
        return refs


def user_key(raw: Mapping[str, Any]) -> UserKey:
    """The ``UserKey`` the resolver gets, from graphql-core's coerced argument: built
    directly, because strawberry's generic conversion of arguments was most of the
    planner's time on every request (~60 % of it for a one-user read). The compiled
    execution (gateway/compiled/) reads its keys with it too."""
    custom = raw.get(KEY_FIELDS[CUSTOM])
    return UserKey(
        insider_id=raw.get(KEY_FIELDS[INSIDER_ID]),
        email=raw.get(KEY_FIELDS[EMAIL]),
        phone_number=raw.get(KEY_FIELDS[PHONE_NUMBER]),
        uuid=raw.get(KEY_FIELDS[UUID]),
        custom=None
        if custom is None
        else [CustomIdentifierInput(name=c["name"], value=c["value"]) for c in custom],
    )


def _refs(keys: Sequence[UserKey]) -> list[UserRef]:
    """The users ``keys`` name, as the loader keys them; none when the resolver refuses
    one of them (it checks every key before any call)."""
    if any(check_key(key, "key") for key in keys):
        return []
    return [key_ref(key) for key in keys]


def _batched(count: int) -> int:
    return math.ceil(count / MAX_USERS_PER_CALL)


def _upsert_users(root: _Root, nodes: Sequence[FieldNode]) -> int:
    # The raw list's length: converting 1,000 inputs to count them would double the work.
    return _batched(len(root.raw_args(nodes[0])["input"]["users"]))


def _delete_attributes(root: _Root, nodes: Sequence[FieldNode]) -> int:
    return _batched(len(root.raw_args(nodes[0])["users"]))


def _delete_pii(root: _Root, nodes: Sequence[FieldNode]) -> int:
    erasure = 1 + root.limits.profile_cache
    if not root.reads_back(nodes):
        return erasure
    ref = key_ref(user_key(root.raw_args(nodes[0])["key"]))
    # Only email/phone given: they are gone afterwards, so the insider_id is read first.
    looks_up = ref.insider_id is None and not ref.has_non_pii_identifier()
    return erasure + 1 + looks_up


def _delete_user(root: _Root, nodes: Sequence[FieldNode]) -> int:
    return 1 + root.limits.profile_cache


def _update_identifier(root: _Root, nodes: Sequence[FieldNode]) -> int:
    return 1 + root.reads_back(nodes)


def _delete_identifier(root: _Root, nodes: Sequence[FieldNode]) -> int:
    # With ``user`` selected: the insider_id is read first, then the user by it after.
    return 3 if root.reads_back(nodes) else 1


def _one_call(root: _Root, nodes: Sequence[FieldNode]) -> int:
    return 1


#: UCD calls of each mutation field (GraphQL names); tests/gateway/test_budget.py holds
#: its keys equal to the schema's mutations, so a new mutation cannot go unplanned.
MUTATION_COSTS: Final[Mapping[str, Callable[[_Root, Sequence[FieldNode]], int]]] = {
    "upsertUsers": _upsert_users,
    "deleteAttributes": _delete_attributes,
    "deletePii": _delete_pii,
    "updateIdentifier": _update_identifier,
    "deleteIdentifier": _delete_identifier,
    "deleteUser": _delete_user,
    "startExport": _one_call,
}


def planned_calls(
    schema: strawberry.Schema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    limits: CostLimits,
) -> int:
    """The UCD calls the operation will make; 0 when it cannot run (no such operation,
    variables that do not fit their types: execution refuses those before any call)."""
    found = root_fields(graphql_core_schema(schema), document, operation_name, variables)
    if found is None:
        return 0
    root = _Root(found.scope(), found.root, found.variables, limits)
    fields = found.fields
    operation = found.operation
    if operation.operation is OperationType.MUTATION:
        return sum(
            MUTATION_COSTS.get(nodes[0].name.value, _no_call)(root, nodes)
            for nodes in fields.values()
        )
    return len(root.users(fields.values())) + len(root.catalog_tables(fields.values()))


def _no_call(root: _Root, nodes: Sequence[FieldNode]) -> int:
    return 0  # __typename


def cost_extensions(planned: int, count: CallCount) -> dict[str, Any]:
    """An answer's ``extensions``: ``cost.ucdCalls`` planned and actual (both paths of
    execution write it here, so their answers stay byte for byte alike)."""
    calls = {"planned": planned, "actual": count.calls}
    if count.cache_hits:
        # Reads the profile cache answered (gateway/reads/cache.py); planned counts
        # them as calls, since whether a read hits is known only when it runs.
        calls["cacheHits"] = count.cache_hits
    return {"cost": {"ucdCalls": calls}}


class OperationBudget:
    """One operation's budget: planned before it executes, its calls counted while it does."""

    def __init__(self, limits: CostLimits) -> None:
        self._limits = limits
        self.planned = 0
        self._count = CallCount()

    @contextlib.contextmanager
    def executing(self, context: ExecutionContext) -> Iterator[None]:
        """Around execution (an ``on_execute`` hook): plans, then refuses the operation
        when it is over the budget, or counts the calls it makes."""
        assert context.graphql_document is not None
        try:
            self.planned = planned_calls(
                context.schema,
                context.graphql_document,
                context.operation_name,
                context.variables,
                self._limits,
            )
        except Exception as exc:  # a fault in the planner, not in the caller's request
            # Fail closed: an operation whose cost is unknown does not run, and the
            # exception's text (which may hold the caller's input) never reaches them.
            refuse_execution(
                context, [mask_unexpected(GraphQLError("planning", original_error=exc))]
            )
            yield
            return
        # The operations of a batch share one context and one budget: each plans against
        # what those before it planned (they start in the batch's order).
        batch = context.context.planned if isinstance(context.context, Context) else None
        spent = batch.calls if batch is not None else 0
        if spent + self.planned > self._limits.max_calls:
            refusal = cost_exceeded(self.planned, self._limits.max_calls, spent=spent)
            refuse_execution(context, [refusal])
            yield
            return
        if batch is not None:
            batch.calls += self.planned
        with counting_calls() as count:
            self._count = count
            yield

    def results(self) -> dict[str, Any]:
        """The response's ``extensions`` entry."""
        return cost_extensions(self.planned, self._count)
