"""The orphan sweep: OVH users of this cluster whose resource no longer exists are deleted.

A resource's finalizer deletes its OVH user. When the finalizer is removed by hand (or the resource
is forced out of etcd), nothing else would: the user and its keys would stay valid forever. The
sweep lists the project's users and keeps those that carry this cluster's marker and are older
than the grace period (``OVH_S3_OPERATOR_ORPHAN_GRACE``, never less than the creation window, so that
a user whose creation is still being recorded is never taken for an orphan); for each one it reads the
resource its description names. Only when no resource of that namespace has the uid of the marker (a
description may cut the name short) is the user deleted, with a log line and an event in the
resource's namespace. The sweep also drops the register's entries of retained users OVH no
longer has, and lets go of adopted users whose resource went without its finalizer: the keys the
operator issued for them are deleted (the former tenant may still have them), the users stay.

Never touched: users without a marker, users of another cluster (another cluster id), users whose
description names no resource, users whose resource cannot be read (forbidden, API errors), and the
users of the register (:mod:`.registry`): retained by ``deletionPolicy: Retain``, or adopted by a
resource. When the register cannot be read, nothing is swept.

Each OVH project is swept on its own (the operator's own and every usable OVHProject): user ids are
per project, and a user is deleted through the project it was listed in.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import cast

from . import metrics
from .errors import OperatorError
from .model import API_VERSION, KIND, parse_time, read_marker
from .ovh_api import GONE_STATUSES, OVHClient
from .projects import Project
from .reconcile import Context, holder_alive, let_go_of_stale_hold

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
    deleted: list[int] = []
    registry = ctx.registry.scoped(await project.ovh.service_name()) if ctx.projects is not None else ctx.registry
    try:
        kept = await registry.kept_users()
    except OperatorError as error:
        logger.warning("Skipping the orphan sweep of %s: cannot read the register of retained and adopted users "
                       "(%s)", project.title, error.message)
        return deleted
    released = await _release_stale_holds(dataclasses.replace(ctx, ovh=project.ovh, registry=registry), project)
    for user in await project.ovh.list_users(max_age=60.0):
        if user.id in released:
            continue
        marked = read_marker(user.description)
        if (marked is None or marked.marker.cluster != ctx.cluster_id or user.status in GONE_STATUSES
                or user.id in kept):
            continue
        age = ctx.age(parse_time(user.creation_date))
        if age is None or age < grace or not marked.namespace or not marked.name:
            continue
        try:
            if await _resource_exists(ctx, marked.namespace, marked.name, marked.marker.uid):
                continue
            if user.id in await registry.kept_users():  # retained or adopted meanwhile
                continue
        except OperatorError as error:
            logger.debug("Cannot tell whether OVH user %d is an orphan: %s", user.id, error.message)
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
    try:
        await registry.forget_missing({u.id for u in await project.ovh.list_users()})
    except OperatorError as error:
        logger.warning("Could not drop the register entries of users OVH no longer has: %s", error.message)
    return deleted


async def _release_stale_holds(ctx: Context, project: Project) -> set[int]:
    """Adopted users whose resource is gone without its finalizer: the keys the operator issued for them
    are deleted and the hold dropped (the users stay: the operator did not create them)."""
    released = set()
    for user_id, entry in (await ctx.registry.adopted()).items():
        holder = entry.holder
        if holder is None:
            continue
        try:
            if await holder_alive(ctx, holder):
                continue
        except OperatorError as error:
            logger.debug("Cannot tell whether the holder of OVH user %d is gone: %s", user_id, error.message)
            continue
        try:
            revoked = await let_go_of_stale_hold(ctx, user_id, holder, entry)
        except OperatorError as error:
            logger.warning("Could not let go of adopted OVH user %d, whose resource %s/%s is gone: %s", user_id,
                           holder.namespace, holder.name, error.message)
            continue
        released.add(user_id)
        where = f" of {project.title}" if project.name else ""
        message = (f"Released adopted OVH user {user_id}{where}: its resource {holder.namespace}/{holder.name} "
                   f"(uid {holder.uid}) no longer exists; deleted the S3 keys the operator issued for it"
                   f" ({', '.join(revoked) or 'none left'}). The user stays in OVH")
        logger.warning(message)
        ctx.events.post({"apiVersion": API_VERSION, "kind": KIND, "namespace": holder.namespace,
                         "name": holder.name, "uid": holder.uid}, "OrphanReleased", message, warning=True)
    return released


async def _resource_exists(ctx: Context, namespace: str, name: str, uid: str) -> bool:
    """Whether the resource with ``uid`` exists. The name comes from an OVH user's description, which
    may be cut short: when no resource of that name has the uid, the namespace is searched for it."""
    body = await ctx.kube.read_resource(namespace, name)
    if body is not None and (body.get("metadata") or {}).get("uid") == uid:
        return True
    return any((item.get("metadata") or {}).get("uid") == uid for item in await ctx.kube.list_resources(namespace))
