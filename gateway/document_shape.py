"""A parsed document's shape: all that validation reads of it, less the strings it passes.

Clients that write their values into the query text (``user(key: {uuid: "…"})``) send
a new document with every request, and graphql-core's validation of even a small one
(34 rules walked in parallel over the tree, with type information) costs more than the
rest of the request. Two such documents differ in their string literals and often in
their aliases, and neither decides whether a document is valid:

* **a string passed to a field argument** is read by ``ValuesOfCorrectTypeRule`` only,
  through the input type's ``parse_literal``, which for the built-in ``String`` and
  ``ID`` takes any string: so a string whose position is typed ``String`` or ``ID``
  (what the validation cache checks, ``plain_strings``) cannot make a document invalid.
  The one other reader of argument values, ``OverlappingFieldsCanBeMergedRule``,
  compares the arguments of two fields with the same response name; the strings of a
  field whose response name is selected more than once in the document are therefore
  kept as they are. Strings anywhere else (directive and fragment arguments, variable
  defaults, descriptions) are kept as they are;
* **an alias** is read only as a response name: by ``OverlappingFieldsCanBeMergedRule``,
  which compares fields of equal response names, and by gateway/document_limits.py,
  which counts them. The shape keeps, per field, whether it has an alias and which of
  the document's response names it answers under (their order of first appearance), so
  the same fields meet under the same names.

Everything else (every node's kind, every name, every other value, the structure) is
kept, so two documents of one shape are walked alike by every validation rule and the
document limits, and differ only in what the rules above read. The validation cache
(gateway/limits.py) validates the first document of a shape in full; a later one is
valid when that one was and every erased string stood where a ``String`` or ``ID``
goes. Any error is the full validation's: only valid documents are remembered by shape.

    >>> from graphql import parse
    >>> one = shape_of(parse('{ a: user(key: {uuid: "u-1"}) { name } }'))
    >>> two = shape_of(parse('{ b: user(key: {uuid: "u-2"}) { name } }'))
    >>> one is not None and two is not None and one.key == two.key
    True
    >>> len(one.erased)
    1
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final

from graphql import (
    DocumentNode,
    ExecutableDefinitionNode,
    FieldNode,
    GraphQLID,
    GraphQLNonNull,
    GraphQLString,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    SelectionSetNode,
    StringValueNode,
    ValidationRule,
    ValueNode,
)

__all__ = ["PlainStrings", "Shape", "erased_plainly", "noting_plain_strings", "shape_of"]


class _Erased:
    """Where a string literal stood in a shape: no text, no ordinal equals it."""

    def __repr__(self) -> str:
        return "<string>"


_ERASED: Final = _Erased()


@dataclass(frozen=True, slots=True)
class Shape:
    """A document's shape (``key``, hashable) and the string literals it left out."""

    key: Hashable
    erased: tuple[StringValueNode, ...]


def shape_of(document: DocumentNode) -> Shape | None:
    """``document``'s shape; None for a document without its text and positions.

    The key is the document's text cut at its aliases and erased strings, the cuts
    marked (an alias by the ordinal of its response name, a string by ``_ERASED``), and
    the ordinal of every field's response name in the order of a walk over the
    selections. The same pieces of text with the same token kinds between them parse
    to the same tree, so the key holds everything but what it marks; the ordinals say
    which fields share a response name, aliased or not (``{ x: a b }`` and
    ``{ b: a b }`` cut alike, but only the second one's two fields answer as ``b``).
    Only fields and their arguments are walked, so this costs a fraction of a parse.
    """
    loc = document.loc
    if loc is None:
        return None
    text = loc.source.body
    #: Response names in order of first appearance; per ordinal, how many fields use it.
    ordinals: dict[str, int] = {}
    counts: list[int] = []
    fields: list[int] = []
    # Cuts: (start, end, mark); strings of field arguments, with their field's ordinal.
    cuts: list[tuple[int, int, object]] = []
    strings: list[tuple[StringValueNode, int]] = []
    sets: list[SelectionSetNode] = [
        definition.selection_set
        for definition in document.definitions
        if isinstance(definition, ExecutableDefinitionNode)
    ]
    while sets:
        for selection in sets.pop().selections:
            if isinstance(selection, FieldNode):
                alias = selection.alias
                response = (alias or selection.name).value
                ordinal = ordinals.get(response)
                if ordinal is None:
                    ordinal = ordinals[response] = len(counts)
                    counts.append(0)
                counts[ordinal] += 1
                fields.append(ordinal)
                if alias is not None:
                    if alias.loc is None:  # pragma: no cover - parsed with positions
                        return None
                    cuts.append((alias.loc.start, alias.loc.end, ordinal))
                if selection.arguments:
                    values: list[ValueNode] = [a.value for a in selection.arguments]
                    while values:
                        value = values.pop()
                        if isinstance(value, StringValueNode):
                            strings.append((value, ordinal))
                        elif isinstance(value, ObjectValueNode):
                            values.extend(f.value for f in value.fields)
                        elif isinstance(value, ListValueNode):
                            values.extend(value.values)
                if selection.selection_set is not None:
                    sets.append(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                sets.append(selection.selection_set)
    erased: list[StringValueNode] = []
    for node, ordinal in strings:
        # A field whose response name is selected again has its arguments compared
        # with the other's (OverlappingFieldsCanBeMergedRule): its strings are kept.
        if counts[ordinal] == 1:
            if node.loc is None:  # pragma: no cover - parsed with positions
                return None
            erased.append(node)
            cuts.append((node.loc.start, node.loc.end, _ERASED))
    cuts.sort(key=_start)
    pieces: list[object] = []
    position = 0
    for start, end, mark in cuts:
        pieces.append(text[position:start])
        pieces.append(mark)
        position = end
    pieces.append(text[position:])
    return Shape((tuple(pieces), tuple(fields)), tuple(erased))


def _start(cut: tuple[int, int, object]) -> int:
    return cut[0]


# --- which erased strings stood where a String or ID goes ---------------------------------

#: The ids of the string literals ``PlainStrings`` found typed ``String`` or ``ID``, while
#: ``noting_plain_strings`` runs.
_noted: ContextVar[set[int] | None] = ContextVar("plain_strings", default=None)


class PlainStrings(ValidationRule):
    """A validation rule that reports nothing: it notes the string literals standing
    where a ``String`` or ``ID`` goes (graphql-core's own scalars, whose ``parse_literal``
    takes any string), from the type information the other rules walk with."""

    def enter_string_value(self, node: StringValueNode, *_args: object) -> None:
        noted = _noted.get()
        if noted is None:
            return
        position = self.context.get_input_type()
        if isinstance(position, GraphQLNonNull):
            position = position.of_type
        if position is GraphQLString or position is GraphQLID:
            noted.add(id(node))


@contextlib.contextmanager
def noting_plain_strings() -> Iterator[set[int]]:
    """The ids ``PlainStrings`` notes in a validation run inside this block."""
    noted: set[int] = set()
    token = _noted.set(noted)
    try:
        yield noted
    finally:
        _noted.reset(token)


def erased_plainly(shape: Shape, noted: set[int]) -> bool:
    """True when every string ``shape`` left out was noted as a ``String`` or ``ID``."""
    return all(id(node) in noted for node in shape.erased)
