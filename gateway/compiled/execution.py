"""Running a compiled plan: variables in, the UCD's answers out as the response's data.

``CompiledExecution.execute`` answers an operation by its plan (gateway/compiled/plan.py)
when there is one and ``can_compile`` agrees, and otherwise awaits ``fallback``: the
HTTP view's own graphql-core execution, unchanged. Per request it coerces the variables
with graphql-core's own function, evaluates ``@skip``/``@include``, reads the keys and
``events`` arguments exactly as the resolvers do (``check_key``, ``user_selection``,
``event_window``), plans the operation's UCD calls as the budget does, reads the users
through the request's loader (so a batch still shares one context and its loads) and
writes the answer (gateway/compiled/serializer.py) with ``extensions.cost``.

Anything the resolvers would answer with an error goes to ``fallback`` instead, so
errors keep their one pipeline: before any read (bad variables or keys, too many keys,
bad ``events`` arguments, over the budget), or after the reads (a UCD error, an Int
out of range). In the second case graphql-core's resolvers find the same answers and
the same exceptions in the request's loader (aiodataloader keeps a failed key's
future), so no UCD call is sent twice, and the calls already made are carried into its
``extensions.cost`` (``carrying_calls``).

The caller's scopes are checked by ``can_compile`` (FORBIDDEN is an error, so
graphql-core's), and the operation's span, with tracing on, is opened here as
``tracing.OperationSpans`` opens it on graphql-core's path.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final, Protocol, runtime_checkable

import strawberry
from graphql import DocumentNode, GraphQLObjectType, GraphQLSchema
from graphql.execution.values import get_argument_values, get_variable_values
from strawberry.types import ExecutionResult

from gateway import tracing
from gateway.api.budget import CostLimits, cost_extensions, user_key
from gateway.api.context import Context
from gateway.api.rate_limiting import already_taken, take
from gateway.api.selection import FieldScope, user_selection
from gateway.api.strawberry_internals import graphql_core_schema
from gateway.api.types import event_window
from gateway.api.ucd_requests import key_ref
from gateway.api.validation import check_key
from gateway.auth.pii import pii_read_names
from gateway.auth.scopes import Scope
from gateway.compiled.plan import Plan, PlannedField, collect, compile_operation
from gateway.compiled.serializer import Serializers
from gateway.errors import GatewayError
from gateway.operations import ObserveOperations
from gateway.reads.need import ProfileNeed
from gateway.settings import Settings
from gateway.ucd.answers import ProfileAnswer
from gateway.ucd.call_count import carrying_calls, counting_calls
from gateway.ucd.requests import UserRef

__all__ = ["PLAN_CACHE_SIZE", "CompiledExecution", "Guards", "can_compile", "compiled_execution"]

#: Distinct (document, operation name) pairs whose plan is kept; as the parse cache.
PLAN_CACHE_SIZE: Final = 128

#: Prepares a document: parsed and validated through the request limits' caches, or None.
Prepare = Callable[[str], DocumentNode | None]

logger = logging.getLogger("gateway.compiled")


@runtime_checkable
class Guards(Protocol):
    """What the compiled path needs of the request limits' extension (gateway/limits.py's
    ``RequestGuards``, a layer up-level of this package's: found on the schema)."""

    cost_limits: CostLimits

    def prepare(self, schema: GraphQLSchema, query: str) -> DocumentNode | None: ...


def compiled_execution(schema: strawberry.Schema, settings: Settings) -> CompiledExecution:
    """The compiled path of a schema the app completed with its request guards: documents
    are prepared through the guards' parse and validation caches (so neither path does
    that work twice) and planned against the same budget.

    The schema's extensions are request hooks the compiled path skips, so it honours
    each itself or is off:

    * the guards: parse, validation, budget and ``extensions.cost`` are done here, and the
      caller's rate limit taken (``rate_limiting.take``); mutation refusals and audit
      attempt lines concern no query it compiles; PII read lines are graphql-core's
      (``can_compile``); masking has no error to mask;
    * the operations' observer (gateway/operations.py: metrics, the request's log
      fields, the log line): ``ObserveOperations.observing``;
    * tracing's ``OperationSpans``: ``tracing.operation_span``.

    Any other extension turns it off, with one warning at start-up: a new hook must be
    honoured here (and tested in tests/gateway/test_compiled.py) before it may be on.
    """
    found: list[Guards] = []
    observers: list[ObserveOperations] = []
    others: list[str] = []
    for extension in schema.extensions:
        if isinstance(extension, Guards):
            found.append(extension)
        elif isinstance(extension, ObserveOperations):
            observers.append(extension)
        elif extension is not tracing.OperationSpans:
            others.append(getattr(extension, "__name__", type(extension).__name__))
    (guards,) = found
    if len(observers) > 1:
        others += [type(o).__name__ for o in observers]  # pragma: no cover - the app adds one
    enabled = settings.compiled_execution
    if enabled and others:
        # A request hook the compiled path does not do itself would be skipped: correctness
        # first, every operation runs through graphql-core.
        logger.warning(
            "compiled execution is off: the schema has extensions it does not honour (%s)",
            ", ".join(others),
        )
        enabled = False
    return CompiledExecution(
        schema,
        prepare=functools.partial(guards.prepare, graphql_core_schema(schema)),
        limits=guards.cost_limits,
        enabled=enabled,
        observer=observers[0] if observers else None,
    )


def can_compile(context: object, plan: Plan) -> bool:
    """THE SEAM: may this request's operation skip graphql-core's per-field resolution?

    Only when nothing a resolver or a field-level hook decides depends on the request
    beyond what the plan reads (keys, variables, the clock). Anything per field that the
    context carries must make this return False, or be checked here against ``plan``
    (its fields: ``plan.roots`` and their ``children``); the compiled path then falls
    back to graphql-core for that request, which runs every resolver and hook.

    The caller's scopes (gateway/api/authorization.py): ``user`` and ``users`` need
    ``profile:read`` (else their resolvers answer FORBIDDEN), and a PII field the caller
    may not read (``context.withheld``) is null with FORBIDDEN; both are errors, and
    errors are graphql-core's to answer. A plan that may select a withheld field, under
    any condition, goes there whole: the common reader asks for none. Whatever the
    compiled path answers reads no withheld attribute, so the need it pushes down is the
    one ``authorization.restrict`` would leave.

    The audit trail (gateway/api/audit_trail.py) writes a read line per PII attribute a
    query answers, and withholds the answer when it cannot: with an audit log, a plan
    that may select PII is graphql-core's too. Nothing else of a query it compiles is
    audited.
    """
    if not isinstance(context, Context):
        return False
    if not context.principal.may(Scope.PROFILE_READ):
        return False
    if context.withheld and plan.read_names & context.withheld:
        return False
    return context.audit is None or not (
        plan.read_names & pii_read_names(context.settings.pii_attributes)
    )


#: Root fields by response key; the users each ``user``/``users`` key reads, with the need.
_Grouped = dict[str, list[PlannedField]]
_Reads = dict[str, list[tuple[UserRef, ProfileNeed]]]


class _Fallback(Exception):
    """Inside ``_run``: hand the operation to graphql-core."""


class CompiledExecution:
    """The compiled path of one app: its plans by document, the schema's serializers."""

    def __init__(
        self,
        schema: strawberry.Schema,
        *,
        prepare: Prepare,
        limits: CostLimits,
        enabled: bool,
        observer: ObserveOperations | None = None,
    ) -> None:
        self._schema = schema
        self._observer = observer
        self._core = graphql_core_schema(schema)
        self._prepare = prepare
        self._limits = limits
        self._enabled = enabled
        #: The extensions the schema had when the app was built: a request hook added
        #: later (tracing, say) sees only graphql-core's execution, so the path steps aside.
        self._extensions = tuple(schema.extensions)
        #: Tracing's operation extension is on the schema: the compiled path opens its span.
        self._spans = tracing.OperationSpans in self._extensions
        self._serializers = Serializers(self._core)
        self._plans: dict[tuple[str, str | None], Plan | None] = {}
        query = self._core.query_type
        user = self._core.type_map["User"]
        assert query is not None
        assert isinstance(user, GraphQLObjectType)
        self._user_field = query.fields["user"]
        self._users_field = query.fields["users"]
        self._events_field = user.fields["events"]
        self.answered = 0  # operations answered here rather than by graphql-core (tests)

    def plan(self, query: str | None, operation_name: str | None) -> Plan | None:
        """The plan of the operation, from the cache or compiled now; None: graphql-core's."""
        if not self._enabled or query is None:
            return None
        key = (query, operation_name)
        try:
            return self._plans[key]
        except KeyError:
            pass
        document = self._prepare(query)
        if document is None:
            return None  # not cached: the parse cache already keeps what parses
        plan = compile_operation(self._core, document, operation_name)
        if len(self._plans) >= PLAN_CACHE_SIZE:
            del self._plans[next(iter(self._plans))]  # oldest first, bounded
        self._plans[key] = plan
        return plan

    async def execute(
        self,
        query: str | None,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        context: object,
        fallback: Callable[[], Awaitable[ExecutionResult]],
    ) -> ExecutionResult:
        """The operation's result, by its plan or by ``fallback``."""
        plan = self.plan(query, operation_name)
        if (
            plan is None
            or tuple(self._schema.extensions) != self._extensions
            or not can_compile(context, plan)
        ):
            return await fallback()
        assert isinstance(context, Context)
        observer = self._observer
        if observer is None:
            return await self._traced(plan, operation_name, context, variables, fallback)
        # Metrics, the request's log fields and line (gateway/operations.py), as its
        # extension records them on graphql-core's path, which then records nothing.
        named = plan.operation.name
        with observer.observing(
            named.value if named else None, plan.operation.operation.value
        ) as observed:
            result = await self._traced(plan, operation_name, context, variables, fallback)
            observed.answered(result.errors)
        return result

    async def _traced(
        self,
        plan: Plan,
        operation_name: str | None,
        context: Context,
        variables: Mapping[str, Any] | None,
        fallback: Callable[[], Awaitable[ExecutionResult]],
    ) -> ExecutionResult:
        if not (self._spans and tracing.enabled()):
            return await self._run(plan, context, variables, fallback)
        # The operation's span, as tracing.OperationSpans makes it on graphql-core's
        # path; a fallback inside runs in it and opens none of its own.
        name = operation_name
        if name is None and plan.operation.name is not None:
            name = plan.operation.name.value
        with tracing.operation_span(plan.operation.operation.value, name) as span:
            result = await self._run(plan, context, variables, fallback)
            span.answered(errors=bool(result.errors))
        return result

    async def _run(
        self,
        plan: Plan,
        context: Context,
        variables: Mapping[str, Any] | None,
        fallback: Callable[[], Awaitable[ExecutionResult]],
    ) -> ExecutionResult:
        try:
            run = _Run(self, plan, context, variables)
            grouped, reads = run.prepare()
        except Exception:  # _Fallback, or a fault here: graphql-core answers (or fails closed)
            return await fallback()
        return await run.result(grouped, reads, fallback)


class _Run:
    """One operation on the compiled path."""

    def __init__(
        self,
        compiled: CompiledExecution,
        plan: Plan,
        context: Context,
        variables: Mapping[str, Any] | None,
    ) -> None:
        self.compiled = compiled
        self.plan = plan
        self.context = context
        coerced = get_variable_values(
            compiled._core, plan.operation.variable_definitions or (), dict(variables or {})
        )
        if isinstance(coerced, list):
            raise _Fallback  # graphql-core answers the variables' errors
        self.variables = coerced
        self.planned = 0

    def prepare(self) -> tuple[_Grouped, _Reads]:
        """The root fields by response key and the reads they make; ``_Fallback`` for
        whatever graphql-core must answer (a resolver's error, the budget's refusal)."""
        plan, values = self.plan, self.variables.coerced
        if plan.static_conditions:
            grouped = plan.memo.get("roots")
            if grouped is None:
                grouped = plan.memo["roots"] = collect(plan.roots, values)
        else:
            grouped = collect(plan.roots, values)
        reads = self._reads(grouped)
        self.planned = len({ref for keyed in reads.values() for ref, _ in keyed})
        if self.context.planned.calls + self.planned > self.compiled._limits.max_calls:
            raise _Fallback  # the budget's refusal is graphql-core's to answer
        return grouped, reads

    async def result(
        self, grouped: _Grouped, reads: _Reads, fallback: Callable[[], Awaitable[ExecutionResult]]
    ) -> ExecutionResult:
        """Reads the users and writes the answer, or hands over to ``fallback``."""
        planned = self.planned
        batch = self.context.planned
        batch.calls += planned
        # The caller's rate limit (gateway/api/rate_limiting.py), after the budget as on
        # graphql-core's path: once per operation, so graphql-core reuses the decision.
        decision = await take(self.context, planned)
        if decision is not None and decision.retry_after is not None:
            batch.calls -= planned  # graphql-core's budget plans them again
            with already_taken(decision):
                return await fallback()  # RATE_LIMITED, as graphql-core refuses it
        with counting_calls() as count:
            loads = [read for keyed in reads.values() for read in keyed]
            profiles = self.context.profiles
            try:
                if len(loads) == 1:
                    ((ref, need),) = loads
                    answers = [await profiles.load(ref, need)]
                else:
                    answers = await profiles.load_many(loads)
                data = self._data(grouped, reads, answers)
            except Exception:  # a UCD error, Unanswerable: graphql-core's to answer
                batch.calls -= planned  # graphql-core's budget plans them again
                with carrying_calls(count), already_taken(decision):
                    return await fallback()
        self.compiled.answered += 1
        return ExecutionResult(
            data=data,
            errors=None,
            extensions=cost_extensions(planned, count),
        )

    def _reads(
        self, grouped: Mapping[str, Sequence[PlannedField]]
    ) -> dict[str, list[tuple[UserRef, ProfileNeed]]]:
        """Per response key of ``user``/``users``: the users to read and what to read."""
        compiled = self.compiled
        reads: dict[str, list[tuple[UserRef, ProfileNeed]]] = {}
        for key, fields in grouped.items():
            node = fields[0].node
            name = fields[0].name
            if name == "user":
                raw = get_argument_values(compiled._user_field, node, self.variables)
                refs = [self._ref(raw["key"])]
            elif name == "users":
                raw = get_argument_values(compiled._users_field, node, self.variables)
                if len(raw["keys"]) > compiled._limits.max_user_keys:
                    raise _Fallback
                refs = [self._ref(raw_key) for raw_key in raw["keys"]]
            else:  # __typename
                continue
            need = self._need(key, fields)
            if raw.get("fresh"):  # user(fresh: true): past the profile cache, as read_user
                need = replace(need, fresh=True)
            reads[key] = [(ref, need) for ref in refs]
        return reads

    def _ref(self, raw: Mapping[str, Any]) -> UserRef:
        key = user_key(raw)
        if check_key(key, "key"):
            raise _Fallback  # the resolver's BAD_USER_INPUT
        return key_ref(key)

    def _need(self, key: str, fields: Sequence[PlannedField]) -> ProfileNeed:
        plan = self.plan
        nodes = [f.node for f in fields]
        fixed = plan.static_needs[key]
        memo_key = ("need", *map(id, nodes))
        if fixed and memo_key in plan.memo:
            need: ProfileNeed = plan.memo[memo_key]
            return need
        scope = FieldScope(self.compiled._core, plan.fragments, self.variables.coerced, nodes)
        try:
            need = user_selection(scope, now=self.context.now).need
        except GatewayError:
            raise _Fallback from None  # bad events arguments: the resolver's error
        if fixed:
            plan.memo[memo_key] = need
        return need

    def _data(
        self,
        grouped: Mapping[str, Sequence[PlannedField]],
        reads: Mapping[str, Sequence[tuple[UserRef, ProfileNeed]]],
        answers: Sequence[ProfileAnswer | None],
    ) -> dict[str, Any]:
        data: dict[str, Any] = {}
        position = 0
        for key, fields in grouped.items():
            if fields[0].name == "__typename":
                data[key] = "Query"
                continue
            count = len(reads[key])
            users = [self._user(fields, answer) for answer in answers[position : position + count]]
            position += count
            data[key] = users if fields[0].name == "users" else users[0]
        return data

    def _user(
        self, fields: Sequence[PlannedField], profile: ProfileAnswer | None
    ) -> dict[str, Any] | None:
        if profile is None:
            return None
        plan, values = self.plan, self.variables.coerced
        if plan.static_conditions:
            memo_key = ("user", *map(id, fields))
            grouped = plan.memo.get(memo_key)
            if grouped is None:
                children = [child for f in fields for child in f.children]
                grouped = plan.memo[memo_key] = collect(children, values)
        else:
            grouped = collect([child for f in fields for child in f.children], values)
        return self.compiled._serializers.user_fields(grouped, profile, self._events)

    def _events(
        self, fields: Sequence[PlannedField], profile: ProfileAnswer
    ) -> list[dict[str, Any]]:
        args = get_argument_values(self.compiled._events_field, fields[0].node, self.variables)
        last = args.get("last")
        since, until = event_window(self.context.now, args.get("from"), args.get("to"))
        return self.compiled._serializers.events(
            fields,
            profile,
            names=args["names"],
            since=since,
            until=until,
            last=last,
            variables=self.variables.coerced,
        )
