"""``spec.secret.template``: Jinja templates written by tenants, rendered in a sandbox at bounded cost.

A template is untrusted input. It is rendered by Jinja2's ``ImmutableSandboxedEnvironment`` (no
Python internals, no mutation of values) with ``StrictUndefined``, and restricted further so that
neither its output nor the work to render it can grow without bound:

* the language is a subset, checked on the parsed template: text, ``{{ expressions }}``, ``{% if %}``,
  filters of :data:`FILTERS` and ``{% for %}`` loops that are not nested (no calls, macros,
  ``{% set %}``, ``{% with %}``, filter blocks, ``include``/``import``/``extends``);
* the only variables are :data:`VARIABLES`;
* ``*``, ``**``, ``%``, ``join`` and ``replace`` are checked before they compute a long value, every
  filter's result is checked after, a loop runs over at most :data:`LOOP_ITEMS` items, and the output
  stops at :data:`RENDERED_LENGTH` characters;
* the work is bounded too, whatever the values' sizes: a template has at most :data:`NODES` nodes,
  at most :data:`NESTING` deep (compiling is cached, refusals too), numbers stay under
  :data:`INT_BITS` bits, and every operator, comparison, filter, test, ``~``, attribute or item lookup
  and loop item is charged (a fixed cost, plus the size of what it reads and makes, texts and lists
  all the way down) to a budget of :data:`WORK_BUDGET` units per rendering, about a tenth of a second
  of CPU at most. The budget counts operations, not time, so a template renders or is refused the
  same way on a busy machine.

Error messages name the line, never a value: Jinja's own messages for errors during rendering can
quote parts of the values (a missing key is named by its value, which may be derived from the
secret), so only syntax errors and this module's messages are shown as they are.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import operator
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

VARIABLES = ("accessKeyId", "secretAccessKey", "endpoint", "region", "buckets", "userId", "username", "namespace",
             "name")
RENDERED_LENGTH = 32768
"""The longest text a template may render to (characters), and the longest value it may compute."""
LOOP_ITEMS = 1000
"""The most items one loop may run over."""
WORK_BUDGET = 2_000_000
"""Work units one rendering may spend (see the module's docstring)."""
_STEP = 32
"""The units of one operation (a filter call, an operator, a lookup, a loop item), besides its lengths."""
_PER_ITEM = 16
"""The units of each item (character, element) a filter reads: filters handle items in Python."""
FILTERS = ("capitalize", "count", "d", "default", "first", "int", "join", "last", "length", "list", "lower", "map",
           "reject", "replace", "reverse", "select", "sort", "string", "title", "tojson", "trim", "unique", "upper",
           "urlencode")
"""Jinja's filters that never make a value much longer than their input (``join`` and ``replace`` are
checked before they run)."""

_LOOP_FILTER = "loop items"  # names no template can write as a filter (map() can name them: they are bounded)
_CONCAT_FILTER = "concatenated"
_COMPARE_FILTER = "compared"
_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "gteq": operator.ge, "lt": operator.lt,
    "lteq": operator.le, "in": lambda left, right: left in right, "notin": lambda left, right: left not in right}
_BUDGET: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("template work budget", default=None)
_TEMPLATE_FILE = "<template>"  # Jinja's file name for a template without one, in tracebacks
_ALLOWED = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.Const, nodes.Name, nodes.Tuple, nodes.List,
            nodes.Dict, nodes.Pair, nodes.Keyword, nodes.Getattr, nodes.Getitem, nodes.Slice, nodes.Filter, nodes.Test,
            nodes.CondExpr, nodes.If, nodes.For, nodes.Compare, nodes.Operand, nodes.And, nodes.Or, nodes.Not,
            nodes.Neg, nodes.Pos, nodes.Concat, nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv,
            nodes.Mod, nodes.Pow)
_REFUSED = {
    nodes.Call: "calls are not available (use filters: {{ name|upper }})",
    nodes.Macro: "macros are not available",
    nodes.CallBlock: "{% call %} is not available",
    nodes.Assign: "{% set %} is not available",
    nodes.AssignBlock: "{% set %} is not available",
    nodes.With: "{% with %} is not available",
    nodes.FilterBlock: "{% filter %} blocks are not available (apply filters in {{ }})",
    nodes.Include: "{% include %} is not available",
    nodes.Import: "{% import %} is not available",
    nodes.FromImport: "{% import %} is not available",
    nodes.Extends: "{% extends %} is not available",
    nodes.Block: "{% block %} is not available",
}


class TemplateProblem(Exception):
    """What is wrong with a template, in words safe to show (no value, only the template's own text)."""

    def __init__(self, text: str, line: int | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.line = line

    def describe(self, entry: str) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"spec.secret.template.{entry}: {where}{self.text}"


class _Refused(SecurityError):
    """A bound this module enforces while rendering (its message is safe to show)."""


def _too_long(what: str) -> _Refused:
    return _Refused(f"{what} would be longer than {RENDERED_LENGTH} characters")


INT_BITS = 4096
"""The largest number a template may compute, in bits."""


def _size(value: Any) -> int:
    """How much there is in a value: characters of its texts, items of its lists and maps, words of its
    numbers, all the way down (counting stops past the budget: such a value is refused anyway)."""
    total, pending = 0, [value]
    while pending and total <= WORK_BUDGET:
        item = pending.pop()
        if isinstance(item, str):
            total += len(item) + 1
        elif isinstance(item, list | tuple):
            total += 1
            pending.extend(item)
        elif isinstance(item, dict):
            total += 1
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, int) and not isinstance(item, bool):
            total += 1 + item.bit_length() // 64
        else:
            total += 1
    return total


def _charge(units: int) -> None:
    """Spend work units of the rendering under way."""
    budget = _BUDGET.get()
    if budget is not None:
        budget[0] -= units
        if budget[0] < 0:
            raise _Refused("takes too much work to render: use fewer or shorter values in loops and filters")


def _check_length(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > RENDERED_LENGTH:
        raise _too_long("a filter's result")
    return value


def _bounded(function: Callable[..., Any]) -> Callable[..., Any]:
    """A Jinja filter whose result is checked (``functools.wraps`` keeps Jinja's pass_* markers)."""

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _charge(_STEP + _PER_ITEM * sum(_size(arg) for arg in (*args, *kwargs.values())
                                        if isinstance(arg, str | list | tuple | dict | int)))
        result = _check_length(function(*args, **kwargs))
        _charge(_size(result))
        return result

    return bounded


def _join(value: Iterable[Any], d: str = "") -> str:
    separator, length = str(d), 0
    items: list[str] = []
    for item in value:
        text = str(item)
        _charge(_PER_ITEM + len(text))
        length += len(text) + (len(separator) if items else 0)
        if length > RENDERED_LENGTH:
            raise _too_long("join's result")
        items.append(text)
    return separator.join(items)


def _replace(s: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old, new = str(s), str(old), str(new)
    found = text.count(old) if count is None or count < 0 else min(count, text.count(old))
    if len(text) + found * (len(new) - len(old)) > RENDERED_LENGTH:
        raise _too_long("replace's result")
    return text.replace(old, new, -1 if count is None else count)


def _loop_items(value: Iterable[Any]) -> list[Any]:
    items = list(itertools.islice(value, LOOP_ITEMS + 1))
    if len(items) > LOOP_ITEMS:
        raise _Refused(f"a loop may run over at most {LOOP_ITEMS} items")
    _charge(sum(_STEP + _size(item) for item in items))
    return items


def _compared(values: list[Any], *operators: str) -> bool:
    """``a == b``, ``a in b``, ``a < b < c``…, charged by the lengths compared (all operands are
    evaluated first)."""
    _charge(_STEP + sum(_size(value) for value in values))
    return all(_COMPARISONS[op](left, right) for left, right, op in zip(values, values[1:], operators, strict=False))


def _concatenated(items: list[Any]) -> str:
    """``a ~ b ~ c``, charged and bounded like a filter."""
    if _size(items) > RENDERED_LENGTH + len(items) + 1:  # checked before str() makes texts of lists
        raise _too_long("a text joined with ~")
    texts = [str(item) for item in items]
    length = sum(len(text) for text in texts)
    if length > RENDERED_LENGTH:
        raise _too_long("a text joined with ~")
    _charge(_STEP + 2 * length)
    return "".join(texts)


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with the operators that can build long values checked first."""

    intercepted_binops = frozenset({"*", "**", "%", "+", "-", "/", "//"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise _Refused("% does not format text in templates; join text with ~")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, str | list | tuple) and isinstance(times, int):
                    if len(sequence) * times > RENDERED_LENGTH:
                        raise _too_long("a repeated value")
                    _charge(_size(sequence) * max(times, 0))  # before the copies are made
        if operator == "**" and isinstance(left, int) and isinstance(right, int) \
                and right * abs(left).bit_length() > INT_BITS:
            raise _Refused("a power would be too large a number")
        _charge(_STEP + _size(left) + _size(right))
        result = _check_length(super().call_binop(context, operator, left, right))
        if isinstance(result, int) and result.bit_length() > INT_BITS:
            raise _Refused("a number would be too large")
        _charge(_size(result))
        return result

    def getitem(self, obj: Any, argument: Any) -> Any:
        _charge(_STEP)
        result = super().getitem(obj, argument)
        _charge(_size(result))
        return result

    def getattr(self, obj: Any, attribute: str) -> Any:
        _charge(_STEP)
        return super().getattr(obj, attribute)


def _environment() -> _Sandbox:
    environment = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, trim_blocks=True)
    environment.globals.clear()  # no range(), dict(), lipsum(), cycler(), joiner(), namespace()
    filters = {name: _bounded(JINJA_FILTERS[name]) for name in FILTERS}
    filters |= {"join": _bounded(_join), "replace": _bounded(_replace), _LOOP_FILTER: _loop_items,
                _CONCAT_FILTER: _concatenated, _COMPARE_FILTER: _compared}
    environment.filters = filters
    environment.tests = {name: _bounded(test) for name, test in environment.tests.items()}  # type: ignore[arg-type]
    return environment


_ENVIRONMENT = _environment()


NESTING = 20
"""The deepest a template's syntax tree may be, and :data:`NODES` the most nodes it may have: Jinja's
compiler takes time that grows with both (about 60 µs a node at depth 8, and a chain of 250 filters
takes seconds), and Python's own compiler refuses deep expressions."""
NODES = 1000


def _check(node: nodes.Node, in_loop: bool = False, depth: int = 0) -> None:
    """Refuse what the template language subset leaves out (see the module's docstring)."""
    if depth > NESTING:
        raise TemplateProblem("nested too deeply (fewer filters or operators in a row)", node.lineno)
    if not isinstance(node, _ALLOWED):
        text = next((text for kind, text in _REFUSED.items() if isinstance(node, kind)),
                    f"{type(node).__name__} is not available")
        raise TemplateProblem(text, node.lineno)
    if isinstance(node, nodes.Filter) and node.name not in FILTERS:
        raise TemplateProblem(f"the filter {node.name!r} is not available; use one of {', '.join(FILTERS)}",
                              node.lineno)
    if isinstance(node, nodes.For) and node.recursive:
        raise TemplateProblem("recursive loops are not available", node.lineno)
    if isinstance(node, nodes.For) and in_loop:
        raise TemplateProblem("loops cannot be nested", node.lineno)
    for child in node.iter_child_nodes():
        _check(child, in_loop or isinstance(node, nodes.For), depth + 1)
    if isinstance(node, nodes.For):  # checked: now bound the number of items
        node.iter = nodes.Filter(node.iter, _LOOP_FILTER, [], [], None, None, lineno=node.lineno)
    for field in node.fields:  # and charge every ~ and comparison, which Python would run unseen
        value = getattr(node, field)
        if isinstance(value, list):
            setattr(node, field, [_charged(item) for item in value])
        else:
            setattr(node, field, _charged(value))


def _charged(node: Any) -> Any:
    if isinstance(node, nodes.Concat):
        return nodes.Filter(nodes.List(node.nodes, lineno=node.lineno), _CONCAT_FILTER, [], [], None, None,
                            lineno=node.lineno)
    if isinstance(node, nodes.Compare):
        values = nodes.List([node.expr, *(operand.expr for operand in node.ops)], lineno=node.lineno)
        operators: list[nodes.Expr] = [nodes.Const(operand.op, lineno=node.lineno) for operand in node.ops]
        return nodes.Filter(values, _COMPARE_FILTER, operators, [], None, None, lineno=node.lineno)
    return node


def compile_template(source: str) -> Template:
    """Parse, check and compile a template (cached by its text, refusals too); TemplateProblem if it cannot
    be used."""
    compiled = _compile(source)
    if isinstance(compiled, TemplateProblem):
        raise TemplateProblem(compiled.text, compiled.line)
    return compiled


@functools.lru_cache(maxsize=512)
def _compile(source: str) -> Template | TemplateProblem:
    try:
        return _compile_once(source)
    except TemplateProblem as problem:
        return problem


def _compile_once(source: str) -> Template:
    try:
        tree = _ENVIRONMENT.parse(source)
    except TemplateSyntaxError as error:
        raise TemplateProblem((error.message or "syntax error").rstrip("."), error.lineno) from None
    except RecursionError:
        raise TemplateProblem("nested too deeply") from None
    try:  # the checks, the variables' walk and the compiler recurse: deep nesting ends each the same way
        size = sum(1 for _ in tree.find_all(nodes.Node))
        if size > NODES:
            raise TemplateProblem(f"too long: {size} expressions and tags, at most {NODES}; split it into entries")
        _check(tree)
        unknown = sorted(meta.find_undeclared_variables(tree) - set(VARIABLES))
        if unknown:
            line = min(node.lineno for node in tree.find_all(nodes.Name) if node.name in unknown)
            raise TemplateProblem(f"unknown variable {', '.join(repr(name) for name in unknown)}; "
                                  f"the variables are {', '.join(VARIABLES)}", line)
        return _ENVIRONMENT.from_string(tree)
    except (RecursionError, SyntaxError, MemoryError):  # Python's compiler limits nesting too
        raise TemplateProblem("nested too deeply") from None


def _template_line(traceback: TracebackType | None) -> int | None:
    """The template line of the innermost template frame (Jinja rewrites tracebacks to point at them)."""
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == _TEMPLATE_FILE:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def render(template: Template, variables: Mapping[str, Any]) -> str:
    """Render with these variables; TemplateProblem (never quoting a value) if it fails or is too long."""
    rendered: list[str] = []
    length = 0
    budget = _BUDGET.set([WORK_BUDGET])
    try:
        for chunk in template.generate(variables):
            length += len(chunk)
            if length > RENDERED_LENGTH:
                raise TemplateProblem(f"renders to more than {RENDERED_LENGTH} characters")
            rendered.append(chunk)
    except TemplateProblem:
        raise
    except _Refused as error:
        raise TemplateProblem(str(error), _template_line(error.__traceback__)) from None
    except UndefinedError as error:
        raise TemplateProblem("uses something undefined: a misspelt attribute, a missing key or an index past the "
                              "end of a list", _template_line(error.__traceback__)) from None
    except SecurityError as error:
        raise TemplateProblem("uses an attribute templates may not use (e.g. one starting with '_')",
                              _template_line(error.__traceback__)) from None
    except Exception as error:  # its message could quote a value: only its kind is shown
        raise TemplateProblem(f"cannot be rendered ({type(error).__name__})",
                              _template_line(error.__traceback__)) from None
    finally:
        _BUDGET.reset(budget)
    return "".join(rendered)
