"""OVH projects: the operator's own, and the cluster's OVHProjects, each with its OVH client and state.

The platform team writes cluster-scoped ``OVHProject`` objects: an OVH project id (``serviceName``), an
endpoint, and a Secret holding credentials with the keys of the operator's own (``OVH_APPLICATION_KEY``,
``OVH_APPLICATION_SECRET``, ``OVH_CONSUMER_KEY``, or ``OVH_CLIENT_ID`` and ``OVH_CLIENT_SECRET``). An
OVHObjectStorageUser names one in ``spec.projectRef``; without it, its user lives in the operator's
own project (the credentials of its environment), as before OVHProjects existed.

* **One client and one rate limiter per credential set** (:class:`.ovh_api.Connection`): made when a
  project is first used, shared by the projects using the same credentials, closed when none does.
  A project's client is dropped ``OVH_S3_OPERATOR_PROJECT_IDLE_TIMEOUT`` seconds after the last
  resource using it went away.
* **State per project**: OVH user ids are per project, so what is keyed by them is too: the user
  listing and the role cache (:class:`.ovh_api.OVHClient`), the activation estimate. The orphan sweep
  runs per project (:func:`sweepable`).
* **Rotation**: every ``OVH_S3_OPERATOR_PROJECT_RESYNC_INTERVAL`` seconds the OVHProjects and their
  Secrets are read again; a Secret with a new resourceVersion and other values gives the project a new
  connection (the old one closes) and its resources a new look. A call OVH rejects has the Secret read
  again at once, so that a rotation that revoked the old credentials costs one failed call.
* **Checks**: an OVHProject's credentials are tried (``GET /cloud/project/{id}/role``: the credentials,
  their rights and the project id at once) when it or its credentials change, after OVH rejected them,
  and until a check succeeds; the outcome is its Ready condition. While it is not usable, each of its
  resources says why.
* **Trust**: tenants have no verb on OVHProjects (the platform writes them), and the Secret must be in
  the operator's own namespace (``OVH_S3_OPERATOR_NAMESPACE``, by default the pod's),
  so no tenant can supply or read credentials through them. Which namespaces may use which project is
  up to the access policies (:mod:`.access_policy`), checked before a project is even looked up.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

import ovh.client
import requests

from . import metrics
from .activation import ActivationEstimate
from .config import Settings
from .credentials import Credentials
from .errors import (
    KubernetesAPIError,
    OperatorError,
    OVHCredentialsMissing,
    OVHCredentialsRejected,
    OVHError,
    OVHProjectError,
    OVHProjectNotFound,
)
from .model import READY, Condition, format_time
from .ovh_api import Connection, OVHClient

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name) of an OVHObjectStorageUser
VERIFIED = "CredentialsValid"
LOOPBACK_URL = re.compile(r"^http://(127\.0\.0\.1|localhost)(:[0-9]+)?(/\S*)?$")


@dataclass(frozen=True)
class ProjectSpec:
    """``spec`` of an OVHProject."""

    service_name: str
    endpoint: str
    secret_name: str
    secret_namespace: str | None

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> ProjectSpec:
        """The spec, or OVHProjectError naming the field (the CRD's schema refuses the same on a real API
        server; this holds where it was not applied)."""
        spec = body.get("spec") if isinstance(body.get("spec"), Mapping) else {}
        assert isinstance(spec, Mapping)
        service_name, endpoint = spec.get("serviceName"), spec.get("endpoint", "ovh-eu")
        ref = spec.get("credentialsSecretRef") if isinstance(spec.get("credentialsSecretRef"), Mapping) else {}
        assert isinstance(ref, Mapping)
        if not isinstance(service_name, str) or not re.fullmatch(r"[A-Za-z0-9-]{1,64}", service_name):
            raise OVHProjectError("spec.serviceName must be the OVH project id")
        if not isinstance(endpoint, str) or not (endpoint in ovh.client.ENDPOINTS or endpoint.startswith("https://")
                                                 or LOOPBACK_URL.match(endpoint)):
            raise OVHProjectError(f"spec.endpoint must be one of {', '.join(sorted(ovh.client.ENDPOINTS))} or an "
                                  "https:// URL")
        name, namespace = ref.get("name"), ref.get("namespace")
        if not isinstance(name, str) or not name or (namespace is not None and not isinstance(namespace, str)):
            raise OVHProjectError("spec.credentialsSecretRef must name a Secret")
        return cls(service_name, endpoint, name, namespace)


@dataclass
class Project:
    """An OVH project in use: the port the reconcile calls, and the state kept per project."""

    name: str
    """The OVHProject's name; "" for the operator's own project."""
    ovh: OVHClient
    activation: ActivationEstimate

    @property
    def title(self) -> str:
        return project_title(self.name)


def project_title(name: str | None) -> str:
    """How messages name a project: an OVHProject, or the operator's own ("" or None)."""
    return f"OVHProject {name}" if name else "the operator's own OVH project"


class ProjectKube(Protocol):
    """What the registry reads and writes in Kubernetes (implemented by :class:`.kube_api.KubeClient`)."""

    async def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def list_projects(self) -> list[dict[str, Any]]: ...
    async def patch_project_status(self, name: str, status: Mapping[str, Any]) -> dict[str, Any] | None: ...


Problem = tuple[type[OperatorError], str]


@dataclass(eq=False)
class _Known:
    """One OVHProject as last seen, and what the operator made of it."""

    body: Mapping[str, Any]
    spec: ProjectSpec | None = None
    problem: Problem | None = None
    """Why it cannot be used, until it or its Secret changes (a transient failure is no problem)."""
    secret_version: str | None = None
    credentials: Credentials | None = None
    verified: bool = False
    """OVH accepted the current credentials for the project."""
    transient: str | None = None
    """Why the last check could not tell (OVH unavailable): checked again at the next resync."""
    project: Project | None = None
    unused_since: float | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def generation(self) -> int:
        return int((self.body.get("metadata") or {}).get("generation") or 0)


def _decode(data: Mapping[str, str] | None) -> dict[str, str]:
    values = {}
    for key, value in (data or {}).items():
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            values[key] = base64.b64decode(value).decode()
    return values


class Projects:
    """Every OVH project the operator may use, by name ("" for its own); see the module docstring.

    ``on_change`` is given the resources to look at again when a project they use changes.
    """

    def __init__(self, settings: Settings, kube: ProjectKube, executor: Executor, default: Project, *,
                 session: requests.Session | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.default = default
        self._settings = settings
        self._kube = kube
        self._executor = executor
        self._session = session
        self._clock = clock
        self._known: dict[str, _Known] = {}
        self._connections: dict[str, tuple[Connection, int]] = {}  # credentials fingerprint -> (it, users)
        own = default.ovh.connection
        if own.credentials.auth_mode is not None:
            self._connections[own.credentials.fingerprint()] = (own, 1)  # the operator's own: never closed
        self._users: dict[Key, str] = {}
        self._due: set[str] = set()
        self._wake = asyncio.Event()
        self.on_change: Callable[[Iterable[Key]], None] = lambda keys: None

    # --- what the watch (or a listing) feeds in ----------------------------------------------------

    def event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event of an OVHProject (``None``: listed)."""
        meta = body.get("metadata") or {}
        name = str(meta.get("name"))
        known = self._known.get(name)
        if event_type == "DELETED":
            if known is not None:
                del self._known[name]
                self._close(known)
                with contextlib.suppress(KeyError):
                    metrics.PROJECTS.remove(name)
                logger.info("OVHProject %s was deleted", name)
                self._changed(name)
            return
        before = known.body if known is not None else {}
        if known is not None and before.get("spec") == body.get("spec") and \
                (before.get("metadata") or {}).get("uid") == meta.get("uid"):
            known.body = body  # the operator's own status write, or nothing that matters
            return
        if known is not None:
            self._close(known)
        known = self._known[name] = _Known(body)
        try:
            known.spec = ProjectSpec.parse(body)
        except OVHProjectError as error:
            known.problem = (OVHProjectError, error.message)
        self._due.add(name)
        self._wake.set()
        self._changed(name)

    def replace(self, bodies: Iterable[Mapping[str, Any]]) -> None:
        """Everything at once, from a fresh listing."""
        seen = set()
        for body in bodies:
            seen.add(str((body.get("metadata") or {}).get("name")))
            self.event(None, body)
        for name in set(self._known) - seen:
            self.event("DELETED", {"metadata": {"name": name}})

    # --- what the reconcile asks ---------------------------------------------------------------------

    async def resolve(self, key: Key, name: str) -> Project:
        """The project a resource uses (and remember that it does); an OperatorError if it cannot be used."""
        self._users[key] = name
        if not name:
            return self.default
        known = self._known.get(name)
        if known is None:
            raise OVHProjectNotFound(f"OVHProject {name} does not exist (kubectl get ovhprojects); the platform "
                                     "team creates OVHProjects")
        known.unused_since = None
        async with known.lock:
            return await self._open(name, known)

    def release(self, key: Key) -> None:
        """The resource is gone: it no longer keeps its project's client open."""
        name = self._users.pop(key, None)
        known = self._known.get(name) if name else None
        if known is not None and name not in self._users.values():
            known.unused_since = self._clock()

    def in_use(self) -> list[str]:
        """The projects with an open client ("" for the operator's own)."""
        return ["", *sorted(name for name, known in self._known.items() if known.project is not None)]

    async def sweepable(self) -> list[Project]:
        """The projects whose users the orphan sweep looks at: the operator's own (when it has credentials)
        and every usable OVHProject (each OVH project once)."""
        projects = [self.default] if self.default.ovh.configuration_error is None else []
        seen = {(self.default.ovh.connection.credentials.endpoint, self._settings.ovh_service_name)}
        for name, known in list(self._known.items()):
            if known.spec is None or (known.spec.endpoint, known.spec.service_name) in seen:
                continue
            try:
                async with known.lock:
                    project = await self._open(name, known)
            except OperatorError as error:
                logger.debug("The orphan sweep skips OVHProject %s: %s", name, error.message)
                continue
            seen.add((known.spec.endpoint, known.spec.service_name))
            projects.append(project)
        return projects

    # --- keeping up with the OVHProjects and their Secrets (while the operator leads) ------------------

    async def run(self) -> None:
        """Check the OVHProjects that changed, as they change."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._due:
                name = self._due.pop()
                try:
                    await self._refresh(name)
                except Exception:
                    logger.exception("Checking OVHProject %s failed; trying again at the next resync", name)

    async def resync(self) -> None:
        """Read every OVHProject and its Secret again, check what needs it, close idle clients."""
        self.replace(await self._kube.list_projects())
        for name in list(self._known):
            await self._refresh(name)
        self._close_idle()

    def _rejected(self, name: str) -> None:
        """OVH rejected an OVHProject's credentials: read its Secret again and check them, soon."""
        known = self._known.get(name)
        if known is not None:
            known.verified = False
            self._due.add(name)
            self._wake.set()

    async def _refresh(self, name: str) -> None:
        """Read the Secret again, check the credentials if they need it, report. OVH is called without the
        project's lock: resources of the project go on meanwhile."""
        known = self._known.get(name)
        if known is None:
            return
        async with known.lock:
            before = self._usability(known)
            try:
                if known.spec is not None:
                    await self._read(name, known)
                project = await self._open(name, known) if known.problem is None and not known.verified else None
            except KubernetesAPIError as error:
                logger.warning("Cannot check OVHProject %s now: %s", name, error.message)
                return
            except OperatorError:  # the project's problem, now set
                project = None
            checked = known.credentials
        if project is not None:
            outcome = await self._verify(project)
            async with known.lock:
                if known.credentials is checked and self._known.get(name) is known:  # not rotated meanwhile
                    self._take(known, outcome)
        if self._known.get(name) is not known:
            return  # deleted or rewritten meanwhile: its successor is checked on its own
        async with known.lock:
            await self._report(name, known)
            changed = self._usability(known) != before
        if changed:
            self._changed(name)

    @staticmethod
    def _usability(known: _Known) -> tuple[Problem | None, str | None]:
        return known.problem, known.credentials.fingerprint() if known.credentials is not None else None

    # --- inside (callers hold the project's lock) ------------------------------------------------------

    async def _open(self, name: str, known: _Known) -> Project:
        if known.problem is None and known.credentials is None:
            await self._read(name, known)
        if known.problem is None and known.project is None:
            self._build(name, known)
        if known.problem is not None:
            kind, message = known.problem
            raise kind(f"OVHProject {name}: {message}")
        assert known.project is not None
        return known.project

    async def _read(self, name: str, known: _Known) -> None:
        """Read the Secret; take new credentials if it holds other ones."""
        assert known.spec is not None
        spec, allowed = known.spec, self._settings.operator_namespace
        namespace = spec.secret_namespace or allowed
        where = f"Secret {namespace}/{spec.secret_name}"
        before = known.problem
        if namespace != allowed:
            self._set_problem(known, OVHProjectError, f"spec.credentialsSecretRef.namespace is {namespace}, but "
                              f"OVHProject Secrets must be in the operator's namespace {allowed}; move the Secret "
                              "there")
            return
        try:
            secret = await self._kube.read_secret(namespace, spec.secret_name)
        except KubernetesAPIError as error:
            if error.status != 403:
                raise
            self._set_problem(known, OVHCredentialsMissing, f"the operator may not read {where}: grant it get on "
                              f"Secrets in namespace {namespace}")
            return
        if secret is None:
            self._set_problem(known, OVHCredentialsMissing, f"{where} does not exist: create it with "
                              "OVH_APPLICATION_KEY, OVH_APPLICATION_SECRET and OVH_CONSUMER_KEY (or OVH_CLIENT_ID "
                              "and OVH_CLIENT_SECRET)")
            return
        version = str((secret.get("metadata") or {}).get("resourceVersion") or "")
        if version == known.secret_version and before is None:
            return
        source = f"{where} (OVHProject {name})"
        credentials = Credentials.from_values(spec.endpoint, _decode(secret.get("data")), source)
        known.secret_version = version
        same = known.credentials is not None and credentials.fingerprint() == known.credentials.fingerprint()
        if same and before is None:
            return  # e.g. a label changed
        if known.credentials is not None and not same:
            logger.info("The credentials of OVHProject %s changed (%s); using the new ones", name, where)
        known.credentials, known.problem = credentials, None
        if not same:
            known.verified = False
            if known.project is not None:
                self._connect(name, known)

    def _set_problem(self, known: _Known, kind: type[OperatorError], message: str) -> None:
        known.problem, known.verified, known.secret_version = (kind, message), False, None
        self._close(known)

    def _build(self, name: str, known: _Known) -> None:
        assert known.spec is not None
        client = OVHClient(self._settings, self._executor, connection=self._connection(known),
                           service_name=known.spec.service_name, project=name,
                           service_hint=f"spec.serviceName of OVHProject {name}",
                           on_rejected=lambda: self._rejected(name))
        project = Project(name, client, ActivationEstimate(self._settings.user_poll_interval))
        known.project = project
        if name not in self._users.values():
            known.unused_since = self._clock()
        error = project.ovh.configuration_error
        if error is not None:
            self._set_problem(known, OVHCredentialsMissing, error.message)

    def _connect(self, name: str, known: _Known) -> None:
        """Give an open project the connection of its (new) credentials."""
        assert known.project is not None
        old = known.project.ovh.connection
        known.project.ovh.use(self._connection(known))
        self._release(old)
        error = known.project.ovh.configuration_error
        if error is not None:
            self._set_problem(known, OVHCredentialsMissing, error.message)

    def _connection(self, known: _Known) -> Connection:
        assert known.credentials is not None
        fingerprint = known.credentials.fingerprint()
        connection, users = self._connections.get(fingerprint) or (
            Connection(known.credentials, self._settings, self._executor, session=self._session), 0)
        self._connections[fingerprint] = (connection, users + 1)
        return connection

    def _release(self, connection: Connection) -> None:
        fingerprint = connection.credentials.fingerprint()
        held, users = self._connections.get(fingerprint, (None, 0))
        if held is not connection:
            return
        if users > 1:
            self._connections[fingerprint] = (connection, users - 1)
        else:
            del self._connections[fingerprint]
            connection.close()

    def _close(self, known: _Known) -> None:
        if known.project is not None:
            self._release(known.project.ovh.connection)
            known.project = None

    def _close_idle(self) -> None:
        now = self._clock()
        for name, known in self._known.items():
            if known.project is not None and known.unused_since is not None and \
                    now - known.unused_since >= self._settings.project_idle_timeout:
                logger.info("Closing the OVH client of OVHProject %s: no resource has used it for %.0fs", name,
                            now - known.unused_since)
                self._close(known)

    @staticmethod
    async def _verify(project: Project) -> OperatorError | None:
        """Try the credentials on the project: None if OVH accepts them, else why not."""
        try:
            await project.ovh.verify()
        except OVHError as error:
            return error
        return None

    def _take(self, known: _Known, outcome: OperatorError | None) -> None:
        """The outcome of a check: a definitive refusal becomes the project's problem; OVH being
        unavailable only says so (checked again at the next resync)."""
        known.transient = None
        if outcome is None:
            known.verified = True
        elif isinstance(outcome, OVHCredentialsRejected | OVHCredentialsMissing | OVHProjectError):
            self._set_problem(known, type(outcome), outcome.message)
        else:
            known.transient = outcome.message

    async def _report(self, name: str, known: _Known) -> None:
        """The OVHProject's Ready condition, written only when it changes."""
        if known.problem is not None:
            state, reason, message = "False", known.problem[0].reason, known.problem[1]
        elif known.verified and known.spec is not None and known.credentials is not None:
            kind = "an OAuth2 service account" if known.credentials.auth_mode == "oauth2" else "an application key"
            state, reason = "True", VERIFIED
            message = f"OVH accepts the credentials in {known.credentials.source}, {kind}, for OVH project " \
                      f"{known.spec.service_name}"
        elif known.transient is not None:
            state, reason, message = "False", "OVHUnavailable", f"{known.transient}; checking again soon"
        else:
            return
        metrics.PROJECTS.labels(name).set(1 if state == "True" else 0)
        status = known.body.get("status") if isinstance(known.body.get("status"), Mapping) else {}
        assert isinstance(status, Mapping)
        previous = next((Condition.parse(c) for c in status.get("conditions") or ()
                         if isinstance(c, Mapping) and c.get("type") == READY), None)
        if previous is not None and (previous.status, previous.reason, previous.message,
                                     previous.observed_generation) == (state, reason, message, known.generation):
            return
        if previous is None or previous.status != state:
            log = logger.info if state == "True" else logger.warning
            log("OVHProject %s: %s", name, message)
        since = previous.last_transition_time if previous is not None and previous.status == state else None
        now = format_time(datetime.datetime.now(datetime.UTC))
        condition = Condition(READY, state, reason, message, since or now, known.generation)
        mode = known.credentials.auth_mode if known.credentials is not None else None
        patched = await self._kube.patch_project_status(name, {
            "conditions": [condition.to_api()], "observedGeneration": known.generation, "authentication": mode})
        if patched is not None and self._known.get(name) is known:
            known.body = patched

    def _changed(self, name: str) -> None:
        keys = [key for key, used in self._users.items() if used == name]
        if keys:
            self.on_change(keys)
