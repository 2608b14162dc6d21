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

OAuth2 service accounts use python-ovh's own client credentials flow (``ovh.oauth2``, on
requests-oauthlib), with what an operator needs on top: token requests time out; a token OVH rejects
(401) although the client still thinks it valid is renewed once and the call sent again; a 429 or 5xx
of the token endpoint is retried like any OVH call; no answer of the token endpoint is ever quoted.
requests-oauthlib logs tokens at DEBUG: its loggers are held at WARNING.

A :class:`Connection` is one credential set (python-ovh's client, the rate limiter, the clock
offset), shared by every project reached with it: OVH counts requests per consumer key or service
account. An :class:`OVHClient` is one project (its id, its caches) over a connection, which a
rotation of the credentials replaces (:meth:`OVHClient.use`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from email.utils import parsedate_to_datetime
from typing import Any

import ovh
import ovh.config
import ovh.exceptions as ovh_errors
import ovh.oauth2
import requests
import urllib3
from oauthlib.oauth2 import BackendApplicationClient
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from . import metrics
from .config import Settings
from .credentials import ENVIRONMENT, Credentials
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
for _chatty in ("requests_oauthlib", "oauthlib"):  # they log access tokens and token answers at DEBUG
    logging.getLogger(_chatty).setLevel(logging.WARNING)

RETRY_AFTER_CAP = 120.0
TOKEN_PATH = "/auth/oauth2/token"  # noqa: S105 - a path
"""Where OAuth2 tokens are asked for, beside the API's ``/1.0`` (as https://www.ovh.com/auth/oauth2/token
is for https://eu.api.ovh.com/1.0), at an endpoint given as a URL."""
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


class TokenEndpointUnavailable(ovh_errors.APIError):  # type: ignore[misc]
    """The OAuth2 token endpoint did not give a token (429, 5xx, network): the API call itself was never
    sent, so repeating it is always safe."""


def _token_failure(exc: ovh_errors.OAuth2FailureError, answer: requests.Response | None) -> ovh_errors.APIError:
    """python-ovh's OAuth2 failure, as an error that keeps the status and never quotes the answer."""
    if answer is None:  # refused before any request (e.g. a token URL that is not HTTPS)
        return exc
    status = answer.status_code
    if status == 429 or status >= 500:
        return TokenEndpointUnavailable(f"the OAuth2 token endpoint answered HTTP {status}", response=answer)
    try:
        body = answer.json()
    except ValueError:
        body = None
    code = body.get("error") if isinstance(body, dict) else None
    # The error code only (RFC 6749 §5.2: a fixed word such as invalid_client); the description is free text.
    detail = f"HTTP {status} {code}" if isinstance(code, str) and code.replace("_", "").isalnum() else f"HTTP {status}"
    return ovh_errors.OAuth2FailureError(f"the OAuth2 token endpoint refused the client ({detail})",
                                         response=answer)


class _TokenSession(ovh.oauth2.RefreshOAuth2Session):  # type: ignore[misc]
    """python-ovh's OAuth2 session, whose token requests end in :func:`_token_failure`'s errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._answers = threading.local()
        self.register_compliance_hook("access_token_response", self._keep)

    def _keep(self, answer: requests.Response) -> requests.Response:
        self._answers.last = answer
        return answer

    def fetch_token(self, *args: Any, **kwargs: Any) -> Any:
        self._answers.last = None
        try:
            return super().fetch_token(*args, **kwargs)
        except ovh_errors.OAuth2FailureError as exc:
            raise _token_failure(exc, self._answers.last) from None
        except requests.RequestException as exc:
            raise TokenEndpointUnavailable(f"network error ({type(exc).__name__}) at the OAuth2 token endpoint") \
                from None


class _OAuth2(ovh.oauth2.OAuth2):  # type: ignore[misc]
    """python-ovh's OAuth2 client credentials flow (``ovh.oauth2.OAuth2``: scope ``all``, HTTP Basic
    client authentication), with a timeout on token requests, the adapters of a given session (the
    in-process sandbox), and :meth:`renew` for a token OVH rejected before its announced expiry."""

    _token: Any
    _session: Any

    def __init__(self, client_id: str, client_secret: str, token_url: str, *, timeout: float,
                 transport: requests.Session | None) -> None:
        super().__init__(client_id, client_secret, token_url)
        self._timeout = timeout
        self._transport = transport
        self._renewing = threading.Lock()

    def _fetch_arguments(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "client_secret": self.client_secret, "timeout": self._timeout}

    def _new_session(self, token: Any = None) -> _TokenSession:
        session = _TokenSession(token_url=self.token_url,
                                client=BackendApplicationClient(client_id=self.client_id, scope=["all"]),
                                token=token, token_updater=self.token_updater,
                                auto_refresh_kwargs=self._fetch_arguments())
        if self._transport is not None:
            for prefix, adapter in self._transport.adapters.items():
                session.mount(prefix, adapter)
        return session

    @property
    def token(self) -> Any:
        if self._token is None:
            self._token = self._new_session().fetch_token(token_url=self.token_url, **self._fetch_arguments())
        return self._token

    @property
    def session(self) -> _TokenSession:
        if self._session is None:
            self._session = self._new_session(self.token)
        session: _TokenSession = self._session
        return session

    def current(self) -> str | None:
        """The access token in use, if one was fetched."""
        return str(self._token["access_token"]) if self._token else None

    def renew(self, rejected: str | None) -> None:
        """Fetch a new token, unless another thread already replaced the ``rejected`` one."""
        with self._renewing:
            if self.current() != rejected:
                return
            session = self.session
            session.token = session.fetch_token(token_url=self.token_url, **self._fetch_arguments())
            self.token_updater(session.token)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


def _token_rejected(response: requests.Response) -> bool:
    """OVH refused the bearer token: 401 (RFC 6750), or 403 with the codes OVH gives rejected credentials."""
    if response.status_code == 401:
        return True
    return response.status_code == 403 and _is_json(response) and isinstance(response.json(), dict) and \
        response.json().get("errorCode") in ("INVALID_CREDENTIAL", "NOT_CREDENTIAL")


class _GivenOnly:
    """python-ovh's configuration lookup (``ovh.config.ConfigurationManager``), finding nothing.

    python-ovh takes any credential it is not given from ``OVH_*`` variables and ``ovh.conf`` files: an
    OVHProject's application key would pick up the operator's own ``OVH_CLIENT_ID``. The operator gives
    every credential it means explicitly (its environment's through the settings, an OVHProject's from
    its Secret), so nothing may come from elsewhere.
    """

    def get(self, section: str, name: str) -> None:
        return None

    def read(self, config_file: str) -> None:
        return None


_CONSTRUCTING = threading.Lock()


class PythonOVHClient(ovh.Client):  # type: ignore[misc]  # python-ovh is untyped
    """python-ovh's client, with non-JSON error pages kept as API errors, a clock that can resync and,
    with OAuth2, :class:`_OAuth2`.

    ``session`` replaces the requests session python-ovh creates (the sandbox passes one that
    answers in-process); its adapters serve the OAuth2 sessions too.
    """

    _oauth2: Any

    def __init__(self, *, session: requests.Session | None = None, **kwargs: Any) -> None:
        with _CONSTRUCTING:  # python-ovh's constructor reads its configuration through this class
            ambient, ovh.config.ConfigurationManager = ovh.config.ConfigurationManager, _GivenOnly
            try:
                super().__init__(**kwargs)
            finally:
                ovh.config.ConfigurationManager = ambient
        self._own_session = session is None
        if session is not None:
            self._session = session
        if self._oauth2 is not None:
            self._oauth2 = _OAuth2(self._client_id, self._client_secret, self._oauth2.token_url,
                                   timeout=self._timeout, transport=session)

    def raw_call(self, method: str, path: str, data: Any = None, need_auth: bool = True,
                 headers: dict[str, str] | None = None) -> requests.Response:
        used = self._oauth2.current() if self._oauth2 is not None else None
        response: requests.Response = super().raw_call(method, path, data=data, need_auth=need_auth,
                                                        headers=None if headers is None else dict(headers))
        if need_auth and self._oauth2 is not None and _token_rejected(response):
            # OVH ended the token before the expiry it announced (or the clocks differ): renew it, once.
            self._oauth2.renew(used or self._oauth2.current())
            response = super().raw_call(method, path, data=data, need_auth=need_auth,
                                        headers=None if headers is None else dict(headers))
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

    def close(self) -> None:
        """Close the connections this client opened (never a session it was given)."""
        if self._own_session:
            self._session.close()
        if isinstance(self._oauth2, _OAuth2):
            self._oauth2.close()


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
    """True for network failures where the request cannot have reached OVH (no connection was made, or
    no OAuth2 token to send it with)."""
    if isinstance(exc, TokenEndpointUnavailable):
        return True
    cause = exc.args[1] if isinstance(exc, ovh_errors.HTTPError) and len(exc.args) > 1 else None
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(cause.args[0], "reason", None) if isinstance(cause, requests.exceptions.ConnectionError) \
        and cause.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def is_retryable(exc: BaseException, *, idempotent: bool) -> bool:
    """Whether repeating the call is both useful and safe."""
    status = _status_code(exc)
    if status == 429 or isinstance(exc, TokenEndpointUnavailable):
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
    if isinstance(exc, TokenEndpointUnavailable):
        return _ovh_message(exc)
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


def token_url(endpoint_url: str) -> str:
    """The OAuth2 token URL for an endpoint given as a URL: ``/auth/oauth2/token`` beside its ``/1.0``."""
    return endpoint_url.rstrip("/").removesuffix("/1.0") + TOKEN_PATH


def register_endpoint(endpoint: str, variable: str = "OVH_ENDPOINT") -> str:
    """python-ovh only accepts endpoint names; a URL (sandbox, proxy) is registered as its own name,
    with :func:`token_url` for OAuth2."""
    if endpoint.startswith(("http://", "https://")):
        ovh.client.ENDPOINTS.setdefault(endpoint, endpoint.rstrip("/"))
        ovh.client.OAUTH2_TOKEN_URLS.setdefault(endpoint, token_url(endpoint))
    elif endpoint not in ovh.client.ENDPOINTS:
        raise OVHCredentialsMissing(
            f"{variable} {endpoint!r} is neither a URL nor one of {', '.join(sorted(ovh.client.ENDPOINTS))}"
        )
    return endpoint


def build_client(credentials: Credentials, timeout: float, session: requests.Session | None = None,
                 ) -> PythonOVHClient:
    missing = credentials.missing()
    if missing:
        if credentials.source == ENVIRONMENT:
            raise OVHCredentialsMissing(
                f"The operator has no OVH credentials: set {', '.join(missing)} in its environment "
                "(or OVH_CLIENT_ID and OVH_CLIENT_SECRET for OAuth2)"
            )
        raise OVHCredentialsMissing(
            f"{credentials.source} holds no complete OVH credentials: set {', '.join(missing)} in it "
            "(or OVH_CLIENT_ID and OVH_CLIENT_SECRET for OAuth2)"
        )
    endpoint = register_endpoint(credentials.endpoint)
    try:
        if credentials.auth_mode == "oauth2":
            assert credentials.client_secret is not None
            return PythonOVHClient(endpoint=endpoint, client_id=credentials.client_id,
                                   client_secret=credentials.client_secret.get_secret_value(), timeout=timeout,
                                   session=session)
        assert credentials.application_secret is not None and credentials.consumer_key is not None
        return PythonOVHClient(
            endpoint=endpoint,
            application_key=credentials.application_key,
            application_secret=credentials.application_secret.get_secret_value(),
            consumer_key=credentials.consumer_key.get_secret_value(),
            timeout=timeout,
            session=session,
        )
    except ovh_errors.InvalidConfiguration as exc:
        raise OVHCredentialsMissing(f"Invalid OVH credentials configuration: {_ovh_message(exc)}") from None


class Connection:
    """One credential set: python-ovh's client, the rate limiter, the retries and the clock offset
    shared by every project reached with it."""

    def __init__(self, credentials: Credentials, settings: Settings, executor: Executor, *,
                 session: requests.Session | None = None, limiter: RateLimiter | None = None) -> None:
        self.credentials = credentials
        self._settings = settings
        self._executor = executor
        self.client: PythonOVHClient | None = None
        self.configuration_error: OVHCredentialsMissing | None = None
        try:
            self.client = build_client(credentials, settings.ovh_request_timeout, session)
        except OVHCredentialsMissing as exc:
            self.configuration_error = exc
        self.limiter = limiter or RateLimiter(settings.ovh_requests_per_second, settings.ovh_burst)
        self._clock_synced = False
        self._clock_lock = asyncio.Lock()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    async def _send(self, fn: Callable[[], Any], before_send: BeforeSend | None, what: str, project: str) -> Any:
        waited = time.monotonic()
        await self.limiter.acquire()
        metrics.LIMITER_WAIT.labels(project).observe(time.monotonic() - waited)
        if before_send is not None:
            await before_send()
        route, started = metrics.route(*what.split(" ", 1)), time.monotonic()
        try:
            answer = await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except ovh_errors.APIError as exc:
            status = _status_code(exc)
            metrics.OVH_REQUESTS.labels(project, route, str(status or 0)).inc()
            if status == 429:
                self.limiter.throttled()
                metrics.THROTTLED.labels(project).inc()
            hinted = retry_after(exc)
            if hinted:
                self.limiter.pause(hinted)
            raise
        finally:
            metrics.OVH_LATENCY.labels(route).observe(time.monotonic() - started)
        metrics.OVH_REQUESTS.labels(project, route, "200").inc()
        return answer

    async def _retrying(self, what: str, fn: Callable[[], Any], *, idempotent: bool, project: str,
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
            return await retrying(self._send, fn, before_send, what, project)
        except ovh_errors.ResourceNotFoundError:
            raise OVHNotFound(f"OVH answered 404 to {what}; checking again") from None
        except ovh_errors.APIError as exc:
            raise self._translate(exc, what, attempts=retrying.statistics.get("attempt_number", 1)) from None

    async def _sync_clock(self, client: PythonOVHClient, project: str) -> None:
        """python-ovh reads ``/auth/time`` lazily on its first signed call: once here, not once per thread."""
        async with self._clock_lock:
            if not self._clock_synced and self.credentials.auth_mode == "application":
                await self._retrying("GET /auth/time", lambda: client.time_delta, idempotent=True, project=project)
            self._clock_synced = True

    async def call(self, method: str, path: str, data: Any = None, *, idempotent: bool = True,
                   before_send: BeforeSend | None = None, project: str = "") -> Any:
        """One OVH API call with retries; raises :class:`.errors.OVHNotFound` on 404, other
        :class:`.errors.OVHError` otherwise. ``project`` labels the metrics."""
        if self.configuration_error is not None:
            raise self.configuration_error
        client = self.client
        assert client is not None
        if not self._clock_synced:
            await self._sync_clock(client, project)
        fn = functools.partial(client.call, method, path, data, True)
        retry = functools.partial(self._retrying, f"{method} {path}", fn, idempotent=idempotent, project=project,
                                  before_send=before_send)
        try:
            return await retry()
        except OVHClockRejected:
            pass
        # OVH refused the timestamp: the local clock moved against OVH's. Read the offset again, once.
        logger.warning("OVH refused the request time; reading the OVH clock again")
        client.resync_clock()
        self._clock_synced = False
        await self._sync_clock(client, project)
        return await retry()

    def _translate(self, exc: ovh_errors.APIError, what: str, *, attempts: int) -> OVHError:
        status = _status_code(exc)
        message = _ovh_message(exc)
        source = self.credentials.source
        oauth2 = self.credentials.auth_mode == "oauth2"
        if isinstance(exc, ovh_errors.OAuth2FailureError):
            return OVHCredentialsRejected(f"OVH refused the OAuth2 client ({message}); check OVH_CLIENT_ID and "
                                          f"OVH_CLIENT_SECRET in {source}")
        if oauth2 and (status == 401 or isinstance(exc, ovh_errors.InvalidCredential | ovh_errors.NotCredential)):
            return OVHCredentialsRejected(f"OVH rejected a fresh OAuth2 access token ({message}); check that the "
                                          f"service account of OVH_CLIENT_ID in {source} still exists")
        if isinstance(exc, ovh_errors.InvalidKey):
            return OVHCredentialsRejected(f"OVH rejected the application key ({message}); check OVH_APPLICATION_KEY "
                                          f"in {source}")
        if isinstance(exc, ovh_errors.InvalidCredential | ovh_errors.NotCredential) or status == 401:
            return OVHCredentialsRejected(
                f"OVH rejected the consumer key ({message}); check OVH_CONSUMER_KEY in {source} or create a new one"
            )
        if isinstance(exc, ovh_errors.NotGrantedCall | ovh_errors.Forbidden) or status == 403:
            rights = "its IAM policy" if oauth2 else "the consumer key the access rules listed in the README"
            return OVHCredentialsRejected(
                f"The OVH credentials of {source} may not call {what} ({message}); grant {rights}"
            )
        if isinstance(exc, ovh_errors.BadParametersError):
            code = _error_code(exc)
            if code == "QUERY_TIME_OUT":
                return OVHClockRejected(
                    f"OVH refused the request time ({message}); check the clock of the operator's host")
            if code == "INVALID_SIGNATURE" or "signature" in message.lower():
                return OVHCredentialsRejected(
                    f"OVH rejected the request signature ({message}); check OVH_APPLICATION_SECRET in {source}"
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


class OVHClient:
    """One OVH Public Cloud project over a :class:`Connection` (implements :class:`.ports.OVH`).

    Without ``connection``, the operator's own: its environment's credentials and ``OVH_SERVICE_NAME``.
    ``project`` names it in metrics (empty for the operator's own); ``service_hint`` is what to check
    when OVH does not know the project id; ``on_rejected`` runs when OVH rejects the credentials.
    """

    def __init__(self, settings: Settings, executor: Executor, *, session: requests.Session | None = None,
                 limiter: RateLimiter | None = None, connection: Connection | None = None,
                 service_name: str | None = None, project: str = "", service_hint: str = "OVH_SERVICE_NAME",
                 on_rejected: Callable[[], None] | None = None) -> None:
        self.connection = connection or Connection(Credentials.from_settings(settings), settings, executor,
                                                   session=session, limiter=limiter)
        self.project = project
        self._service_hint = service_hint
        self._on_rejected = on_rejected
        self._service_name: str | None = service_name if connection is not None else settings.ovh_service_name
        self._service_lock = asyncio.Lock()
        self._roles: tuple[float, dict[str, str]] | None = None  # (when read, name -> role id)
        self._roles_lock = asyncio.Lock()
        self._users: tuple[float, list[OVHUser]] | None = None  # (when listed, users)
        self._users_lock = asyncio.Lock()

    @property
    def configuration_error(self) -> OVHCredentialsMissing | None:
        return self.connection.configuration_error

    @property
    def limiter(self) -> RateLimiter:
        return self.connection.limiter

    def use(self, connection: Connection) -> None:
        """Call OVH through ``connection`` from now on (the credentials of the project were rotated)."""
        self.connection = connection

    async def call(self, method: str, path: str, data: Any = None, *, idempotent: bool = True,
                   before_send: BeforeSend | None = None) -> Any:
        """One OVH API call with retries; raises :class:`.errors.OVHNotFound` on 404, other
        :class:`.errors.OVHError` otherwise."""
        try:
            return await self.connection.call(method, path, data, idempotent=idempotent, before_send=before_send,
                                              project=self.project)
        except OVHNotFound:
            if "/user/" in path:
                self._users = None  # a user the listing shows may be gone: list again next time
            raise
        except OVHCredentialsRejected:
            if self._on_rejected is not None:
                self._on_rejected()
            raise

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
                f"check {self._service_hint}"
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

    async def verify(self) -> frozenset[str]:
        """Read the project's roles now (not from the cache): proves the credentials, their rights and the
        project id."""
        async with self._roles_lock:
            self._roles = None
        return await self.list_roles()

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
