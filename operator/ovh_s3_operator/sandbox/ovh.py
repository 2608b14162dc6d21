"""OVH API sandbox: an aiohttp server answering like the OVHcloud API paths the operator uses.

It lets the operator and its tests run with the real ``ovh`` client and no OVH account::

    sandbox = OVHSandbox()
    await sandbox.start()                      # http://127.0.0.1:PORT/1.0
    ovh.client.ENDPOINTS[sandbox.url] = sandbox.url
    client = ovh.Client(endpoint=sandbox.url, **dataclasses.asdict(sandbox.credentials))

Behaviour chosen where the real API is undocumented:

* Every path except ``GET /auth/time`` is signed and checked in OVH's order: application key
  (403 ``INVALID_KEY``), consumer/timestamp/signature headers present (403 ``NOT_CREDENTIAL``), consumer
  key current (403 ``INVALID_CREDENTIAL``), timestamp within 180 s (400 ``QUERY_TIME_OUT``), signature
  over ``scheme://Host`` + raw path and query (400 ``INVALID_SIGNATURE``). Authentication comes before
  routing, so an unsigned call to an unknown path under ``/1.0`` gets 403, not 404.
* ``revoke_consumer_key()`` issues a new consumer key in ``credentials`` (and ``env()``): calls signed
  with the old one get ``INVALID_CREDENTIAL``, like after a human rotated the token.
* Rate limiting is a token bucket per authenticated consumer key; failed authentications and
  ``/auth/time`` are not counted. A refused call has no effect and answers 429 with an integer
  ``Retry-After`` ≥ 1.
* Timers are read lazily with the current attribute values: a user stays ``creating`` until
  ``activation`` seconds have passed since it entered that status, ``deleting`` users disappear after
  ``deletion`` seconds, and a user is unknown (404, absent from the list, its sub-resources 404 too)
  for ``visibility_delay`` seconds after creation. Changing an attribute affects existing users, so
  ``activation = math.inf`` then ``activation = 0`` holds and frees users at will.
* Creating S3 credentials and setting the policy need an ``ok`` user (409 otherwise); reading and
  deleting credentials work in any status. ``DELETE`` on a ``deleting`` user answers 200 again.
* User creation also accepts OVH's legacy single ``role``; unknown body parameters are 400, as is an
  empty role list. ``userId`` in S3 credentials is the user's OpenStack id (32 hex), not the integer
  user id, as on the real API.
* Policies: top-level fields ``Version``, ``Id``, ``Statement``; statement fields ``Sid``, ``Effect``,
  ``Action``, ``Resource``, ``Condition``; action names are case-sensitive. ``set_policy()`` (the
  console) stores any string without validation.
* Faults: ``after`` or ``hang`` process the request before the fault answers; then ``hang`` waits for
  ``release()`` or ``stop()``, and ``hang``/``reset`` close the connection without an answer
  (``reset`` + ``after`` is a lost answer on the network). ``release()`` is a latch: later hits of a
  released fault no longer wait. ``triggered`` is set on every hit. ``retry_after`` is sent as given
  (``2`` → ``2``, ``0.5`` → ``0.5``) so tests can ask for short waits.
* Faults match any call (``/auth/time`` included) and act before authentication and rate limiting;
  faulted calls are recorded with the status sent, 0 when the connection closes without an answer.
* User ids count up from 100001; the creation answer always says ``creating``; ``updating``,
  ``disabled`` and ``deleted`` only come from ``set_user_status()`` and are kept as set.
* ``Call.at`` is ``time.monotonic()`` when the request arrived; ``writes()`` is every POST, PUT and
  DELETE, including the read-like ``POST …/s3Credentials/{access}/secret``.
* Calls are logged at DEBUG with method, path and status only; bodies and headers are never kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import socket
import string
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .ovh_catalog import DEFAULT_ROLES, check_policy, role, roles_document

__all__ = ["DEFAULT_ROLES", "USER_STATUSES", "Call", "Fault", "OVHCredentials", "OVHSandbox"]

_log = logging.getLogger(__name__)

API_PREFIX = "/1.0"
USER_STATUSES = ("creating", "ok", "updating", "disabled", "deleting", "deleted")
TIMESTAMP_TOLERANCE = 180
_WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})
_ERROR_CLASSES = {
    400: "Client::BadRequest",
    403: "Client::Forbidden",
    404: "Client::NotFound",
    405: "Client::MethodNotAllowed",
    409: "Client::Conflict",
    429: "Client::TooManyRequests",
}
_ALNUM = string.ascii_letters + string.digits


def _token(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


@dataclass(frozen=True)
class OVHCredentials:
    application_key: str
    application_secret: str
    consumer_key: str


@dataclass(frozen=True)
class Call:
    """One request as the sandbox saw it: ``path`` is relative to ``/1.0`` with its query; never a body."""

    method: str
    path: str
    status: int
    at: float


@dataclass(eq=False, kw_only=True)
class Fault:
    """An injected failure; see ``OVHSandbox.add_fault``. ``hits`` counts the requests it answered."""

    method: str | None
    path: str | None
    status: int
    times: int
    retry_after: float | None
    body: str | None
    delay: float
    reset: bool
    after: bool
    hang: bool
    hits: int = field(default=0, init=False)
    triggered: threading.Event = field(default_factory=threading.Event, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _released: bool = field(default=False, init=False, repr=False)
    _waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(
        default_factory=list, init=False, repr=False
    )

    def release(self) -> None:
        """Let hung requests go (their connections close without an answer); later hits do not hang."""
        with self._lock:
            self._released = True
            waiters, self._waiters = self._waiters, []
        for loop, waiter in waiters:
            loop.call_soon_threadsafe(_resolve, waiter)

    def _matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and (
            self.path is None or re.search(self.path, path) is not None
        )

    async def _wait_released(self) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._released:
                return
            self._waiters.append((loop, waiter))
        await waiter

    def _response(self) -> web.Response:
        headers = {} if self.retry_after is None else {"Retry-After": f"{self.retry_after:g}"}
        if self.body is not None:
            return web.Response(status=self.status, text=self.body, content_type="text/html", headers=headers)
        return web.json_response({"message": f"injected {self.status} fault"}, status=self.status, headers=headers)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        error_code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.payload: dict[str, str] = {
            "class": _ERROR_CLASSES[status],
            "message": message,
        }
        if error_code is not None:
            self.payload["errorCode"] = error_code
        self.headers = dict(headers or {})


def _not_found(kind: str, key: object) -> _ApiError:
    return _ApiError(404, f"The requested object ({kind} = {key}) does not exist")


@dataclass(eq=False)
class _User:
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
class _Request:
    params: dict[str, str]
    body: str
    now: float


_Handler = Callable[[_Request], object]
_SN = r"/cloud/project/(?P<sn>[^/]+)"
_USER = _SN + r"/user/(?P<id>\d+)"
_CREDENTIAL = _USER + r"/s3Credentials/(?P<access>[^/]+)"


class OVHSandbox:
    """An in-process OVH API for one Public Cloud project; state and inspection methods are thread-safe."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        activation: float = 1.0,
        deletion: float = 0.5,
        rate_limit: float | None = None,
        visibility_delay: float = 0.0,
        roles: Sequence[str] = DEFAULT_ROLES,
        service_name: str | None = None,
    ) -> None:
        self.latency = latency
        self.activation = activation
        self.deletion = deletion
        self.rate_limit = rate_limit
        self.visibility_delay = visibility_delay
        self.service_name = service_name or secrets.token_hex(16)
        self.credentials = OVHCredentials(_token(16), _token(32), _token(32))
        self._roles = {name: role(name) for name in roles}
        self._lock = threading.Lock()
        self._users: dict[int, _User] = {}
        self._next_id = 100_001
        self._calls: list[Call] = []
        self._faults: list[Fault] = []
        self._hung: set[Fault] = set()
        self._buckets: dict[str, tuple[float, float]] = {}  # consumer key -> (tokens, monotonic time)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        routes: list[tuple[str, dict[str, _Handler]]] = [
            (r"/auth/time", {"GET": self._auth_time}),
            (r"/cloud/project", {"GET": self._list_projects}),
            (_SN + r"/role", {"GET": self._list_roles}),
            (_SN + r"/user", {"GET": self._list_users, "POST": self._create_user}),
            (_USER, {"GET": self._get_user, "DELETE": self._delete_user}),
            (_USER + r"/s3Credentials", {"GET": self._list_credentials, "POST": self._create_credential}),
            (_CREDENTIAL, {"GET": self._get_credential, "DELETE": self._delete_credential}),
            (_CREDENTIAL + r"/secret", {"POST": self._get_secret}),
            (_USER + r"/policy", {"GET": self._get_policy, "POST": self._set_policy}),
        ]
        self._routes = [(re.compile(pattern), handlers) for pattern, handlers in routes]

    # -- server lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._runner is not None:
            raise RuntimeError("the OVH API sandbox is already started")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.create_server((host, port))
        await web.SockSite(self._runner, sock).start()
        self._url = f"http://{host}:{sock.getsockname()[1]}{API_PREFIX}"
        _log.info("OVH API sandbox listening on %s (project %s)", self._url, self.service_name)

    async def stop(self) -> None:
        """Release hung requests and stop serving; the state is kept."""
        with self._lock:
            hung = list(self._hung)
        for fault in hung:
            fault.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the OVH API sandbox is not started")
        return self._url

    def env(self) -> dict[str, str]:
        """The operator's OVH settings for this sandbox; ``OVH_ENDPOINT`` must be registered in
        ``ovh.client.ENDPOINTS`` before python-ovh accepts it."""
        credentials = self.credentials
        return {
            "OVH_ENDPOINT": self.url,
            "OVH_APPLICATION_KEY": credentials.application_key,
            "OVH_APPLICATION_SECRET": credentials.application_secret,
            "OVH_CONSUMER_KEY": credentials.consumer_key,
            "OVH_SERVICE_NAME": self.service_name,
        }

    # -- inspection -----------------------------------------------------------------------------------

    def users(self) -> list[dict[str, Any]]:
        """Snapshots of every existing user (including not-yet-visible ones), with policy and S3 secrets."""
        with self._lock:
            self._sweep(time.monotonic())
            return [self._snapshot(user) for user in self._users.values()]

    def user(self, user_id: int) -> dict[str, Any] | None:
        with self._lock:
            self._sweep(time.monotonic())
            user = self._users.get(user_id)
            return None if user is None else self._snapshot(user)

    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def writes(self) -> list[Call]:
        """Every recorded POST, PUT and DELETE (``POST …/secret`` included, although it changes nothing)."""
        return [call for call in self.calls() if call.method in _WRITE_METHODS]

    # -- fault injection ------------------------------------------------------------------------------

    def add_fault(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int = 500,
        times: int = 1,
        retry_after: float | None = None,
        body: str | None = None,
        delay: float = 0.0,
        reset: bool = False,
        after: bool = False,
        hang: bool = False,
    ) -> Fault:
        """Answer the next ``times`` matching calls (-1: until removed) with a failure.

        ``path`` is a regex searched in the path after ``/1.0`` (query included). The fault answers
        ``status`` with a JSON error, or ``body`` as text/html; ``retry_after`` adds that header;
        ``delay`` waits first; ``reset`` closes the connection without an answer; ``after`` processes the
        request first (its side effects happen); ``hang`` processes it, sets ``triggered`` and then holds
        the connection until ``release()`` or ``stop()``, and closes it without an answer.
        """
        if times == 0 or times < -1:
            raise ValueError("times must be -1 (until removed) or at least 1")
        if path is not None:
            re.compile(path)
        fault = Fault(
            method=method,
            path=path,
            status=status,
            times=times,
            retry_after=retry_after,
            body=body,
            delay=delay,
            reset=reset,
            after=after,
            hang=hang,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove_fault(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- out-of-band changes (the OVH console) --------------------------------------------------------

    def delete_user_now(self, user_id: int) -> None:
        with self._lock:
            self._existing(user_id)
            del self._users[user_id]

    def set_policy(self, user_id: int, policy: str) -> None:
        with self._lock:
            self._existing(user_id).policy = policy

    def delete_credential(self, user_id: int, access: str) -> None:
        with self._lock:
            del self._existing(user_id).credentials[access]

    def set_user_status(self, user_id: int, status: str) -> None:
        if status not in USER_STATUSES:
            raise ValueError(f"unknown user status {status!r}; expected one of {USER_STATUSES}")
        with self._lock:
            user = self._existing(user_id)
            user.status, user.since = status, time.monotonic()

    def revoke_consumer_key(self) -> None:
        """Invalidate the consumer key and issue a new one in ``credentials``."""
        with self._lock:
            old = self.credentials
            self.credentials = OVHCredentials(old.application_key, old.application_secret, _token(32))

    # -- request handling -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        at = time.monotonic()
        method = request.method
        path = request.raw_path.removeprefix(API_PREFIX)
        body = await request.text()
        fault = self._take_fault(method, path)
        wait = self.latency + (fault.delay if fault else 0.0)
        if wait > 0:
            await asyncio.sleep(wait)
        response: web.Response | None = None
        if fault is None or fault.after or fault.hang:
            response = self._process(request, body)
        if fault is not None:
            fault.triggered.set()
            response = None if fault.reset or fault.hang else fault._response()
        status = 0 if response is None else response.status
        self._record(Call(method, path, status, at))
        if fault is not None and fault.hang:
            with self._lock:
                self._hung.add(fault)
            await fault._wait_released()
        if response is None:
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        return response

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault._matches(method, path):
                    fault.hits += 1
                    if fault.hits == fault.times:
                        self._faults.remove(fault)
                    return fault
        return None

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)
        _log.debug("%s %s -> %d", call.method, call.path, call.status)

    def _process(self, request: web.Request, body: str) -> web.Response:
        """Authenticate, rate-limit and route one request; all state changes happen here, under the lock."""
        now = time.monotonic()
        method = request.method
        try:
            if not request.path.startswith(API_PREFIX + "/"):
                raise _ApiError(404, "Got an invalid (or empty) URL")
            path = request.path.removeprefix(API_PREFIX)
            with self._lock:
                if (method, path) != ("GET", "/auth/time"):
                    consumer_key = self._authenticate(request, body)
                    self._admit(consumer_key, now)
                self._sweep(now)
                handler, params = self._route(method, path)
                result = handler(_Request(params, body, now))
            return web.json_response(result)
        except _ApiError as error:
            return web.json_response(error.payload, status=error.status, headers=error.headers)

    def _authenticate(self, request: web.Request, body: str) -> str:
        headers = request.headers
        credentials = self.credentials
        if headers.get("X-Ovh-Application") != credentials.application_key:
            raise _ApiError(403, "Invalid application key", "INVALID_KEY")
        consumer_key = headers.get("X-Ovh-Consumer")
        timestamp = headers.get("X-Ovh-Timestamp")
        signature = headers.get("X-Ovh-Signature")
        if not consumer_key or not timestamp or not signature:
            raise _ApiError(403, "You must login first", "NOT_CREDENTIAL")
        if consumer_key != credentials.consumer_key:
            raise _ApiError(403, "This credential is not valid", "INVALID_CREDENTIAL")
        if not timestamp.isdigit() or abs(int(timestamp) - time.time()) > TIMESTAMP_TOLERANCE:
            raise _ApiError(400, "Query out of time", "QUERY_TIME_OUT")
        url = f"{request.scheme}://{request.host}{request.raw_path}"
        signed = "+".join([credentials.application_secret, consumer_key, request.method, url, body, timestamp])
        expected = "$1$" + hashlib.sha1(signed.encode(), usedforsecurity=False).hexdigest()
        if not hmac.compare_digest(signature, expected):
            raise _ApiError(400, "Invalid signature", "INVALID_SIGNATURE")
        return consumer_key

    def _admit(self, consumer_key: str, now: float) -> None:
        """Token bucket per consumer key: ``rate_limit`` requests per second, burst ``max(1, rate_limit)``."""
        rate = self.rate_limit
        if not rate:
            return
        burst = max(1.0, rate)
        tokens, last = self._buckets.get(consumer_key, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens >= 1:
            self._buckets[consumer_key] = (tokens - 1, now)
            return
        self._buckets[consumer_key] = (tokens, now)
        retry_after = max(1, math.ceil((1 - tokens) / rate))
        raise _ApiError(429, "Too many requests", headers={"Retry-After": str(retry_after)})

    def _route(self, method: str, path: str) -> tuple[_Handler, dict[str, str]]:
        for pattern, handlers in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method not in handlers:
                raise _ApiError(405, f"Method {method} is not allowed on {path}")
            params = match.groupdict()
            if params.get("sn", self.service_name) != self.service_name:
                raise _not_found("serviceName", params["sn"])
            return handlers[method], params
        raise _ApiError(404, "Got an invalid (or empty) URL")

    # -- state (callers hold the lock) ------------------------------------------------------------------

    def _sweep(self, now: float) -> None:
        """Timers: ``creating`` → ``ok`` after ``activation``, ``deleting`` → gone after ``deletion``."""
        for user in list(self._users.values()):
            if user.status == "creating" and now - user.since >= self.activation:
                user.status, user.since = "ok", now
            elif user.status == "deleting" and now - user.since >= self.deletion:
                del self._users[user.id]

    def _existing(self, user_id: int) -> _User:
        self._sweep(time.monotonic())
        try:
            return self._users[user_id]
        except KeyError:
            raise KeyError(f"no OVH user {user_id} in the sandbox") from None

    def _user(self, request: _Request) -> _User:
        user_id = int(request.params["id"])
        user = self._users.get(user_id)
        if user is None or request.now - user.created < self.visibility_delay:
            raise _not_found("userId", user_id)
        return user

    def _ready_user(self, request: _Request) -> _User:
        user = self._user(request)
        if user.status != "ok":
            raise _ApiError(409, f"User {user.id} is not ready yet (status: {user.status})")
        return user

    def _credential(self, request: _Request) -> tuple[_User, str]:
        user, access = self._user(request), request.params["access"]
        if access not in user.credentials:
            raise _not_found("access", access)
        return user, access

    def _view(self, user: _User) -> dict[str, Any]:
        return {
            "id": user.id,
            "username": user.username,
            "status": user.status,
            "description": user.description,
            "creationDate": user.creation_date,
            "roles": [self._roles[name] for name in user.roles],
        }

    def _credential_view(self, user: _User, access: str) -> dict[str, Any]:
        return {"access": access, "tenantId": self.service_name, "userId": user.openstack_id}

    @staticmethod
    def _snapshot(user: _User) -> dict[str, Any]:
        return {
            "id": user.id,
            "username": user.username,
            "description": user.description,
            "roles": list(user.roles),
            "status": user.status,
            "policy": user.policy,
            "credentials": [{"access": access, "secret": secret} for access, secret in user.credentials.items()],
        }

    # -- endpoints ------------------------------------------------------------------------------------

    def _auth_time(self, request: _Request) -> int:
        return int(time.time())

    def _list_projects(self, request: _Request) -> list[str]:
        return [self.service_name]

    def _list_roles(self, request: _Request) -> dict[str, Any]:
        return roles_document(list(self._roles))

    def _list_users(self, request: _Request) -> list[dict[str, Any]]:
        return [
            self._view(user) for user in self._users.values() if request.now - user.created >= self.visibility_delay
        ]

    def _create_user(self, request: _Request) -> dict[str, Any]:
        params = _params(request.body, {"description", "role", "roles"})
        description = params.get("description") or ""
        legacy_role = params.get("role")
        roles = params.get("roles") or []
        if not isinstance(description, str):
            raise _ApiError(400, 'Invalid parameter "description": expected a string')
        if not isinstance(roles, list) or not all(isinstance(name, str) for name in roles):
            raise _ApiError(400, 'Invalid parameter "roles": expected a list of role names')
        if legacy_role is not None:
            if not isinstance(legacy_role, str):
                raise _ApiError(400, 'Invalid parameter "role": expected a role name')
            roles = [legacy_role, *roles]
        if not roles:
            raise _ApiError(400, "At least one role is required")
        for name in roles:
            if name not in self._roles:
                raise _ApiError(400, f'Invalid role "{name}"; available roles: {", ".join(self._roles)}')
        user = _User(
            id=self._next_id,
            username="user-" + _token(12),
            description=description,
            roles=list(dict.fromkeys(roles)),
            openstack_id=secrets.token_hex(16),
            created=request.now,
            creation_date=datetime.now(UTC).isoformat(timespec="seconds"),
            status="creating",
            since=request.now,
        )
        self._next_id += 1
        self._users[user.id] = user
        return {**self._view(user), "password": _token(32)}

    def _get_user(self, request: _Request) -> dict[str, Any]:
        return self._view(self._user(request))

    def _delete_user(self, request: _Request) -> None:
        user = self._user(request)
        if user.status != "deleting":
            user.status, user.since = "deleting", request.now

    def _list_credentials(self, request: _Request) -> list[dict[str, Any]]:
        user = self._user(request)
        return [self._credential_view(user, access) for access in user.credentials]

    def _create_credential(self, request: _Request) -> dict[str, Any]:
        _params(request.body, set())
        user = self._ready_user(request)
        access, secret = secrets.token_hex(16), secrets.token_hex(16)
        user.credentials[access] = secret
        return {**self._credential_view(user, access), "secret": secret}

    def _get_credential(self, request: _Request) -> dict[str, Any]:
        return self._credential_view(*self._credential(request))

    def _delete_credential(self, request: _Request) -> None:
        user, access = self._credential(request)
        del user.credentials[access]

    def _get_secret(self, request: _Request) -> dict[str, str]:
        user, access = self._credential(request)
        return {"secret": user.credentials[access]}

    def _get_policy(self, request: _Request) -> dict[str, str]:
        user = self._user(request)
        if user.policy is None:
            raise _ApiError(404, f"No policy is set for user {user.id}")
        return {"policy": user.policy}

    def _set_policy(self, request: _Request) -> None:
        user = self._ready_user(request)
        policy = _params(request.body, {"policy"}).get("policy")
        if policy is None:
            raise _ApiError(400, 'Missing parameter "policy"')
        if not isinstance(policy, str):
            raise _ApiError(400, 'Invalid parameter "policy": expected the policy document as a JSON string')
        try:
            check_policy(policy)
        except ValueError as error:
            raise _ApiError(400, f"Invalid policy: {error}") from None
        user.policy = policy


def _params(body: str, allowed: set[str]) -> dict[str, Any]:
    """The JSON object in a request body (empty body: no parameters); unknown parameters are a 400."""
    if not body:
        return {}
    try:
        params = json.loads(body)
    except ValueError:
        raise _ApiError(400, "The request body is not valid JSON") from None
    if not isinstance(params, dict):
        raise _ApiError(400, "The request body must be a JSON object")
    unexpected = sorted(set(params) - allowed)
    if unexpected:
        raise _ApiError(400, f'Unexpected parameter "{unexpected[0]}"')
    return params
