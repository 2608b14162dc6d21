"""The OVH port: typed, async methods over python-ovh, with retries and the shared rate limiter.

python-ovh signs and sends requests but is blocking and never retries. Here every call:

* waits for the rate limiter (:mod:`.limiter`: a fair token bucket that backs off on 429);
* runs in a bounded executor, so the event loop never blocks;
* is retried with exponential backoff and full jitter on 429 (honouring ``Retry-After``), 5xx,
  network errors and non-JSON answers — except calls that create something, which are retried
  only when OVH provably did nothing (429, connection refused), so a lost answer never creates a
  duplicate;
* ends in one of the errors of :mod:`.errors`, never a raw python-ovh exception; each says whether
  OVH provably created nothing (``nothing_created``).

Two gaps of python-ovh are closed by :class:`PythonOVHClient`: an error page that is not JSON
(a 429 or 502 from a load balancer) keeps its status code and ``Retry-After`` instead of becoming
a bare ``InvalidResponse``; and the clock offset to OVH, which python-ovh reads once, is read again
when OVH answers ``QUERY_TIME_OUT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from email.utils import parsedate_to_datetime
from typing import Any

import ovh
import ovh.exceptions as ovh_errors
import requests
import urllib3
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from . import metrics
from .config import Settings
from .errors import (
    OVHClockRejected,
    OVHConflict,
    OVHCredentialsMissing,
    OVHCredentialsRejected,
    OVHError,
    OVHNotFound,
    OVHProjectError,
    OVHRejected,
    OVHUnavailable,
    UserNotReady,
)
from .limiter import RateLimiter
from .ports import BeforeSend, OVHUser, S3Credential

logger = logging.getLogger(__name__)

RETRY_AFTER_CAP = 120.0
ROLES_TTL = 3600.0  # roles of a project change rarely; new ones are seen within the hour
ACCESS_RULES: tuple[tuple[str, str], ...] = (
    ("GET", "/cloud/project/{service}/role"),
    ("GET", "/cloud/project/{service}/user"),
    ("POST", "/cloud/project/{service}/user"),
    ("GET", "/cloud/project/{service}/user/*"),
    ("POST", "/cloud/project/{service}/user/*"),
    ("PUT", "/cloud/project/{service}/user/*"),
    ("DELETE", "/cloud/project/{service}/user/*"),
)
"""Every call the operator makes, as OVH consumer-key access rules for one project (``*`` matches the
rest of the path, and ``/user/*`` does not cover ``/user`` itself, as on OVH)."""


def access_rules(service_name: str) -> list[tuple[str, str]]:
    return [(method, path.format(service=service_name)) for method, path in ACCESS_RULES]


GONE_STATUSES = ("deleting", "deleted")
"""User statuses after a deletion request (``cloud.user.UserStatusEnum``: creating, ok, deleting, deleted)."""


def user_from_api(raw: dict[str, Any]) -> OVHUser:
    roles = tuple(r["name"] if isinstance(r, dict) else str(r) for r in raw.get("roles") or ())
    return OVHUser(
        id=int(raw["id"]),
        username=str(raw.get("username", "")),
        status=str(raw.get("status", "")),
        description=str(raw.get("description") or ""),
        roles=roles,
        creation_date=raw.get("creationDate"),
        openstack_id=raw.get("openstackId"),
    )


class PythonOVHClient(ovh.Client):  # type: ignore[misc]  # python-ovh is untyped
    """python-ovh's client, with non-JSON error pages kept as API errors and a clock that can resync.

    ``session`` replaces the requests session python-ovh creates (the sandbox passes one that
    answers in-process).
    """

    def __init__(self, *, session: requests.Session | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if session is not None:
            self._session = session

    def raw_call(self, *args: Any, **kwargs: Any) -> requests.Response:
        response: requests.Response = super().raw_call(*args, **kwargs)
        if response.status_code >= 400 and not _is_json(response):
            # python-ovh would raise InvalidResponse and lose the status and headers: give it a JSON
            # error body so that it raises the APIError of that status, with the response attached.
            reason = response.reason or "error"
            message = f"HTTP {response.status_code} {reason} (the answer was not JSON)"
            response._content = json.dumps({"message": message}).encode()
            response.headers["Content-Type"] = "application/json"
        return response

    def resync_clock(self) -> None:
        """Forget the clock offset to OVH: the next signed call reads ``/auth/time`` again."""
        self._time_delta = None


def _is_json(response: requests.Response) -> bool:
    try:
        response.json()
    except ValueError:
        return False
    return True


def _status_code(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    try:
        body = response.json() if response is not None else None
    except ValueError:
        return None
    return body.get("errorCode") if isinstance(body, dict) else None


def provably_not_sent(exc: BaseException) -> bool:
    """True for network failures where the request cannot have reached OVH (no connection was made)."""
    cause = exc.args[1] if isinstance(exc, ovh_errors.HTTPError) and len(exc.args) > 1 else None
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(cause.args[0], "reason", None) if isinstance(cause, requests.exceptions.ConnectionError) \
        and cause.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def is_retryable(exc: BaseException, *, idempotent: bool) -> bool:
    """Whether repeating the call is both useful and safe."""
    status = _status_code(exc)
    if status == 429:
        return True
    if not idempotent:
        return provably_not_sent(exc)
    if isinstance(exc, ovh_errors.HTTPError | ovh_errors.InvalidResponse | ovh_errors.NetworkError):
        return True
    return type(exc) is ovh_errors.APIError and status is not None and status >= 500


def retry_after(exc: BaseException | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), if OVH sent one."""
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


class _Wait:
    """Retry-After when OVH says how long, else exponential backoff with full jitter."""

    def __init__(self, base: float, maximum: float) -> None:
        self._backoff = wait_random_exponential(multiplier=base, max=maximum)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hinted = retry_after(exc)
        return hinted if hinted is not None else float(self._backoff(state))


def describe_failure(exc: BaseException) -> str:
    """A short, secret-free description of a python-ovh failure."""
    status = _status_code(exc)
    if isinstance(exc, ovh_errors.HTTPError):
        cause = exc.args[1] if len(exc.args) > 1 else exc
        return f"network error ({type(cause).__name__})"
    if isinstance(exc, ovh_errors.InvalidResponse):
        return "an answer that is not JSON"
    if status == 429:
        return "HTTP 429 Too Many Requests"
    return f"HTTP {status}" if status else type(exc).__name__


def _ovh_message(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args and exc.args[0] else type(exc).__name__


def register_endpoint(endpoint: str) -> str:
    """python-ovh only accepts endpoint names; a URL (sandbox, proxy) is registered as its own name."""
    if endpoint.startswith(("http://", "https://")):
        ovh.client.ENDPOINTS.setdefault(endpoint, endpoint.rstrip("/"))
    elif endpoint not in ovh.client.ENDPOINTS:
        raise OVHCredentialsMissing(
            f"OVH_ENDPOINT {endpoint!r} is neither a URL nor one of {', '.join(sorted(ovh.client.ENDPOINTS))}"
        )
    return endpoint


def build_client(settings: Settings, session: requests.Session | None = None) -> PythonOVHClient:
    missing = settings.missing_ovh_credentials()
    if missing:
        raise OVHCredentialsMissing(
            f"The operator has no OVH credentials: set {', '.join(missing)} in its environment "
            "(or OVH_CLIENT_ID and OVH_CLIENT_SECRET for OAuth2)"
        )
    endpoint = register_endpoint(settings.ovh_endpoint)
    timeout = settings.ovh_request_timeout
    try:
        if settings.ovh_auth_mode == "oauth2":
            assert settings.ovh_client_secret is not None
            return PythonOVHClient(endpoint=endpoint, client_id=settings.ovh_client_id,
                                   client_secret=settings.ovh_client_secret.get_secret_value(), timeout=timeout,
                                   session=session)
        assert settings.ovh_application_secret is not None and settings.ovh_consumer_key is not None
        return PythonOVHClient(
            endpoint=endpoint,
            application_key=settings.ovh_application_key,
            application_secret=settings.ovh_application_secret.get_secret_value(),
            consumer_key=settings.ovh_consumer_key.get_secret_value(),
            timeout=timeout,
            session=session,
        )
    except ovh_errors.InvalidConfiguration as exc:
        raise OVHCredentialsMissing(f"Invalid OVH credentials configuration: {_ovh_message(exc)}") from None


class OVHClient:
    """The operator's one OVH client (implements :class:`.ports.OVH`)."""

    def __init__(self, settings: Settings, executor: Executor, *, session: requests.Session | None = None,
                 limiter: RateLimiter | None = None) -> None:
        self._settings = settings
        self._executor = executor
        self._client: PythonOVHClient | None = None
        self._config_error: OVHCredentialsMissing | None = None
        try:
            self._client = build_client(settings, session)
        except OVHCredentialsMissing as exc:
            self._config_error = exc
        self.limiter = limiter or RateLimiter(settings.ovh_requests_per_second, settings.ovh_burst)
        self._clock_synced = False
        self._clock_lock = asyncio.Lock()
        self._service_name: str | None = settings.ovh_service_name
        self._service_lock = asyncio.Lock()
        self._roles: tuple[float, dict[str, str]] | None = None  # (when read, name -> role id)
        self._roles_lock = asyncio.Lock()
        self._users: tuple[float, list[OVHUser]] | None = None  # (when listed, users)
        self._users_lock = asyncio.Lock()

    @property
    def configuration_error(self) -> OVHCredentialsMissing | None:
        return self._config_error

    # --- transport -----------------------------------------------------------------------------

    async def _send(self, fn: Callable[[], Any], before_send: BeforeSend | None, what: str) -> Any:
        waited = time.monotonic()
        await self.limiter.acquire()
        metrics.LIMITER_WAIT.observe(time.monotonic() - waited)
        if before_send is not None:
            await before_send()
        route, started = metrics.route(*what.split(" ", 1)), time.monotonic()
        try:
            answer = await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except ovh_errors.APIError as exc:
            status = _status_code(exc)
            metrics.OVH_REQUESTS.labels(route, str(status or 0)).inc()
            if status == 429:
                self.limiter.throttled()
                metrics.THROTTLED.inc()
            hinted = retry_after(exc)
            if hinted:
                self.limiter.pause(hinted)
            raise
        finally:
            metrics.OVH_LATENCY.labels(route).observe(time.monotonic() - started)
        metrics.OVH_REQUESTS.labels(route, "200").inc()
        return answer

    async def _retrying(self, what: str, fn: Callable[[], Any], *, idempotent: bool,
                        before_send: BeforeSend | None = None) -> Any:
        settings = self._settings

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            assert exc is not None and state.next_action is not None
            logger.warning("OVH %s failed with %s; retrying in %.1fs (attempt %d of %d)",
                           what, describe_failure(exc), state.next_action.sleep,
                           state.attempt_number + 1, settings.ovh_max_attempts)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(settings.ovh_max_attempts),
            wait=_Wait(settings.ovh_backoff_base, settings.ovh_backoff_max),
            retry=retry_if_exception(functools.partial(is_retryable, idempotent=idempotent)),
            before_sleep=log_retry,
            reraise=True,
        )
        try:
            return await retrying(self._send, fn, before_send, what)
        except ovh_errors.ResourceNotFoundError:
            raise OVHNotFound(f"OVH answered 404 to {what}; checking again") from None
        except ovh_errors.APIError as exc:
            raise self._translate(exc, what, attempts=retrying.statistics.get("attempt_number", 1)) from None

    async def _sync_clock(self, client: PythonOVHClient) -> None:
        """python-ovh reads ``/auth/time`` lazily on its first signed call: once here, not once per thread."""
        async with self._clock_lock:
            if not self._clock_synced and self._settings.ovh_auth_mode == "application":
                await self._retrying("GET /auth/time", lambda: client.time_delta, idempotent=True)
            self._clock_synced = True

    async def call(self, method: str, path: str, data: Any = None, *, idempotent: bool = True,
                   before_send: BeforeSend | None = None) -> Any:
        """One OVH API call with retries; raises :class:`.errors.OVHNotFound` on 404, other
        :class:`.errors.OVHError` otherwise."""
        if self._config_error is not None:
            raise self._config_error
        client = self._client
        assert client is not None
        if not self._clock_synced:
            await self._sync_clock(client)
        fn = functools.partial(client.call, method, path, data, True)
        try:
            return await self._retrying(f"{method} {path}", fn, idempotent=idempotent, before_send=before_send)
        except OVHNotFound:
            if "/user/" in path:
                self._users = None  # a user the listing shows may be gone: list again next time
            raise
        except OVHClockRejected:
            pass
        # OVH refused the timestamp: the local clock moved against OVH's. Read the offset again, once.
        logger.warning("OVH refused the request time; reading the OVH clock again")
        client.resync_clock()
        self._clock_synced = False
        await self._sync_clock(client)
        return await self._retrying(f"{method} {path}", fn, idempotent=idempotent, before_send=before_send)

    def _translate(self, exc: ovh_errors.APIError, what: str, *, attempts: int) -> OVHError:
        status = _status_code(exc)
        message = _ovh_message(exc)
        if isinstance(exc, ovh_errors.InvalidKey):
            return OVHCredentialsRejected(f"OVH rejected the application key ({message}); check OVH_APPLICATION_KEY")
        if isinstance(exc, ovh_errors.InvalidCredential | ovh_errors.NotCredential) or status == 401:
            return OVHCredentialsRejected(
                f"OVH rejected the consumer key ({message}); check OVH_CONSUMER_KEY or create a new one"
            )
        if isinstance(exc, ovh_errors.OAuth2FailureError):
            return OVHCredentialsRejected(
                f"OVH refused the OAuth2 client ({message}); check OVH_CLIENT_ID and OVH_CLIENT_SECRET"
            )
        if isinstance(exc, ovh_errors.NotGrantedCall | ovh_errors.Forbidden) or status == 403:
            return OVHCredentialsRejected(
                f"The OVH credentials may not call {what} ({message}); grant the consumer key the access "
                "rules listed in the README"
            )
        if isinstance(exc, ovh_errors.BadParametersError):
            code = _error_code(exc)
            if code == "QUERY_TIME_OUT":
                return OVHClockRejected(
                    f"OVH refused the request time ({message}); check the clock of the operator's host")
            if code == "INVALID_SIGNATURE" or "signature" in message.lower():
                return OVHCredentialsRejected(
                    f"OVH rejected the request signature ({message}); check OVH_APPLICATION_SECRET"
                )
            return OVHRejected(f"OVH refused {what}: {message}")
        if isinstance(exc, ovh_errors.ResourceConflictError):
            return OVHConflict(f"OVH answered 409 to {what}: {message}")
        if isinstance(exc, ovh_errors.ResourceExpiredError):
            return OVHProjectError(f"OVH says the project has expired or is suspended ({message}); check it "
                                   "in the OVH console")
        refused = status == 429 or provably_not_sent(exc)
        if status is not None and 400 <= status < 500 and status not in (408, 425, 429):
            return OVHRejected(f"OVH refused {what} with HTTP {status}: {message}")
        return OVHUnavailable(
            f"OVH answered {what} with {describe_failure(exc)}"
            + (f" {attempts} times" if attempts > 1 else "")
            + "; the operator keeps retrying",
            nothing_created=refused,
        )

    # --- project -------------------------------------------------------------------------------

    async def list_projects(self) -> list[str]:
        return [str(p) for p in await self.call("GET", "/cloud/project")]

    async def service_name(self) -> str:
        """``OVH_SERVICE_NAME``, or the only project of the account."""
        if self._service_name:
            return self._service_name
        async with self._service_lock:
            if not self._service_name:
                projects = await self.list_projects()
                if len(projects) != 1:
                    raise OVHProjectError(
                        f"OVH_SERVICE_NAME is not set and the OVH account has {len(projects)} cloud projects"
                        + (f" ({', '.join(projects)})" if projects else "")
                        + "; set OVH_SERVICE_NAME to the project id to use"
                    )
                self._service_name = projects[0]
            return self._service_name

    async def _project_path(self, suffix: str = "") -> str:
        return f"/cloud/project/{await self.service_name()}{suffix}"

    async def _project_call(self, suffix: str) -> Any:
        """A GET on the project itself, where a 404 means OVH_SERVICE_NAME is wrong."""
        try:
            return await self.call("GET", await self._project_path(suffix))
        except OVHNotFound:
            raise OVHProjectError(
                f"OVH has no cloud project {await self.service_name()!r} for these credentials; "
                "check OVH_SERVICE_NAME"
            ) from None

    async def _role_ids(self) -> dict[str, str]:
        """Role name → role id, as the project offers them (read at most once per ROLES_TTL, by one caller
        while the others wait for its answer)."""
        async with self._roles_lock:
            if self._roles is None or time.monotonic() - self._roles[0] > ROLES_TTL:
                raw = await self._project_call("/role")
                roles = raw.get("roles", []) if isinstance(raw, dict) else raw
                self._roles = (time.monotonic(), {str(r["name"]): str(r.get("id", r["name"])) for r in roles
                                                  if isinstance(r, dict) and "name" in r})
            return self._roles[1]

    async def list_roles(self) -> frozenset[str]:
        return frozenset(await self._role_ids())

    # --- users ---------------------------------------------------------------------------------

    async def list_users(self, *, max_age: float = 0.0) -> list[OVHUser]:
        """The project's users; with ``max_age``, a listing that old may be shared between callers."""
        async with self._users_lock if max_age else contextlib.nullcontext():
            if max_age and self._users and time.monotonic() - self._users[0] < max_age:
                return self._users[1]
            users = [user_from_api(u) for u in await self._project_call("/user")]
            self._users = (time.monotonic(), users)
            return users

    async def get_user(self, user_id: int, *, max_age: float = 0.0) -> OVHUser | None:
        """The user, None if OVH does not know it. With ``max_age``, from the shared listing if one that
        recent shows the user ``ok`` (one call for all users instead of one per user); a user on its
        way in or out is always read afresh."""
        if max_age and self._users and time.monotonic() - self._users[0] < max_age:
            listed = next((u for u in self._users[1] if u.id == user_id), None)
            if listed is not None and listed.status == "ok":
                return listed
        try:
            return user_from_api(await self.call("GET", await self._project_path(f"/user/{user_id}")))
        except OVHNotFound:
            self._users = None  # the listing may show a user that is gone: read it again next time
            return None

    async def create_user(self, description: str, roles: tuple[str, ...], *,
                          before_send: BeforeSend | None = None) -> OVHUser:
        """Create a user (the answer's password is dropped); it starts in status ``creating``."""
        raw = await self.call("POST", await self._project_path("/user"),
                              {"description": description, "roles": list(roles)}, idempotent=False,
                              before_send=before_send)
        return user_from_api(raw)

    async def set_roles(self, user_id: int, roles: tuple[str, ...]) -> None:
        """Replace the roles of an existing user (``PUT …/user/{id}/role`` with role ids, as
        terraform-provider-ovh does)."""
        ids = await self._role_ids()
        await self.call("PUT", await self._project_path(f"/user/{user_id}/role"),
                        {"rolesIds": [ids[name] for name in roles]})

    async def delete_user(self, user_id: int) -> bool:
        """Ask OVH to delete a user (asynchronous on OVH's side). False if it was already gone.

        OVH may refuse to delete a user that is still ``creating`` or already ``deleting`` (400 or
        409): that is :class:`.errors.UserNotReady`, to be tried again shortly.
        """
        try:
            await self.call("DELETE", await self._project_path(f"/user/{user_id}"))
        except OVHNotFound:
            return False
        except (OVHConflict, OVHRejected) as error:
            raise UserNotReady(f"OVH does not delete user {user_id} yet ({error.message}); trying again shortly",
                               reason="Deleting") from None
        return True

    # --- S3 credentials ------------------------------------------------------------------------

    async def list_s3_credentials(self, user_id: int) -> list[str]:
        """Access key ids of the user (OVH no longer returns their secrets here)."""
        raw = await self.call("GET", await self._project_path(f"/user/{user_id}/s3Credentials"))
        return [str(c["access"]) for c in raw]

    async def create_s3_credentials(self, user_id: int) -> S3Credential:
        raw = await self.call("POST", await self._project_path(f"/user/{user_id}/s3Credentials"),
                              idempotent=False)
        return S3Credential(access=str(raw["access"]), secret=str(raw["secret"]))

    async def get_s3_secret(self, user_id: int, access: str) -> str:
        path = await self._project_path(f"/user/{user_id}/s3Credentials/{access}/secret")
        return str((await self.call("POST", path))["secret"])

    async def delete_s3_credentials(self, user_id: int, access: str) -> None:
        with contextlib.suppress(OVHNotFound):
            await self.call("DELETE", await self._project_path(f"/user/{user_id}/s3Credentials/{access}"))

    # --- policy --------------------------------------------------------------------------------

    async def get_policy(self, user_id: int) -> dict[str, Any] | None:
        """The user's S3 policy, or None if it has none (or OVH holds something that is not JSON)."""
        try:
            raw = await self.call("GET", await self._project_path(f"/user/{user_id}/policy"))
        except OVHNotFound:
            return None
        text = raw.get("policy") if isinstance(raw, dict) else None
        if not text:
            return None
        try:
            parsed = json.loads(text)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None

    async def apply_policy(self, user_id: int, policy: dict[str, Any]) -> None:
        await self.call("POST", await self._project_path(f"/user/{user_id}/policy"),
                        {"policy": json.dumps(policy, separators=(",", ":"))})
