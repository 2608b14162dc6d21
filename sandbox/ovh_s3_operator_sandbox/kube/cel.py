"""CRD validation rules (``x-kubernetes-validations``) and list types, as apiextensions-apiserver checks them.

Rules are CEL, evaluated with the ``common-expression-language`` package plus its string, list,
math and set extension libraries (Kubernetes' CEL environment has the same kinds of libraries;
``quantity()``, ``url()``, ``ip()`` and the ``isSorted`` family are not available here: a rule using
them fails to evaluate and the write is refused, the stricter outcome). As in
``staging/src/k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/validation.go``: ``self`` is the
value at the rule's node; a rule naming ``oldSelf`` is a transition rule, evaluated only on updates
where the old value can be correlated (object properties by name, ``map`` lists by their keys, never
the items of other lists); a failure is ``<path>: Invalid value: "<type>": <message>``, where the
message is ``messageExpression``'s result, else ``message``, else ``failed rule: <rule>``, and
``reason``/``fieldPath`` are honoured. ``x-kubernetes-list-type: set`` and ``map`` reject duplicates
(``Duplicate value``), as ``pkg/apiserver/schema/listtype`` does.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any

import cel
import cel.stdlib

from ovh_s3_operator_sandbox.kube.model import FieldError

_REASONS = {"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"}
MISSING = object()


@functools.lru_cache(maxsize=1024)
def _program(expression: str) -> Any:
    return cel.compile(expression)


def _context(variables: Mapping[str, Any]) -> Any:
    context = cel.Context(dict(variables))
    cel.stdlib.add_stdlib_to_context(context, ["strings", "math", "sets", "lists", "encoders"])
    return context


def _evaluate(expression: str, variables: Mapping[str, Any]) -> Any:
    return _program(expression).execute(_context(variables))


def _type_name(schema: Mapping[str, Any], value: Any) -> str:
    declared = schema.get("type")
    if isinstance(declared, str):
        return declared
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), "number")


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else part


def validate(schema: Mapping[str, Any], value: Any, old: Any = MISSING, path: str = "") -> list[FieldError]:
    """The rule and list-type failures of ``value`` (``old``: the stored value, on updates)."""
    errors: list[FieldError] = []
    if value is None:
        return errors
    errors += _list_type(schema, value, path)
    errors += _format(schema, value, path)
    for rule in schema.get("x-kubernetes-validations") or ():
        errors += _rule(rule, schema, value, old, path)
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        old_map = old if isinstance(old, dict) else {}
        for key, item in value.items():
            sub = properties.get(key) if key in properties else (additional if isinstance(additional, Mapping)
                                                                else None)
            if sub is not None:
                errors += validate(sub, item, old_map.get(key, MISSING), _join(path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        items_schema = schema["items"]
        keys = schema.get("x-kubernetes-list-map-keys") if schema.get("x-kubernetes-list-type") == "map" else None
        old_items: dict[str, Any] = {}
        if keys and isinstance(old, list):
            old_items = {_map_key(item, keys): item for item in old if isinstance(item, dict)}
        for index, item in enumerate(value):
            previous = old_items.get(_map_key(item, keys), MISSING) if keys and isinstance(item, dict) else MISSING
            errors += validate(items_schema, item, previous, _join(path, index))
    return errors


def _map_key(item: Mapping[str, Any], keys: Any) -> str:
    return json.dumps([item.get(key) for key in keys])


def _rule(rule: Mapping[str, Any], schema: Mapping[str, Any], value: Any, old: Any, path: str) -> list[FieldError]:
    expression = str(rule.get("rule", ""))
    transition = re.search(r"\boldSelf\b", expression) is not None
    if transition and old is MISSING:
        return []  # a transition rule on a create, or on a value without correlatable old value
    variables = {"self": value, **({"oldSelf": old} if transition else {})}
    where = path
    if rule.get("fieldPath"):
        where = f"{path}{rule['fieldPath']}" if str(rule["fieldPath"]).startswith((".", "[")) else \
            _join(path, str(rule["fieldPath"]))
    try:
        result = _evaluate(expression, variables)
    except Exception as exc:
        return [FieldError(where, "FieldValueInvalid", f'Invalid value: "{_type_name(schema, value)}": '
                                                       f"rule evaluation error: {exc}")]
    if result is True:
        return []
    message = rule.get("message") or f"failed rule: {expression}"
    if rule.get("messageExpression"):
        try:
            computed = _evaluate(str(rule["messageExpression"]), variables)
            if isinstance(computed, str) and computed.strip():
                message = computed
        except Exception:  # noqa: S110 - the static message is used
            pass
    reason = rule.get("reason") if rule.get("reason") in _REASONS else "FieldValueInvalid"
    return [FieldError(where, str(reason), f'Invalid value: "{_type_name(schema, value)}": {message}')]


_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def _format(schema: Mapping[str, Any], value: Any, path: str) -> list[FieldError]:
    """``format`` as kube-openapi's strfmt registry checks it (date-time; int32/int64 ranges)."""
    fmt = schema.get("format")
    where = f"{path or '<root>'} in body"
    if fmt == "date-time" and isinstance(value, str) and not _DATE_TIME.fullmatch(value):
        shown = json.dumps(value)
        return [FieldError(path, "FieldValueInvalid", f"Invalid value: {shown}: {where} must be of type date-time: "
                                                      f"{shown}")]
    if fmt in _INT_RANGES and isinstance(value, int) and not isinstance(value, bool):
        low, high = _INT_RANGES[str(fmt)]
        if not low <= value <= high:
            return [FieldError(path, "FieldValueInvalid", f"Invalid value: {value}: {where} must be of type {fmt}")]
    return []


def _list_type(schema: Mapping[str, Any], value: Any, path: str) -> list[FieldError]:
    kind = schema.get("x-kubernetes-list-type")
    if not isinstance(value, list) or kind not in ("set", "map"):
        return []
    errors = []
    seen: set[str] = set()
    keys = schema.get("x-kubernetes-list-map-keys") or ()
    for index, item in enumerate(value):
        if kind == "set":
            key, shown = json.dumps(item, sort_keys=True), json.dumps(item)
        else:
            if not isinstance(item, dict):
                continue
            key = _map_key(item, keys)
            shown = "map[string]interface {}{" + ", ".join(f'"{k}":{json.dumps(item.get(k))}' for k in keys) + "}"
        if key in seen:
            errors.append(FieldError(_join(path, index), "FieldValueDuplicate", f"Duplicate value: {shown}"))
        seen.add(key)
    return errors
