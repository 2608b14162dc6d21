"""Structural schemas of custom resources: pruning, defaulting and validation as the API server does.

Validation uses jsonschema on the CRD's openAPIV3Schema with the ``x-kubernetes-*`` extensions
removed and ``nullable`` turned into a ``null`` type; CEL rules (``x-kubernetes-validations``),
list types and formats are checked by :mod:`.cel`. Errors are reported with Kubernetes' field paths and wording.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import jsonschema

from ovh_s3_operator_sandbox.kube.model import FieldError

_SCHEMA_MAPS = ("properties", "patternProperties", "definitions", "$defs")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_NODES = ("items", "additionalProperties", "not")
_ROOT_META = ("apiVersion", "kind", "metadata")


def _to_json_schema(node: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key in _SCHEMA_MAPS and isinstance(value, Mapping):
            result[key] = {name: _to_json_schema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            result[key] = [_to_json_schema(sub) for sub in value]
        elif key in _SCHEMA_NODES and isinstance(value, Mapping):
            result[key] = _to_json_schema(value)
        else:
            result[key] = value
    if node.get("nullable") is True and isinstance(result.get("type"), str):
        result["type"] = [result["type"], "null"]
    return result


def prune_unknown(value: Any, schema: Mapping[str, Any], definitions: Mapping[str, Mapping[str, Any]],
                  path: str = "", pruned: list[str] | None = None) -> list[str]:
    """Drop the fields a schema does not know (following ``$ref`` and ``allOf``), as Go decoding drops
    them from built-in kinds and structural pruning from custom resources; returns their paths
    (``spec.foo``, ``spec.items[0].bar``), which ``fieldValidation`` reports."""
    pruned = [] if pruned is None else pruned
    while True:
        target = schema.get("$ref") or next((sub.get("$ref") for sub in schema.get("allOf") or () if
                                             isinstance(sub, Mapping) and sub.get("$ref")), None)
        if not isinstance(target, str) or schema.get("properties"):
            break
        schema = definitions.get(target.rsplit("/", 1)[-1], {})
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") is True and not schema.get("properties"):
            return pruned
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key in list(value):
            where = f"{path}.{key}" if path else key
            if key in properties:
                prune_unknown(value[key], properties[key], definitions, where, pruned)
            elif isinstance(additional, Mapping):
                prune_unknown(value[key], additional, definitions, where, pruned)
            elif not (additional is True or schema.get("x-kubernetes-preserve-unknown-fields") is True):
                del value[key]
                pruned.append(where)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            prune_unknown(item, schema["items"], definitions, f"{path}[{index}]", pruned)
    return pruned


def _default(value: Any, schema: Mapping[str, Any]) -> None:
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, sub in properties.items():
            missing = key not in value or (value[key] is None and not sub.get("nullable"))
            if missing and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _default(value[key], sub)
        additional = schema.get("additionalProperties")
        if isinstance(additional, Mapping):
            for key in value.keys() - properties.keys():
                _default(value[key], additional)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for item in value:
            _default(item, schema["items"])


def _field_path(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _show(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


_JSON_TYPES = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def _json_type(value: Any) -> str:
    return next((name for cls, name in _JSON_TYPES if isinstance(value, cls)), "null")


def _field_errors(error: jsonschema.ValidationError) -> Iterator[FieldError]:
    path = _field_path(error.absolute_path)
    limit: Any = error.validator_value
    value: Any = error.instance
    where = f"{path or '<root>'} in body"
    match error.validator:
        case "required":
            for name in limit:
                if isinstance(value, Mapping) and name not in value:
                    yield FieldError(_field_path([*error.absolute_path, name]), "FieldValueRequired", "Required value")
            return
        case "enum":
            supported = ", ".join(_show(item) for item in limit)
            detail = f"Unsupported value: {_show(value)}: supported values: {supported}"
            yield FieldError(path, "FieldValueNotSupported", detail)
            return
        case "type":
            actual = _json_type(value)
            expected = limit if isinstance(limit, str) else " or ".join(limit)
            detail = f'Invalid value: "{actual}": {where} must be of type {expected}: "{actual}"'
            yield FieldError(path, "FieldValueTypeInvalid", detail)
            return
        case "maxLength":
            yield FieldError(path, "FieldValueTooLong", f"Too long: may not be more than {limit} bytes")
            return
        case "maxItems":
            yield FieldError(path, "FieldValueTooMany", f"Too many: {len(value)}: must have at most {limit} items")
            return
        case "pattern":
            problem = f"should match '{limit}'"
        case "minLength":
            problem = f"should be at least {limit} chars long"
        case "minItems":
            problem = f"should have at least {limit} items"
        case "minimum":
            problem = f"should be greater than or equal to {limit}"
        case "maximum":
            problem = f"should be less than or equal to {limit}"
        case _:
            yield FieldError(path, "FieldValueInvalid", f"Invalid value: {_show(value)}: {error.message}")
            return
    shown = len(value) if error.validator == "minItems" else _show(value)
    yield FieldError(path, "FieldValueInvalid", f"Invalid value: {shown}: {where} {problem}")


class StructuralSchema:
    """The openAPIV3Schema of one version of a CRD."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self._schema = schema
        self._validator = jsonschema.Draft202012Validator(_to_json_schema(schema))

    def prune(self, obj: dict[str, Any]) -> list[str]:
        """Drop fields unknown to the schema (apiVersion, kind and metadata are kept: metadata is pruned as
        ObjectMeta by the caller); returns the paths of the dropped fields."""
        kept = {key: obj.pop(key) for key in _ROOT_META if key in obj}
        pruned = prune_unknown(obj, self._schema, {})
        obj.update(kept)
        return pruned

    def default(self, obj: dict[str, Any]) -> None:
        _default(obj, self._schema)

    def validate(self, obj: Mapping[str, Any]) -> list[FieldError]:
        errors: dict[str, FieldError] = {}
        for error in self._validator.iter_errors(obj):
            for field_error in _field_errors(error):
                errors.setdefault(str(field_error), field_error)
        return sorted(errors.values(), key=lambda err: err.field)
