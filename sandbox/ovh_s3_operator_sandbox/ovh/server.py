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
import hashlib
import hmac
import json
import logging
import math
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
import requests.adapters
from aiohttp import web

from .catalog import DEFAULT_ROLES
from .model import OVHApiError, OVHProject, params_of, token

__all__ = ["ALL_RULES", "DEFAULT_ROLES", "Call", "Fault", "OVHCredentials", "OVHSandbox"]

_log = logging.getLogger(__name__)

API_PREFIX = "/1.0"
IN_PROCESS_URL = "http://ovh-sandbox.invalid/1.0"
TIMESTAMP_TOLERANCE = 180
_WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})
_RULE_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
ALL_RULES: tuple[tuple[str, str], ...] = tuple((method, "/*") for method in ("GET", "POST", "PUT", "DELETE"))


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
                 access_rules: Sequence[tuple[str, str]] = ALL_RULES) -> None:
        self.project = OVHProject(activation=activation, deletion=deletion, visibility_delay=visibility_delay,
                                  roles=roles, service_name=service_name, max_users=max_users)
        self.latency = latency
        self.rate_limit = rate_limit
        self.burst = burst
        self.clock_offset = 0.0
        self.credentials = OVHCredentials(token(16), token(32), token(32))
        self._rules: dict[str, list[tuple[str, str]]] = {}  # consumer key -> its access rules
        self._pending: dict[str, list[tuple[str, str]]] = {}  # requested, not validated yet
        self._lock = threading.Lock()
        self.set_access_rules(access_rules)
        self._calls: list[Call] = []
        self._faults: list[Fault] = []
        self._hung: set[Fault] = set()
        self._buckets: dict[str, tuple[float, float]] = {}  # consumer key -> (tokens, monotonic time)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def service_name(self) -> str:
        return self.project.service_name

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
        """The HTTP endpoint once started; before, the in-process one (see :meth:`session`)."""
        return self._url or IN_PROCESS_URL

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

    def session(self) -> requests.Session:
        """A requests session that reaches this sandbox in-process at :data:`IN_PROCESS_URL` (for
        python-ovh's client; no latency, no server needed)."""
        session = requests.Session()
        session.mount(IN_PROCESS_URL.rsplit("/", 1)[0] + "/", _InProcessAdapter(self))
        return session

    # -- inspection -----------------------------------------------------------------------------------

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

    def set_access_rules(self, rules: Sequence[tuple[str, str]]) -> None:
        """The access rules of the current consumer key (``{service}`` stands for the project id)."""
        with self._lock:
            self._rules[self.credentials.consumer_key] = [
                (method, path.format(service=self.service_name)) for method, path in rules]

    def revoke_consumer_key(self) -> None:
        """Invalidate the consumer key and issue a new one, with the same rules, in ``credentials``."""
        with self._lock:
            old = self.credentials
            self.credentials = OVHCredentials(old.application_key, old.application_secret, token(32))
            self._rules[self.credentials.consumer_key] = self._rules.pop(old.consumer_key)

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
        try:
            if not path.startswith(API_PREFIX + "/"):
                raise OVHApiError(404, "Got an invalid (or empty) URL")
            path = path.removeprefix(API_PREFIX)
            if (method, path) == ("GET", "/auth/time"):
                result: object = int(time.time() + self.clock_offset)
            elif (method, path) == ("POST", "/auth/credential"):
                result = self._request_credential(url, headers, body)
            else:
                consumer_key = self._authenticate(method, url, path, headers, body)
                self._admit(consumer_key)
                result = self.project.handle(method, path, body)
            return Answer(200, {"Content-Type": "application/json"}, json.dumps(result))
        except OVHApiError as error:
            return Answer(error.status, {"Content-Type": "application/json", **error.headers},
                          json.dumps(error.payload))

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
        if not any(allowed == method and _rule_pattern(pattern).fullmatch(path) for allowed, pattern in rules):
            raise OVHApiError(403, f"This call has not been granted: {method} {path}", "NOT_GRANTED_CALL")
        return consumer_key

    def _admit(self, consumer_key: str) -> None:
        """Token bucket per consumer key: ``rate_limit`` requests per second, ``burst`` (default
        ``max(1, rate_limit)``) at once."""
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
        response.reason = {200: "OK", 429: "Too Many Requests"}.get(answer.status, "")
        response.headers.update(answer.headers)
        response._content = answer.body.encode()
        response.url = url
        response.request = request
        response.encoding = "utf-8"
        return response

    def close(self) -> None:
        pass
