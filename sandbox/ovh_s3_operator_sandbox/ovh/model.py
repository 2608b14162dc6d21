"""The OVH sandbox's model of one Public Cloud project: users, their statuses, keys, policies, timers.

This is the one description of OVH behaviour in the project. The HTTP sandbox
(:mod:`.server`) puts authentication, rate limiting and fault injection in front of it; the same
pipeline also answers in-process (:meth:`.server.OVHSandbox.session`), so the operator's fast
tests run the real python-ovh client and the operator's own OVH port against this model.

Facts modelled, with their sources:

* Routes, fields and the user status enum as in OVH's published schema ``cloud.json``
  (``cloud.user.User``, ``cloud.user.UserDetail``, ``cloud.user.UserStatusEnum``,
  ``cloud.user.S3Credentials``, ``cloud.user.S3CredentialsWithSecret``,
  ``cloud.user.S3CredentialsSecretOnly``, ``cloud.storage.PolicyRaw``, ``cloud.role.Roles``,
  ``cloud.ProjectUserCreation``, ``cloud.ProjectUserRoleUpdate``); the excerpt the contract test
  checks the sandbox and the operator against is ``tests/data/ovh_cloud_schema.json``.
* ``POST …/user`` answers the new user with ``status: creating`` and its password; it becomes
  ``ok`` after ``activation`` seconds (terraform-provider-ovh waits ``creating → ok``, and treats a
  404 as deleted). ``DELETE …/user/{id}`` is asynchronous: ``deleting``, then 404 after
  ``deletion`` seconds.
* ``PUT …/user/{id}/role`` with ``rolesIds`` replaces the roles of a user in place (as
  terraform-provider-ovh's ``ovh_cloud_project_user`` updates ``role_names``).
* ``GET …/s3Credentials`` lists keys without their secret (since November 2023); the secret comes
  with ``POST …/s3Credentials`` and from ``POST …/s3Credentials/{access}/secret``. ``userId`` in a
  credential is the user's OpenStack id (32 hex characters), not the integer user id.

Decided where OVH documents nothing, choosing the stricter behaviour:

* A user is unknown (404 everywhere, absent from the list) for ``visibility_delay`` seconds after
  its creation (eventual consistency).
* Creating S3 credentials and setting the policy need an ``ok`` user (409 otherwise); reading and
  deleting keys work in any status.
* ``DELETE`` on a user that is ``creating`` or already ``deleting`` is refused with 409 when
  ``refuse_busy_delete`` is set (OVH may refuse it; the operator must wait and try again).
* A project holds at most ``max_users`` users (about 1,000 on OVH): beyond, ``POST …/user`` is a 400.
* Policies: top-level fields ``Version``, ``Id``, ``Statement``; statement fields ``Sid``,
  ``Effect``, ``Action``, ``Resource``, ``Condition``; action names are case-sensitive; ``Resource``
  is ``arn:aws:s3:::…`` or ``*`` (OVH's own guide uses ``"Resource": ["*"]``).
* ``Condition``: OVH's guide on S3 identity and access management (ovh/docs,
  ``s3_identity_and_access_management``) documents no condition at all; its folder example grants
  ``ListBucket`` on the whole bucket, which lists every key name. The operator limits listing under a
  prefix grant with ``StringLike`` on ``s3:prefix`` (AWS IAM semantics) so that a prefix grant never
  silently widens access. The sandbox accepts the AWS string and IP condition operators and refuses
  any other (stricter than an unknown behaviour); ``refuse_conditions`` makes it refuse every
  ``Condition``, to show what the operator reports if OVH ever did.
* Descriptions are kept as given, up to ``description_limit`` characters (longer ones are cut, as
  a stricter stand-in for whatever OVH does with them).
* User ids count up from 100001.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .catalog import DEFAULT_ROLES, check_policy, role, roles_document

USER_STATUSES = ("creating", "deleted", "deleting", "disabled", "ok", "updating")
"""``cloud.user.UserStatusEnum`` of OVH's published schema. Only the console (``set_user_status``)
puts a user in ``disabled`` or ``updating``: when and how OVH does is not documented."""
_ALNUM = string.ascii_letters + string.digits
_ERROR_CLASSES = {
    400: "Client::BadRequest",
    401: "Client::Unauthorized",
    403: "Client::Forbidden",
    404: "Client::NotFound",
    405: "Client::MethodNotAllowed",
    409: "Client::Conflict",
    429: "Client::TooManyRequests",
}


def token(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


class OVHApiError(Exception):
    """An error answer: HTTP status, OVH's JSON error body, extra headers."""

    def __init__(self, status: int, message: str, error_code: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.payload: dict[str, str] = {"class": _ERROR_CLASSES.get(status, "Server::InternalServerError"),
                                        "message": message}
        if error_code is not None:
            self.payload["errorCode"] = error_code
        self.headers = dict(headers or {})


def not_found(kind: str, key: object) -> OVHApiError:
    return OVHApiError(404, f"The requested object ({kind} = {key}) does not exist")


@dataclass(eq=False)
class User:
    id: int
    username: str
    description: str
    roles: list[str]
    openstack_id: str
    created: float
    creation_date: str
    status: str
    since: float
    policy: str | None = None
    credentials: dict[str, str] = field(default_factory=dict)  # access -> secret


@dataclass(frozen=True)
class Request:
    params: dict[str, str]
    body: str
    now: float


Handler = Callable[[Request], object]
_SN = r"/cloud/project/(?P<sn>[^/]+)"
_USER = _SN + r"/user/(?P<id>\d+)"
_CREDENTIAL = _USER + r"/s3Credentials/(?P<access>[^/]+)"


class OVHProject:
    """One Public Cloud project; every method is thread-safe (one lock)."""

    def __init__(self, *, activation: float = 1.0, deletion: float = 0.5, visibility_delay: float = 0.0,
                 roles: Sequence[str] = DEFAULT_ROLES, service_name: str | None = None, max_users: int = 1000,
                 description_limit: int = 255, refuse_busy_delete: bool = False, refuse_conditions: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.activation = activation
        self.deletion = deletion
        self.visibility_delay = visibility_delay
        self.max_users = max_users
        self.description_limit = description_limit
        self.refuse_busy_delete = refuse_busy_delete
        self.refuse_conditions = refuse_conditions
        self.service_name = service_name or secrets.token_hex(16)
        self.clock = clock
        self.lock = threading.RLock()
        self._roles = {name: role(name) for name in roles}
        self._users: dict[int, User] = {}
        self._next_id = 100_001
        routes: list[tuple[str, dict[str, Handler]]] = [
            (r"/cloud/project", {"GET": self._list_projects}),
            (_SN + r"/role", {"GET": self._list_roles}),
            (_SN + r"/user", {"GET": self._list_users, "POST": self._create_user}),
            (_USER, {"GET": self._get_user, "DELETE": self._delete_user}),
            (_USER + r"/role", {"PUT": self._set_roles}),
            (_USER + r"/s3Credentials", {"GET": self._list_credentials, "POST": self._create_credential}),
            (_CREDENTIAL, {"GET": self._get_credential, "DELETE": self._delete_credential}),
            (_CREDENTIAL + r"/secret", {"POST": self._get_secret}),
            (_USER + r"/policy", {"GET": self._get_policy, "POST": self._set_policy}),
        ]
        self._routes = [(re.compile(pattern), handlers) for pattern, handlers in routes]

    # -- requests -------------------------------------------------------------------------------------

    def route(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler of ``method path`` (path after ``/1.0``, without query); OVHApiError if none."""
        for pattern, handlers in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method not in handlers:
                raise OVHApiError(405, f"Method {method} is not allowed on {path}")
            params = match.groupdict()
            if params.get("sn", self.service_name) != self.service_name:
                raise not_found("serviceName", params["sn"])
            return handlers[method], params
        raise OVHApiError(404, "Got an invalid (or empty) URL")

    def handle(self, method: str, path: str, body: str) -> object:
        """Answer one authenticated request: the JSON result, or OVHApiError."""
        with self.lock:
            now = self.clock()
            self._sweep(now)
            handler, params = self.route(method, path)
            return handler(Request(params, body, now))

    # -- inspection (what a test sees through the OVH console) ------------------------------------------

    def users(self) -> list[dict[str, Any]]:
        """Snapshots of every existing user (including not-yet-visible ones), with policy and S3 secrets."""
        with self.lock:
            self._sweep(self.clock())
            return [self._snapshot(user) for user in self._users.values()]

    def user(self, user_id: int) -> dict[str, Any] | None:
        with self.lock:
            self._sweep(self.clock())
            user = self._users.get(user_id)
            return None if user is None else self._snapshot(user)

    # -- out-of-band changes (the OVH console) ----------------------------------------------------------

    def delete_user_now(self, user_id: int) -> None:
        with self.lock:
            self._existing(user_id)
            del self._users[user_id]

    def set_policy(self, user_id: int, policy: str) -> None:
        with self.lock:
            self._existing(user_id).policy = policy

    def add_credential(self, user_id: int) -> str:
        """An S3 key made by hand for a user; returns its access key id."""
        result = self.handle("POST", f"/cloud/project/{self.service_name}/user/{user_id}/s3Credentials", "")
        return str(result["access"])  # type: ignore[index]

    def delete_credential(self, user_id: int, access: str) -> None:
        with self.lock:
            del self._existing(user_id).credentials[access]

    def set_user_status(self, user_id: int, status: str) -> None:
        if status not in USER_STATUSES:
            raise ValueError(f"unknown user status {status!r}; expected one of {USER_STATUSES}")
        with self.lock:
            user = self._existing(user_id)
            user.status, user.since = status, self.clock()

    def add_user(self, description: str, roles: Sequence[str] = ("objectstore_operator",)) -> int:
        """A user made by hand in the console (already ``ok``); returns its id."""
        with self.lock:
            user = self._new_user(description, list(roles), self.clock())
            user.status = "ok"
            return user.id

    # -- state (callers hold the lock) ------------------------------------------------------------------

    def _sweep(self, now: float) -> None:
        """Timers: ``creating`` → ``ok`` after ``activation``, ``deleting`` → gone after ``deletion``."""
        for user in list(self._users.values()):
            if user.status == "creating" and now - user.since >= self.activation:
                user.status, user.since = "ok", now
            elif user.status == "deleting" and now - user.since >= self.deletion:
                del self._users[user.id]

    def _existing(self, user_id: int) -> User:
        self._sweep(self.clock())
        try:
            return self._users[user_id]
        except KeyError:
            raise KeyError(f"no OVH user {user_id} in the sandbox") from None

    def _user(self, request: Request) -> User:
        user_id = int(request.params["id"])
        user = self._users.get(user_id)
        if user is None or request.now - user.created < self.visibility_delay:
            raise not_found("userId", user_id)
        return user

    def _ready_user(self, request: Request) -> User:
        user = self._user(request)
        if user.status != "ok":
            raise OVHApiError(409, f"User {user.id} is not ready yet (status: {user.status})")
        return user

    def _credential(self, request: Request) -> tuple[User, str]:
        user, access = self._user(request), request.params["access"]
        if access not in user.credentials:
            raise not_found("access", access)
        return user, access

    def _new_user(self, description: str, roles: list[str], now: float) -> User:
        user = User(
            id=self._next_id,
            username="user-" + token(12),
            description=description[: self.description_limit],
            roles=list(dict.fromkeys(roles)),
            openstack_id=secrets.token_hex(16),
            created=now,
            creation_date=datetime.now(UTC).isoformat(timespec="seconds"),
            status="creating",
            since=now,
        )
        self._next_id += 1
        self._users[user.id] = user
        return user

    def _view(self, user: User) -> dict[str, Any]:
        return {
            "id": user.id,
            "username": user.username,
            "status": user.status,
            "description": user.description,
            "creationDate": user.creation_date,
            "openstackId": user.openstack_id,
            "roles": [self._roles[name] for name in user.roles],
        }

    def _credential_view(self, user: User, access: str) -> dict[str, Any]:
        return {"access": access, "tenantId": self.service_name, "userId": user.openstack_id}

    @staticmethod
    def _snapshot(user: User) -> dict[str, Any]:
        return {
            "id": user.id,
            "username": user.username,
            "description": user.description,
            "roles": list(user.roles),
            "status": user.status,
            "policy": user.policy,
            "credentials": [{"access": access, "secret": secret} for access, secret in user.credentials.items()],
        }

    def _check_roles(self, names: object, parameter: str) -> list[str]:
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise OVHApiError(400, f'Invalid parameter "{parameter}": expected a list')
        return names

    # -- endpoints ------------------------------------------------------------------------------------

    def _list_projects(self, request: Request) -> list[str]:
        return [self.service_name]

    def _list_roles(self, request: Request) -> dict[str, Any]:
        return roles_document(list(self._roles))

    def _list_users(self, request: Request) -> list[dict[str, Any]]:
        return [self._view(user) for user in self._users.values()
                if request.now - user.created >= self.visibility_delay]

    def _create_user(self, request: Request) -> dict[str, Any]:
        params = params_of(request.body, {"description", "role", "roles"})
        description = params.get("description") or ""
        legacy_role = params.get("role")
        roles = self._check_roles(params.get("roles") or [], "roles")
        if not isinstance(description, str):
            raise OVHApiError(400, 'Invalid parameter "description": expected a string')
        if legacy_role is not None:
            if not isinstance(legacy_role, str):
                raise OVHApiError(400, 'Invalid parameter "role": expected a role name')
            roles = [legacy_role, *roles]
        if not roles:
            raise OVHApiError(400, "At least one role is required")
        for name in roles:
            if name not in self._roles:
                raise OVHApiError(400, f'Invalid role "{name}"; available roles: {", ".join(self._roles)}')
        if len(self._users) >= self.max_users:
            raise OVHApiError(400, f"The project has reached its maximum number of users ({self.max_users})")
        user = self._new_user(description, roles, request.now)
        return {**self._view(user), "password": token(32)}

    def _get_user(self, request: Request) -> dict[str, Any]:
        return self._view(self._user(request))

    def _delete_user(self, request: Request) -> None:
        user = self._user(request)
        if self.refuse_busy_delete and user.status in ("creating", "deleting"):
            raise OVHApiError(409, f"User {user.id} cannot be deleted while {user.status}")
        if user.status != "deleting":
            user.status, user.since = "deleting", request.now

    def _set_roles(self, request: Request) -> dict[str, Any]:
        """Answers the user (``cloud.user.UserDetail``; no password, which only creation reveals)."""
        user = self._ready_user(request)
        ids = self._check_roles(params_of(request.body, {"rolesIds"}).get("rolesIds"), "rolesIds")
        by_id = {item["id"]: name for name, item in self._roles.items()}
        unknown = [role_id for role_id in ids if role_id not in by_id]
        if unknown or not ids:
            raise OVHApiError(400, f"Invalid role ids: {', '.join(unknown) or '(none given)'}")
        user.roles = list(dict.fromkeys(by_id[role_id] for role_id in ids))
        return self._view(user)

    def _list_credentials(self, request: Request) -> list[dict[str, Any]]:
        user = self._user(request)
        return [self._credential_view(user, access) for access in user.credentials]

    def _create_credential(self, request: Request) -> dict[str, Any]:
        params_of(request.body, set())
        user = self._ready_user(request)
        access, secret = secrets.token_hex(16), secrets.token_hex(16)
        user.credentials[access] = secret
        return {**self._credential_view(user, access), "secret": secret}

    def _get_credential(self, request: Request) -> dict[str, Any]:
        return self._credential_view(*self._credential(request))

    def _delete_credential(self, request: Request) -> None:
        user, access = self._credential(request)
        del user.credentials[access]

    def _get_secret(self, request: Request) -> dict[str, str]:
        user, access = self._credential(request)
        return {"secret": user.credentials[access]}

    def _get_policy(self, request: Request) -> dict[str, str]:
        user = self._user(request)
        if user.policy is None:
            raise OVHApiError(404, f"No policy is set for user {user.id}")
        return {"policy": user.policy}

    def _set_policy(self, request: Request) -> None:
        user = self._ready_user(request)
        policy = params_of(request.body, {"policy"}).get("policy")
        if policy is None:
            raise OVHApiError(400, 'Missing parameter "policy"')
        if not isinstance(policy, str):
            raise OVHApiError(400, 'Invalid parameter "policy": expected the policy document as a JSON string')
        try:
            check_policy(policy, conditions=not self.refuse_conditions)
        except ValueError as error:
            raise OVHApiError(400, f"Invalid policy: {error}") from None
        user.policy = policy


def params_of(body: str, allowed: set[str]) -> dict[str, Any]:
    """The JSON object in a request body (empty body: no parameters); unknown parameters are a 400."""
    if not body:
        return {}
    try:
        params = json.loads(body)
    except ValueError:
        raise OVHApiError(400, "The request body is not valid JSON") from None
    if not isinstance(params, dict):
        raise OVHApiError(400, "The request body must be a JSON object")
    unexpected = sorted(set(params) - allowed)
    if unexpected:
        raise OVHApiError(400, f'Unexpected parameter "{unexpected[0]}"')
    return params
