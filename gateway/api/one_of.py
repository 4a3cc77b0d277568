"""The argument behind a @oneOf violation, so it can be reported with its path.

GraphQL validation refuses an ``IdentifierInput`` with zero or several keys before any
resolver runs (so before any UCD call), but as a plain GraphQL error without a code or
a path. The contract wants input the UCD would refuse to come back as BAD_USER_INPUT
naming the path; the error pipeline (gateway/error_pipeline.py) writes the code, and
this module finds the argument behind the error:

* a literal (``deleteIdentifier(identifier: {email: "a", uuid: "b"})``): the error's
  node is the object value; the argument holding it names the path (``identifier``);
* a variable (``updateIdentifier(old: $o, new: $n)``): the error carries no node, so
  every variable of a @oneOf type whose value does not have exactly one non-null key is
  traced to the argument it is passed to (``old``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLSchema,
    Node,
    OperationDefinitionNode,
    VariableNode,
    get_named_type,
    type_from_ast,
    visit,
)
from graphql.language import Visitor

from gateway.api.strawberry_internals import is_one_of_refusal

__all__ = ["refused_arguments"]


class _Arguments(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[ArgumentNode] = []

    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        self.found.append(node)


def _arguments(document: DocumentNode) -> list[ArgumentNode]:
    collector = _Arguments()
    visit(document, collector)
    return collector.found


def _literal_path(error: GraphQLError, arguments: Sequence[ArgumentNode]) -> str | None:
    nodes: Sequence[Node] = error.nodes or ()
    for node in nodes:
        for argument in arguments:
            if argument.value is node:
                return argument.name.value
    return None


def _bad_variables(
    schema: GraphQLSchema,
    one_of_types: frozenset[str],
    document: DocumentNode,
    variables: Mapping[str, Any],
) -> Iterator[str]:
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        for variable in definition.variable_definitions or ():
            var_type = type_from_ast(schema, variable.type)
            named = get_named_type(var_type) if var_type is not None else None
            if not isinstance(named, GraphQLInputObjectType) or named.name not in one_of_types:
                continue
            value = variables.get(variable.variable.name.value)
            if isinstance(value, Mapping) and sum(v is not None for v in value.values()) != 1:
                yield variable.variable.name.value


def refused_arguments(
    errors: Sequence[GraphQLError],
    *,
    schema: GraphQLSchema,
    one_of_types: frozenset[str],
    document: DocumentNode | None,
    variables: Mapping[str, Any] | None,
) -> list[tuple[GraphQLError, str | None]]:
    """Each @oneOf refusal among ``errors``, in order, with the argument it refuses
    (None when it cannot be traced); other errors are left out.

    ``one_of_types``: names of the @oneOf input types (strawberry keeps that flag on its
    own definitions, not on graphql-core's types).
    """
    relevant = [e for e in errors if is_one_of_refusal(e)]
    if not relevant or document is None:
        return []
    arguments = _arguments(document)
    bad_variables = list(_bad_variables(schema, one_of_types, document, variables or {}))
    found: list[tuple[GraphQLError, str | None]] = []
    for error in relevant:
        path = _literal_path(error, arguments)
        if path is None and bad_variables:
            name = bad_variables.pop(0)
            path = next(
                (
                    a.name.value
                    for a in arguments
                    if isinstance(a.value, VariableNode) and a.value.name.value == name
                ),
                name,
            )
        found.append((error, path))
    return found
