"""events.k8s.io/v1 as a view of core/v1 events, as the API server serves them: one object, two shapes.

The field mapping is Kubernetes' own (``pkg/apis/events/v1/conversion.go``): ``regarding`` is
``involvedObject``, ``note`` is ``message``, ``reportingController`` is ``reportingComponent``,
``deprecatedSource``/``deprecatedFirstTimestamp``/``deprecatedLastTimestamp``/``deprecatedCount`` are
``source``/``firstTimestamp``/``lastTimestamp``/``count``; the other fields keep their names.
"""

from __future__ import annotations

from typing import Any

from .model import Obj

_RENAMED = {
    "regarding": "involvedObject",
    "note": "message",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
_BACK = {core: v1 for v1, core in _RENAMED.items()}


def to_core(event: Obj) -> Obj:
    """An events.k8s.io/v1 Event as the core/v1 Event stored for it."""
    core: dict[str, Any] = {_RENAMED.get(key, key): value for key, value in event.items()}
    core["apiVersion"], core["kind"] = "v1", "Event"
    if "source" not in core and core.get("reportingComponent"):
        core["source"] = {"component": core["reportingComponent"]}
    return core


def to_v1(event: Obj) -> Obj:
    """A stored core/v1 Event as events.k8s.io/v1 shows it."""
    v1: dict[str, Any] = {_BACK.get(key, key): value for key, value in event.items()}
    v1["apiVersion"], v1["kind"] = "events.k8s.io/v1", "Event"
    return v1
