"""Patch formats of the Kubernetes API: JSON merge patch, strategic merge patch and JSON patch.

A strategic merge patch is applied as a JSON merge patch with its ``$…`` directives dropped:
lists are replaced, not merged by key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonpatch

from ovh_s3_operator_sandbox.kube.model import ApiError, Obj

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)


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


def patcher(content_type: str, patch: Any) -> Callable[[Obj], Obj]:
    """The change a PATCH request makes to an object, by its Content-Type."""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == JSON_PATCH:
        return lambda obj: json_patch(obj, patch)
    if media_type not in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
        raise ApiError(
            415,
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(PATCH_TYPES)}",
        )
    if not isinstance(patch, dict):
        raise ApiError(400, "a merge patch must be a JSON object")
    if media_type == STRATEGIC_MERGE_PATCH:
        patch = drop_directives(patch)
    return lambda obj: merge_patch(obj, patch)
