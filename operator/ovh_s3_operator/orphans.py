"""The orphan sweep: OVH users of this cluster whose resource no longer exists are deleted.

A resource's finalizer deletes its OVH user. When the finalizer is removed by hand (or the resource
is forced out of etcd), nothing else would: the user and its keys would stay valid forever. The
sweep lists the project's users and keeps those that carry this cluster's marker and are older
than the grace period (``OVH_S3_OPERATOR_ORPHAN_GRACE``, never less than the creation window, so that
a user whose creation is still being recorded is never taken for an orphan); for each one it reads the
resource its description names. Only when that resource is gone (or is a new resource with the same
name) is the user deleted, with a log line and an event in the resource's namespace.

Never touched: users without a marker, users of another cluster (another cluster id), users whose
description names no resource, users whose resource cannot be read (forbidden, API errors), and the
users of the register (:mod:`.registry`): retained by ``deletionPolicy: Retain``, or adopted by a
resource. When the register cannot be read, nothing is swept.
"""

from __future__ import annotations

import logging

from . import metrics
from .errors import OperatorError
from .model import API_VERSION, KIND, parse_time, read_marker
from .ovh_api import GONE_STATUSES
from .reconcile import Context

logger = logging.getLogger(__name__)

async def sweep(ctx: Context) -> list[int]:
    """Delete the orphans; returns their user ids."""
    grace = max(ctx.settings.orphan_grace, ctx.settings.creation_window)
    deleted: list[int] = []
    try:
        kept = await ctx.registry.kept_users()
    except OperatorError as error:
        logger.warning("Skipping the orphan sweep: cannot read the register of retained and adopted users (%s)",
                       error.message)
        return deleted
    for user in await ctx.ovh.list_users(max_age=60.0):
        marked = read_marker(user.description)
        if (marked is None or marked.marker.cluster != ctx.cluster_id or user.status in GONE_STATUSES
                or user.id in kept):
            continue
        age = ctx.age(parse_time(user.creation_date))
        if age is None or age < grace or not marked.namespace or not marked.name:
            continue
        try:
            body = await ctx.kube.read_resource(marked.namespace, marked.name)
        except OperatorError as error:
            logger.debug("Cannot tell whether OVH user %d is an orphan: %s", user.id, error.message)
            continue
        if body is not None and (body.get("metadata") or {}).get("uid") == marked.marker.uid:
            continue
        if await ctx.ovh.delete_user(user.id):
            message = (f"Deleted OVH user {user.id}: its resource {marked.namespace}/{marked.name} "
                       f"(uid {marked.marker.uid}) no longer exists")
            logger.warning(message)
            ctx.events.post({"apiVersion": API_VERSION, "kind": KIND, "namespace": marked.namespace,
                             "name": marked.name, "uid": marked.marker.uid}, "OrphanDeleted", message, warning=True)
            deleted.append(user.id)
            metrics.ORPHANS.inc()
    return deleted
