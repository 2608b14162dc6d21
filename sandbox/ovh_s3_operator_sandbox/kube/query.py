"""Label/field selectors and the JSONPath subset used by CRD printer columns."""

from __future__ import annotations

import dataclasses
import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# --------------------------------------------------------------------------------------------------
# Selectors


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside parentheses (``a in (x,y),b`` → two terms)."""
    terms: list[str] = []
    depth = 0
    start = 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return [term.strip() for term in terms if term.strip()]


_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_SET_TERM = re.compile(rf"({_KEY})\s+(in|notin)\s+\(([^()]*)\)")
_EQ_TERM = re.compile(rf"({_KEY})\s*(==|!=|=)\s*([-A-Za-z0-9_.]*)")
_EXISTS_TERM = re.compile(rf"(!?)\s*({_KEY})")


@dataclasses.dataclass(frozen=True)
class LabelRequirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.op:
            case "exists":
                return present
            case "!":
                return not present
            case "=" | "in":
                return present and value in self.values
            case _:  # "!=" and "notin" also match objects without the label
                return not present or value not in self.values


def parse_label_selector(text: str) -> tuple[LabelRequirement, ...]:
    requirements = []
    for term in _split_terms(text):
        if match := _SET_TERM.fullmatch(term):
            values = frozenset(v.strip() for v in match[3].split(",") if v.strip())
            requirements.append(LabelRequirement(match[1], match[2], values))
        elif match := _EQ_TERM.fullmatch(term):
            op = "!=" if match[2] == "!=" else "="
            requirements.append(LabelRequirement(match[1], op, frozenset({match[3]})))
        elif match := _EXISTS_TERM.fullmatch(term):
            requirements.append(LabelRequirement(match[2], "!" if match[1] else "exists"))
        else:
            raise ValueError(f"unable to parse requirement: {term!r}")
    return tuple(requirements)


@dataclasses.dataclass(frozen=True)
class FieldRequirement:
    path: tuple[str, ...]
    equal: bool
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        node: Any = obj
        for part in self.path:
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is None:
            text = ""
        elif isinstance(node, bool):
            text = "true" if node else "false"
        else:
            text = str(node)
        return (text == self.value) == self.equal


def parse_field_selector(text: str) -> tuple[FieldRequirement, ...]:
    requirements = []
    for term in _split_terms(text):
        match = re.fullmatch(r"([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*)", term)
        if not match:
            raise ValueError(f"invalid field selector: {term!r}")
        requirements.append(FieldRequirement(tuple(match[1].split(".")), match[2] != "!=", match[3]))
    return tuple(requirements)


@dataclasses.dataclass(frozen=True)
class Selector:
    """What a list or watch request selects: a namespace (None: all), labels and fields."""

    namespace: str | None = None
    labels: tuple[LabelRequirement, ...] = ()
    fields: tuple[FieldRequirement, ...] = ()

    @classmethod
    def parse(cls, namespace: str | None, labels: str | None, fields: str | None) -> Selector:
        """Parse the query parameters; raises ValueError on syntax errors."""
        return cls(namespace, parse_label_selector(labels or ""), parse_field_selector(fields or ""))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        labels = meta.get("labels") or {}
        return all(req.matches(labels) for req in self.labels) and all(req.matches(obj) for req in self.fields)


_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
_EVENT_FIELDS = ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
                 "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
                 "reason", "reportingComponent", "source", "type")
# The field selectors each built-in kind supports (its registry strategy's GetAttrs/ToSelectableFields and the
# field label conversion funcs: pkg/registry/core/{secret,event,namespace}/strategy.go).
SELECTABLE_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Secret"): ("type",),
    ("", "Event"): _EVENT_FIELDS,
    ("events.k8s.io", "Event"): _EVENT_FIELDS,
    ("", "Namespace"): ("status.phase",),
}


def check_field_selector(rt: Any, selector: Selector) -> None:
    """400 for a field the resource cannot be selected by, worded as the API server words it: a custom
    resource's ``"f" is not a known field selector: only "metadata.name", "metadata.namespace"``
    (apiextensions-apiserver), a built-in's ``field label not supported: f`` (runtime.Scheme conversion)."""
    extra = SELECTABLE_FIELDS.get((rt.group, rt.kind), ())
    for requirement in selector.fields:
        field = ".".join(requirement.path)
        if field in _COMMON_FIELDS or field in extra:
            continue
        from ovh_s3_operator_sandbox.kube.model import ApiError

        if rt.schema is not None:
            raise ApiError(400, f'"{field}" is not a known field selector: only "metadata.name", "metadata.namespace"')
        raise ApiError(400, f"field label not supported: {field}")


# --------------------------------------------------------------------------------------------------
# JSONPath (the Kubernetes dialect, as used in printer columns): .a.b, .a[0], .a[*].b, ['a.b'],
# .a[?(@.k=="v")].b, [?(@.k)], optionally wrapped in {…} and/or prefixed with $.

Step = Callable[[list[Any]], list[Any]]
JSONPath = Callable[[Any], list[Any]]

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}
_FILTER = re.compile(r"\?\(\s*@(?P<path>[^=!<>]*?)\s*(?:(?P<op>==|!=|<=|>=|<|>)\s*(?P<literal>.+?))?\s*\)")


def _children(nodes: Sequence[Any]) -> list[Any]:
    result: list[Any] = []
    for node in nodes:
        if isinstance(node, Mapping):
            result.extend(node.values())
        elif isinstance(node, list):
            result.extend(node)
    return result


def _child(name: str) -> Step:
    return lambda nodes: [node[name] for node in nodes if isinstance(node, Mapping) and name in node]


def _index(index: int) -> Step:
    def step(nodes: list[Any]) -> list[Any]:
        return [node[index] for node in nodes if isinstance(node, list) and -len(node) <= index < len(node)]

    return step


def _literal(text: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"unsupported JSONPath literal: {text}") from exc


def _filter(expression: str) -> Step:
    match = _FILTER.fullmatch(expression)
    if not match:
        raise ValueError(f"unsupported JSONPath filter: {expression}")
    subpath = _compile_steps(match["path"])
    compare = _COMPARISONS.get(match["op"] or "")
    literal = _literal(match["literal"]) if compare else None

    def accepts(item: Any) -> bool:
        values = _evaluate(subpath, item)
        if compare is None:
            return bool(values)
        for value in values:
            try:
                if compare(value, literal):
                    return True
            except TypeError:
                continue
        return False

    def step(nodes: list[Any]) -> list[Any]:
        items = [item for node in nodes if isinstance(node, list) for item in node]
        return [item for item in items if accepts(item)]

    return step


def _bracket(content: str) -> Step:
    content = content.strip()
    if content == "*":
        return _children
    if content.startswith("?"):
        return _filter(content)
    if content[:1] in "'\"" and content[-1:] == content[:1]:
        return _child(content[1:-1])
    try:
        return _index(int(content))
    except ValueError as exc:
        raise ValueError(f"unsupported JSONPath subscript: [{content}]") from exc


def _closing_bracket(text: str, start: int) -> int:
    quote: str | None = None
    for index in range(start + 1, len(text)):
        char = text[index]
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "]":
            return index
    raise ValueError(f"unbalanced brackets in JSONPath: {text}")


def _compile_steps(text: str) -> list[Step]:
    steps: list[Step] = []
    index = 0
    while index < len(text):
        if text[index] == "[":
            end = _closing_bracket(text, index)
            steps.append(_bracket(text[index + 1 : end]))
            index = end + 1
            continue
        if text[index] == ".":
            index += 1
        end = index
        while end < len(text) and text[end] not in ".[":
            end += 1
        name = text[index:end]
        if name == "*":
            steps.append(_children)
        elif name:
            steps.append(_child(name))
        index = end
    return steps


def _evaluate(steps: Sequence[Step], document: Any) -> list[Any]:
    nodes = [document]
    for step in steps:
        nodes = step(nodes)
    return nodes


def compile_jsonpath(expression: str) -> JSONPath:
    """Compile a JSONPath; the result maps a document to the list of matched values."""
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    text = text.removeprefix("$")
    steps = _compile_steps(text)
    return lambda document: _evaluate(steps, document)
