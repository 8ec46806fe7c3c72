"""Facts at render time: the node's own, or placeholders where they are not known.

On a node, templates see the facts the run gathered. Away from it (`validate`, `plan`,
`render` for a node that has published none) a template sees `Unknown` values instead,
which never pretend: printed, a fact reads `(facts.cpu.count)` and arithmetic on it
stays symbolic (`(facts.cpu.count * 2)`), so the output shows where facts go; anything
that would have to *decide* on a fact's value (a condition, a comparison, a loop, a
test such as `is none`) raises `FactsUnknown`, and the file is marked as not
renderable without the node's facts. Fact names are checked against the `Facts` model
either way, so a typo (`facts.cpu.cuont`) is a template error in `validate`.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import jinja2
from pydantic import BaseModel

from reconciler.facts.model import Facts

# Filters that compute a value from one number or text: on an unknown fact they give
# an unknown result that names them, instead of a guess.
SYMBOLIC_FILTERS = ("int", "float", "round", "abs", "string", "lower", "upper", "trim")


class FactsUnknown(Exception):
    """A template needed to decide on a fact that is not known here. Not a template
    error (the template may be right): the file cannot be rendered without the facts."""

    def __init__(self, facts: frozenset[str]) -> None:
        super().__init__(", ".join(sorted(facts)))
        self.facts = facts


def _child(shape: Any, key: Any, path: str) -> Any:
    """The type of `shape[key]` in the Facts model, or an error naming the bad name."""
    origin = typing.get_origin(shape)
    if origin in (typing.Union, types.UnionType):
        shape = next(arg for arg in typing.get_args(shape) if arg is not type(None))
        origin = typing.get_origin(shape)
    if isinstance(shape, type) and issubclass(shape, BaseModel):
        field = shape.model_fields.get(key) if isinstance(key, str) else None
        if field is None:
            known = ", ".join(shape.model_fields)
            raise jinja2.UndefinedError(f"{path} has no fact {key!r} (it has: {known})")
        return field.annotation
    if origin is dict and isinstance(key, str):
        return typing.get_args(shape)[1]
    if origin in (tuple, list) and isinstance(key, int):
        return typing.get_args(shape)[0]
    raise jinja2.UndefinedError(f"{path} has no {key!r}: it is a single value")


class Unknown:
    """A fact (or a value computed from facts) whose value is not known here."""

    __slots__ = ("_expr", "_facts", "_seen", "_shape")
    # What the sandbox and Jinja ask of any value before calling it: answered here, so
    # they are not taken for facts.
    unsafe_callable = False
    alters_data = False
    jinja_pass_arg = None

    def __init__(self, expr: str, facts: frozenset[str], shape: Any, seen: set[str]) -> None:
        self._expr = expr
        self._facts = facts  # the facts this value comes from
        self._shape = shape  # its type in the Facts model; None once computed
        self._seen = seen  # shared by one render: every fact it printed

    def __getattr__(self, name: str) -> Unknown:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, key: Any) -> Unknown:
        if self._shape is None:
            raise jinja2.UndefinedError(f"{self._expr} has no {key!r}: it is a single value")
        path = f"{self._expr}.{key}" if isinstance(key, str) else f"{self._expr}[{key}]"
        return Unknown(path, frozenset({path}), _child(self._shape, key, self._expr), self._seen)

    def __str__(self) -> str:
        self._seen.update(self._facts)
        return f"({self._expr})"

    def unknown(self) -> NoReturn:
        """The template must decide on this value: it cannot be rendered here."""
        raise FactsUnknown(self._facts)

    def derived(self, text: str, facts: frozenset[str]) -> Unknown:
        return Unknown(text, self._facts | facts, None, self._seen)

    def _operate(self, symbol: str, other: Any, reverse: bool = False) -> Unknown:
        if isinstance(other, Unknown):
            other_text, facts = other._expr, other._facts
        elif isinstance(other, int | float) and not isinstance(other, bool):
            other_text, facts = repr(other), frozenset()
        else:
            self.unknown()
        left, right = (other_text, self._expr) if reverse else (self._expr, other_text)
        return self.derived(f"{left} {symbol} {right}", facts)

    def __add__(self, other: Any) -> Unknown:
        return self._operate("+", other)

    def __radd__(self, other: Any) -> Unknown:
        return self._operate("+", other, reverse=True)

    def __sub__(self, other: Any) -> Unknown:
        return self._operate("-", other)

    def __rsub__(self, other: Any) -> Unknown:
        return self._operate("-", other, reverse=True)

    def __mul__(self, other: Any) -> Unknown:
        return self._operate("*", other)

    def __rmul__(self, other: Any) -> Unknown:
        return self._operate("*", other, reverse=True)

    def __truediv__(self, other: Any) -> Unknown:
        return self._operate("/", other)

    def __rtruediv__(self, other: Any) -> Unknown:
        return self._operate("/", other, reverse=True)

    def __floordiv__(self, other: Any) -> Unknown:
        return self._operate("//", other)

    def __rfloordiv__(self, other: Any) -> Unknown:
        return self._operate("//", other, reverse=True)

    def __mod__(self, other: Any) -> Unknown:
        return self._operate("%", other)

    def __pow__(self, other: Any) -> Unknown:
        return self._operate("**", other)

    def __neg__(self) -> Unknown:
        return self.derived(f"-{self._expr}", frozenset())

    # Everything that needs the value itself.
    def __bool__(self) -> bool:
        self.unknown()

    def __eq__(self, other: object) -> bool:
        self.unknown()

    def __ne__(self, other: object) -> bool:
        self.unknown()

    def __lt__(self, other: object) -> bool:
        self.unknown()

    def __le__(self, other: object) -> bool:
        self.unknown()

    def __gt__(self, other: object) -> bool:
        self.unknown()

    def __ge__(self, other: object) -> bool:
        self.unknown()

    def __iter__(self) -> Iterator[Any]:
        self.unknown()

    def __len__(self) -> int:
        self.unknown()

    def __contains__(self, item: object) -> bool:
        self.unknown()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.unknown()

    def __int__(self) -> int:
        self.unknown()

    def __float__(self) -> float:
        self.unknown()

    def __index__(self) -> int:
        self.unknown()

    __hash__ = object.__hash__


def unknown_facts(seen: set[str]) -> Unknown:
    """The `facts` of a node whose facts are not known; what it prints lands in `seen`."""
    return Unknown("facts", frozenset(), Facts, seen)


def _symbolic_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def apply(value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, Unknown):
            return value.derived(f"{value._expr} | {name}", frozenset())
        return original(value, *args, **kwargs)

    return apply


def _deciding_test(original: Callable[..., Any]) -> Callable[..., Any]:
    def test(*args: Any) -> Any:
        for operand in args:
            if isinstance(operand, Unknown):
                operand.unknown()
        return original(*args)

    # A test that takes the environment first (`filter`, `test`) must still get it.
    passes = getattr(original, "jinja_pass_arg", None)
    if passes is not None:
        test.jinja_pass_arg = passes  # type: ignore[attr-defined]
    return test


def install(env: jinja2.Environment) -> None:
    """Teach an environment's filters and tests about unknown facts (see module doc)."""
    for name in SYMBOLIC_FILTERS:
        env.filters[name] = _symbolic_filter(name, env.filters[name])
    for name in list(env.tests):
        env.tests[name] = _deciding_test(typing.cast(Callable[..., Any], env.tests[name]))
