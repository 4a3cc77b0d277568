"""A query document, compiled once: what of it does not depend on the variables.

``compile_operation`` turns a validated document and an operation name into a ``Plan``,
or None when the operation is not one the compiled path answers (the caller then runs
graphql-core as before). The plan keeps every field of the operation flattened out of
its fragments, each with the ``@skip``/``@include`` conditions on the way to it, so per
request only those conditions are evaluated and fields grouped by response key.

Flattening versus graphql-core's ``collect_fields``: graphql-core expands a named
fragment at its first *included* spread and ignores later ones; the flat list holds
every spread's fields, each with its own conditions. The first included occurrence of a
response key is at the same position either way, and a later repeat only adds field
nodes that graphql-core would have merged under the same key (same field, same
arguments: validation holds that), so the answer is the same.

What compiles (anything else returns None): a query whose root fields are ``user``,
``users`` and ``__typename``; under a ``User`` its typed attribute fields
(``USER_FIELDS``), ``__typename`` and ``events`` with its typed fields (``EVENT_FIELDS``)
and ``__typename``; aliases, inline fragments and fragment spreads; no directive but
``@skip`` and ``@include``. ``identifiers``, ``attribute``, ``attributes``,
``Event.param``, ``catalog``, ``exportJob``, mutations and introspection go to
graphql-core.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from graphql import (
    BooleanValueNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLIncludeDirective,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
)
from graphql.utilities import get_operation_ast

from gateway.api.names import EVENT_FIELD_PARAMS, USER_FIELD_READ_NAMES

__all__ = [
    "EVENT_FIELDS",
    "MAX_FLAT_FIELDS",
    "USER_FIELDS",
    "Condition",
    "Plan",
    "PlannedField",
    "collect",
    "compile_operation",
]

#: The typed fields of ``User`` the serializer writes (GraphQL names), besides ``events``.
USER_FIELDS: Final = frozenset({"insiderId", *USER_FIELD_READ_NAMES})
#: The fields of ``Event`` the serializer writes; ``param`` is a resolver with arguments.
EVENT_FIELDS: Final = frozenset({"name", "timestamp", "source", *EVENT_FIELD_PARAMS})
_TYPENAME: Final = "__typename"
_ROOT_FIELDS: Final = frozenset({"user", "users", _TYPENAME})
#: What may be selected under a ``User`` and under an ``Event``.
_UNDER_USER: Final = USER_FIELDS | {"events", _TYPENAME}
_UNDER_EVENT: Final = EVENT_FIELDS | {_TYPENAME}

#: Flattening repeats a fragment's fields at each spread; past this many fields in all, a
#: document (a fragment spread many times over) is left to graphql-core, which expands
#: each fragment once.
MAX_FLAT_FIELDS: Final = 2_000


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``@skip`` (``skip``) or ``@include`` on the way to a field: a literal or a
    variable's name."""

    skip: bool
    literal: bool
    variable: str | None

    def holds(self, variables: Mapping[str, Any]) -> bool:
        value = self.literal if self.variable is None else variables.get(self.variable)
        return value is not self.skip if isinstance(value, bool) else False


@dataclass(frozen=True, slots=True)
class PlannedField:
    """A field of the document with the conditions on the way to it and, flattened the
    same way, the fields under it."""

    key: str
    name: str
    node: FieldNode
    conditions: tuple[Condition, ...]
    children: tuple[PlannedField, ...]

    def included(self, variables: Mapping[str, Any]) -> bool:
        return all(c.holds(variables) for c in self.conditions)


@dataclass(slots=True)
class Plan:
    """One operation of one document, ready to run with any variables."""

    operation: OperationDefinitionNode
    fragments: Mapping[str, FragmentDefinitionNode]
    roots: tuple[PlannedField, ...]
    #: True when no ``@skip``/``@include`` reads a variable: the grouping is fixed.
    static_conditions: bool
    #: Per response key of a root field: True when its selection holds no variable and no
    #: ``events`` (whose default window moves with the clock), so its need is fixed.
    static_needs: Mapping[str, bool]
    #: The UCD read names of every ``User`` attribute field anywhere in the operation,
    #: whatever its conditions: a caller who may not read one of them (PII without
    #: ``pii:read``) is answered by graphql-core, which nulls it with FORBIDDEN.
    read_names: frozenset[str] = frozenset()
    #: Memos the executor fills: grouped roots and needs that are fixed.
    memo: dict[object, Any] = field(default_factory=dict)


class _NotCompiled(Exception):
    """Raised inside the compiler: the operation is graphql-core's."""


def compile_operation(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None
) -> Plan | None:
    """The plan of ``operation_name`` in a *validated* ``document``, or None."""
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY:
        return None
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    flattener = _Flattener(fragments)
    try:
        roots = flattener.flatten(operation.selection_set, "Query", (), _ROOT_FIELDS)
    except _NotCompiled:
        return None
    static_needs: dict[str, bool] = {}
    for root in roots:
        if root.name != _TYPENAME:
            static_needs[root.key] = static_needs.get(root.key, True) and _fixed_need(root)
    return Plan(
        operation=operation,
        fragments=fragments,
        roots=roots,
        static_conditions=not flattener.reads_variables,
        static_needs=static_needs,
        read_names=frozenset(
            USER_FIELD_READ_NAMES[child.name]
            for root in roots
            for child in root.children
            if child.name in USER_FIELD_READ_NAMES
        ),
    )


class _Flattener:
    def __init__(self, fragments: Mapping[str, FragmentDefinitionNode]) -> None:
        self.fragments = fragments
        self.count = 0
        self.reads_variables = False

    def flatten(
        self,
        selection_set: SelectionSetNode | None,
        type_name: str,
        conditions: tuple[Condition, ...],
        allowed: frozenset[str],
        spreading: frozenset[str] = frozenset(),
    ) -> tuple[PlannedField, ...]:
        if selection_set is None:
            return ()
        found: list[PlannedField] = []
        for node in selection_set.selections:
            if not isinstance(node, FieldNode | InlineFragmentNode | FragmentSpreadNode):
                raise _NotCompiled  # pragma: no cover - the three kinds of selection
            own = conditions + self._conditions(node) if node.directives else conditions
            if isinstance(node, FieldNode):
                found.append(self._field(node, own, allowed))
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                if condition is None or condition.name.value == type_name:
                    found += self.flatten(node.selection_set, type_name, own, allowed, spreading)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in spreading:  # validation rules both out
                    raise _NotCompiled
                if fragment.type_condition.name.value == type_name:
                    found += self.flatten(
                        fragment.selection_set, type_name, own, allowed, spreading | {name}
                    )
        return tuple(found)

    def _field(
        self, node: FieldNode, conditions: tuple[Condition, ...], allowed: frozenset[str]
    ) -> PlannedField:
        self.count += 1
        if self.count > MAX_FLAT_FIELDS:
            raise _NotCompiled
        name = node.name.value
        if name not in allowed:
            raise _NotCompiled
        children: tuple[PlannedField, ...] = ()
        if name in ("user", "users"):
            children = self.flatten(node.selection_set, "User", (), _UNDER_USER)
        elif name == "events":
            children = self.flatten(node.selection_set, "Event", (), _UNDER_EVENT)
        key = node.alias.value if node.alias else name
        return PlannedField(key, name, node, conditions, children)

    def _conditions(
        self, node: FieldNode | InlineFragmentNode | FragmentSpreadNode
    ) -> tuple[Condition, ...]:
        found: list[Condition] = []
        for directive in node.directives or ():
            name = directive.name.value
            if name not in (GraphQLSkipDirective.name, GraphQLIncludeDirective.name):
                raise _NotCompiled
            (argument,) = directive.arguments or ()  # validation: exactly ``if``
            value = argument.value
            skip = name == GraphQLSkipDirective.name
            if isinstance(value, VariableNode):
                self.reads_variables = True
                found.append(Condition(skip, literal=False, variable=value.name.value))
            elif isinstance(value, BooleanValueNode):
                found.append(Condition(skip, literal=value.value, variable=None))
            else:  # pragma: no cover - validation allows only a Boolean
                raise _NotCompiled
        return tuple(found)


def _fixed_need(root: PlannedField) -> bool:
    """True when what ``root`` needs from the UCD is the same on every request: no
    ``events`` under it (its default window moves with the clock) and no condition that
    reads a variable (the other fields of ``User`` take no arguments)."""
    return not any(
        child.name == "events" or any(c.variable is not None for c in child.conditions)
        for child in root.children
    )


def collect(
    fields: Sequence[PlannedField], variables: Mapping[str, Any]
) -> dict[str, list[PlannedField]]:
    """The included fields by response key, in the order graphql-core answers them."""
    grouped: dict[str, list[PlannedField]] = {}
    for planned in fields:
        if not planned.conditions or planned.included(variables):
            grouped.setdefault(planned.key, []).append(planned)
    return grouped
