"""The OVH API sandbox: authentication, access rules, rate limiting and faults in front of the model.

It answers over HTTP (aiohttp) and in-process (a ``requests`` session whose adapter calls the same
pipeline without a socket); the operator and its tests use the real ``ovh`` client either way::

    sandbox = OVHSandbox()
    await sandbox.start()                      # http://127.0.0.1:PORT/1.0
    ovh.client.ENDPOINTS[sandbox.url] = sandbox.url
    client = ovh.Client(endpoint=sandbox.url, **dataclasses.asdict(sandbox.credentials))

Behaviour, where OVH documents it (python-ovh's ``client.py`` for signatures and error codes):

* Every path except ``GET /auth/time`` is signed and checked in OVH's order: application key
  (403 ``INVALID_KEY``), consumer/timestamp/signature headers present (403 ``NOT_CREDENTIAL``),
  consumer key current (403 ``INVALID_CREDENTIAL``), timestamp within 180 s of the server's clock
  (400 ``QUERY_TIME_OUT``), signature over ``scheme://Host`` + raw path and query
  (400 ``INVALID_SIGNATURE``), then the consumer key's access rules (403 ``NOT_GRANTED_CALL``;
  ``/cloud/project/*`` does not cover ``/cloud/project`` itself, as on OVH).
* ``POST /auth/credential`` (signed by no one, only the application key) answers a new consumer key
  ``pendingValidation`` with its ``validationUrl``, as python-ovh's ``new_consumer_key_request()``
  expects; ``validate_consumer_key()`` stands for the account owner opening that URL. Each consumer
  key carries its access rules (``access_rules``: ``{service}`` stands for the project id).
* ``revoke_consumer_key()`` issues a new consumer key with the same rules: calls signed with the old
  one get ``INVALID_CREDENTIAL``, as after a human rotated the token. ``clock_offset`` moves the
  server's clock (``/auth/time`` and the timestamp check) to simulate a drifting client clock.
* One sandbox is one OVH account: it holds one project, and more with ``add_project()``
  (``GET /cloud/project`` lists them all; user ids count from 100001 in each, so the same id names
  different users in two projects). ``add_consumer_key()`` gives the application another consumer
  key with its own access rules, e.g. for one project only.
* OAuth2 service accounts (``add_oauth2_client()``; one is made at start, ``oauth2``): the client
  credentials grant at ``POST /auth/oauth2/token`` (outside ``/1.0``, like
  ``https://www.ovh.com/auth/oauth2/token`` beside ``https://eu.api.ovh.com/1.0``). What is known, and
  from where: python-ovh (``ovh/oauth2.py``, ``tests/test_client.py``) posts
  ``grant_type=client_credentials&scope=all`` form-encoded with the client in HTTP Basic auth, and
  expects ``{"access_token", "token_type": "Bearer", "expires_in", "scope": "all"}``; an unknown client
  gets ``{"error": "invalid_client", "error_description": "ovhcloud oauth2 client does not exists"}``
  (the answer python-ovh's tests replay); go-ovh (vendored by terraform-provider-ovh,
  ``ovh/configuration.go``) asks for the same scope with golang.org/x/oauth2's client credentials flow.
  API calls then carry ``Authorization: Bearer <token>``. What OVH does not document, decided the
  stricter way (RFC 6749 and RFC 6750 where they say): a bad client is a 401 (with
  ``WWW-Authenticate: Basic`` when it authenticated that way); the client may authenticate with HTTP
  Basic or in the body, not both (400 ``invalid_request``); only ``grant_type=client_credentials`` (400
  ``unsupported_grant_type``) and ``scope=all`` (400 ``invalid_scope``) are accepted, form-encoded only;
  a token lives ``token_lifetime`` seconds (3600 unless set); an expired or unknown token gets 401
  ``Client::Unauthorized`` in OVH's error shape, with ``WWW-Authenticate: Bearer error="invalid_token"``.
  ``expire_tokens()`` ends every token now, as a server-side expiry the client did not see coming.
  A service account's rights (OVH's IAM policies) are modelled as access rules, like a consumer key's.
* ``start(tls=True)`` serves HTTPS with a throwaway CA (``ca_pem``): requests-oauthlib refuses to send
  tokens or client secrets over plain HTTP, as OVH serves only HTTPS. In-process, the endpoint is
  ``https://<name>.invalid/1.0`` (``name`` tells several sandboxes, i.e. accounts, apart).

Decided where OVH documents nothing (see also :mod:`.model`):

* Rate limiting is a token bucket per consumer key (``rate_limit`` a second, ``burst`` at once);
  failed authentications and ``/auth/time`` are not counted. A refused call has no effect and
  answers 429 with an integer ``Retry-After`` ≥ 1.
* Faults match any call (``/auth/time`` included) and act before authentication and rate limiting;
  faulted calls are recorded with the status sent, 0 when the connection closes without an answer.
  ``after`` or ``hang`` process the request before the fault answers; then ``hang`` waits for
  ``release()`` or ``stop()``, and ``hang``/``reset`` close the connection without an answer
  (``reset`` + ``after`` is a lost answer). ``body`` answers a non-JSON page (``text/html``), as a
  load balancer does. ``retry_after`` is sent as given.
* ``Call.at`` is ``time.monotonic()`` when the request arrived; ``writes()`` is every POST, PUT and
  DELETE, including the read-like ``POST …/s3Credentials/{access}/secret``.
* Calls are logged at DEBUG with method, path and status only; bodies and headers are never kept.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
import requests.adapters
from aiohttp import web

from ..kube.tls import make_certificates
from .catalog import DEFAULT_ROLES
from .model import OVHApiError, OVHProject, not_found, params_of, token

__all__ = ["ALL_RULES", "DEFAULT_ROLES", "Call", "Fault", "OAuth2Credentials", "OVHCredentials", "OVHSandbox"]

_log = logging.getLogger(__name__)

API_PREFIX = "/1.0"
TOKEN_PATH = "/auth/oauth2/token"  # noqa: S105 - a path
IN_PROCESS_NAME = "ovh-sandbox"
TIMESTAMP_TOLERANCE = 180
TOKEN_LIFETIME = 3600.0
_PROJECT_PATH = re.compile(r"/cloud/project/([^/]+)")
_WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})
_RULE_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
ALL_RULES: tuple[tuple[str, str], ...] = tuple((method, "/*") for method in ("GET", "POST", "PUT", "DELETE"))


@dataclass(frozen=True)
class OVHCredentials:
    application_key: str
    application_secret: str
    consumer_key: str


@dataclass(frozen=True)
class OAuth2Credentials:
    """An OAuth2 service account: python-ovh's ``client_id`` and ``client_secret``."""

    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class Call:
    """One request as the sandbox saw it: ``path`` is relative to ``/1.0`` with its query; never a body."""

    method: str
    path: str
    status: int
    at: float


@dataclass(eq=False, kw_only=True)
class Fault:
    """An injected failure; see :meth:`OVHSandbox.add_fault`. ``hits`` counts the requests it answered."""

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
    _released: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    def release(self) -> None:
        """Let hung requests go (their connections close without an answer); later hits do not hang."""
        self._released.set()

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and (
            self.path is None or re.search(self.path, path) is not None
        )

    def answer(self) -> tuple[int, dict[str, str], str]:
        headers = {} if self.retry_after is None else {"Retry-After": f"{self.retry_after:g}"}
        if self.body is not None:
            return self.status, {**headers, "Content-Type": "text/html"}, self.body
        body = json.dumps({"message": f"injected {self.status} fault"})
        return self.status, {**headers, "Content-Type": "application/json"}, body


@dataclass(frozen=True)
class Answer:
    """What the sandbox answers: None for ``status`` means the connection closes without an answer."""

    status: int | None
    headers: dict[str, str]
    body: str
    hang: Fault | None = None


def _rule_pattern(path: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", path)))


class OVHSandbox:
    """The OVH API for one Public Cloud project; state and inspection methods are thread-safe."""

    def __init__(self, *, latency: float = 0.0, activation: float = 1.0, deletion: float = 0.5,
                 rate_limit: float | None = None, burst: float | None = None, visibility_delay: float = 0.0,
                 roles: Sequence[str] = DEFAULT_ROLES, service_name: str | None = None, max_users: int = 1000,
                 access_rules: Sequence[tuple[str, str]] = ALL_RULES, token_lifetime: float = TOKEN_LIFETIME,
                 name: str = IN_PROCESS_NAME) -> None:
        self._project_options: dict[str, Any] = {"activation": activation, "deletion": deletion,
                                                 "visibility_delay": visibility_delay, "roles": roles,
                                                 "max_users": max_users}
        self.project = OVHProject(service_name=service_name, **self._project_options)
        self.projects: dict[str, OVHProject] = {self.project.service_name: self.project}
        self.latency = latency
        self.rate_limit = rate_limit
        self.burst = burst
        self.token_lifetime = token_lifetime
        self.clock_offset = 0.0
        self.name = name
        self.credentials = OVHCredentials(token(16), token(32), token(32))
        # Who may call what: consumer keys, and "oauth2:<client id>" for service accounts.
        self._rules: dict[str, list[tuple[str, str]]] = {}
        self._pending: dict[str, list[tuple[str, str]]] = {}  # requested, not validated yet
        self._clients: dict[str, str] = {}  # OAuth2 client id -> client secret
        self._tokens: dict[str, tuple[str, float]] = {}  # access token -> (client id, expiry, monotonic)
        self._granted: list[str] = []  # every access token granted (for leak checks)
        self._lock = threading.Lock()
        self.set_access_rules(access_rules)
        self.oauth2 = self.add_oauth2_client(access_rules)
        self._calls: list[Call] = []
        self._faults: list[Fault] = []
        self._hung: set[Fault] = set()
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, monotonic time)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._ca_pem: bytes | None = None

    @property
    def service_name(self) -> str:
        return self.project.service_name

    def add_project(self, service_name: str | None = None, **options: Any) -> OVHProject:
        """Another project of this account (the first one's timers and roles unless ``options`` say)."""
        project = OVHProject(service_name=service_name, **{**self._project_options, **options})
        with self._lock:
            self.projects[project.service_name] = project
        return project

    # -- server lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, tls: bool = False) -> None:
        """Serve on ``host:port`` (0: any free port); ``tls``: HTTPS, with a certificate of its own CA
        (:attr:`ca_pem`)."""
        if self._runner is not None:
            raise RuntimeError("the OVH API sandbox is already started")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.create_server((host, port))
        context: ssl.SSLContext | None = None
        if tls:
            certificates = make_certificates(host, "ovh-sandbox")
            context, self._ca_pem = certificates.server_context(), certificates.ca_pem
        await web.SockSite(self._runner, sock, ssl_context=context).start()
        self._url = f"{'https' if tls else 'http'}://{host}:{sock.getsockname()[1]}{API_PREFIX}"
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
        """The HTTP(S) endpoint once started; before, the in-process one (see :meth:`session`)."""
        return self._url or f"https://{self.name}.invalid{API_PREFIX}"

    @property
    def token_url(self) -> str:
        """Where OAuth2 tokens are granted: ``/auth/oauth2/token`` beside ``/1.0``."""
        return self.url.removesuffix(API_PREFIX) + TOKEN_PATH

    @property
    def ca_pem(self) -> bytes | None:
        """The CA that signed the HTTPS certificate (None before ``start(tls=True)``)."""
        return self._ca_pem

    def register(self) -> None:
        """Make python-ovh accept :attr:`url` as an endpoint name, with :attr:`token_url` for OAuth2 (as
        ``ovh.client.ENDPOINTS`` and ``ovh.client.OAUTH2_TOKEN_URLS`` hold OVH's own)."""
        import ovh.client  # only the callers that use python-ovh themselves need it

        ovh.client.ENDPOINTS[self.url] = self.url
        ovh.client.OAUTH2_TOKEN_URLS[self.url] = self.token_url

    def env(self, *, oauth2: bool = False, service_name: str | None = None) -> dict[str, str]:
        """The operator's OVH settings for this sandbox (``oauth2``: the service account :attr:`oauth2`
        instead of the application's keys); python-ovh must accept ``OVH_ENDPOINT`` (:meth:`register`;
        the operator registers a URL itself)."""
        if oauth2:
            keys = {"OVH_CLIENT_ID": self.oauth2.client_id, "OVH_CLIENT_SECRET": self.oauth2.client_secret}
        else:
            credentials = self.credentials
            keys = {"OVH_APPLICATION_KEY": credentials.application_key,
                    "OVH_APPLICATION_SECRET": credentials.application_secret,
                    "OVH_CONSUMER_KEY": credentials.consumer_key}
        return {"OVH_ENDPOINT": self.url, **keys, "OVH_SERVICE_NAME": service_name or self.service_name}

    def session(self) -> requests.Session:
        """A requests session that reaches this sandbox in-process at its ``https://<name>.invalid``
        endpoint (for python-ovh's client; no latency, no server needed)."""
        session = requests.Session()
        self.mount(session)
        return session

    def mount(self, session: requests.Session) -> None:
        """Route ``session``'s requests for this sandbox's in-process endpoint to it."""
        session.mount(f"https://{self.name}.invalid/", _InProcessAdapter(self))

    # -- inspection -----------------------------------------------------------------------------------

    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def writes(self) -> list[Call]:
        """Every recorded POST, PUT and DELETE of the API (``POST …/secret`` included, although it changes
        nothing; not the token requests of OAuth2 clients)."""
        return [call for call in self.calls() if call.method in _WRITE_METHODS and call.path != TOKEN_PATH]

    # -- fault injection ------------------------------------------------------------------------------

    def add_fault(self, *, method: str | None = None, path: str | None = None, status: int = 500, times: int = 1,
                  retry_after: float | None = None, body: str | None = None, delay: float = 0.0,
                  reset: bool = False, after: bool = False, hang: bool = False) -> Fault:
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
        fault = Fault(method=method, path=path, status=status, times=times, retry_after=retry_after, body=body,
                      delay=delay, reset=reset, after=after, hang=hang)
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

    def _format(self, rules: Sequence[tuple[str, str]], service_name: str | None) -> list[tuple[str, str]]:
        return [(method, path.format(service=service_name or self.service_name)) for method, path in rules]

    def set_access_rules(self, rules: Sequence[tuple[str, str]]) -> None:
        """The access rules of the current consumer key (``{service}`` stands for the project id)."""
        with self._lock:
            self._rules[self.credentials.consumer_key] = self._format(rules, None)

    def add_consumer_key(self, rules: Sequence[tuple[str, str]] = ALL_RULES,
                           service_name: str | None = None) -> OVHCredentials:
        """Another validated consumer key of the application, with these rules (``{service}``:
        ``service_name``, default the first project)."""
        credentials = OVHCredentials(self.credentials.application_key, self.credentials.application_secret, token(32))
        with self._lock:
            self._rules[credentials.consumer_key] = self._format(rules, service_name)
        return credentials

    def revoke_consumer_key(self, consumer_key: str | None = None) -> OVHCredentials:
        """Invalidate a consumer key (default: ``credentials``') and make a new one with the same rules;
        returns it (and puts it in ``credentials`` if it replaced that one)."""
        with self._lock:
            old = consumer_key or self.credentials.consumer_key
            new = OVHCredentials(self.credentials.application_key, self.credentials.application_secret, token(32))
            self._rules[new.consumer_key] = self._rules.pop(old)
            if old == self.credentials.consumer_key:
                self.credentials = new
            return new

    def add_oauth2_client(self, rules: Sequence[tuple[str, str]] = ALL_RULES,
                          service_name: str | None = None) -> OAuth2Credentials:
        """A new OAuth2 service account whose rights are these access rules."""
        client = OAuth2Credentials(secrets.token_hex(8), token(32))
        with self._lock:
            self._clients[client.client_id] = client.client_secret
            self._rules[f"oauth2:{client.client_id}"] = self._format(rules, service_name)
        return client

    def rotate_oauth2_secret(self, client_id: str) -> OAuth2Credentials:
        """A new secret for a service account: the old one no longer gets tokens (tokens already granted
        keep working until they expire, as with OAuth2 servers generally)."""
        client = OAuth2Credentials(client_id, token(32))
        with self._lock:
            self._clients[client_id] = client.client_secret
        return client

    def expire_tokens(self) -> int:
        """End every access token now (the clients still believe theirs valid); returns how many."""
        with self._lock:
            count = len(self._tokens)
            self._tokens.clear()
            return count

    def tokens_granted(self) -> int:
        """How many tokens the token endpoint granted (recorded calls that answered 200)."""
        return sum(1 for call in self.calls() if call.path == TOKEN_PATH and call.status == 200)

    def live_tokens(self) -> int:
        """How many granted tokens are still valid."""
        now = time.monotonic()
        with self._lock:
            return sum(1 for _, expiry in self._tokens.values() if expiry > now)

    def granted_tokens(self) -> list[str]:
        """Every access token granted so far (what a leak check looks for)."""
        with self._lock:
            return list(self._granted)

    def validate_consumer_key(self, consumer_key: str) -> list[tuple[str, str]]:
        """What the account owner does at the validation URL; returns the rules now granted."""
        with self._lock:
            self.credentials = OVHCredentials(self.credentials.application_key, self.credentials.application_secret,
                                              consumer_key)
            rules = self._pending.pop(consumer_key)
            self._rules[consumer_key] = rules
            return rules

    # -- the pipeline ---------------------------------------------------------------------------------

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    if fault.hits == fault.times:
                        self._faults.remove(fault)
                    return fault
        return None

    def answer(self, method: str, url: str, headers: Mapping[str, str], body: str,
               fault: Fault | None = None) -> Answer:
        """Answer one request (``url`` as the client signed it), after any latency or fault delay."""
        path_and_query = urllib.parse.urlsplit(url)
        raw_path = path_and_query.path + (f"?{path_and_query.query}" if path_and_query.query else "")
        recorded_path = raw_path.removeprefix(API_PREFIX)
        answer: Answer | None = None
        if fault is None or fault.after or fault.hang:
            answer = self._process(method, url, path_and_query.path, headers, body)
        if fault is not None:
            fault.triggered.set()
            if fault.reset or fault.hang:
                answer = Answer(None, {}, "", hang=fault if fault.hang else None)
            else:
                answer = Answer(*fault.answer())
        assert answer is not None
        self._record(Call(method, recorded_path, answer.status or 0, time.monotonic()))
        return answer

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)
        _log.debug("%s %s -> %d", call.method, call.path, call.status)

    def _process(self, method: str, url: str, path: str, headers: Mapping[str, str], body: str) -> Answer:
        if path == TOKEN_PATH:
            return self._token_endpoint(method, headers, body)
        try:
            if not path.startswith(API_PREFIX + "/"):
                raise OVHApiError(404, "Got an invalid (or empty) URL")
            path = path.removeprefix(API_PREFIX)
            if (method, path) == ("GET", "/auth/time"):
                result: object = int(time.time() + self.clock_offset)
            elif (method, path) == ("POST", "/auth/credential"):
                result = self._request_credential(url, headers, body)
            else:
                caller = self._authenticate(method, url, path, headers, body)
                self._admit(caller)
                result = self._route(method, path, body)
            return Answer(200, {"Content-Type": "application/json"}, json.dumps(result))
        except OVHApiError as error:
            return Answer(error.status, {"Content-Type": "application/json", **error.headers},
                          json.dumps(error.payload))

    def _route(self, method: str, path: str, body: str) -> object:
        """The account's projects answer for themselves; ``GET /cloud/project`` lists them all."""
        with self._lock:
            projects = dict(self.projects)
        if (method, path) == ("GET", "/cloud/project"):
            return list(projects)
        match = _PROJECT_PATH.match(path)
        if match is not None and match[1] not in projects:
            raise not_found("serviceName", match[1])
        return (projects[match[1]] if match is not None else self.project).handle(method, path, body)

    # -- OAuth2 ------------------------------------------------------------------------------------------

    def _token_endpoint(self, method: str, headers: Mapping[str, str], body: str) -> Answer:
        """The client credentials grant (RFC 6749 section 4.4).

        Sources: python-ovh's ``ovh/oauth2.py`` (what it sends: ``grant_type=client_credentials&scope=all``,
        form-encoded, the client in HTTP Basic; what it reads) and ``tests/test_client.py`` (OVH's answers:
        the token fields, and ``invalid_client`` / "ovhcloud oauth2 client does not exists"); go-ovh's
        ``configuration.go`` (scope ``all``, golang.org/x/oauth2's client credentials). Undocumented, so
        decided the stricter way after RFC 6749 sections 2.3, 5.1 and 5.2: 401 for a bad client, one client
        authentication only, no other grant or scope, form encoding only, ``Cache-Control: no-store``.
        """
        def error(status: int, code: str, description: str, extra: Mapping[str, str] | None = None) -> Answer:
            return Answer(status, {"Content-Type": "application/json", "Cache-Control": "no-store", **(extra or {})},
                          json.dumps({"error": code, "error_description": description}))

        if method != "POST":
            return error(405, "invalid_request", "the token endpoint accepts POST only")
        if headers.get("Content-Type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return error(400, "invalid_request", "the request must be application/x-www-form-urlencoded")
        form = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
        basic = _basic_credentials(headers.get("Authorization", ""))
        in_body = ("client_id" in form or "client_secret" in form)
        if basic is not None and in_body:
            return error(400, "invalid_request", "the client authenticated in more than one way")
        client_id, client_secret = basic if basic is not None else (form.get("client_id"), form.get("client_secret"))
        challenge = {"WWW-Authenticate": 'Basic realm="ovhcloud"'} if basic is not None else {}
        with self._lock:
            expected = self._clients.get(client_id or "")
        if expected is None or client_secret is None or not hmac.compare_digest(expected, client_secret):
            return error(401, "invalid_client", "ovhcloud oauth2 client does not exists", challenge)
        if form.get("grant_type") != "client_credentials":
            return error(400, "unsupported_grant_type", "only the client_credentials grant is supported")
        if form.get("scope") != "all":
            return error(400, "invalid_scope", "the scope must be all")
        access_token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[access_token] = (str(client_id), time.monotonic() + self.token_lifetime)
            self._granted.append(access_token)
        answer = {"access_token": access_token, "token_type": "Bearer",
                  "expires_in": math.ceil(self.token_lifetime), "scope": "all"}
        return Answer(200, {"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"},
                      json.dumps(answer))

    def _bearer(self, authorization: str) -> str:
        """The caller an access token stands for; 401 when it is unknown or expired. (How OVH answers an
        expired token is not documented: 401 as RFC 6750 section 3.1 says, in OVH's error shape. The
        operator renews on 401 and on 403 ``INVALID_CREDENTIAL`` alike.)"""
        access_token = authorization.removeprefix("Bearer ").strip()
        with self._lock:
            client_id, expiry = self._tokens.get(access_token, ("", 0.0))
            if expiry <= time.monotonic():
                self._tokens.pop(access_token, None)
                raise OVHApiError(401, "The access token is invalid or has expired",
                                  headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return f"oauth2:{client_id}"

    def _request_credential(self, url: str, headers: Mapping[str, str], body: str) -> dict[str, str]:
        if headers.get("X-Ovh-Application") != self.credentials.application_key:
            raise OVHApiError(403, "Invalid application key", "INVALID_KEY")
        params = params_of(body, {"accessRules", "redirection", "allowedIPs"})
        rules = params.get("accessRules")
        if not isinstance(rules, list) or not all(
                isinstance(r, dict) and r.get("method") in _RULE_METHODS and isinstance(r.get("path"), str)
                for r in rules):
            raise OVHApiError(400, 'Invalid parameter "accessRules"')
        consumer_key = token(32)
        with self._lock:
            self._pending[consumer_key] = [(r["method"], r["path"]) for r in rules]
        base = url.split(API_PREFIX, 1)[0]
        return {"consumerKey": consumer_key, "state": "pendingValidation",
                "validationUrl": f"{base}/auth/?credentialToken={token(64)}"}

    def _authenticate(self, method: str, url: str, path: str, headers: Mapping[str, str], body: str) -> str:
        """Who calls (a consumer key, or ``oauth2:<client id>``), if they may make this call."""
        authorization = headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            caller = self._bearer(authorization)
            self._check_rules(caller, method, path)
            return caller
        credentials = self.credentials
        if headers.get("X-Ovh-Application") != credentials.application_key:
            raise OVHApiError(403, "Invalid application key", "INVALID_KEY")
        consumer_key = headers.get("X-Ovh-Consumer")
        timestamp = headers.get("X-Ovh-Timestamp")
        signature = headers.get("X-Ovh-Signature")
        if not consumer_key or not timestamp or not signature:
            raise OVHApiError(403, "You must login first", "NOT_CREDENTIAL")
        rules = self._rules.get(consumer_key)
        if rules is None:
            raise OVHApiError(403, "This credential is not valid", "INVALID_CREDENTIAL")
        if not timestamp.isdigit() or abs(int(timestamp) - (time.time() + self.clock_offset)) > TIMESTAMP_TOLERANCE:
            raise OVHApiError(400, "Query out of time", "QUERY_TIME_OUT")
        signed = "+".join([credentials.application_secret, consumer_key, method, url, body, timestamp])
        expected = "$1$" + hashlib.sha1(signed.encode(), usedforsecurity=False).hexdigest()
        if not hmac.compare_digest(signature, expected):
            raise OVHApiError(400, "Invalid signature", "INVALID_SIGNATURE")
        self._check_rules(consumer_key, method, path)
        return consumer_key

    def _check_rules(self, caller: str, method: str, path: str) -> None:
        with self._lock:
            rules = list(self._rules.get(caller, ()))
        if not any(allowed == method and _rule_pattern(pattern).fullmatch(path) for allowed, pattern in rules):
            raise OVHApiError(403, f"This call has not been granted: {method} {path}", "NOT_GRANTED_CALL")

    def _admit(self, consumer_key: str) -> None:
        """Token bucket per caller (consumer key or service account): ``rate_limit`` requests per second,
        ``burst`` (default ``max(1, rate_limit)``) at once."""
        rate = self.rate_limit
        if not rate:
            return
        now = time.monotonic()
        burst = self.burst or max(1.0, rate)
        with self._lock:
            tokens, last = self._buckets.get(consumer_key, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens >= 1:
                self._buckets[consumer_key] = (tokens - 1, now)
                return
            self._buckets[consumer_key] = (tokens, now)
        retry_after = max(1, math.ceil((1 - tokens) / rate))
        raise OVHApiError(429, "Too many requests", headers={"Retry-After": str(retry_after)})

    # -- HTTP -----------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        fault = self.take_fault(request.method, request.raw_path.removeprefix(API_PREFIX))
        wait = self.latency + (fault.delay if fault else 0.0)
        if wait > 0:
            await asyncio.sleep(wait)
        url = f"{request.scheme}://{request.host}{request.raw_path}"
        answer = self.answer(request.method, url, request.headers, body, fault)
        if answer.hang is not None:
            with self._lock:
                self._hung.add(answer.hang)
            await asyncio.to_thread(answer.hang._released.wait)
        if answer.status is None:
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        return web.Response(status=answer.status, text=answer.body, headers=answer.headers)


def _basic_credentials(authorization: str) -> tuple[str, str] | None:
    """(client id, secret) of an HTTP Basic ``Authorization`` header (RFC 6749 section 2.3.1 form-encodes
    both before base64), None if the header is not Basic."""
    if not authorization.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(authorization.removeprefix("Basic ").strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    client_id, _, client_secret = decoded.partition(":")
    return urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(client_secret)


class _InProcessAdapter(requests.adapters.BaseAdapter):
    """Answers python-ovh's requests from the sandbox's pipeline, without a socket."""

    def __init__(self, sandbox: OVHSandbox) -> None:
        super().__init__()
        self._sandbox = sandbox

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        url = request.url or ""
        method = (request.method or "GET").upper()
        body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "")
        split = urllib.parse.urlsplit(url)
        fault = self._sandbox.take_fault(method, split.path.removeprefix(API_PREFIX)
                                         + (f"?{split.query}" if split.query else ""))
        if fault is not None and fault.delay:
            read_timeout = timeout[1] if isinstance(timeout, tuple) else timeout
            if read_timeout is not None and fault.delay >= read_timeout:
                time.sleep(read_timeout)
                self._sandbox.answer(method, url, request.headers, body, fault)  # processed, answer too late
                raise requests.exceptions.ReadTimeout("the sandbox did not answer in time", request=request)
            time.sleep(fault.delay)
        answer = self._sandbox.answer(method, url, request.headers, body, fault)
        if answer.status is None:
            raise requests.exceptions.ConnectionError("the sandbox closed the connection without an answer",
                                                      request=request)
        response = requests.Response()
        response.status_code = answer.status
        response.reason = {200: "OK", 401: "Unauthorized", 429: "Too Many Requests"}.get(answer.status, "")
        response.headers.update(answer.headers)
        response._content = answer.body.encode()
        response.url = url
        response.request = request
        response.encoding = "utf-8"
        return response

    def close(self) -> None:
        pass
