"""The one level-based reconcile, and the finalizer.

:func:`reconcile` reads the resource and what exists for it (its Secret, the OVH user, its policy
and keys) and fixes what differs from the spec. It never asks what woke it: a new resource, a spec
change, a restart, an edited Secret and the drift timer all run the same function. It returns an
:class:`Outcome` (ready or not, why, when to look again) and raises nothing;
:mod:`.controller` alone turns outcomes into scheduling.

Every step is idempotent and recorded before the next one, so a crash at any point resumes without
duplicates:

* the finalizer is in place before anything is created in OVH;
* before ``POST /user`` the operator records ``userRequestedAt``; the user's description starts with
  a marker naming this cluster and this resource (:class:`.model.Marker`), so a user whose id was
  never recorded is found and adopted;
* the user id is recorded right after OVH answers; ``userRequestedAt`` stays until OVH shows the
  user, so that a brief 404 (OVH's eventual consistency) is not mistaken for a deleted user;
* an S3 key is reused when OVH still knows it; keys the Secret does not hold are deleted;
* the new Secret is written, and a previous one deleted, before the Secret name is recorded.

Nothing in ``status`` is trusted: a recorded user id is acted on only when OVH shows this
resource's marker on that user; the finalizer deletes only users carrying it.

The OVH project a resource's user lives in (``spec.projectRef``, or the operator's own) is chosen in
one place, :func:`_in_project`, which points the context's OVH port at it (:mod:`.projects`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from . import access_policy, metrics, secret_writer
from .access_policy import AccessIndex
from .activation import ActivationEstimate
from .config import Settings
from .errors import (
    AccessDenied,
    AdoptionRefused,
    InvalidSpec,
    OperatorError,
    OVHError,
    OVHNotFound,
    OVHProjectChanged,
    OVHRejected,
    ResourceGone,
    Retry,
    UserNotReady,
)
from .model import (
    FINALIZER,
    READY,
    ROTATE_ANNOTATION,
    STATUS_FIELDS,
    Condition,
    DeletionPolicy,
    Marker,
    Resource,
    Spec,
    Status,
    format_duration,
    format_time,
    parse_spec,
    parse_time,
    project_name,
    read_marker,
)
from .ovh_api import GONE_STATUSES
from .policy import canonical, compile_policy
from .ports import OVH, Events, Kube, OVHUser, S3Credential
from .projects import Projects, project_title
from .registry import Entry, Holder, Registry
from .secret_writer import ObservedSecret, Shape

logger = logging.getLogger("ovh_s3_operator")

DELETING = "Deleting"
LISTING_MAX_AGE = 60.0
"""How old a shared listing of all users may be to answer for one user (a user is then read with one
call for all instead of one call each, e.g. by the drift checks of many resources)."""


@dataclass(frozen=True)
class Outcome:
    """What a reconcile achieved, and when to look at the resource again.

    ``retry`` (failures) says what can help; ``after`` (waits for OVH) says when to look again;
    ``released`` means there is nothing left to look at: the resource is gone or its finalizer
    was removed.
    """

    ready: bool
    reason: str
    message: str
    retry: Retry | None = None
    after: float | None = None
    released: bool = False

    @classmethod
    def failed(cls, error: OperatorError) -> Outcome:
        return cls(False, error.reason, error.message, retry=error.retry)

    @classmethod
    def waiting(cls, reason: str, message: str, after: float) -> Outcome:
        return cls(False, reason, message, after=after)


GONE = Outcome(False, "Gone", "The resource no longer exists", released=True)


@dataclass
class Memory:
    """What the operator remembers about one resource between reconciles, in this process only.

    Losing it (a restart) costs reads from OVH and Kubernetes, never correctness.
    """

    uid: str = ""
    verified_at: float | None = None
    """When OVH was last checked in full for this resource (the clock of :class:`Context`)."""
    verified_user: int | None = None
    verified_key: str | None = None
    """The user and key that check found (status may have been changed since, by anyone)."""
    secret: ObservedSecret | None = None
    """The Secret as last written or read whole; unchanged since if its resourceVersion is the same."""
    fresh_user: int | None = None
    """A user this process created and has not finished setting up: OVH gave it no policy and no key."""
    fresh_policy: str | None = None
    fresh_keys: tuple[str, ...] = ()
    deleting: set[int] | None = None
    """The users the finalizer is deleting."""
    key_issued: datetime.datetime | None = None
    """When this process last issued a key for the resource: a floor under status.lastRotationTime, which a
    tenant able to patch status could set back to make rotations due over and over."""
    delete_sent: set[int] = field(default_factory=set)

    def reset(self, uid: str) -> None:
        """Forget everything: the resource was seen for the first time, or replaced by a namesake."""
        fresh = Memory(uid=uid)
        self.__dict__.update(fresh.__dict__)

    def forget_user(self) -> None:
        self.fresh_user, self.fresh_policy, self.fresh_keys = None, None, ()


@dataclass
class Context:
    """Everything a reconcile uses besides the resource: the ports, the settings, the clocks."""

    ovh: OVH
    kube: Kube
    events: Events
    settings: Settings
    access: AccessIndex
    cluster_id: str
    registry: Registry
    activation: ActivationEstimate
    drift_interval: Callable[[], float]
    """The interval between full checks against OVH (stretched by the controller when drift checks
    of all resources would take more than their share of the OVH rate budget)."""
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)
    projects: Projects | None = None
    """The OVH projects; without them, every resource uses ``ovh`` (the operator's own project)."""

    def marker(self, resource: Resource) -> Marker:
        return Marker(self.cluster_id, resource.uid)

    def age(self, moment: datetime.datetime | None) -> float | None:
        """Seconds since ``moment``; None when absent or in the future (a tenant may have written it)."""
        if moment is None:
            return None
        age = (self.now() - moment).total_seconds()
        return age if age >= 0 else None


class StatusWriter:
    """The resource's status as read, then as patched. Writes go to the API at once: each must land
    before the next step runs."""

    def __init__(self, kube: Kube, resource: Resource) -> None:
        self._kube = kube
        self._resource = resource
        self.status = resource.status
        self._later: dict[str, Any] = {}

    @staticmethod
    def _patch(fields: dict[str, Any]) -> dict[str, Any]:
        return {STATUS_FIELDS[name]: format_time(value) if isinstance(value, datetime.datetime) else value
                for name, value in fields.items()}

    async def record(self, **fields: Any) -> None:
        """Patch these fields now (python names of :class:`.model.Status`; None removes one)."""
        if all(getattr(self.status, name) == value for name, value in fields.items()):
            return
        await self._write(self._patch(fields))

    def record_later(self, **fields: Any) -> None:
        """Patch these fields with the Ready condition (for fields whose loss in a crash costs nothing but
        a few reads)."""
        self._later.update({name: value for name, value in fields.items() if getattr(self.status, name) != value})

    async def _write(self, patch: dict[str, Any]) -> None:
        patch = {**self._patch(self._later), **patch}
        self._later = {}
        patched = await self._kube.patch_status(self._resource.namespace, self._resource.name, patch)
        self.status = Status.parse(patched.get("status"))

    async def set_ready(self, outcome: Outcome, now: datetime.datetime) -> bool:
        """Record the Ready condition and observedGeneration; True if the condition changed."""
        state = "True" if outcome.ready else "False"
        generation = self._resource.generation
        previous = self.status.ready
        if previous is not None and (previous.status, previous.reason, previous.message,
                                     previous.observed_generation) == (state, outcome.reason, outcome.message,
                                                                       generation):
            if self._later:
                await self._write({})
            return False
        since = previous.last_transition_time if previous is not None and previous.status == state else None
        condition = Condition(READY, state, outcome.reason, outcome.message, since or format_time(now), generation)
        await self._write({"conditions": [condition.to_api()], "observedGeneration": generation})
        return True


@dataclass(frozen=True)
class Journal:
    """Logs what the operator does to a resource, and posts it as a Kubernetes event on it."""

    events: Events
    resource: Resource

    def note(self, reason: str, message: str) -> None:
        logger.info("[%s] %s", self.resource.key, message)
        self.events.post(self.resource.object_reference(), reason, message)

    def warn(self, reason: str, message: str) -> None:
        logger.warning("[%s] %s", self.resource.key, message)
        self.events.post(self.resource.object_reference(), reason, message, warning=True)


async def reconcile(ctx: Context, namespace: str, name: str, memory: Memory) -> Outcome:
    """Converge one resource (or finish its deletion) and say when to look at it again."""
    try:
        body = await ctx.kube.read_resource(namespace, name)
    except OperatorError as error:
        return Outcome.failed(error)
    if body is None:
        return GONE
    resource = Resource.from_body(body)
    if memory.uid != resource.uid:  # first sight, or a new resource with the name of a deleted one
        memory.reset(resource.uid)
    if resource.deleting:
        return await finalize(ctx, resource, memory)
    status = StatusWriter(ctx.kube, resource)
    journal = Journal(ctx.events, resource)
    try:
        outcome = await _converge(ctx, resource, status, journal, memory)
    except ResourceGone:
        return GONE
    except OperatorError as error:
        outcome = Outcome.failed(error)
    try:
        if await status.set_ready(outcome, ctx.now()):
            if outcome.ready:
                journal.note("Ready", outcome.message)
            elif outcome.retry is not None:
                journal.warn(outcome.reason, outcome.message)
    except ResourceGone:
        return GONE
    except OperatorError:
        logger.warning("[%s] Could not record the Ready condition (%s); will retry", resource.key, outcome.reason)
    return outcome


def _region(spec: Spec, settings: Settings) -> str:
    region = spec.region or settings.default_region
    if region not in settings.regions:
        raise InvalidSpec(f"spec.region: unknown region {region!r}; use one of {', '.join(settings.regions)}")
    return region


def _secret_name(spec: Spec, resource: Resource) -> str:
    name = spec.secret.name or secret_writer.default_name(resource)
    if len(name) > 253:
        raise InvalidSpec(f"spec.secret.name: the Secret name {name[:40]}… is longer than 253 characters; "
                          "set a shorter spec.secret.name")
    return name


async def _ensure_finalizer(ctx: Context, resource: Resource) -> None:
    if FINALIZER not in resource.finalizers:
        await ctx.kube.set_finalizers(resource.namespace, resource.name, [*resource.finalizers, FINALIZER],
                                      resource.resource_version)


async def _in_project(ctx: Context, resource: Resource, status: StatusWriter, wanted: str, *,
                      record: bool = True) -> Context:
    """The context of the OVH project the resource's user lives in: ``wanted`` (an OVHProject, "" for the
    operator's own). It is recorded before anything is created there (with the first status write:
    ``userRequestedAt``), and never changes once a user may exist: the operator does not guess where a
    user went."""
    if ctx.projects is None:
        return ctx
    recorded = status.status
    if recorded.user_may_exist and recorded.service_name is not None and (recorded.project or "") != wanted:
        raise OVHProjectChanged(
            f"The OVH user was created in {project_title(recorded.project)}, but spec.projectRef now says "
            f"{project_title(wanted)}; the user stays where it is: set spec.projectRef back, or create a new "
            "resource for the other project")
    project = await ctx.projects.resolve((resource.namespace, resource.name), wanted)
    service_name = await project.ovh.service_name()
    if recorded.user_may_exist and recorded.service_name not in (None, service_name):
        raise OVHProjectChanged(
            f"The OVH user lives in OVH project {recorded.service_name}, but {project.title} now names project "
            f"{service_name}; give it back its project id, or remove the finalizer {FINALIZER} to leave the user")
    if record:
        status.record_later(project=wanted or None, service_name=service_name)
    return dataclasses.replace(ctx, ovh=project.ovh, activation=project.activation,
                               registry=ctx.registry.scoped(service_name))


async def _in_forbidden_project(ctx: Context, resource: Resource, status: StatusWriter, wanted: str,
                                denied: str) -> Context:
    """The context of a project the namespace may no longer use, where the resource's user keeps nothing:
    only once OVH shows that user carries this resource's marker (or the register that the resource
    adopted it). Status alone proves nothing, so nothing about the project (whether it exists, its id,
    its credentials) is told or recorded: every failure is AccessDenied."""
    user_id = status.status.user_id
    try:
        if user_id is None:
            raise AccessDenied(denied)
        project = await _in_project(ctx, resource, status, wanted, record=False)
        user = await project.ovh.get_user(user_id)
        marked = user is not None and ctx.marker(resource).is_on(user.description)
        if not (marked or await ctx.registry.holds_any(resource)):
            raise AccessDenied(denied)
    except OperatorError:
        raise AccessDenied(denied) from None
    return project


def _first_verification(ctx: Context, resource: Resource, memory: Memory) -> None:
    """A resource Ready when first seen (after a restart) is due for its check at a random point of
    the interval, so that a restart does not check every resource at once."""
    if memory.verified_at is None and resource.is_ready:
        interval = ctx.drift_interval()
        memory.verified_at = ctx.clock() - (random.uniform(0, interval) if math.isfinite(interval) else 0.0)


async def _converge(ctx: Context, resource: Resource, status: StatusWriter, journal: Journal,
                    memory: Memory) -> Outcome:
    spec = parse_spec(resource.spec)
    region = _region(spec, ctx.settings)
    compile_policy(spec.grants, spec.policy)  # the whole spec is valid, allowed or not
    secret_name = _secret_name(spec, resource)
    # Compiling a tenant's templates can take a moment (secret_template.NODES): not on the event loop.
    shape = await asyncio.to_thread(secret_writer.shape, spec, resource, region)
    allowance = ctx.access.allowance(resource.namespace)
    verdict = access_policy.check(spec, region, allowance)
    recorded = status.status
    denied = f"Not allowed in namespace {resource.namespace}: {', '.join(verdict.problems)}. " + \
        allowance.source(resource.namespace)
    wanted_project = spec.project_ref.name if spec.project_ref else ""
    if spec.user_id is not None and not allowance.allow_adoption:
        if await ctx.registry.holds_any(resource):  # adopted while it was allowed: let go
            await _let_go(await _in_project(ctx, resource, status, wanted_project), resource, status, journal,
                          memory, secret_name, spec.user_id)
        raise AccessDenied(f"spec.userId: namespace {resource.namespace} may not adopt existing OVH users. "
                           + allowance.source(resource.namespace))
    # A spec that is not allowed goes on only to shrink a user the resource already has (what status says
    # is checked against OVH further on; for an adopted user, the register is asked, not status).
    if not verdict.allowed and not (await ctx.registry.holds_any(resource) if spec.user_id is not None
                                    else recorded.user_id or recorded.user_requested_at):
        raise AccessDenied(denied)  # before anything is created in OVH
    if allowance.allows_project(wanted_project):
        ctx = await _in_project(ctx, resource, status, wanted_project)
    else:
        ctx = await _in_forbidden_project(ctx, resource, status, wanted_project, denied)
    await _ensure_finalizer(ctx, resource)
    observed = memory.secret = await secret_writer.observe(ctx.kube, resource, secret_name, memory.secret)

    _first_verification(ctx, resource, memory)
    now = ctx.now().replace(microsecond=0)  # the resolution of the times in status
    verified = memory.verified_at is not None and ctx.clock() - memory.verified_at < ctx.drift_interval()
    if (verified and verdict.allowed and resource.is_ready and recorded.secret_name == secret_name
            and not _key_work_due(ctx, resource, spec, recorded, now, memory)):
        # OVH was checked recently and nothing changed since: at most the Secret needs its values back.
        assert recorded.ready is not None
        status.record_later(**_schedule(spec, recorded, _issued_at(recorded, now, memory) or now,
                                        recorded.previous_access_key_id))
        ready = Outcome(True, recorded.ready.reason, recorded.ready.message,
                        after=_next_key_work(ctx, resource, spec, recorded, now, memory))
        target = shape.for_user(recorded.user_id, recorded.username)
        if recorded.user_id and observed is not None and observed.up_to_date(recorded.access_key_id, target):
            return ready
        verified_pair = (memory.verified_user, memory.verified_key)
        if verified_pair == (recorded.user_id, recorded.access_key_id) and None not in verified_pair:
            try:
                await _restore_secret(ctx, resource, journal, memory, observed, secret_name, target)
                return ready
            except OVHNotFound:
                memory.verified_at = None  # the key is gone: check everything

    if not verdict.roles:
        await _revoke(ctx, resource, status, journal, memory, secret_name, spec.user_id)
        kept = "the keys the operator issued for the OVH user are deleted" if spec.user_id else \
            "the OVH user keeps no S3 key"
        raise AccessDenied(f"None of spec.roles is allowed: {kept}. {denied}")
    offered = await ctx.ovh.list_roles()
    unknown = sorted(set(spec.roles) - offered)
    if unknown:
        raise InvalidSpec(f"spec.roles: the OVH project does not offer {', '.join(unknown)}; "
                          f"available: {', '.join(sorted(offered))}")
    if spec.user_id is not None:
        user: OVHUser | Outcome = await _adopted_user(ctx, resource, status, spec.user_id, allowance.roles, journal)
    else:
        user = await _ensure_user(ctx, resource, status, spec, journal, memory, roles=verdict.roles,
                                  refused=None if verdict.allowed else denied)
    if isinstance(user, Outcome):
        return user
    if memory.fresh_user != user.id and set(user.roles) != set(verdict.roles):
        await ctx.ovh.set_roles(user.id, verdict.roles)
        journal.note("RolesChanged", f"Changed the roles of OVH user {user.id} to {', '.join(verdict.roles)}")
    await _ensure_policy(ctx, user, compile_policy(verdict.grants, verdict.policy), journal, memory,
                         repair=resource.is_ready)
    plan = await _plan_keys(ctx, resource, spec, user, status, observed, journal, memory, now)
    access = plan.access

    target = shape.for_user(user.id, status.status.username)
    if plan.secret is not None or observed is None or not observed.up_to_date(access, target):
        memory.secret = await secret_writer.write(ctx.kube, resource, secret_name, observed, target, access=access,
                                                  secret=plan.secret)
        journal.note("SecretWritten", f"Wrote the S3 credentials of OVH user {user.id} to Secret {secret_name}")
    previous_secret = status.status.secret_name
    if (previous_secret and previous_secret != secret_name
            and await secret_writer.delete_if_owned(ctx.kube, resource, previous_secret)):
        journal.note("SecretMoved", f"Deleted Secret {previous_secret}: the credentials moved to Secret {secret_name}")
    # The Secret holds the key: a rotation asked for by the annotation is done.
    served = resource.annotations.get(ROTATE_ANNOTATION, recorded.last_rotation_request)
    status.record_later(access_key_id=access, secret_name=secret_name, pending_rotation_request=None,
                        last_rotation_request=served)
    # Keys go only now that the Secret holds another one.
    for key, why in plan.retire:
        await _delete_key(ctx, resource, spec, user, key)
        metrics.ROTATIONS.labels("completed").inc()
        journal.note("KeyDeleted", f"Deleted S3 access key {key} of OVH user {user.id}: {why}")
    for key in plan.strays:
        await _delete_key(ctx, resource, spec, user, key)
        metrics.DRIFT_REPAIRS.labels("stray-key").inc()
        journal.note("KeyDeleted", f"Deleted S3 access key {key} of OVH user {user.id}: the Secret holds another key")
    if memory.fresh_user != user.id and spec.user_id is None:
        await _delete_duplicates(ctx, resource, user, journal)
    memory.verified_at, memory.verified_user, memory.verified_key = ctx.clock(), user.id, access
    memory.forget_user()
    if not verdict.allowed:
        return Outcome.failed(AccessDenied(f"OVH user {user.id} keeps only what is allowed. {denied}"))
    return Outcome(True, "Reconciled", f"OVH user {user.id} is ready; S3 credentials are in Secret {secret_name}",
                   after=_next_key_work(ctx, resource, spec, status.status, now, memory))


async def _restore_secret(ctx: Context, resource: Resource, journal: Journal, memory: Memory,
                          observed: ObservedSecret | None, secret_name: str, target: Shape) -> None:
    """Write the key this process verified back into a Secret someone edited or deleted: one OVH read.
    (From memory, not from status: a tenant may have pointed status at someone else's key.)"""
    user_id, access = memory.verified_user, memory.verified_key
    assert user_id is not None and access is not None
    intact = observed is not None and observed.intact and observed.access == access
    secret = None if intact else await ctx.ovh.get_s3_secret(user_id, access)
    memory.secret = await secret_writer.write(ctx.kube, resource, secret_name, observed, target, access=access,
                                              secret=secret)
    metrics.DRIFT_REPAIRS.labels("secret").inc()
    journal.note("SecretWritten", f"Restored the S3 credentials of OVH user {user_id} in Secret {secret_name}")


async def _revoke(ctx: Context, resource: Resource, status: StatusWriter, journal: Journal, memory: Memory,
                  secret_name: str, adopted: int | None) -> None:
    """Take the S3 keys away from the resource (none of its roles is allowed any more): every key of a
    user it created, and its policy; of an adopted user, the keys the operator issued."""
    recorded = status.status
    why = "its roles are not allowed in this namespace any more"
    if adopted is not None:
        entry = await ctx.registry.entry(adopted)
        if entry.holder is not None and entry.holder.uid == resource.uid and entry.issued:
            for key in sorted(entry.issued & set(await ctx.ovh.list_s3_credentials(adopted))):
                await ctx.ovh.delete_s3_credentials(adopted, key)
                journal.warn("KeyRevoked", f"Deleted S3 access key {key} of OVH user {adopted}: {why}")
            await ctx.registry.deleted(adopted, resource, entry.issued)
    else:
        user = await ctx.ovh.get_user(recorded.user_id) if recorded.user_id else None
        if user is not None and ctx.marker(resource).is_on(user.description):
            await ctx.ovh.apply_policy(user.id, {"Statement": []})
            for key in await ctx.ovh.list_s3_credentials(user.id):
                await ctx.ovh.delete_s3_credentials(user.id, key)
                journal.warn("KeyRevoked", f"Deleted S3 access key {key} of OVH user {user.id}: {why}")
    for name in {secret_name, recorded.secret_name} - {None}:
        assert name is not None
        if await secret_writer.delete_if_owned(ctx.kube, resource, name):
            journal.warn("SecretDeleted", f"Deleted Secret {name}: it held a key that was revoked")
    memory.secret = None
    await status.record(access_key_id=None, secret_name=None, previous_access_key_id=None, previous_key_expiry=None)


async def _let_go(ctx: Context, resource: Resource, status: StatusWriter, journal: Journal, memory: Memory,
                  secret_name: str, user_id: int) -> None:
    """Stop holding an adopted user the namespace may no longer adopt: the keys the operator issued and
    the Secret go; the user stays in OVH (recorded as retained if this cluster once created it)."""
    holder = (await ctx.registry.entry(user_id)).holder
    if holder is None or holder.uid != resource.uid:
        return
    await _revoke(ctx, resource, status, journal, memory, secret_name, user_id)
    await ctx.registry.release(user_id, resource, retain_since=await _retain_since(ctx, user_id))
    journal.warn("UserReleased", f"Stopped managing adopted OVH user {user_id}: adoption is no longer allowed in "
                                 "this namespace. The keys the operator issued are deleted; the user stays in OVH")
    memory.verified_at = memory.verified_user = memory.verified_key = None
    await status.record(user_id=None, username=None)


async def _retain_since(ctx: Context, user_id: int) -> datetime.datetime | None:
    """Now, if the user carries this cluster's marker (the orphan sweep must then leave it alone once
    no resource holds it), else None."""
    user = await ctx.ovh.get_user(user_id)
    marked = read_marker(user.description) if user is not None else None
    return ctx.now() if marked is not None and marked.marker.cluster == ctx.cluster_id else None


async def _adopted_user(ctx: Context, resource: Resource, status: StatusWriter, user_id: int,
                        allowed_roles: frozenset[str], journal: Journal) -> OVHUser | Outcome:
    """The existing OVH user ``spec.userId`` names, once proven this resource's to hold.

    Trusted because spec.userId names it, an access policy lets the namespace adopt, and the register
    (:mod:`.registry`) records this resource as its only holder; never because of status. A user is
    refused when OVH does not have it, when this cluster or another one created it (unless it was
    retained, and has no keys left), when it has roles the namespace may not use, or when another live
    resource holds it.
    """
    user = await ctx.ovh.get_user(user_id)
    if user is None or user.status in GONE_STATUSES:
        raise AdoptionRefused(f"spec.userId: the OVH project has no user {user_id}; check the id in the OVH "
                              "console (Public Cloud, Users & Roles)")
    entry = await ctx.registry.entry(user_id)
    if entry.holder is not None and entry.holder.uid != resource.uid and not await holder_alive(ctx, entry.holder):
        # Its holder went without its finalizer: the keys issued for it go before anyone else holds the user.
        stale = entry.holder
        revoked = await let_go_of_stale_hold(ctx, user_id, stale, entry)
        if revoked:
            journal.note("KeyRevoked", f"Deleted the S3 keys {', '.join(revoked)} issued for OVH user {user_id} "
                                       f"to its former holder {stale.namespace}/{stale.name}")
        entry = await ctx.registry.entry(user_id)
    if entry.holder is None or entry.holder.uid != resource.uid:
        await _check_adoptable(ctx, resource, user, allowed_roles, entry.retained)

        other = await ctx.registry.claim(user_id, resource, partial(holder_alive, ctx))
        if other is not None:
            raise AdoptionRefused(f"spec.userId: OVH user {user_id} is already adopted by {other.namespace}/"
                                  f"{other.name}; one OVH user belongs to one resource")
        journal.note("UserAdopted", f"Adopted the existing OVH user {user_id} ({user.username}); deleting this "
                                    "resource keeps it unless spec.deletionPolicy is Delete")
    await status.record(user_id=user.id, username=user.username)
    if user.status != "ok":
        return _not_active(ctx, user)
    return user


async def holder_alive(ctx: Context, holder: Holder) -> bool:
    """Whether the resource the register names still exists (the same uid)."""
    body = await ctx.kube.read_resource(holder.namespace, holder.name)
    return body is not None and (body.get("metadata") or {}).get("uid") == holder.uid


async def let_go_of_stale_hold(ctx: Context, user_id: int, holder: Holder, entry: Entry) -> list[str]:
    """An adopted user's holder is gone without its finalizer (removed by hand): delete the keys the operator
    issued for it (and one whose creation was in flight), which the former tenant may still have, then drop
    its hold (a user this cluster created is recorded as retained again). Returns the keys deleted."""
    try:
        keys = set(await ctx.ovh.list_s3_credentials(user_id))
    except OVHNotFound:
        keys = set()  # the user itself is gone
    ours = set(entry.issued)
    if entry.before_creation is not None:
        ours |= keys - entry.before_creation
    revoked = sorted(ours & keys)
    for key in revoked:
        await ctx.ovh.delete_s3_credentials(user_id, key)
    await ctx.registry.release(user_id, holder, retain_since=await _retain_since(ctx, user_id))
    return revoked


async def _check_adoptable(ctx: Context, resource: Resource, user: OVHUser, allowed_roles: frozenset[str],
                           retained: bool) -> None:
    marked = read_marker(user.description)
    if marked is not None and marked.marker.cluster != ctx.cluster_id:
        raise AdoptionRefused(f"spec.userId: OVH user {user.id} belongs to the ovh-s3-operator of another cluster "
                              f"({marked.marker.cluster}); it cannot be adopted here")
    if marked is not None:
        # The name in a description may be cut short: whose it is comes from the register, not from it.
        if not retained:
            raise AdoptionRefused(f"spec.userId: OVH user {user.id} was created by this operator for another "
                                  "resource; only a user left with deletionPolicy Retain can be adopted")
        if await ctx.ovh.list_s3_credentials(user.id):
            raise AdoptionRefused(f"spec.userId: OVH user {user.id} was retained with S3 keys its former holders "
                                  "may still have; delete them in the OVH console first")
    forbidden = sorted(set(user.roles) - allowed_roles)
    if forbidden:
        raise AccessDenied(f"spec.userId: OVH user {user.id} has roles this namespace may not use "
                           f"({', '.join(forbidden)}); adopt a user whose roles the access policies allow. "
                           + ctx.access.allowance(resource.namespace).source(resource.namespace))


async def _ensure_user(ctx: Context, resource: Resource, status: StatusWriter, spec: Spec, journal: Journal,
                       memory: Memory, *, roles: tuple[str, ...], refused: str | None) -> OVHUser | Outcome:
    """The resource's OVH user: the recorded one, one a lost answer created, or a new one with ``roles``
    (the allowed ones). ``refused``: why the spec is not allowed; an existing user is then shrunk by the
    caller, but no new user is ever created for a spec that is not allowed (status cannot open that door)."""
    settings, marker = ctx.settings, ctx.marker(resource)
    recorded = status.status
    requested_age = ctx.age(recorded.user_requested_at)
    just_requested = requested_age is not None and requested_age < settings.creation_window
    user: OVHUser | None = None
    look_up = requested_age is not None  # a creation may have been sent whose answer never came back
    own: list[OVHUser] | None = None  # the users carrying the marker, once listed
    if recorded.user_id:
        fresh = memory.fresh_user == recorded.user_id
        sent = ctx.clock()
        found = await ctx.ovh.get_user(recorded.user_id, max_age=0.0 if fresh else LISTING_MAX_AGE)
        if fresh and found is not None:
            ctx.activation.seen(found.id, sent, ok=found.status == "ok")
        if found is not None and not marker.is_on(found.description):
            journal.warn("UserNotOwned", f"status.userId names OVH user {found.id}, which does not carry this "
                                         "resource's marker; the operator ignores it and leaves it untouched")
            await status.record(user_id=None, username=None, access_key_id=None)
            look_up = True  # status may have been rewritten: this resource may well have a user
        elif found is None and just_requested:
            return Outcome.waiting("UserNotReady", f"OVH does not show the new user {recorded.user_id} yet",
                                   settings.user_poll_interval)
        elif (found is None or found.status in GONE_STATUSES) and (own := _own(await ctx.ovh.list_users(), marker)):
            look_up = True  # status named a user that is not (or no longer) this resource's: the one that is
        elif found is None or found.status in GONE_STATUSES:
            metrics.DRIFT_REPAIRS.labels("user").inc()
            message = f"OVH user {recorded.user_id} was deleted outside the operator; creating a new user and key " \
                      "if the spec is allowed"
            await status.set_ready(Outcome(False, "UserMissing", message), ctx.now())
            journal.warn("UserMissing", message)
            await status.record(user_id=None, username=None, access_key_id=None, user_requested_at=None)
            memory.forget_user()
            requested_age, just_requested, look_up = None, False, False
        else:
            user = found

    if user is None and look_up:  # look for the user by its marker
        own = own if own is not None else _own(await ctx.ovh.list_users(), marker)
        if own:
            user = own[0]
            journal.note("UserAdopted", f"Adopted OVH user {user.id}, found by the marker in its description")
            await _delete_others(ctx.ovh, own, user, journal)
            await status.record(user_id=user.id, username=user.username)
        elif just_requested:
            return Outcome.waiting("UserNotReady", "An earlier OVH user creation may not be visible yet",
                                   settings.user_poll_interval)
    if user is None:
        if refused is not None:
            raise AccessDenied(refused)
        user = await _create_user(ctx, resource, status, spec, journal, memory, roles)
    elif recorded.user_requested_at is not None:
        status.record_later(user_requested_at=None)  # OVH shows the user: a later 404 means it is gone

    if user.status != "ok":
        return _not_active(ctx, user)
    return user


def _not_active(ctx: Context, user: OVHUser) -> Outcome:
    if user.status in GONE_STATUSES:
        return Outcome.failed(UserNotReady(f"OVH user {user.id} is being deleted outside the operator; "
                                           "it will be replaced"))
    created = ctx.age(parse_time(user.creation_date))
    if created is not None and created > ctx.settings.user_ready_timeout:
        return Outcome.failed(UserNotReady(
            f"OVH user {user.id} has been {user.status!r} for {_duration(created)}; check the project in the OVH "
            "console. The operator keeps checking", reason="UserStuck", retry=Retry.CONFLICT))
    return Outcome.waiting("UserNotReady", f"Waiting for OVH to activate user {user.id} (status {user.status!r})",
                           ctx.activation.next_look(user.id, ctx.clock()))


def _duration(seconds: float) -> str:
    return f"{int(seconds)} seconds" if seconds < 120 else f"{int(seconds // 60)} minutes"


async def _create_user(ctx: Context, resource: Resource, status: StatusWriter, spec: Spec, journal: Journal,
                       memory: Memory, roles: tuple[str, ...]) -> OVHUser:
    marker = ctx.marker(resource)

    async def record_request() -> None:  # right before the request leaves, after any wait for the limiter
        await status.record(user_requested_at=ctx.now().replace(microsecond=0))

    description = marker.description(resource.namespace, resource.name, spec.description)
    try:
        user = await ctx.ovh.create_user(description, roles, before_send=record_request)
    except OVHError as error:
        if error.nothing_created:
            await status.record(user_requested_at=None)
        raise
    await status.record(user_id=user.id, username=user.username)
    journal.note("UserCreated", f"Created OVH user {user.id} ({user.username}) with roles {', '.join(roles)}")
    if not marker.is_on(user.description):
        # OVH changed the description and lost the marker: nothing could ever prove the user ours.
        await ctx.ovh.delete_user(user.id)
        await status.record(user_id=None, username=None, user_requested_at=None)
        raise OVHRejected(f"OVH stored the description of user {user.id} without the operator's marker, so the "
                          "operator deleted the user again; shorten spec.description or report this")
    memory.fresh_user, memory.fresh_policy, memory.fresh_keys = user.id, None, ()
    ctx.activation.started(user.id, ctx.clock())
    return user


async def _ensure_policy(ctx: Context, user: OVHUser, desired: dict[str, Any], journal: Journal,
                         memory: Memory, *, repair: bool) -> None:
    """Apply the policy if OVH's differs (``repair``: the spec did not change, someone changed OVH's)."""
    fresh = memory.fresh_user == user.id  # a user just created has no policy: nothing to read
    current = memory.fresh_policy if fresh else canonical(await ctx.ovh.get_policy(user.id))
    wanted = canonical(desired)
    if current == wanted:
        return
    await ctx.ovh.apply_policy(user.id, desired)
    if memory.fresh_user == user.id:
        memory.fresh_policy = wanted
    elif repair:
        metrics.DRIFT_REPAIRS.labels("policy").inc()
    journal.note("PolicyApplied",
                 f"Applied the S3 policy ({len(desired['Statement'])} statements) to OVH user {user.id}")


# --- keys and their rotation ---------------------------------------------------------------------

def _issued_at(recorded: Status, now: datetime.datetime, memory: Memory) -> datetime.datetime | None:
    """When the current key was issued, as recorded; None if unrecorded or in the future. A tenant may
    have written it: never earlier than when this process last issued a key for the resource."""
    issued = recorded.last_rotation_time
    issued = issued if issued is not None and issued <= now else None
    if memory.key_issued is not None and (issued is None or issued < memory.key_issued):
        return memory.key_issued
    return issued


def _rotation_due_at(ctx: Context, resource: Resource, spec: Spec, recorded: Status,
                     now: datetime.datetime, memory: Memory) -> datetime.datetime | None:
    """When the next rotation is due: asked for by a new value of the annotation (at most one every
    OVH_S3_OPERATOR_ROTATION_REQUEST_INTERVAL), or the interval after the key was issued; None if none is."""
    issued = _issued_at(recorded, now, memory)
    moments = []
    request = resource.annotations.get(ROTATE_ANNOTATION)
    if request is not None and request not in (recorded.last_rotation_request, recorded.pending_rotation_request):
        spacing = datetime.timedelta(seconds=ctx.settings.rotation_request_interval)
        moments.append(max(issued + spacing, now) if issued else now)
    if spec.rotation.interval is not None and issued is not None:
        moments.append(issued + datetime.timedelta(seconds=spec.rotation.interval))
    return min(moments, default=None)


def _previous_expiry(spec: Spec, recorded: Status, now: datetime.datetime, memory: Memory) -> datetime.datetime:
    """When the previous key goes: a grace period after the rotation that replaced it."""
    issued = _issued_at(recorded, now, memory)
    return issued + datetime.timedelta(seconds=spec.rotation.grace_period) if issued else now


def _key_work_due(ctx: Context, resource: Resource, spec: Spec, recorded: Status, now: datetime.datetime,
                  memory: Memory) -> bool:
    """Whether keys need work now, from the resource alone (no OVH call)."""
    due = _rotation_due_at(ctx, resource, spec, recorded, now, memory)
    if due is not None and due <= now:
        return True
    return recorded.previous_access_key_id is not None and _previous_expiry(spec, recorded, now, memory) <= now


def _next_key_work(ctx: Context, resource: Resource, spec: Spec, recorded: Status,
                   now: datetime.datetime, memory: Memory) -> float | None:
    """Seconds until the keys need work by the clock (a rotation, the end of a grace period)."""
    moments = [_rotation_due_at(ctx, resource, spec, recorded, now, memory)]
    if recorded.previous_access_key_id is not None:
        moments.append(_previous_expiry(spec, recorded, now, memory))
    due = min((m for m in moments if m is not None), default=None)
    return None if due is None else max(1.0, (due - now).total_seconds())


def _schedule(spec: Spec, recorded: Status, issued: datetime.datetime, previous: str | None) -> dict[str, Any]:
    """The status fields that show the schedule (computed, never read back as facts)."""
    interval, grace = spec.rotation.interval, spec.rotation.grace_period
    return {"last_rotation_time": issued, "previous_access_key_id": previous,
            "next_rotation_time": issued + datetime.timedelta(seconds=interval) if interval is not None else None,
            "previous_key_expiry": issued + datetime.timedelta(seconds=grace) if previous else None}


@dataclass
class KeyPlan:
    """The key the Secret must hold (with its secret when the Secret must be written), and the keys to
    delete once it does."""

    access: str
    secret: str | None = field(repr=False)
    retire: list[tuple[str, str]] = field(default_factory=list)
    """Replaced keys whose grace period is over: (key, why)."""
    strays: list[str] = field(default_factory=list)
    """Other keys of the resource (a lost creation, a key added by hand)."""


async def _plan_keys(ctx: Context, resource: Resource, spec: Spec, user: OVHUser, status: StatusWriter,
                     observed: ObservedSecret | None, journal: Journal, memory: Memory,
                     now: datetime.datetime) -> KeyPlan:
    """Choose the key, create or rotate it when needed, and say which keys go.

    The resource's keys are every key of a user it created; of an adopted user, only the keys the
    register lists as issued by the operator (other systems' keys are never touched). A rotation
    records the new key in status (the old one as previous) before the Secret gets it: after a crash
    the next reconcile writes that key and makes no third one. A created key whose answer was lost is
    a stray (found by the register's snapshot for an adopted user) and is deleted. Keys are deleted
    only after the Secret holds the new one (by the caller).
    """
    recorded = status.status
    fresh = memory.fresh_user == user.id
    keys = list(memory.fresh_keys) if fresh else await ctx.ovh.list_s3_credentials(user.id)
    ours = keys if spec.user_id is None else await _issued_keys(ctx, resource, user, keys)
    if not fresh and recorded.access_key_id and recorded.access_key_id not in keys and spec.user_id is None:
        metrics.DRIFT_REPAIRS.labels("key").inc()
        journal.warn("KeyMissing",
                     f"S3 access key {recorded.access_key_id} of OVH user {user.id} was deleted outside the operator")
    in_secret = observed.access if observed else None
    preferred = [k for k in (recorded.access_key_id, in_secret) if k and k in ours] + ours
    current = preferred[0] if preferred else None
    previous = recorded.previous_access_key_id
    previous = previous if previous in ours and previous != current else None
    issued = _issued_at(recorded, now, memory) or now
    plan = KeyPlan(access="", secret=None)

    due = _rotation_due_at(ctx, resource, spec, recorded, now, memory)
    if current is None:
        credential = await _create_key(ctx, resource, spec, user, keys, journal, memory)
        current, plan.secret, issued = credential.access, credential.secret, now
        memory.key_issued = now
    elif due is not None and due <= now:
        if previous is not None:
            plan.retire.append((previous, "a new rotation started before its grace period ended"))
        credential = await _create_key(ctx, resource, spec, user, keys, journal, memory)
        # Recorded before the Secret gets the new key: after a crash, the key to write is known and the
        # request is not served twice.
        await status.record(access_key_id=credential.access, pending_rotation_request=resource.annotations.get(
            ROTATE_ANNOTATION), **_schedule(spec, recorded, now, current))
        metrics.ROTATIONS.labels("started").inc()
        journal.note("KeyRotated", f"Rotated the S3 key of OVH user {user.id}: {credential.access} replaces "
                                   f"{current}, which stays valid for {format_duration(spec.rotation.grace_period)}")
        previous, current, plan.secret, issued = current, credential.access, credential.secret, now
        memory.key_issued = now
    if previous is not None and issued + datetime.timedelta(seconds=spec.rotation.grace_period) <= now:
        plan.retire.append((previous, "the grace period after its rotation is over"))
        previous = None
    status.record_later(**_schedule(spec, recorded, issued, previous))
    if plan.secret is None and not (observed is not None and observed.intact and observed.access == current):
        plan.secret = await ctx.ovh.get_s3_secret(user.id, current)
    plan.access = current
    retired = {key for key, _ in plan.retire}
    plan.strays = [k for k in ours if k not in (current, previous) and k not in retired]
    return plan


async def _issued_keys(ctx: Context, resource: Resource, user: OVHUser, keys: list[str]) -> list[str]:
    """The keys of an adopted user that the operator issued (the register says so), among ``keys``."""
    entry = await ctx.registry.entry(user.id)
    ours = set(entry.issued)
    if entry.before_creation is not None:  # a creation was in flight: a key that appeared since is ours
        lost = frozenset(keys) - entry.before_creation - entry.issued
        ours |= lost
        await ctx.registry.issued(user.id, resource, lost)
    if entry.issued - set(keys):
        await ctx.registry.deleted(user.id, resource, frozenset(entry.issued - set(keys)))
    return [k for k in keys if k in ours]


async def _create_key(ctx: Context, resource: Resource, spec: Spec, user: OVHUser, keys: list[str],
                      journal: Journal, memory: Memory) -> S3Credential:
    adopted = spec.user_id is not None
    if adopted:
        await ctx.registry.creating_key(user.id, resource, frozenset(keys))
    try:
        credential = await ctx.ovh.create_s3_credentials(user.id)
    except OVHError as error:
        if not error.nothing_created:
            memory.forget_user()  # a key may exist now: read the keys next time
        elif adopted:
            await ctx.registry.issued(user.id, resource, frozenset())
        raise
    if adopted:
        await ctx.registry.issued(user.id, resource, frozenset({credential.access}))
    if memory.fresh_user == user.id:
        memory.fresh_keys = (credential.access,)
    journal.note("KeyCreated", f"Created S3 access key {credential.access} for OVH user {user.id}")
    return credential


async def _delete_key(ctx: Context, resource: Resource, spec: Spec, user: OVHUser, key: str) -> None:
    await ctx.ovh.delete_s3_credentials(user.id, key)
    if spec.user_id is not None:
        await ctx.registry.deleted(user.id, resource, frozenset({key}))


def _own(users: list[OVHUser], marker: Marker) -> list[OVHUser]:
    """Live OVH users carrying the marker, oldest first."""
    return sorted((u for u in users if marker.is_on(u.description) and u.status not in GONE_STATUSES),
                  key=lambda u: u.id)


async def _delete_others(ovh: OVH, own: list[OVHUser], keep: OVHUser, journal: Journal) -> None:
    """Delete the resource's users other than ``keep``: duplicates left by answers lost while OVH hid
    the user."""
    for other in own:
        if other.id != keep.id and await ovh.delete_user(other.id):
            metrics.DRIFT_REPAIRS.labels("duplicate").inc()
            journal.note("UserDeleted", f"Deleted duplicate OVH user {other.id} (same marker as {keep.id})")


async def _delete_duplicates(ctx: Context, resource: Resource, user: OVHUser, journal: Journal) -> None:
    """The check's duplicate cleanup, best effort, from the shared user listing (refreshed at most once
    per drift interval). Users younger than the creation window are spared: a listing that old
    cannot tell them apart from one still being adopted."""
    try:
        listing = await ctx.ovh.list_users(max_age=ctx.drift_interval())
        old = [u for u in _own(listing, ctx.marker(resource))
               if (age := ctx.age(parse_time(u.creation_date))) is not None and age > ctx.settings.creation_window]
        await _delete_others(ctx.ovh, old, user, journal)
    except OperatorError as error:  # the resource itself is fine
        logger.warning("[%s] Could not clean up duplicate OVH users: %s", resource.key, error.message)


# --- deletion -----------------------------------------------------------------------------------


async def finalize(ctx: Context, resource: Resource, memory: Memory) -> Outcome:
    """Delete the resource's OVH users, wait until OVH has removed them, then release the finalizer."""
    if FINALIZER not in resource.finalizers:
        return GONE
    status = StatusWriter(ctx.kube, resource)
    journal = Journal(ctx.events, resource)
    try:
        recorded = status.status
        if recorded.user_may_exist or _deletion_of(ctx, resource)[1] is not None:  # where the user is, if recorded
            where = (recorded.project or "") if recorded.service_name is not None else project_name(resource.spec)
            allowance = ctx.access.allowance(resource.namespace)
            if not (allowance.allows_project(where) and allowance.allows_project(project_name(resource.spec))):
                # Nothing about a project the namespace may not use is looked up for it, nor told: the
                # platform's orphan sweep deletes a user carrying the marker (and lets go of an adopted one).
                journal.note("UserLeftToSweep", f"{project_title(where)} is not allowed in namespace "
                                                f"{resource.namespace}: the orphan sweep removes the OVH user")
                return await _release_finalizer(ctx, resource)
            ctx = await _in_project(ctx, resource, status, where)
        waiting = await _delete_users(ctx, resource, status, journal, memory)
        if waiting is None:
            return await _release_finalizer(ctx, resource)
        outcome = waiting
    except ResourceGone:
        return GONE
    except OperatorError as error:
        # A deletion is never abandoned (that would orphan the user): it waits for a human at worst.
        retry = Retry.LATER if error.retry is Retry.ON_CHANGE else error.retry
        outcome = Outcome(False, error.reason, f"Cannot delete the OVH user yet: {error.message}. To leave the "
                          f"user in OVH instead, remove the finalizer {FINALIZER}", retry=retry)
    try:
        if await status.set_ready(outcome, ctx.now()) and outcome.retry is not None:
            journal.warn(outcome.reason, outcome.message)
    except ResourceGone:
        return GONE
    except OperatorError:
        logger.warning("[%s] Could not record the Ready condition; will retry", resource.key)
    return outcome


async def _release_finalizer(ctx: Context, resource: Resource) -> Outcome:
    await ctx.kube.set_finalizers(resource.namespace, resource.name, [f for f in resource.finalizers if f != FINALIZER],
                                  resource.resource_version)
    return GONE


def _deletion_of(ctx: Context, resource: Resource) -> tuple[DeletionPolicy | None, int | None]:
    """What deleting does, and the adopted user id, from the raw spec (a resource is deleted even when
    its spec no longer validates). Retain counts only where an access policy allows it now."""
    user_id = resource.spec.get("userId")
    user_id = user_id if type(user_id) is int and user_id > 0 else None
    raw = resource.spec.get("deletionPolicy")
    policy = DeletionPolicy(raw) if raw in (DeletionPolicy.DELETE.value, DeletionPolicy.RETAIN.value) else None
    if policy is DeletionPolicy.RETAIN and not ctx.access.allowance(resource.namespace).allow_retain:
        policy = None
    return policy, user_id


async def _delete_users(ctx: Context, resource: Resource, status: StatusWriter, journal: Journal,
                        memory: Memory) -> Outcome | None:
    """Delete (or, with deletionPolicy Retain, leave) the resource's users; an Outcome while waiting,
    None when done."""
    settings, marker = ctx.settings, ctx.marker(resource)
    policy, adopted = _deletion_of(ctx, resource)
    if memory.deleting is None:
        if adopted is not None:
            return await _release_adopted(ctx, resource, status, journal, memory, adopted, policy)
        recorded = status.status
        requested_age = ctx.age(recorded.user_requested_at)
        if not recorded.user_id and requested_age is None:
            journal.note("NothingToDelete", "No OVH user was created for this resource; nothing to delete in OVH")
            return None
        own = {u.id for u in _own(await ctx.ovh.list_users(max_age=1.0), marker)}
        if recorded.user_id and recorded.user_id not in own:
            found = await ctx.ovh.get_user(recorded.user_id)
            if found is not None and marker.is_on(found.description) and found.status != "deleted":
                own.add(found.id)
        if requested_age is not None and requested_age < settings.creation_window and not own:
            return Outcome.waiting(DELETING, "Waiting to see whether OVH created a user for this resource",
                                   settings.user_poll_interval)
        if not own:
            journal.note("NothingToDelete", "OVH shows no user for this resource; nothing to delete in OVH")
            return None
        if policy is DeletionPolicy.RETAIN:
            for user_id in sorted(own):
                await ctx.registry.release(user_id, resource, retain_since=ctx.now())
                _note_retained(journal, user_id, recorded)
            return None
        memory.deleting = own
    for user_id in sorted(memory.deleting):
        if user_id not in memory.delete_sent:
            if await ctx.ovh.delete_user(user_id):
                journal.note("UserDeleting", f"Deleting OVH user {user_id}")
            memory.delete_sent.add(user_id)
        user = await ctx.ovh.get_user(user_id)
        if user is None or user.status == "deleted":
            memory.deleting.discard(user_id)
            ctx.activation.forget(user_id)
            journal.note("UserDeleted", f"Deleted OVH user {user_id}")
            if adopted == user_id:
                await ctx.registry.release(user_id, resource, retain_since=None)
    if memory.deleting:
        waiting_for = ", ".join(map(str, sorted(memory.deleting)))
        return Outcome.waiting(DELETING, f"Waiting for OVH to delete user {waiting_for}", settings.user_poll_interval)
    return None


def _note_retained(journal: Journal, user_id: int, recorded: Status) -> None:
    keys = ", ".join(k for k in (recorded.access_key_id, recorded.previous_access_key_id) if k) or "none recorded"
    journal.note("UserRetained", f"Left OVH user {user_id} and its S3 keys ({keys}) in OVH: spec.deletionPolicy is "
                                 "Retain. Delete them in the OVH console when no longer needed")


async def _release_adopted(ctx: Context, resource: Resource, status: StatusWriter, journal: Journal,
                           memory: Memory, user_id: int, policy: DeletionPolicy | None) -> Outcome | None:
    """Deletion of a resource that names an existing user, if this resource holds it (the register
    says so): Delete deletes the user; Retain leaves it and the keys the operator issued; without a
    policy the user stays and those keys are deleted."""
    entry = await ctx.registry.entry(user_id)
    if entry.holder is None or entry.holder.uid != resource.uid:
        journal.note("NothingToDelete", f"This resource never held OVH user {user_id}; nothing to delete in OVH")
        return None
    if policy is DeletionPolicy.DELETE:
        memory.deleting = {user_id}
        return await _delete_users(ctx, resource, status, journal, memory)
    if policy is DeletionPolicy.RETAIN:
        _note_retained(journal, user_id, resource.status)
    else:
        for key in sorted(entry.issued & set(await ctx.ovh.list_s3_credentials(user_id))):
            await ctx.ovh.delete_s3_credentials(user_id, key)
            journal.note("KeyDeleted", f"Deleted S3 access key {key} of adopted OVH user {user_id}: its resource "
                                       "is deleted")
        journal.note("UserReleased", f"Left adopted OVH user {user_id} in OVH; the keys the operator issued for it "
                                     "are deleted")
    await ctx.registry.release(user_id, resource, retain_since=await _retain_since(ctx, user_id))
    return None
