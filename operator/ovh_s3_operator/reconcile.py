"""The one level-based reconcile, and the finalizer's OVH cleanup.

``reconcile`` looks at what exists (the Secret, the OVH user, its policy and keys) and fixes what
differs from the spec. Every step is idempotent and recorded in ``status`` before the next one, so a
crash at any point resumes without duplicates:

* before ``POST /user`` the operator records ``userRequestedAt``; the user's description carries a
  marker with the resource's uid, so a user whose id was never recorded is found and adopted;
* the user id is recorded right after OVH answers; ``userRequestedAt`` stays until OVH shows the
  user, so that a brief 404 (OVH's eventual consistency) is not mistaken for a deleted user;
* an S3 key is reused when OVH still knows it; keys the Secret does not hold are deleted;
* the new Secret is written, and a previous one deleted, before the Secret name is recorded.

``full=False`` (create/update/resume/Secret events) skips OVH when the resource is already Ready for
its generation and its Secret is intact; ``full=True`` (the periodic check) always verifies OVH and
also removes duplicate users left by lost answers.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import kopf

from . import secrets
from .config import Settings
from .errors import (
    InvalidSpec,
    OperatorError,
    OVHCredentialsMissing,
    OVHCredentialsRejected,
    OVHProjectError,
    OVHRejected,
    Retry,
    UserNotReady,
    to_kopf,
)
from .k8s import ResourceGone
from .model import API_VERSION, FINALIZER, KIND, Resource, Spec, parse_spec
from .ovh_api import GONE_STATUSES, OVHClient, OVHUser
from .policy import canonical, compile_policy
from .runtime import Runtime

READY = "Ready"
DELETING = "Deleting"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _timestamp() -> str:
    return _now().strftime("%Y-%m-%dT%H:%M:%SZ")


def _age(timestamp: str | None) -> float | None:
    """Seconds since an ISO-8601 timestamp, or None when absent or unreadable."""
    if not timestamp:
        return None
    try:
        moment = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return (_now() - moment).total_seconds()


def ready_condition(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((c for c in status.get("conditions") or () if c.get("type") == READY), None)


def is_ready(resource: Resource) -> bool:
    """Ready=True, computed for the resource's current generation."""
    ready = ready_condition(resource.status) or {}
    return ready.get("status") == "True" and ready.get("observedGeneration") == resource.generation


class Status:
    """The resource's status, as read at the start of a reconcile and then as patched by it.

    Writes go straight to the API (not through kopf's deferred patch), because each must land before
    the next step runs.
    """

    def __init__(self, runtime: Runtime, resource: Resource) -> None:
        self._runtime = runtime
        self._resource = resource
        self._fields: dict[str, Any] = dict(resource.status)

    def get(self, key: str) -> Any:
        return self._fields.get(key)

    def ready_condition(self) -> Mapping[str, Any] | None:
        return ready_condition(self._fields)

    async def record(self, **fields: Any) -> None:
        """Patch these status fields now (None removes a field); no call if nothing changes."""
        if all(self._fields.get(key) == value for key, value in fields.items()):
            return
        patched = await self._runtime.kube.patch_status(self._resource, fields)
        self._fields = dict(patched.get("status") or {})

    async def set_ready(self, ready: bool, reason: str, message: str) -> bool:
        """Record the Ready condition; True if it changed."""
        status = "True" if ready else "False"
        generation = self._resource.generation
        previous = self.ready_condition() or {}
        if (previous.get("status"), previous.get("reason"), previous.get("message"),
                previous.get("observedGeneration")) == (status, reason, message, generation):
            return False
        condition = {
            "type": READY, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": previous.get("lastTransitionTime") if previous.get("status") == status
            else _timestamp(),
            "observedGeneration": generation,
        }
        await self.record(conditions=[condition], observedGeneration=generation)
        return True


@dataclass(frozen=True)
class Journal:
    """Logs what the operator did to a resource and posts it as a Kubernetes event on it."""

    resource: Resource
    logger: kopf.Logger

    def note(self, reason: str, message: str, *, warning: bool = False) -> None:
        (self.logger.warning if warning else self.logger.info)(message)
        ref = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {
            "name": self.resource.name, "namespace": self.resource.namespace, "uid": self.resource.uid}}
        # kopf only reads apiVersion, kind and metadata from the body it is given.
        (kopf.warn if warning else kopf.info)(cast(kopf.Body, ref), reason=reason, message=message)


def user_description(spec: Spec, resource: Resource) -> str:
    return f"{spec.description or resource.key} {resource.marker}"


def _own(users: list[OVHUser], resource: Resource) -> list[OVHUser]:
    """Live OVH users whose description ends with this resource's marker, oldest first."""
    own = [u for u in users if u.description.endswith(f" {resource.marker}") and u.status not in GONE_STATUSES]
    return sorted(own, key=lambda u: u.id)


async def _fresh(runtime: Runtime, resource: Resource) -> Resource | None:
    """The resource as the API has it now; None if it is gone (or was replaced by a namesake)."""
    try:
        body = await runtime.kube.read_resource(resource)
    except OperatorError as error:
        raise to_kopf(error, runtime.settings) from None
    fresh = Resource.from_body(body) if body is not None else None
    return fresh if fresh is not None and fresh.uid == resource.uid else None


async def reconcile(runtime: Runtime, resource: Resource, logger: kopf.Logger, *, full: bool) -> bool:
    """Converge one resource; True when Ready. On failure set Ready=False and raise a kopf error."""
    async with runtime.lock(resource.uid):
        fresh = await _fresh(runtime, resource)
        if fresh is None or fresh.deleting:
            return False
        status = Status(runtime, fresh)
        journal = Journal(fresh, logger)
        try:
            await _converge(runtime, fresh, status, journal, full=full)
            return True
        except ResourceGone:
            return False  # deleted meanwhile; the finalizer takes over
        except OperatorError as error:
            try:
                if await status.set_ready(False, error.reason, error.message):
                    journal.note(error.reason, error.message, warning=True)
            except (OperatorError, ResourceGone):
                logger.warning("Could not record the Ready condition; will retry")
            raise to_kopf(error, runtime.settings) from None


def _check_region(spec: Spec, settings: Settings) -> str:
    region = spec.region or settings.default_region
    if region not in settings.regions:
        raise InvalidSpec(f"spec.region: unknown region {region!r}; use one of {', '.join(settings.regions)}")
    return region


def _secret_name(spec: Spec, resource: Resource) -> str:
    name = spec.secret.name or secrets.default_name(resource)
    if len(name) > 253:
        raise InvalidSpec(f"spec.secret.name: the Secret name {name[:40]}… is longer than 253 characters; "
                          "set a shorter spec.secret.name")
    return name


async def _converge(runtime: Runtime, resource: Resource, status: Status, journal: Journal, *,
                    full: bool) -> None:
    spec = parse_spec(resource.spec)
    region = _check_region(spec, runtime.settings)
    desired_policy = compile_policy(spec.grants, spec.policy)
    secret_name = _secret_name(spec, resource)
    observed = await secrets.read(runtime.kube, resource, secret_name)

    if (not full and is_ready(resource) and status.get("userId") and status.get("secretName") == secret_name
            and observed is not None and observed.up_to_date(status.get("accessKeyId"), region)):
        return

    await _check_roles(runtime.ovh, spec)
    user = await _ensure_user(runtime, resource, status, spec, journal)
    await _ensure_policy(runtime.ovh, user, desired_policy, journal)
    access, secret, extra_keys = await _ensure_key(runtime.ovh, user, status, observed, journal)

    if secret is not None or observed is None or not observed.up_to_date(access, region):
        runtime.written_secrets[resource.uid] = await secrets.write(
            runtime.kube, resource, secret_name, observed, access=access, secret=secret, region=region)
        journal.note("SecretWritten", f"Wrote the S3 credentials of OVH user {user.id} to Secret {secret_name}")
    previous_secret = status.get("secretName")
    if (previous_secret and previous_secret != secret_name
            and await secrets.delete_if_owned(runtime.kube, resource, previous_secret)):
        journal.note("SecretMoved", f"Deleted Secret {previous_secret}: the credentials moved to Secret {secret_name}")
    await status.record(accessKeyId=access, secretName=secret_name)

    for key in extra_keys:
        await runtime.ovh.delete_s3_credentials(user.id, key)
        journal.note("KeyDeleted", f"Deleted S3 access key {key} of OVH user {user.id}: the Secret holds another key")
    if full:
        await _delete_duplicates(runtime, resource, user, journal)

    message = f"OVH user {user.id} is ready; S3 credentials are in Secret {secret_name}"
    if await status.set_ready(True, "Reconciled", message):
        journal.note("Ready", message)


async def _check_roles(ovh: OVHClient, spec: Spec) -> None:
    offered = await ovh.list_roles()
    unknown = sorted(set(spec.roles) - offered)
    if unknown:
        raise InvalidSpec(
            f"spec.roles: the OVH project does not offer {', '.join(unknown)}; available: {', '.join(sorted(offered))}"
        )


async def _ensure_user(runtime: Runtime, resource: Resource, status: Status, spec: Spec,
                       journal: Journal) -> OVHUser:
    ovh, settings = runtime.ovh, runtime.settings
    requested_age = _age(status.get("userRequestedAt"))
    just_requested = requested_age is not None and requested_age < settings.creation_window
    user: OVHUser | None = None
    user_id = status.get("userId")
    if user_id:
        user = await ovh.get_user(int(user_id))
        if user is None and just_requested:
            raise UserNotReady(f"OVH does not show the new user {user_id} yet; retrying")
        if user is None or user.status in GONE_STATUSES:
            message = f"OVH user {user_id} was deleted outside the operator; creating a new user and key"
            await status.set_ready(False, "UserMissing", message)
            journal.note("UserMissing", message, warning=True)
            await status.record(userId=None, username=None, accessKeyId=None, userRequestedAt=None)
            user, just_requested = None, False

    if user is None:
        own = _own(await ovh.list_users(), resource)
        if own:
            user = own[0]
            journal.note("UserAdopted", f"Adopted OVH user {user.id}, found by the marker in its description")
            await _delete_others(ovh, own, user, journal)
            await status.record(userId=user.id, username=user.username)
        elif just_requested:
            raise UserNotReady("An earlier OVH user creation may not be visible yet; checking again shortly")
        else:
            user = await _create_user(runtime, resource, status, spec, journal)

    if user.roles and set(user.roles) != set(spec.roles):
        raise InvalidSpec(
            f"spec.roles ({', '.join(sorted(spec.roles))}) differ from the roles of OVH user {user.id} "
            f"({', '.join(sorted(user.roles))}); OVH cannot change roles: restore spec.roles, or delete and "
            "recreate the resource to get a new user",
            reason="RolesChanged",
        )
    if user.status == "disabled":
        raise OperatorError(f"OVH user {user.id} is disabled; enable it in OVH or delete the resource",
                            reason="UserDisabled", retry=Retry.LATER)
    if user.status != "ok":
        user = await _wait_until_ok(runtime, user)
    await status.record(userRequestedAt=None)  # OVH shows the user: a later 404 means it is gone
    return user


async def _wait_until_ok(runtime: Runtime, user: OVHUser) -> OVHUser:
    settings = runtime.settings
    try:
        ready = await runtime.ovh.wait_user_ready(user.id, settings.user_wait_per_attempt)
    except UserNotReady:
        age = _age(user.creation_date)
        if age is not None and age > settings.user_ready_timeout:
            raise UserNotReady(
                f"OVH user {user.id} has been {user.status!r} for {int(age // 60)} minutes; check the project "
                "in the OVH console. The operator keeps checking",
                reason="UserStuck", retry=Retry.CONFLICT,
            ) from None
        raise
    if ready is None:
        raise UserNotReady(f"OVH does not show user {user.id} yet; retrying")
    if ready.status in GONE_STATUSES:
        raise UserNotReady(f"OVH user {user.id} is being deleted outside the operator; it will be replaced")
    return ready


async def _create_user(runtime: Runtime, resource: Resource, status: Status, spec: Spec,
                       journal: Journal) -> OVHUser:
    async def record_request() -> None:  # right before the request leaves, after any wait for the limiter
        await status.record(userRequestedAt=_timestamp())

    try:
        user = await runtime.ovh.create_user(user_description(spec, resource), spec.roles, before_send=record_request)
    except (OVHRejected, OVHCredentialsRejected, OVHCredentialsMissing, OVHProjectError):
        await status.record(userRequestedAt=None)  # OVH refused: nothing was created
        raise
    await status.record(userId=user.id, username=user.username)
    journal.note("UserCreated", f"Created OVH user {user.id} ({user.username}) with roles {', '.join(spec.roles)}")
    return user


async def _ensure_policy(ovh: OVHClient, user: OVHUser, desired: dict[str, Any], journal: Journal) -> None:
    current = await ovh.get_policy(user.id)
    if canonical(current) == canonical(desired):
        return
    await ovh.apply_policy(user.id, desired)
    journal.note("PolicyApplied",
                 f"Applied the S3 policy ({len(desired['Statement'])} statements) to OVH user {user.id}")


async def _ensure_key(ovh: OVHClient, user: OVHUser, status: Status, observed: secrets.ObservedSecret | None,
                      journal: Journal) -> tuple[str, str | None, list[str]]:
    """The access key to use, its secret if the Secret must be (re)written, and keys to delete."""
    keys = await ovh.list_s3_credentials(user.id)
    recorded = status.get("accessKeyId")
    if recorded and recorded not in keys:
        journal.note("KeyMissing", f"S3 access key {recorded} of OVH user {user.id} was deleted outside the operator",
                     warning=True)
    in_secret = observed.access if observed else None
    preferred = [k for k in (recorded, in_secret) if k and k in keys] + keys
    if not preferred:
        credential = await ovh.create_s3_credentials(user.id)
        journal.note("KeyCreated", f"Created S3 access key {credential.access} for OVH user {user.id}")
        return credential.access, credential.secret, []
    access = preferred[0]
    if observed is not None and observed.intact and observed.access == access:
        secret = None
    else:
        secret = await ovh.get_s3_secret(user.id, access)
    return access, secret, [k for k in keys if k != access]


async def _delete_others(ovh: OVHClient, own: list[OVHUser], keep: OVHUser, journal: Journal) -> None:
    """Delete the resource's users other than ``keep``: duplicates left by an answer lost while OVH hid
    the user."""
    for other in own:
        if other.id != keep.id and await ovh.delete_user(other.id):
            journal.note("UserDeleted", f"Deleted duplicate OVH user {other.id} (same marker as {keep.id})")


async def _delete_duplicates(runtime: Runtime, resource: Resource, user: OVHUser, journal: Journal) -> None:
    """The drift check's duplicate cleanup, best effort, from the shared user listing (refreshed at most
    once per drift interval). Users younger than the creation window are spared: a listing that old
    cannot tell them apart from one still being adopted."""
    try:
        listing = await runtime.ovh.list_users(max_age=runtime.settings.drift_interval)
        old = [u for u in _own(listing, resource)
               if (age := _age(u.creation_date)) is not None and age > runtime.settings.creation_window]
        await _delete_others(runtime.ovh, old, user, journal)
    except OperatorError as error:  # the resource itself is fine
        journal.logger.warning("Could not clean up duplicate OVH users: %s", error.message)


async def finalize(runtime: Runtime, resource: Resource, logger: kopf.Logger) -> None:
    """Delete the resource's OVH user(s) and wait until OVH has removed them."""
    async with runtime.lock(resource.uid):
        fresh = await _fresh(runtime, resource) or resource
        status = Status(runtime, fresh)
        journal = Journal(fresh, logger)
        try:
            await _delete_users(runtime, fresh, status, journal)
        except OperatorError as error:
            waiting = error.reason == DELETING
            if not waiting:
                error = OperatorError(
                    f"Cannot delete the OVH user yet: {error.message}. To leave the user in OVH instead, "
                    f"remove the finalizer {FINALIZER}", reason=error.reason, retry=error.retry)
            with contextlib.suppress(OperatorError, ResourceGone):
                if await status.set_ready(False, error.reason, error.message) and not waiting:
                    journal.note(error.reason, error.message, warning=True)
            raise to_kopf(error, runtime.settings, deleting=True) from None
    runtime.forget(resource.uid)


async def _delete_users(runtime: Runtime, resource: Resource, status: Status, journal: Journal) -> None:
    ovh, settings = runtime.ovh, runtime.settings
    recorded = int(status.get("userId") or 0)
    requested_age = _age(status.get("userRequestedAt"))
    if not recorded and requested_age is None:
        journal.note("NothingToDelete", "No OVH user was created for this resource; nothing to delete in OVH")
        return
    listed = {u.id for u in _own(await ovh.list_users(), resource)}
    if requested_age is not None and requested_age < settings.creation_window and recorded not in listed:
        # OVH may not show a just-created user yet: deleting now could leave it behind.
        raise UserNotReady("Waiting to see whether OVH created a user for this resource", reason=DELETING)
    user_ids = listed | ({recorded} if recorded else set())
    if not user_ids:
        journal.note("NothingToDelete", "OVH shows no user for this resource; nothing to delete in OVH")
        return
    for user_id in sorted(user_ids):
        if await ovh.delete_user(user_id):
            journal.note("UserDeleting", f"Deleting OVH user {user_id}")
        if not await ovh.wait_user_gone(user_id, settings.user_wait_per_attempt):
            raise UserNotReady(f"Waiting for OVH to delete user {user_id}", reason=DELETING)
        journal.note("UserDeleted", f"Deleted OVH user {user_id}")
