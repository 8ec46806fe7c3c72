"""The environment templates render in: loaded only from the revision's `templates/`,
sandboxed (with bounds on `*` and `**`), and with undefined names as errors."""

from __future__ import annotations

import types
from collections import ChainMap
from collections.abc import Callable, Mapping
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, new_context
from jinja2.sandbox import SandboxedEnvironment

from reconciler.compile.inventory import TEMPLATES_DIR
from reconciler.errors import ConfigError
from reconciler.render.modules import SharedModules, SharingTemplate
from reconciler.render.shapes import SharedShapes
from reconciler.source.snapshot import Snapshot, clean_relpath


class SnapshotLoader(jinja2.BaseLoader):
    """Loads templates from `templates/` of one snapshot; nothing else is reachable."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        try:
            rel = clean_relpath(template, "template")
        except ValueError as exc:
            raise jinja2.TemplateNotFound(template, str(exc)) from None
        path = f"{TEMPLATES_DIR}/{rel}"
        try:
            if not self.snapshot.is_file(path):
                missing = "is a directory, not a file" if self.snapshot.is_dir(path) else \
                    "not found"
                raise jinja2.TemplateNotFound(template, f"template {path} {missing}")
            source = self.snapshot.read(path).decode("utf-8")
        except ConfigError as exc:
            raise jinja2.TemplateNotFound(template, exc.problems[0].message) from None
        except UnicodeDecodeError:
            raise jinja2.TemplateNotFound(template, f"template {path} is not UTF-8 text") from None
        return source, path, lambda: True


# What one `*` or `**` in a template may produce: far more than any config file needs,
# far less than what would exhaust a node's memory.
MAX_REPEAT = 1 << 24
MAX_POWER_BITS = 1 << 16
_DICT_ATTRIBUTES = frozenset(dir(dict))
# What the sandbox's `wrap_str_format` looks at (neither type can be subclassed).
_METHODS = frozenset({types.MethodType, types.BuiltinMethodType})


class FlatTemplate(SharingTemplate):
    """A template whose contexts get its globals as one dict: a context lists their names
    once made (for each file rendered, each module imported), and listing a ChainMap's
    costs twice what merging its two dicts does."""

    def new_context(self, vars: dict[str, Any] | None = None, shared: bool = False,
                    locals: Mapping[str, Any] | None = None) -> Context:
        found = self.globals
        if isinstance(found, ChainMap) and len(found.maps) == 2:  # make_globals' own
            found = {**found.maps[1], **found.maps[0]}
        return new_context(self.environment, self.name, self.blocks, vars, shared, found,
                           locals)


class BoundedSandbox(SharedShapes, SandboxedEnvironment):
    """The Jinja2 sandbox (each shape of template compiled once: shapes.py), `*` and `**`
    refusing results so large that a typo (`"-" * 10**10`) would hang or exhaust memory.
    Whether an attribute is safe depends only on the object's type and the attribute's
    name (`is_safe_attribute` as the sandbox defines it): it is decided once for each.
    Its `shared_modules`, when set, build each module imported `with context` once for
    the values it reads (modules.py)."""

    intercepted_binops = frozenset({"*", "**"})
    template_class = FlatTemplate

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._safe: dict[tuple[type, str], bool] = {}
        self.shared_modules: SharedModules | None = None

    def getattr(self, obj: Any, attribute: str) -> Any:
        """The sandbox's `getattr`, with the safety of each type's attribute remembered."""
        if type(obj) is dict and type(attribute) is str and attribute not in _DICT_ATTRIBUTES:
            # What `getattr` would fail on (a plain dict has its type's attributes only),
            # without raising and catching an AttributeError.
            try:
                return obj[attribute]
            except (TypeError, LookupError):
                return self.undefined(obj=obj, name=attribute)
        try:
            value = getattr(obj, attribute)
        except AttributeError:
            try:
                return obj[attribute]
            except (TypeError, LookupError):
                return self.undefined(obj=obj, name=attribute)
        if type(value) in _METHODS:  # only a method can be `str.format`: wrapped
            fmt = self.wrap_str_format(value)
            if fmt is not None:
                return fmt
        kind = type(obj)
        if obj.__class__ is not kind:  # an object posing as another type: asked each time
            return value if self.is_safe_attribute(obj, attribute, value) \
                else self.unsafe_undefined(obj, attribute)
        safe = self._safe.get((kind, attribute))
        if safe is None:
            safe = self._safe[kind, attribute] = self.is_safe_attribute(obj, attribute, value)
        return value if safe else self.unsafe_undefined(obj, attribute)

    def call(self, context: jinja2.runtime.Context, obj: Any, /, *args: Any,
             **kwargs: Any) -> Any:
        """The sandbox's `call`, but what most calls of a node's files are — a template's
        own macro, a method of a built-in type (`name.split('.')`) — is called as
        `Context.call` would call it, without asking each time what it is: neither can
        be marked unsafe, a macro takes the evaluation context and a built-in nothing.
        `str.format` never arrives here bare: attribute access (`getattr` below, Jinja's
        `getitem`) hands out the sandbox's checked wrapper instead (Jinja >= 3.1.5)."""
        kind = type(obj)
        if kind is jinja2.runtime.Macro:
            args = (context.eval_ctx, *args)
        elif kind is not types.BuiltinMethodType:
            return super().call(context, obj, *args, **kwargs)
        kwargs.pop("_block_vars", None)
        kwargs.pop("_loop_vars", None)
        try:
            return obj(*args, **kwargs)
        except StopIteration:
            return self.undefined("value was undefined because a callable raised a "
                                  "StopIteration exception")

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any,
                   right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) \
                        and len(seq) * times > MAX_REPEAT:
                    raise SecurityError(f"repetition of {len(seq) * times} items is too large "
                                        f"(at most {MAX_REPEAT})")
        elif isinstance(left, int) and isinstance(right, int) and abs(left) > 1 \
                and left.bit_length() * right > MAX_POWER_BITS:
            raise SecurityError(f"{left} ** {right} is too large")
        return super().call_binop(context, operator, left, right)


class NoUndefined(jinja2.StrictUndefined):
    """StrictUndefined that also fails when shown through `repr`: `{{ [missing] }}` and
    `{{ missing|pprint }}` would otherwise write the word `Undefined` into a file."""

    def __repr__(self) -> str:
        self._fail_with_undefined_error()


