"""Patch formats of the Kubernetes API: JSON merge patch, strategic merge patch and JSON patch.

A strategic merge patch (``k8s.io/apimachinery/pkg/util/strategicpatch``) is accepted for the built-in
kinds only, as the API server does (a custom resource answers 415): lists merge by the
``x-kubernetes-patch-merge-key`` of their schema (ownerReferences by uid, a ServiceAccount's secrets by
name), lists of scalars with the ``merge`` strategy are unions (finalizers), other lists are replaced;
the directives ``$patch: replace|delete|merge`` (maps and list items), ``$retainKeys``,
``$deleteFromPrimitiveList/<field>`` are honoured and ``$setElementOrder/<field>`` is ignored (order
is kept as merged). Server-side apply (``application/apply-patch+yaml``) is not implemented: 415.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jsonpatch

from ovh_s3_operator_sandbox.kube import builtin_schemas
from ovh_s3_operator_sandbox.kube.model import ApiError, Obj, ResourceType

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def drop_directives(patch: Any) -> Any:
    """Remove strategic-merge directives (``$patch``, ``$retainKeys``, ``$setElementOrder/…``)."""
    if isinstance(patch, dict):
        return {key: drop_directives(value) for key, value in patch.items() if not key.startswith("$")}
    if isinstance(patch, list):
        return [drop_directives(item) for item in patch]
    return patch


def json_patch(target: Obj, operations: Any) -> Obj:
    """RFC 6902; a failed ``test`` or an impossible operation is a 422 Invalid."""
    if not isinstance(operations, list):
        raise ApiError(400, "a JSON patch must be a list of operations")
    try:
        result: Obj = jsonpatch.apply_patch(target, operations, in_place=True)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise ApiError(422, f"the JSON patch cannot be applied: {exc}") from None
    return result


def _resolve(schema: Mapping[str, Any] | None) -> Mapping[str, Any]:
    while schema:
        target = schema.get("$ref") or next((sub.get("$ref") for sub in schema.get("allOf") or ()
                                             if isinstance(sub, Mapping)), None)
        if not isinstance(target, str) or schema.get("properties"):
            return schema
        schema = builtin_schemas.DEFINITIONS.get(target.rsplit("/", 1)[-1])
    return {}


def _field_schema(schema: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    properties = schema.get("properties") or {}
    if key in properties:
        return _resolve(properties[key])
    additional = schema.get("additionalProperties")
    return _resolve(additional) if isinstance(additional, Mapping) else {}


def strategic_merge(original: Any, patch: Any, schema: Mapping[str, Any]) -> Any:
    """Apply a strategic merge patch to a map; None when the patch deletes the map (``$patch: delete``)."""
    if not isinstance(patch, dict):
        return drop_directives(patch)
    if not isinstance(original, dict):
        original = {}
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return drop_directives({key: value for key, value in patch.items() if key != "$patch"})
    result = dict(original)
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [item for item in result[field] if item not in value]
            continue
        sub = _field_schema(schema, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value, sub)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, sub)
        else:
            result[key] = value
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {key: value for key, value in result.items() if key in retain}
    return result


def _merge_list(original: Any, patch: list[Any], schema: Mapping[str, Any]) -> list[Any]:
    strategy = str(schema.get("x-kubernetes-patch-strategy") or "")
    merge_key = schema.get("x-kubernetes-patch-merge-key")
    items_schema = _resolve(schema.get("items"))
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [drop_directives(item) for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    if "merge" not in strategy.split(",") or not isinstance(original, list):
        return [drop_directives(item) for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    if not merge_key:  # a set of scalars: a union, in order
        return [*original, *[item for item in patch if item not in original]]
    result = [dict(item) if isinstance(item, dict) else item for item in original]
    for item in patch:
        if not isinstance(item, dict):
            continue
        key = item.get(merge_key)
        index = next((i for i, old in enumerate(result) if isinstance(old, dict) and old.get(merge_key) == key), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(drop_directives(item))
        else:
            result[index] = strategic_merge(result[index], item, items_schema)
    return result


def patcher(content_type: str, patch: Any, rt: ResourceType) -> Callable[[Obj], Obj]:
    """The change a PATCH request makes to an object, by its Content-Type (``patchHandler`` of the API server
    accepts strategic merge patches for built-in kinds only)."""
    media_type = content_type.split(";")[0].strip().lower()
    builtin = builtin_schemas.DEFINITIONS.get(builtin_schemas.definition_name(rt.group, rt.version, rt.kind))
    supported = [JSON_PATCH, MERGE_PATCH, *([STRATEGIC_MERGE_PATCH] if builtin else [])]
    if media_type == APPLY_PATCH:
        raise ApiError(415, "server-side apply (application/apply-patch+yaml) is not implemented by the API "
                            f"emulator; use a client-side apply or one of: {', '.join(supported)}")
    if media_type not in supported:
        raise ApiError(
            415,
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join([*supported, APPLY_PATCH])}",
        )
    if media_type == JSON_PATCH:
        return lambda obj: json_patch(obj, patch)
    if not isinstance(patch, dict):
        raise ApiError(400, "a merge patch must be a JSON object")
    if media_type == STRATEGIC_MERGE_PATCH:
        assert builtin is not None
        return lambda obj: strategic_merge(obj, patch, builtin) or {}
    return lambda obj: merge_patch(obj, patch)
