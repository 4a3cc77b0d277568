"""An operation's root fields, its variables coerced: what the operation budget
(budget.py), the authorization of mutations (authorization.py) and the audit trail
(audit_trail.py) each read before execution.

Coercing the variables is the costly part (a 1,000-user upsert's input is validated field
by field), and all three ran it, with the walk of the root selection, for the same
operation. ``root_fields`` does it once per operation: the result is remembered in a
``ContextVar`` for the operation's task (the three are called from one ``on_execute``
hook, gateway/limits.py), and found again by the identity of the document, operation
name, variables and schema it was made from. Nothing outlives the request's context, so
the caller's variables are not held once it ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    get_operation_ast,
)
from graphql.execution.values import VariableValues, get_variable_values

from gateway.api.selection import FieldScope, response_fields

__all__ = ["RootFields", "root_fields"]


@dataclass(frozen=True)
class RootFields:
    """The operation, its root type and fields by response key, the variables coerced."""

    schema: GraphQLSchema
    operation: OperationDefinitionNode
    root: GraphQLObjectType
    variables: VariableValues
    fragments: Mapping[str, FragmentDefinitionNode]
    #: Response key -> the nodes of that key (``selection.response_fields``).
    fields: Mapping[str, list[FieldNode]]

    def scope(self, nodes: tuple[FieldNode, ...] | list[FieldNode] = ()) -> FieldScope:
        """A ``FieldScope`` of the operation for ``nodes`` (the root's, by default)."""
        return FieldScope(self.schema, self.fragments, self.variables.coerced, nodes)


#: The last operation's root fields in this context: (its inputs, by identity; them).
_remembered: ContextVar[tuple[tuple[Any, ...], RootFields | None] | None] = ContextVar(
    "root_fields", default=None
)


def root_fields(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> RootFields | None:
    """The root fields of the operation ``operation_name`` of ``document``; None when it
    cannot run (no such operation, variables that do not fit their types, no root type
    for it): execution refuses those itself, before any UCD call."""
    inputs = (schema, document, operation_name, variables)
    remembered = _remembered.get()
    if remembered is not None and all(a is b for a, b in zip(remembered[0], inputs, strict=True)):
        return remembered[1]
    found = _find(schema, document, operation_name, variables)
    _remembered.set((inputs, found))
    return found


def _find(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> RootFields | None:
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    coerced = get_variable_values(
        schema, operation.variable_definitions or (), dict(variables or {})
    )
    if isinstance(coerced, list):
        return None
    root = schema.get_root_type(operation.operation)
    if root is None:
        return None
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    scope = FieldScope(schema, fragments, coerced.coerced, ())
    fields = response_fields(scope, type_name=root.name, selection_set=operation.selection_set)
    return RootFields(schema, operation, root, coerced, fragments, fields)
