"""``meta.k8s.io/v1`` Table rendering, as the API server answers ``kubectl get``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ovh_s3_operator_sandbox.kube.model import Obj, PrinterColumn, ResourceType, parse_rfc3339, utcnow

_NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}


def wants_table(accept: str) -> bool:
    """Whether an Accept header asks for a Table (``application/json;as=Table;v=v1;g=meta.k8s.io``)."""
    return any("as=table" in media_range.replace(" ", "").lower() for media_range in accept.split(","))


def human_duration(seconds: float) -> str:
    """A duration as the API server prints ages (k8s.io/apimachinery/pkg/util/duration)."""
    total = int(seconds)
    if total < -1:
        return "<invalid>"
    if total < 0:
        return "0s"
    if total < 120:
        return f"{total}s"
    minutes, hours, days = total // 60, total // 3600, total // 86400
    if minutes < 10:
        return f"{minutes}m{total % 60}s" if total % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    if days < 365 * 8:
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{days // 365}y"


def _cell(column: PrinterColumn, obj: Mapping[str, Any]) -> Any:
    value = column.value(obj)
    if value is None:
        return None
    match column.type:
        case "date":
            moment = parse_rfc3339(str(value))
            return human_duration((utcnow() - moment).total_seconds()) if moment else None
        case "integer":
            return value if isinstance(value, int) and not isinstance(value, bool) else None
        case "number":
            return value if isinstance(value, int | float) and not isinstance(value, bool) else None
        case "boolean":
            return value if isinstance(value, bool) else None
        case _:
            return value if isinstance(value, str) else json.dumps(value)


def _row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def table(
    rt: ResourceType,
    objects: Iterable[Obj],
    resource_version: int,
    *,
    include: str = "Metadata",
    with_columns: bool = True,
) -> Obj:
    """A Table of objects; ``include`` is the ``includeObject`` parameter (None, Metadata, Object)."""
    rows = []
    for obj in objects:
        row: Obj = {"cells": [obj.get("metadata", {}).get("name")] + [_cell(col, obj) for col in rt.columns]}
        row_object = _row_object(obj, include)
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    columns = [_NAME_COLUMN] + [
        {
            "name": col.name,
            "type": col.type,
            "format": col.format,
            "description": col.description,
            "priority": col.priority,
        }
        for col in rt.columns
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(resource_version)},
        "columnDefinitions": columns if with_columns else [],
        "rows": rows,
    }
