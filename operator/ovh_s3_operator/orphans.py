"""The orphan sweep: OVH users of this cluster whose resource no longer exists are deleted.

A resource's finalizer deletes its OVH user. When the finalizer is removed by hand (or the resource
is forced out of etcd), nothing else would: the user and its keys would stay valid forever. The
sweep lists the project's users and keeps those that carry this cluster's marker and are older
than the grace period (``OVH_S3_OPERATOR_ORPHAN_GRACE``, never less than the creation window, so that
a user whose creation is still being recorded is never taken for an orphan); for each one it reads the
resource its description names. Only when that resource is gone (or is a new resource with the same
name) is the user deleted, with a log line and an event in the resource's namespace.

Never touched: users without a marker, users of another cluster (another cluster id), users whose
description names no resource, and users whose resource cannot be read (forbidden, API errors).

Each OVH project is swept on its own (the operator's own and every usable OVHProject): user ids are
per project, and a user is deleted through the project it was listed in.
"""

from __future__ import annotations

import logging
from typing import cast

from . import metrics
from .errors import OperatorError
from .model import API_VERSION, KIND, parse_time, read_marker
from .ovh_api import GONE_STATUSES, OVHClient
from .projects import Project
from .reconcile import Context

logger = logging.getLogger(__name__)


async def sweep(ctx: Context) -> dict[str, list[int]]:
    """Delete the orphans of every project; returns their user ids by project ("" for the operator's own)."""
    projects = await ctx.projects.sweepable() if ctx.projects is not None else \
        [Project("", cast(OVHClient, ctx.ovh), ctx.activation)]
    deleted: dict[str, list[int]] = {}
    for project in projects:
        try:
            found = await sweep_project(ctx, project)
        except OperatorError as error:  # one project's trouble does not stop the others' sweep
            logger.warning("Cannot sweep the orphans of %s: %s", project.title, error.message)
            continue
        if found:
            deleted[project.name] = found
    return deleted


async def sweep_project(ctx: Context, project: Project) -> list[int]:
    """Delete the orphans of one project; returns their user ids."""
    grace = max(ctx.settings.orphan_grace, ctx.settings.creation_window)
    deleted = []
    for user in await project.ovh.list_users(max_age=60.0):
        marked = read_marker(user.description)
        if marked is None or marked.marker.cluster != ctx.cluster_id or user.status in GONE_STATUSES:
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
        if await project.ovh.delete_user(user.id):
            where = f" of {project.title}" if project.name else ""
            message = (f"Deleted OVH user {user.id}{where}: its resource {marked.namespace}/{marked.name} "
                       f"(uid {marked.marker.uid}) no longer exists")
            logger.warning(message)
            ctx.events.post({"apiVersion": API_VERSION, "kind": KIND, "namespace": marked.namespace,
                             "name": marked.name, "uid": marked.marker.uid}, "OrphanDeleted", message, warning=True)
            deleted.append(user.id)
            metrics.ORPHANS.labels(project.name).inc()
    return deleted
