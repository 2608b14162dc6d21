"""Prometheus metrics of the operator (prometheus-client), served on OVH_S3_OPERATOR_METRICS_PORT.

The README's metrics reference lists each one. Labels never carry key material, and routes are
templated (``GET /cloud/project/{sn}/user/{id}``) so that their number stays bounded. ``project`` is the
name of an OVHProject (empty for the operator's own credentials): the platform team creates those, so
their number is bounded too; the OVH project id never becomes a label.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

RECONCILES = Counter("ovh_s3_operator_reconciles", "Reconciles, by result (ready, waiting, failed) and reason",
                     ["result", "reason"])
OVH_REQUESTS = Counter("ovh_s3_operator_ovh_requests", "OVH API calls by project, route and HTTP status (0: no answer)",
                       ["project", "route", "status"])
OVH_LATENCY = Histogram("ovh_s3_operator_ovh_request_duration_seconds", "Duration of OVH API calls, by route",
                        ["route"], buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
LIMITER_WAIT = Histogram("ovh_s3_operator_ovh_rate_limiter_wait_seconds",
                         "Time OVH calls waited for the client-side rate limiter, by project", ["project"],
                         buckets=(0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
THROTTLED = Counter("ovh_s3_operator_ovh_throttled",
                    "OVH answers 429 Too Many Requests (the calls of those credentials slow down), by project",
                    ["project"])
DRIFT_REPAIRS = Counter("ovh_s3_operator_drift_repairs",
                        "Changes made outside the operator that it repaired, by what (user, policy, key, secret, "
                        "duplicate, stray-key)", ["what"])
ROTATIONS = Counter("ovh_s3_operator_key_rotations", "S3 key rotations, by step (started, completed)", ["step"])
ORPHANS = Counter("ovh_s3_operator_orphans_deleted", "OVH users deleted by the orphan sweep, by project", ["project"])
PROJECTS = Gauge("ovh_s3_operator_project_ready",
                 "1 when the credentials of an OVHProject work, 0 when they do not (see its Ready condition)",
                 ["project"])
DRIFT_INTERVAL = Gauge("ovh_s3_operator_drift_interval_seconds",
                       "Seconds between drift checks of a resource (stretched to stay within the OVH rate budget; "
                       "0: no drift checks)")
LEADER = Gauge("ovh_s3_operator_leader", "1 while this replica leads (acts), 0 on standby")

_ID = re.compile(r"/user/\d+")
_PROJECT = re.compile(r"/cloud/project/[^/]+")
_ACCESS = re.compile(r"/s3Credentials/[^/]+")


def route(method: str, path: str) -> str:
    """``GET /cloud/project/{sn}/user/{id}/s3Credentials/{access}`` for a concrete call."""
    path = _ACCESS.sub("/s3Credentials/{access}", _ID.sub("/user/{id}", _PROJECT.sub("/cloud/project/{sn}", path)))
    return f"{method} {path.split('?')[0]}"


class ResourcesByReason(Collector):
    """``ovh_s3_operator_resources{ready, reason}``: how many resources are in each state, read from the
    controller at scrape time."""

    def __init__(self, reasons: Callable[[], Iterable[tuple[bool, str]]]) -> None:
        self._reasons = reasons

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("ovh_s3_operator_resources", "Resources by Ready status and reason",
                                   labels=["ready", "reason"])
        counts: dict[tuple[bool, str], int] = {}
        for key in self._reasons():
            counts[key] = counts.get(key, 0) + 1
        for (ready, reason), count in sorted(counts.items()):
            family.add_metric(["true" if ready else "false", reason], count)
        yield family


def watch_resources(reasons: Callable[[], Iterable[tuple[bool, str]]]) -> ResourcesByReason:
    collector = ResourcesByReason(reasons)
    REGISTRY.register(collector)
    return collector


def unwatch(collector: ResourcesByReason) -> None:
    REGISTRY.unregister(collector)
