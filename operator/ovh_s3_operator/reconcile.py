"""The one level-based reconcile, and the finalizer's OVH cleanup.

``reconcile`` looks at what exists (the Secret, the OVH user, its policy and keys) and fixes what
differs from the spec. Every step is idempotent and recorded in ``status`` before the next one, so a
crash at any point resumes without duplicates:

* before ``POST /user`` the operator records ``userRequestedAt``; the user's description carries a
  marker with the resource's uid, so a user whose id was never recorded is found and adopted;
* the user id is recorded right after OVH answers;
* an S3 key is reused when OVH still knows it; keys the Secret does not hold are deleted.

``full=False`` (create/update/resume/Secret events) skips OVH when the resource is already Ready for
its generation and its Secret is intact; ``full=True`` (the drift check) always verifies OVH.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import kopf

from . import secrets
from .config import Settings
from .errors import (
    InvalidSpec,
    OperatorError,
    OVHCredentialsMissing,
    OVHCredentialsRejected,
    OVHRejected,
    Retry,
    UserNotReady,
    to_kopf,
)
from .k8s import Gone, KubeClient, new_api_client
from .model import Resource, Spec, parse_spec
from .ovh_api import OVHClient, OVHUser
from .policy import canonical, compile_policy

READY = "Ready"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _timestamp(moment: datetime.datetime | None = None) -> str:
    return (moment or _now()).strftime("%Y-%m-%dT%H:%M:%SZ")


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


@dataclass
class Runtime:
    """Process-wide state, kept in kopf's memo: clients, per-resource locks, what was recorded."""

    settings: Settings
    ovh: OVHClient
    kube: KubeClient
    executor: ThreadPoolExecutor
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _status: dict[str, dict[str, Any]] = field(default_factory=dict)
    _created: dict[str, float] = field(default_factory=dict)

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        executor = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="ovh-s3")
        return cls(settings=settings, ovh=OVHClient(settings, executor),
                   kube=KubeClient(new_api_client(), executor), executor=executor)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    def lock(self, uid: str) -> asyncio.Lock:
        return self._locks.setdefault(uid, asyncio.Lock())

    def forget(self, uid: str) -> None:
        for store in (self._locks, self._status, self._created):
            store.pop(uid, None)

    def just_created(self, uid: str) -> bool:
        """Whether this process created the resource's OVH user recently (reads may not show it yet)."""
        created = self._created.get(uid)
        return created is not None and time.monotonic() - created < self.settings.ovh_consistency_delay


class Status:
    """The resource's status as last known (kopf's body, overlaid with this process's own writes).

    Writes go straight to the API (not through kopf's deferred patch), because each must land before
    the next step runs.
    """

    def __init__(self, runtime: Runtime, resource: Resource) -> None:
        self._runtime = runtime
        self._resource = resource
        self._fields: dict[str, Any] = dict(resource.status) | runtime._status.get(resource.uid, {})

    def get(self, key: str) -> Any:
        return self._fields.get(key)

    def ready_condition(self) -> dict[str, Any] | None:
        return next((c for c in self._fields.get("conditions") or () if c.get("type") == READY), None)

    async def record(self, **fields: Any) -> None:
        """Patch these status fields now (None removes a field); no call if nothing changes."""
        if all(self._fields.get(key) == value for key, value in fields.items()):
            return
        patched = await self._runtime.kube.patch_status(self._resource, fields)
        self._fields = dict(patched.get("status") or {})
        self._runtime._status[self._resource.uid] = self._fields

    async def set_ready(self, ready: bool, reason: str, message: str) -> None:
        status = "True" if ready else "False"
        generation = self._resource.generation
        previous = self.ready_condition() or {}
        if (previous.get("status"), previous.get("reason"), previous.get("message"),
                previous.get("observedGeneration")) == (status, reason, message, generation):
            return
        changed = previous.get("status") != status
        condition = {
            "type": READY, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": _timestamp() if changed else previous.get("lastTransitionTime"),
            "observedGeneration": generation,
        }
        await self.record(conditions=[condition], observedGeneration=generation)


def user_description(spec: Spec, resource: Resource) -> str:
    return f"{spec.description or resource.key} {resource.marker}"


async def _own_users(ovh: OVHClient, resource: Resource) -> list[OVHUser]:
    """Live OVH users carrying this resource's marker, oldest first."""
    users = [u for u in await ovh.list_users()
             if resource.marker in u.description and u.status not in ("deleting", "deleted")]
    return sorted(users, key=lambda u: u.id)


async def reconcile(runtime: Runtime, resource: Resource, logger: kopf.Logger, *, full: bool) -> None:
    """Converge one resource; on failure set Ready=False and raise the matching kopf error."""
    if resource.deleting:
        return
    async with runtime.lock(resource.uid):
        status = Status(runtime, resource)
        try:
            await _converge(runtime, resource, status, logger, full=full)
        except Gone:
            return  # the resource was deleted meanwhile; the finalizer takes over
        except OperatorError as error:
            try:
                await status.set_ready(False, error.reason, error.message)
            except (OperatorError, Gone):
                logger.warning("Could not record the Ready condition; will retry")
            raise to_kopf(error, runtime.settings) from None


def _check_region(spec: Spec, settings: Settings) -> str:
    region = spec.region or settings.default_region
    if region not in settings.regions:
        raise InvalidSpec(f"spec.region: unknown region {region!r}; use one of {', '.join(settings.regions)}")
    return region


async def _converge(runtime: Runtime, resource: Resource, status: Status, logger: kopf.Logger, *,
                    full: bool) -> None:
    spec = parse_spec(resource.spec)
    region = _check_region(spec, runtime.settings)
    desired_policy = compile_policy(spec.grants, spec.policy)
    secret_name = spec.secret.name or secrets.default_name(resource)
    observed = await secrets.read(runtime.kube, resource, secret_name)

    condition = status.ready_condition() or {}
    if (not full and condition.get("status") == "True"
            and condition.get("observedGeneration") == resource.generation
            and status.get("userId") and status.get("secretName") == secret_name
            and observed is not None and observed.up_to_date(status.get("accessKeyId"), region)):
        return

    await _check_roles(runtime.ovh, spec)
    user = await _ensure_user(runtime, resource, status, spec, logger)
    await _ensure_policy(runtime.ovh, user, desired_policy, logger)
    access, secret, extra_keys = await _ensure_key(runtime.ovh, user, status, observed, logger)

    if secret is not None or observed is None or not observed.up_to_date(access, region):
        await secrets.write(runtime.kube, resource, secret_name, observed,
                            access=access, secret=secret, region=region)
        logger.info("Wrote the S3 credentials of OVH user %s to Secret %s", user.id, secret_name)
    previous_secret = status.get("secretName")
    await status.record(accessKeyId=access, secretName=secret_name)

    for key in extra_keys:
        await runtime.ovh.delete_s3_credentials(user.id, key)
        logger.info("Deleted S3 access key %s of OVH user %s: the Secret holds another key", key, user.id)
    moved = previous_secret and previous_secret != secret_name
    if moved and await secrets.delete_if_owned(runtime.kube, resource, previous_secret):
        logger.info("Deleted Secret %s: the credentials moved to Secret %s", previous_secret, secret_name)

    await status.set_ready(True, "Reconciled",
                           f"OVH user {user.id} is ready; S3 credentials are in Secret {secret_name}")


async def _check_roles(ovh: OVHClient, spec: Spec) -> None:
    offered = await ovh.list_roles()
    unknown = sorted(set(spec.roles) - offered)
    if unknown:
        raise InvalidSpec(
            f"spec.roles: the OVH project does not offer {', '.join(unknown)}; available: {', '.join(sorted(offered))}"
        )


async def _ensure_user(runtime: Runtime, resource: Resource, status: Status, spec: Spec,
                       logger: kopf.Logger) -> OVHUser:
    ovh, settings = runtime.ovh, runtime.settings
    user: OVHUser | None = None
    user_id = status.get("userId")
    if user_id:
        user = await ovh.get_user(int(user_id))
        if user is None and runtime.just_created(resource.uid):
            raise UserNotReady(f"OVH does not show the new user {user_id} yet; retrying")
        if user is None or user.status in ("deleting", "deleted"):
            logger.warning("OVH user %s was deleted outside the operator; creating a new user and key", user_id)
            await status.record(userId=None, username=None, accessKeyId=None)
            user = None

    if user is None:
        own = await _own_users(ovh, resource)
        if own:
            user = own[0]
            for duplicate in own[1:]:
                await ovh.delete_user(duplicate.id)
                logger.info("Deleted duplicate OVH user %s (same marker as user %s)", duplicate.id, user.id)
            logger.info("Adopted OVH user %s, found by the marker in its description", user.id)
            await status.record(userId=user.id, username=user.username, userRequestedAt=None)
        else:
            requested_age = _age(status.get("userRequestedAt"))
            if requested_age is not None and requested_age < settings.ovh_consistency_delay:
                raise UserNotReady("An earlier OVH user creation may not be visible yet; checking again shortly")
            user = await _create_user(runtime, resource, status, spec, logger)

    if user.roles and set(user.roles) != set(spec.roles):
        raise InvalidSpec(
            f"spec.roles ({', '.join(sorted(spec.roles))}) differ from the roles of OVH user {user.id} "
            f"({', '.join(sorted(user.roles))}); OVH cannot change roles: restore spec.roles, or delete and "
            "recreate the resource to get a new user",
            reason="RolesChanged",
        )
    if user.status == "ok":
        return user
    if user.status == "disabled":
        raise OperatorError(f"OVH user {user.id} is disabled; enable it in OVH or delete the resource",
                            reason="UserDisabled", retry=Retry.LATER)
    try:
        ready = await ovh.wait_user_ready(user.id, settings.user_wait_per_attempt)
    except UserNotReady as error:
        age = _age(user.creation_date)
        if age is not None and age > settings.user_ready_timeout:
            raise UserNotReady(
                f"OVH user {user.id} has been {user.status!r} for {int(age // 60)} minutes; check the project "
                "in the OVH console. The operator keeps checking",
                reason="UserStuck", retry=Retry.CONFLICT,
            ) from None
        raise error from None
    if ready is None:
        raise UserNotReady(f"OVH does not show user {user.id} yet; retrying")
    return ready


async def _create_user(runtime: Runtime, resource: Resource, status: Status, spec: Spec,
                       logger: kopf.Logger) -> OVHUser:
    await status.record(userRequestedAt=_timestamp())
    try:
        user = await runtime.ovh.create_user(user_description(spec, resource), spec.roles)
    except (OVHRejected, OVHCredentialsRejected, OVHCredentialsMissing):
        await status.record(userRequestedAt=None)  # OVH refused: nothing was created
        raise
    runtime._created[resource.uid] = time.monotonic()
    await status.record(userId=user.id, username=user.username, userRequestedAt=None)
    logger.info("Created OVH user %s (%s) with roles %s", user.id, user.username, ", ".join(spec.roles))
    return user


async def _ensure_policy(ovh: OVHClient, user: OVHUser, desired: dict[str, Any], logger: kopf.Logger) -> None:
    current = await ovh.get_policy(user.id)
    if canonical(current) == canonical(desired):
        return
    await ovh.apply_policy(user.id, desired)
    logger.info("Applied the S3 policy (%d statements) to OVH user %s", len(desired["Statement"]), user.id)


async def _ensure_key(ovh: OVHClient, user: OVHUser, status: Status, observed: secrets.ObservedSecret | None,
                      logger: kopf.Logger) -> tuple[str, str | None, list[str]]:
    """The access key to use, its secret if the Secret must be (re)written, and keys to delete."""
    keys = await ovh.list_s3_credentials(user.id)
    recorded = status.get("accessKeyId")
    if recorded and recorded not in keys:
        logger.warning("S3 access key %s of OVH user %s is gone from OVH; using another key", recorded, user.id)
    in_secret = observed.access if observed else None
    preferred = [k for k in (recorded, in_secret) if k and k in keys] + keys
    if not preferred:
        credential = await ovh.create_s3_credentials(user.id)
        logger.info("Created S3 access key %s for OVH user %s", credential.access, user.id)
        return credential.access, credential.secret, []
    access = preferred[0]
    if observed is not None and observed.intact and observed.access == access:
        secret = None
    else:
        secret = await ovh.get_s3_secret(user.id, access)
    return access, secret, [k for k in keys if k != access]


async def finalize(runtime: Runtime, resource: Resource, logger: kopf.Logger) -> None:
    """Delete the resource's OVH user(s) and wait until OVH has removed them."""
    async with runtime.lock(resource.uid):
        status = Status(runtime, resource)
        try:
            await _delete_users(runtime, resource, status, logger)
        except OperatorError as error:
            message = (f"Cannot delete the OVH user yet: {error.message}. To leave the user in OVH instead, "
                       "remove the finalizer s3.ovh-operator.dev/ovh-user")
            with contextlib.suppress(OperatorError, Gone):
                await status.set_ready(False, error.reason, message)
            raise to_kopf(OperatorError(message, reason=error.reason, retry=error.retry), runtime.settings) from None
    runtime.forget(resource.uid)


async def _delete_users(runtime: Runtime, resource: Resource, status: Status, logger: kopf.Logger) -> None:
    ovh = runtime.ovh
    user_ids = {int(status.get("userId"))} if status.get("userId") else set()
    if status.get("userRequestedAt"):
        user_ids |= {u.id for u in await _own_users(ovh, resource)}
    if not user_ids:
        logger.info("No OVH user was created for this resource; nothing to delete in OVH")
        return
    for user_id in sorted(user_ids):
        if await ovh.delete_user(user_id):
            logger.info("Deleting OVH user %s", user_id)
        if not await ovh.wait_user_gone(user_id, runtime.settings.user_wait_per_attempt):
            raise UserNotReady(f"OVH is still deleting user {user_id}", reason="Deleting")
        logger.info("Deleted OVH user %s", user_id)

