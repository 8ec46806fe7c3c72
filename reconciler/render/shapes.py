"""Templates that differ only in their string literals are compiled once.

Compiling a Jinja2 template (lex, parse, generate Python, compile that) costs about
five times what rendering it does, and a repo often holds many templates of one shape:
a thousand `{% set app = apps["app7"] %}{% include "body.j2" %}` wrappers differ in two
strings. A template's shape is its text with each quoted string replaced by a
placeholder (one regular expression, no lexing). The first template of a shape is
compiled as usual; at the second, the shape itself is compiled, with a placeholder for
the template's name too, and every template of the shape from then on gets a copy of
that code with its own strings in the placeholders' places (and its own file name, for
tracebacks). A template of its own costs one regular expression more than before.

Only where that cannot change what the code does:
- each placeholder must come out of the compiler whole, as a constant of its own: so
  every quoted string was a string literal of a tag (not text, a comment or `raw`);
  a quoted string holding a backslash or a newline is not replaced, so a literal's
  content never changes how the rest of the template lexes;
- Jinja2 folds constant expressions at compile time (`{{ "a"|upper }}`, `{% set x =
  "" or y %}`, a literal printed as it is) and what it folds depends on the value, so a
  shape in which a placeholder could be folded is compiled template by template.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from types import CodeType
from typing import Any

import jinja2
from jinja2 import nodes

_MARK = "\0reconciler-literal-"
# A quoted string with neither a backslash nor a newline (Jinja2's string literal, less
# those): its content is replaced by a placeholder in the template's shape.
_LITERAL = re.compile(r"'[^'\\\n]*'|" r'"[^"\\\n]*"')
# Statements that compile a literal child as a constant of its own, never folding it.
_KEEPS_LITERAL = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends, nodes.Assign)

# Where a shape's code holds placeholders (`_holes`).
Holes = tuple[tuple[int, "Holes | None"], ...]


class SharedShapes(jinja2.Environment):
    """An environment (a mixin) that compiles each shape of template once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seen: set[str] = set()  # shapes met once, compiled the usual way
        self._shapes: dict[str, tuple[CodeType, Holes] | None] = {}  # None: one by one

    def compile(  # type: ignore[override]
        self, source: str | nodes.Template, name: str | None = None,
        filename: str | None = None, raw: bool = False, defer_init: bool = False,
    ) -> str | CodeType:
        if raw:
            return super().compile(source, name, filename, True, defer_init)
        if defer_init or not isinstance(source, str) or name is None or filename is None \
                or self.extensions or _MARK in source or _MARK in name:
            return super().compile(source, name, filename, False, defer_init)
        literals: list[str] = []

        def placeholder(found: re.Match[str]) -> str:
            literals.append(found[0][1:-1])
            return f'"{_placeholder(len(literals) - 1)}"'

        shape = _LITERAL.sub(placeholder, source)
        if not literals or shape not in self._seen:
            self._seen.add(shape)  # a template of its own costs what it did: one compile
            return super().compile(source, name, filename)
        if shape not in self._shapes:
            self._shapes[shape] = self._compile_shape(shape, len(literals), filename)
        compiled = self._shapes[shape]
        if compiled is None:
            return super().compile(source, name, filename)
        values = {_placeholder(index): text for index, text in enumerate(literals)}
        values[_placeholder("name")] = name
        return _filled(*compiled, values, filename)

    def _compile_shape(self, shape: str, count: int,
                       filename: str) -> tuple[CodeType, Holes] | None:
        """The code of a shape, or None when one of its placeholders could be folded or
        does not come out whole."""
        placeholders = {_placeholder(index) for index in range(count)}
        name = _placeholder("name")
        try:
            tree = self._parse(shape, name, filename)
            if not _unfoldable(tree, [], placeholders, nodes.EvalContext(self, name)):
                return None
            code = self._compile(self._generate(tree, name, filename), filename)
        except jinja2.TemplateError:
            return None  # compiled as usual, which reports it
        found = [text for text in _constants(code) if isinstance(text, str) and _MARK in text]
        if not placeholders <= set(found) or not set(found) <= placeholders | {name}:
            return None
        return code, _holes(code)


def _placeholder(key: int | str) -> str:
    return f"{_MARK}{key}\0"


def _unfoldable(node: nodes.Node, ancestors: list[nodes.Node], placeholders: set[str],
                ctx: nodes.EvalContext) -> bool:
    """Whether no placeholder literal below `node` can be folded at compile time."""
    path = [*ancestors, node]
    for child in node.iter_child_nodes():
        if isinstance(child, nodes.Const) and isinstance(child.value, str) \
                and child.value in placeholders:
            if not _kept(path, ctx):
                return False
        elif not _unfoldable(child, path, placeholders, ctx):
            return False
    return True


def _kept(ancestors: list[nodes.Node], ctx: nodes.EvalContext) -> bool:
    """Whether a literal whose parent is `ancestors[-1]` stays a constant of its own: a
    statement that compiles it so (an include's name, a `set` value), or expressions up
    to their statement none of which Jinja2 can evaluate at compile time."""
    if isinstance(ancestors[-1], _KEEPS_LITERAL):
        return True
    for node in reversed(ancestors):
        if isinstance(node, nodes.Helper):  # a dict's pair, a call's keyword
            continue
        if not isinstance(node, nodes.Expr):
            return node is not ancestors[-1]  # printed or tested as it is: folded
        try:
            node.as_const(ctx)
        except nodes.Impossible:
            continue  # evaluated only when rendering: the literal stays a constant
        except Exception:  # a fold that fails on a placeholder may not fail on the literal
            return False
        return False  # folded at compile time
    return False


def _constants(value: object) -> Iterator[object]:
    """Every constant of a code object, of the code objects and tuples it holds too."""
    if isinstance(value, CodeType):
        for held in value.co_consts:
            yield from _constants(held)
    elif isinstance(value, (tuple, frozenset)):
        for held in value:
            yield from _constants(held)
    else:
        yield value


def _holes(code: CodeType) -> Holes:
    """Where in `code` the placeholders are: the positions of its constants that hold
    one, each with the holes of a code object (every code object is one: it takes the
    template's file name), None for a string or a tuple of them."""
    found: list[tuple[int, Holes | None]] = []
    for index, value in enumerate(code.co_consts):
        if isinstance(value, CodeType):
            found.append((index, _holes(value)))
        elif any(isinstance(text, str) and _MARK in text for text in _constants(value)):
            found.append((index, None))
    return tuple(found)


def _filled(code: CodeType, holes: Holes, values: Mapping[str, str],
            filename: str) -> CodeType:
    """`code` with its placeholder constants replaced by `values`, named `filename`."""
    consts = list(code.co_consts)
    for index, inner in holes:
        consts[index] = _filled(consts[index], inner, values, filename) if inner is not None \
            else _fill(consts[index], values)
    return code.replace(co_consts=tuple(consts), co_filename=filename)


def _fill(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return values.get(value, value)
    if isinstance(value, tuple):
        return tuple(_fill(item, values) for item in value)
    if isinstance(value, frozenset):
        return frozenset(_fill(item, values) for item in value)
    return value
