"""A Kubernetes API emulator over HTTP on 127.0.0.1, for the sandbox, the demo and integration tests.

A real ``kopf run`` operator, the official ``kubernetes`` Python client and ``kubectl`` work
against it with a plain kubeconfig (see :meth:`KubeEmulator.kubeconfig`).

It is built on kmock's :class:`kmock.KubernetesScaffold`, which keeps routing and serving the
discovery endpoints (``/api``, ``/apis``, ``/apis/G``, ``/apis/G/V``, ``/version``) from
``self.resources`` and runs the HTTP server (:class:`kmock.Server`); only the bodies of
``/apis/G/V`` (kmock names the core group version "/v1") and ``/version`` are rendered here.
Every request that names a resource plural is routed by :meth:`KubeEmulator.__call__` to this
module's own fast path instead: its own path parser (kmock's cannot parse ``/api/v1/namespaces``)
and an O(1) dict-based object store (:mod:`.kube_store`). These requests never reach kmock's DSL
matching, whose cost grows with every request it has recorded, and kmock's request history is
emptied after each discovery request. kmock's own ``KubernetesEmulator`` is not used: it lacks
what kopf 1.45 relies on (resourceVersion, uid, 201 on create, 409/422 semantics, the status
subresource, watch resumption, bookmarks, garbage collection, selectors).

What it implements, as the API server does: HTTPS with bearer-token authentication and RBAC
authorization (:mod:`.auth`, :mod:`.tls`); create/get/list/watch/patch (merge, strategic for
built-in kinds, JSON patch)/update/delete/deletecollection with uid, generation (custom resources
and CRDs) and one global resourceVersion; ``dryRun=All``; ``fieldValidation``; optimistic
concurrency (409); the status subresource; finalizers and deletionTimestamp; an asynchronous
garbage collector (:mod:`.gc`); namespace deletion; label and field selectors; list paging;
watch resumption from a bounded event log (410 Expired beyond it), bookmarks, ``timeoutSeconds``
and ``sendInitialEvents``; structural-schema pruning, defaulting and validation of custom
resources with their CEL rules (:mod:`.schema`, :mod:`.cel`); validation of metadata and
Secrets (:mod:`.validation`); OpenAPI v2 and v3 (:mod:`.openapi`); ``meta.k8s.io/v1`` Tables for
``kubectl get`` (:mod:`.table`); protobuf bodies of the built-in kinds ``kubectl create`` posts
(:mod:`.protobuf`). Server-side apply is not implemented (415). Injected faults
(:meth:`KubeEmulator.add_fault`) apply to resource requests only, after authorization.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import pathlib
import secrets
import tempfile
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import aiohttp.web
import attrs
import kmock
import yaml
from multidict import CIMultiDict

from ovh_s3_operator_sandbox.kube import auth, events, openapi, protobuf
from ovh_s3_operator_sandbox.kube import tls as kube_tls
from ovh_s3_operator_sandbox.kube.gc import GarbageCollector
from ovh_s3_operator_sandbox.kube.model import (
    BUILTINS,
    CLUSTERROLES,
    CRDS,
    NAMESPACES,
    REVIEWS,
    SELF_SUBJECT_ACCESS_REVIEWS,
    SELF_SUBJECT_REVIEWS,
    SELF_SUBJECT_RULES_REVIEWS,
    SERVICEACCOUNTS,
    VIEWS,
    ApiError,
    Obj,
    ResourceType,
    clone,
    invalid_update,
)
from ovh_s3_operator_sandbox.kube.patch import APPLY_PATCH, patcher
from ovh_s3_operator_sandbox.kube.protobuf import PROTOBUF
from ovh_s3_operator_sandbox.kube.query import Selector, check_field_selector
from ovh_s3_operator_sandbox.kube.store import Change, Store, Watcher, WriteOptions
from ovh_s3_operator_sandbox.kube.table import table, wants_table

logger = logging.getLogger(__name__)

_NOT_FOUND = "the server could not find the requested resource"
_WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
_DISCONNECT_CHECK = 1.0  # seconds between checks that a watching client is still connected


@dataclasses.dataclass(frozen=True)
class Route:
    """A resource request path: ``/api/v1/…`` or ``/apis/G/V/…``, namespaced or not."""

    group: str
    version: str
    plural: str
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def parse_route(path: str) -> Route | None:
    """Parse a resource path; None for other paths (discovery, /version, …)."""
    parts = path.strip("/").split("/")
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    # /api/v1/namespaces/NAME/status is the namespace's subresource, not a resource "status".
    is_namespace_subresource = group == "" and len(rest) == 3 and rest[2] in ("status", "finalize")
    if rest[0] == "namespaces" and len(rest) >= 3 and not is_namespace_subresource:
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3 or "" in rest:
        raise ApiError(404, _NOT_FOUND)
    name, subresource = [*rest[1:], None, None][:2]
    return Route(group, version, rest[0], namespace, name, subresource)


class RequestRecord(NamedTuple):
    """One served request, without its body; ``view`` is ``PartialObjectMetadata`` for metadata-only
    reads and ``Table`` for kubectl's tables."""

    method: str
    path: str
    status: int
    view: str = ""


@dataclasses.dataclass(eq=False)
class Fault:
    """An injected failure: matching resource requests answer a Status error ``times`` times."""

    method: str | None = None
    plural: str | None = None
    subresource: str | None = None
    namespace: str | None = None
    name: str | None = None
    status: int = 500
    times: int = 1  # -1: until removed
    message: str = "injected fault"
    hits: int = 0

    def matches(self, method: str, verb: str, route: Route) -> bool:
        """Match by HTTP method (GET, PATCH, …) or by verb (get, list, watch, create, update, …)."""
        return (
            (self.method is None or self.method.upper() in (method, verb.upper()))
            and self.plural in (None, route.plural)
            and self.subresource in (None, route.subresource)
            and self.namespace in (None, route.namespace)
            and self.name in (None, route.name)
        )


@dataclasses.dataclass(frozen=True)
class KubeRequest:
    """One request to a resource path, as the HTTP server or the in-process client received it."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # case-insensitive
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip()


@dataclasses.dataclass(frozen=True)
class KubeResponse:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()  # e.g. Warning


def _json(body: Any, status: int = 200, warnings: list[str] | None = None) -> KubeResponse:
    """A JSON answer; ``warnings`` become ``Warning: 299 - "…"`` headers (RFC 7234, as the API server sends)."""
    headers = tuple(("Warning", "299 - " + json.dumps(text)) for text in warnings or ())
    return KubeResponse(status, json.dumps(body, separators=(",", ":")).encode(), headers=headers)


def _json_response(body: Any, status: int = 200) -> aiohttp.web.Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    return aiohttp.web.Response(body=data, status=status, content_type="application/json")


def _metadata_only(accept: str) -> bool:
    """Whether the client asked for PartialObjectMetadata (``as=PartialObjectMetadata[List]``)."""
    return "as=PartialObjectMetadata" in accept.replace(" ", "")


def _partial(obj: Obj) -> Obj:
    return {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"]}


def _event_line(event_type: str, obj: Mapping[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _verb(method: str, route: Route, watch: bool) -> str | None:
    """The verb a request to a resource path serves (None: not served)."""
    match method, route.name is None:
        case "DELETE", True:
            return "deletecollection"
        case "GET", _ if watch:
            return "watch"
        case "GET", True:
            return "list"
        case "POST", True:
            return "create"
        case "GET", False:
            return "get"
        case "PUT", False:
            return "update"
        case "PATCH", False:
            return "patch"
        case "DELETE", False:
            return "delete"
    return None


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise ApiError(400, "the request body is not valid JSON") from None


def _request_verb(method: str, named: bool, query: Mapping[str, str]) -> str:
    """The verb a request is authorized for (``requestinfo.go``), whether or not it is served."""
    watch = query.get("watch", "").lower() in ("true", "1")
    match method:
        case "GET" | "HEAD":
            return "watch" if watch else ("get" if named else "list")
        case "POST":
            return "create"
        case "PUT":
            return "update"
        case "PATCH":
            return "patch"
        case "DELETE":
            return "delete" if named else "deletecollection"
    return method.lower()


def _with_rules(obj: Obj, rules: list[Obj]) -> Obj:
    return {**obj, "rules": rules}


def _sort_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])


def _delete_options(request: KubeRequest) -> Obj:
    options = _parse_json(request.body) if request.body.strip() else {}
    return options if isinstance(options, dict) else {}


def _propagation(query: Mapping[str, str], request: KubeRequest) -> str:
    """DeleteOptions.propagationPolicy (body or query), or the legacy orphanDependents."""
    options = _delete_options(request)
    policy = options.get("propagationPolicy") or query.get("propagationPolicy")
    if policy is None and (options.get("orphanDependents") is True or query.get("orphanDependents") == "true"):
        policy = "Orphan"
    if policy not in (None, "Background", "Foreground", "Orphan"):
        raise ApiError(422, f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
                            f'"{policy}": supported values: "Foreground", "Background", "Orphan", "nil"')
    return policy or "Background"


def _write_options(verb: str, query: Mapping[str, str], request: KubeRequest) -> WriteOptions:
    """``dryRun`` (query, or DeleteOptions.dryRun) and ``fieldValidation`` (default Warn, as the API server's)."""
    dry_runs = [value for value in query.get("dryRun", "").split(",") if value]
    if verb in ("delete", "deletecollection"):
        body_dry_run = _delete_options(request).get("dryRun") or []
        dry_runs += list(body_dry_run) if isinstance(body_dry_run, list) else []
    for value in dry_runs:
        if value != "All":
            raise ApiError(400, f'dryRun: Unsupported value: "{value}": supported values: "All"')
    validation = query.get("fieldValidation") or "Warn"
    if validation not in ("Ignore", "Warn", "Strict"):
        raise ApiError(400, f'fieldValidation: Unsupported value: "{validation}": supported values: "Ignore", '
                            '"Strict", "Warn"')
    return WriteOptions(dry_run=bool(dry_runs), field_validation=validation, action=verb)


def _parse_json_or_yaml(request: KubeRequest) -> Any:
    if request.content_type == APPLY_PATCH:
        return None  # refused by patcher
    return _parse_json(request.body)


def _check_preconditions(obj: Obj, preconditions: Any) -> None:
    """DeleteOptions.preconditions: the uid and resourceVersion the object must still have (409 if not)."""
    if not isinstance(preconditions, dict):
        return
    meta = obj["metadata"]
    for field in ("uid", "resourceVersion"):
        wanted = preconditions.get(field)
        if wanted is not None and wanted != meta.get(field):
            shown = "UID" if field == "uid" else field
            raise ApiError(409, f"Precondition failed: {shown} in precondition: {wanted}, {shown} in object meta: "
                                f"{meta.get(field)}", reason="Conflict")


def _since(value: str | None) -> int | None:
    """The resourceVersion a watch resumes after; None to start with the current state."""
    if value in (None, "", "0"):
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, f"invalid resource version: {value!r}") from None


@attrs.define(kw_only=True, eq=False)
class KubeEmulator(kmock.KubernetesScaffold):
    """The emulated API server. Start it with :meth:`start` on a running event loop."""

    bookmark_interval: float = 30.0
    event_log_size: int = 20000
    validate: bool = True
    request_log_size: int = 1000
    # The bearer token of the cluster admin (user system:admin in group system:masters).
    admin_token: str = attrs.field(factory=lambda: secrets.token_urlsafe(24))
    # HTTPS with the emulator's own CA (kubectl sends credentials only over TLS); plain HTTP if False.
    tls: bool = True

    # The last served requests, without bodies.
    requests: collections.deque[RequestRecord] = attrs.field(init=False)
    _store: Store = attrs.field(init=False)
    _faults: list[Fault] = attrs.field(init=False, factory=list)
    _server: kmock.Server | None = attrs.field(init=False, default=None)
    _certificates: kube_tls.Certificates | None = attrs.field(init=False, default=None)
    _ca_dir: tempfile.TemporaryDirectory[str] | None = attrs.field(init=False, default=None)
    _tokens: dict[str, tuple[str, str, str]] = attrs.field(init=False, factory=dict)  # → namespace, name, uid
    _rbac: auth.RBAC = attrs.field(init=False)
    garbage_collector: GarbageCollector = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.requests = collections.deque(maxlen=self.request_log_size)
        self._store = Store(
            event_log_size=self.event_log_size,
            validate=self.validate,
            on_types_changed=self._sync_discovery,
        )
        for rt in BUILTINS:
            self._store.register(rt)
        self._rbac = auth.RBAC(self._store.find, self._store.values)
        self._store.listeners.append(self._aggregate_cluster_roles)
        self.garbage_collector = GarbageCollector(self._store)
        self._store.listeners.append(self.garbage_collector.observe)
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create_namespace(name)
        roles, bindings = auth.bootstrap_policy()
        for obj in [*roles, *bindings]:
            self.apply(obj)

    # ----------------------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._server is not None:
            raise RuntimeError("the Kubernetes API emulator is already running")
        await self.__aenter__()
        if self.tls:
            self._certificates = kube_tls.make_certificates(host)
            server_class = kube_tls.tls_server_class(self._certificates.server_context())
            self._ca_dir = tempfile.TemporaryDirectory(prefix="kube-sandbox-")
            (pathlib.Path(self._ca_dir.name) / "ca.crt").write_bytes(self._certificates.ca_pem)
            self._server = kmock.Server(self, host=host, port=port, server_cls=server_class)
        else:
            self._server = kmock.Server(self, host=host, port=port)
        await self._server.__aenter__()
        logger.info("Kubernetes API emulator listening on %s", self.url)

    async def stop(self) -> None:
        """End every watch stream, then stop the server."""
        self._store.close_watchers("stopped")
        if self._server is not None:
            await self._server.__aexit__(None, None, None)
            self._server = None
            await self.__aexit__(None, None, None)
        if self._ca_dir is not None:
            self._ca_dir.cleanup()
            self._ca_dir = None

    @property
    def url(self) -> str:  # type: ignore[override]  # kmock's is a yarl.URL of any of its servers
        if self._server is None:
            raise RuntimeError("the Kubernetes API emulator is not running")
        return str(self._server.url).rstrip("/")

    @property
    def ca_file(self) -> str | None:
        """A file holding the certificate authority of the running server (None without TLS)."""
        return str(pathlib.Path(self._ca_dir.name) / "ca.crt") if self._ca_dir is not None else None

    def kubeconfig(self, namespace: str = "default", token: str | None = None) -> dict[str, Any]:
        """A kubeconfig for the admin, or for the holder of ``token`` (see :meth:`service_account_token`)."""
        cluster: dict[str, Any] = {"server": self.url}
        if self._certificates is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self._certificates.ca_pem).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sandbox", "cluster": cluster}],
            "users": [{"name": "sandbox", "user": {"token": token or self.admin_token}}],
            "contexts": [
                {"name": "sandbox", "context": {"cluster": "sandbox", "user": "sandbox", "namespace": namespace}}
            ],
            "current-context": "sandbox",
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | os.PathLike[str], namespace: str = "default",
                         token: str | None = None) -> None:
        with open(path, "w", encoding="utf-8") as file:
            yaml.safe_dump(self.kubeconfig(namespace, token), file, sort_keys=False)
        os.chmod(path, 0o600)

    # ------------------------------------------------------------------------- authentication

    def service_account_token(self, namespace: str, name: str) -> str:
        """A bearer token of a ServiceAccount (created, with its namespace, if absent). It stays valid
        while that ServiceAccount exists."""
        with self._store.lock:
            self.create_namespace(namespace)
            account = self._find(SERVICEACCOUNTS, namespace, name)
            if account is None:
                account = self._store.create(SERVICEACCOUNTS, namespace, {"metadata": {"name": name}})
            uid = account["metadata"]["uid"]
            for token, owner in self._tokens.items():
                if owner == (namespace, name, uid):
                    return token
            token = secrets.token_urlsafe(24)
            self._tokens[token] = (namespace, name, uid)
            return token

    def authenticate(self, headers: Mapping[str, str]) -> auth.User:
        """The user a request's ``Authorization: Bearer`` header (and impersonation headers) names; 401 if none."""
        scheme, _, token = headers.get("Authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "Unauthorized")
        if secrets.compare_digest(token, self.admin_token):
            return self._impersonate(auth.ADMIN, headers)
        with self._store.lock:
            owner = self._tokens.get(token)
            account = self._find(SERVICEACCOUNTS, owner[0], owner[1]) if owner else None
        if owner is None or account is None or account["metadata"]["uid"] != owner[2]:
            raise ApiError(401, "Unauthorized")
        return self._impersonate(auth.service_account_user(*owner), headers)

    def _impersonate(self, user: auth.User, headers: Mapping[str, str]) -> auth.User:
        """``Impersonate-User``/``Impersonate-Group`` (``filters/impersonation.go``), each checked with the
        verb ``impersonate``."""
        target = headers.get("Impersonate-User")
        getall = getattr(headers, "getall", None)
        groups = list(getall("Impersonate-Group", ())) if getall else []
        if not target:
            if groups:
                raise ApiError(500, "requested impersonation of groups without impersonating a user")
            return user
        checks = []
        account = auth.split_service_account(target)
        if account is not None:
            checks.append(auth.resource_attributes(user, "impersonate", "", "", "serviceaccounts", account[0],
                                                   account[1], None))
            if not groups:
                groups = list(auth.service_account_user(*account).groups)
        else:
            checks.append(auth.resource_attributes(user, "impersonate", "", "", "users", None, target, None))
        checks += [auth.resource_attributes(user, "impersonate", "", "", "groups", None, group, None)
                   for group in groups]
        with self._store.lock:
            for attributes in checks:
                decision = self._rbac.authorize(attributes)
                if not decision.allowed:
                    raise attributes.forbidden(decision.reason)
        if auth.AUTHENTICATED not in groups:
            groups.append(auth.AUTHENTICATED)
        return auth.User(target, tuple(groups))

    def authorize(self, attributes: auth.Attributes) -> auth.Decision:
        with self._store.lock:
            return self._rbac.authorize(attributes)

    def _authorize(self, attributes: auth.Attributes) -> None:
        decision = self.authorize(attributes)
        if not decision.allowed:
            raise attributes.forbidden(decision.reason)

    def _authorize_route(self, user: auth.User, method: str, route: Route, query: Mapping[str, str]) -> None:
        verb = _request_verb(method, route.name is not None, query)
        self._authorize(auth.resource_attributes(user, verb, route.group, route.version, route.plural,
                                                 route.namespace, route.name, route.subresource,
                                                 query.get("fieldSelector")))

    def _aggregate_cluster_roles(self, rt: ResourceType, change: Change) -> None:
        """The clusterrole-aggregation controller: aggregated ClusterRoles get the selected roles' rules."""
        if rt.key != CLUSTERROLES.key:
            return
        for role in self._store.values(CLUSTERROLES):
            rules = self._rbac.aggregated_rules(role)
            if rules is not None and rules != (role.get("rules") or []):
                self._store.update(CLUSTERROLES, None, role["metadata"]["name"],
                                   functools.partial(_with_rules, rules=rules))

    # ------------------------------------------------------------ state (thread-safe helpers)

    def install_crd(self, crd: Mapping[str, Any]) -> None:
        """Store (or replace) a CustomResourceDefinition and serve its resource."""
        body = clone(dict(crd))
        name = body.get("metadata", {}).get("name", "")
        with self._store.lock:
            if self._find(CRDS, None, name) is None:
                self._store.create(CRDS, None, body)
            else:
                body["metadata"].pop("resourceVersion", None)
                self._store.update(CRDS, None, name, lambda _: body)

    def create_namespace(self, name: str) -> None:
        with self._store.lock:
            if self._find(NAMESPACES, None, name) is None:
                self._store.create(NAMESPACES, None, {"metadata": {"name": name}})

    def apply(self, body: Mapping[str, Any]) -> Obj:
        """Create an object of any served kind (from its apiVersion and kind), or replace it if it exists."""
        api_version, kind = str(body.get("apiVersion", "")), str(body.get("kind", ""))
        group, _, version = api_version.rpartition("/")
        with self._store.lock:
            rt = next((t for t in self._store.types() if (t.group, t.version, t.kind) == (group, version, kind)
                       and t.key not in VIEWS), None)
            if rt is None:
                raise KeyError(f"the kind {kind} of {api_version} is not served")
            obj = clone(dict(body))
            meta = obj.setdefault("metadata", {})
            namespace = meta.get("namespace") if rt.namespaced else None
            if rt.namespaced and not namespace:
                meta["namespace"] = namespace = "default"
            if self._find(rt, namespace, meta["name"]) is None:
                return clone(self._store.create(rt, namespace, obj))
            meta.pop("resourceVersion", None)
            return clone(self._store.update(rt, namespace, meta["name"], lambda _: obj))

    def create_object(self, api_version: str, plural: str, body: Mapping[str, Any]) -> Obj:
        """Store a new object (as a POST would); ApiError if the API server would refuse it."""
        with self._store.lock:
            namespace = (body.get("metadata") or {}).get("namespace")
            return clone(self._store.create(self._resolve(api_version, plural), namespace, clone(dict(body))))

    def get_object(self, api_version: str, plural: str, namespace: str | None, name: str) -> Obj | None:
        """A copy of a stored object, None if absent; KeyError if the resource is not served."""
        with self._store.lock:
            obj = self._find(self._resolve(api_version, plural), namespace, name)
            return clone(obj) if obj is not None else None

    def list_objects(self, api_version: str, plural: str, namespace: str | None = None) -> list[Obj]:
        with self._store.lock:
            items, _ = self._store.select(self._resolve(api_version, plural), Selector(namespace))
            return [clone(obj) for obj in items]

    def add_fault(
        self,
        *,
        method: str | None = None,
        plural: str | None = None,
        subresource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        status: int = 500,
        times: int = 1,
        message: str = "injected fault",
    ) -> Fault:
        fault = Fault(method, plural, subresource, namespace, name, status, times, message)
        with self._store.lock:
            self._faults.append(fault)
        return fault

    def remove_fault(self, fault: Fault) -> None:
        with self._store.lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear_faults(self) -> None:
        with self._store.lock:
            self._faults.clear()

    def subscribe(self, api_version: str, plural: str, loop: asyncio.AbstractEventLoop, *,
                  label_selector: str | None = None) -> tuple[Watcher, list[tuple[str, Obj]]]:
        """An in-process watch of a resource: the watcher (``pending`` events, ``wakeup``) and the
        objects it starts with. :meth:`unsubscribe` ends it."""
        selector = Selector.parse(None, label_selector, None)
        return self._store.watch(self._resolve(api_version, plural), selector, None, loop)

    def unsubscribe(self, watcher: Watcher) -> None:
        self._store.unwatch(watcher)

    def drop_watches(self) -> None:
        """Abort every open watch connection (clients see a disconnect and watch again)."""
        self._store.close_watchers("dropped")

    def _resolve(self, api_version: str, plural: str) -> ResourceType:
        group, _, version = api_version.rpartition("/")
        try:
            return self._store.resolve(group, version, plural)
        except ApiError:
            raise KeyError(f"the resource {plural} of {api_version} is not served") from None

    def _find(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        try:
            return self._store.get(rt, namespace, name)
        except ApiError:
            return None

    def _sync_discovery(self) -> None:
        """Publish the served resources to kmock's discovery (swapped whole: other threads may read it)."""
        self._resources = kmock.ResourcesArray(
            {
                kmock.resource(rt.group, rt.version, rt.plural): kmock.ResourceInfo(
                    namespaced=rt.namespaced,
                    kind=rt.kind,
                    singular=rt.singular,
                    verbs=set(rt.verbs),
                    shortnames=set(rt.short_names),
                    categories=set(rt.categories),
                    subresources=set(rt.subresources),
                )
                for rt in self._store.types()
            }
        )

    # ---------------------------------------------------------------------------------- HTTP

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        method = raw.method.upper()
        streams = method == "GET" and raw.query.get("watch", "").lower() in ("true", "1")
        try:
            user = self.authenticate(raw.headers)
            route = parse_route(raw.path)
            if route is None:
                self._authorize(auth.non_resource_attributes(user, method, raw.path))
            if route is not None and streams:
                self._authorize_route(user, method, route, raw.query)
                self._check_route(method, route, "watch")
                response: aiohttp.web.StreamResponse = await self._serve_watch(raw, route)
            elif route is not None or raw.path.startswith("/openapi/"):
                body = await raw.read() if method in _WRITE_METHODS else b""
                answer = self.handle(KubeRequest(method, raw.path, raw.query, raw.headers, body))
                return aiohttp.web.Response(body=answer.body, status=answer.status, content_type=answer.content_type,
                                            headers=CIMultiDict(answer.headers))
            else:
                streams = False
                response = await super().__call__(raw)
                self._requests.clear()  # discovery needs no history; keeps kmock's matching O(1)
                self._errors[-1].clear()
        except ApiError as exc:
            streams = False
            response = _json_response(exc.status(), exc.code)
        except Exception:
            streams = False
            logger.exception("Failed to serve %s %s", method, raw.path)
            response = _json_response(ApiError(500, "internal error of the API emulator").status(), 500)
        if not streams:  # watch streams are recorded when they start
            self._record(method, raw.path, response.status)
        return response

    def handle(self, request: KubeRequest) -> KubeResponse:
        """Answer one request to a resource path (not a watch), synchronously: the HTTP server and the
        in-process client (:mod:`.inprocess`) both come here."""
        try:
            user = self.authenticate(request.headers)
            route = parse_route(request.path)
            if route is None:
                self._authorize(auth.non_resource_attributes(user, request.method, request.path))
                return self._serve_openapi(request)
            self._authorize_route(user, request.method, route, request.query)
            answer = self._serve(request, route, user)
        except ApiError as exc:
            answer = _json(exc.status(), exc.code)
        except Exception:
            logger.exception("Failed to serve %s %s", request.method, request.path)
            answer = _json(ApiError(500, "internal error of the API emulator").status(), 500)
        accept = request.headers.get("Accept", "")
        view = "PartialObjectMetadata" if _metadata_only(accept) else "Table" if wants_table(accept) else ""
        self._record(request.method, request.path, answer.status, view)
        return answer

    def _serve_openapi(self, request: KubeRequest) -> KubeResponse:
        """``/openapi/v2`` (JSON or protobuf, by Accept), ``/openapi/v3`` and its group-version documents."""
        path = request.path.rstrip("/")
        if request.method != "GET" or not path.startswith("/openapi/"):
            raise ApiError(404, _NOT_FOUND)
        types = self._store.types()
        if path == "/openapi/v2":
            document = openapi.v2_document(types)
            if openapi.PROTOBUF_V2 in request.headers.get("Accept", ""):
                return KubeResponse(200, openapi.v2_protobuf(document), openapi.PROTOBUF_V2)
            return _json(document)
        if path == "/openapi/v3":
            return _json(openapi.v3_index(types))
        parts = path.removeprefix("/openapi/v3/").split("/")
        if len(parts) == 2 and parts[0] == "api":
            group, version = "", parts[1]
        elif len(parts) == 3 and parts[0] == "apis":
            group, version = parts[1], parts[2]
        else:
            raise ApiError(404, _NOT_FOUND)
        v3 = openapi.v3_document(types, group, version)
        if v3 is None:
            raise ApiError(404, _NOT_FOUND)
        return _json(v3)

    def _record(self, method: str, path: str, status: int, view: str = "") -> None:
        self.requests.append(RequestRecord(method, path, status, view))
        logger.debug("%s %s %d", method, path, status)

    async def _serve_version(self, request: kmock.Request) -> dict[str, Any]:
        """``/api/v1``, ``/apis/G/V``: from ``self.resources``, with proper subresource entries.

        kmock's own answer misnames the core group version ("/v1") and copies short names to
        subresources, which breaks kubectl's resource mapping.
        """
        assert request.resource is not None  # kmock routes only /api/V and /apis/G/V here
        group, version = request.resource.group, request.resource.version
        entries: list[dict[str, Any]] = []
        resources = self.resources
        for resource in resources:
            if (resource.group, resource.version) != (group, version):
                continue
            info = resources[resource]
            common = {"namespaced": info.namespaced, "kind": info.kind}
            entries.append(
                {
                    "name": resource.plural,
                    "singularName": info.singular,
                    "verbs": sorted(info.verbs),
                    "shortNames": sorted(info.shortnames),
                    "categories": sorted(info.categories),
                    **common,
                }
            )
            for subresource in sorted(info.subresources):
                entries.append(
                    {
                        "name": f"{resource.plural}/{subresource}",
                        "singularName": "",
                        "verbs": ["get", "patch", "update"],
                    }
                    | common
                )
        if not entries and group:
            raise ApiError(404, _NOT_FOUND)
        return {
            "apiVersion": "v1",
            "kind": "APIResourceList",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": entries,
        }

    async def _serve_server_version(self, request: kmock.Request) -> dict[str, str]:
        """``/version``: a release kubectl 1.32 accepts without a version-skew warning."""
        return {
            "major": "1",
            "minor": "32",
            "gitVersion": "v1.32.0-sandbox",
            "gitTreeState": "clean",
            "platform": "linux/amd64",
        }

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        """Errors of discovery requests: a Status without kmock's hints and tracebacks."""
        if isinstance(exc, ApiError):
            return _json_response(exc.status(), exc.code)
        if isinstance(exc, kmock.KubernetesError):
            message = _NOT_FOUND if exc.status == 404 else str(exc.message or exc.reason)
            return _json_response(ApiError(exc.status, message).status(), exc.status)
        logger.error("Failed to serve a discovery request", exc_info=exc)
        return _json_response(ApiError(500, "internal error of the API emulator").status(), 500)

    def _check_faults(self, method: str, verb: str, route: Route) -> None:
        with self._store.lock:
            for fault in self._faults:
                if fault.matches(method, verb, route):
                    fault.hits += 1
                    if fault.hits == fault.times:
                        self._faults.remove(fault)
                    raise ApiError(fault.status, fault.message)

    def _check_route(self, method: str, route: Route, verb: str | None) -> ResourceType:
        rt = self._store.resolve(route.group, route.version, route.plural)
        if verb is None or verb not in rt.verbs:
            raise ApiError(405, f"the server does not allow this method on the requested resource ({method})")
        if route.namespace is not None and not rt.namespaced:
            raise ApiError(404, _NOT_FOUND)
        if rt.namespaced and route.namespace is None and verb not in ("list", "watch"):
            raise ApiError(404, _NOT_FOUND)
        if route.subresource is not None and (route.subresource != "status" or not rt.has_status):
            raise ApiError(404, _NOT_FOUND)
        return rt

    def _serve(self, request: KubeRequest, route: Route, user: auth.User) -> KubeResponse:
        method = request.method
        verb = _verb(method, route, False)
        rt = self._check_route(method, route, verb)
        assert verb is not None
        if rt in REVIEWS:
            return self._serve_review(request, rt, user)
        if rt.key in VIEWS:
            return self._serve_view(request, route, verb, rt)
        return self._serve_resource(request, route, verb, rt)

    def _serve_review(self, request: KubeRequest, rt: ResourceType, user: auth.User) -> KubeResponse:
        """authorization.k8s.io/v1 access and rules reviews, authentication.k8s.io/v1 SelfSubjectReview:
        answered from RBAC, never stored (``pkg/registry/authorization``, ``pkg/registry/authentication``)."""
        body = self._body_object(request)
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        answer: Obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": {"creationTimestamp": None}}
        if rt is SELF_SUBJECT_REVIEWS:
            return _json({**answer, "status": {"userInfo": user.info()}}, 201)
        if rt is SELF_SUBJECT_RULES_REVIEWS:
            with self._store.lock:
                resource_rules, url_rules, incomplete = self._rbac.rules(user, str(spec.get("namespace") or ""))
            rules = {"resourceRules": resource_rules, "nonResourceRules": url_rules, "incomplete": incomplete}
            return _json({**answer, "spec": spec, "status": rules}, 201)
        if rt is not SELF_SUBJECT_ACCESS_REVIEWS:  # SubjectAccessReview: for the user the spec names
            user = auth.User(str(spec.get("user") or ""), tuple(spec.get("groups") or ()), str(spec.get("uid") or ""))
        resource, path = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if (resource is None) == (path is None):
            raise ApiError(422, f"{rt.kind}.{rt.group} \"\" is invalid: spec.resourceAttributes: Invalid value: "
                                "\"null\": exactly one of nonResourceAttributes or resourceAttributes must be "
                                "specified")
        if isinstance(resource, dict):
            attributes = auth.Attributes(user, str(resource.get("verb") or ""), True,
                                         group=str(resource.get("group") or ""),
                                         version=str(resource.get("version") or ""),
                                         resource=str(resource.get("resource") or ""),
                                         subresource=str(resource.get("subresource") or ""),
                                         namespace=str(resource.get("namespace") or ""),
                                         name=str(resource.get("name") or ""))
        else:
            assert isinstance(path, dict)
            attributes = auth.Attributes(user, str(path.get("verb") or ""), False, path=str(path.get("path") or ""))
        decision = self.authorize(attributes)
        status: Obj = {"allowed": decision.allowed}
        if decision.reason:
            status["reason"] = decision.reason
        return _json({**answer, "spec": spec, "status": status}, 201)

    def _serve_view(self, request: KubeRequest, route: Route, verb: str, rt: ResourceType) -> KubeResponse:
        """events.k8s.io/v1: the core/v1 events, converted on the way in and out."""
        stored = VIEWS[rt.key]
        body = request.body
        if verb in ("create", "update"):
            body = json.dumps(events.to_core(self._body_object(request))).encode()
        elif verb == "patch":
            raise ApiError(405, "the API emulator does not patch events.k8s.io/v1 events")
        headers = CIMultiDict(request.headers)
        headers["Content-Type"] = "application/json"
        inner = dataclasses.replace(request, body=body, headers=headers)
        answer = self._serve_resource(inner, dataclasses.replace(route, group="", version="v1"), verb, stored)
        if answer.status >= 300:
            return answer
        payload = json.loads(answer.body)
        if payload.get("kind") == "EventList":
            payload.update(apiVersion=rt.api_version, items=[events.to_v1(item) for item in payload["items"]])
        elif payload.get("kind") == "Event":
            payload = events.to_v1(payload)
        return KubeResponse(answer.status, json.dumps(payload, separators=(",", ":")).encode())

    def _serve_resource(self, request: KubeRequest, route: Route, verb: str, rt: ResourceType) -> KubeResponse:
        method, query = request.method, request.query
        self._check_faults(method, verb, route)
        accept = request.headers.get("Accept", "")
        as_table = wants_table(accept)
        metadata_only = _metadata_only(accept)
        include = query.get("includeObject", "Metadata")

        if verb == "list":
            items, rv, listing = self._list(rt, route.namespace, query)
            if as_table:
                return _json(table(rt, items, rv, include=include))
            if metadata_only:
                return _json({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                              "metadata": listing, "items": [_partial(i) for i in items]})
            return _json({"apiVersion": rt.api_version, "kind": f"{rt.kind}List", "metadata": listing,
                          "items": items})

        options = _write_options(verb, query, request)
        if verb == "create":
            created = self._store.create(rt, route.namespace, self._body_object(request), options)
            return _json(created, 201, options.warnings)

        if verb == "deletecollection":
            policy = _propagation(query, request)
            with self._store.lock:
                items, _ = self._store.select(rt, self._selector(rt, route.namespace, query))
                deleted = [self._store.delete(rt, route.namespace or item["metadata"].get("namespace"),
                                              item["metadata"]["name"], propagation=policy,
                                              dry_run=options.dry_run)
                           for item in items]
            return _json({"apiVersion": rt.api_version, "kind": f"{rt.kind}List",
                          "metadata": {"resourceVersion": str(self._store.resource_version)}, "items": deleted})

        assert route.name is not None  # every other verb names an object
        name, namespace = route.name, route.namespace
        match verb:
            case "get":
                obj = self._store.get(rt, namespace, name)
            case "update":
                replacement = self._body_object(request)
                meta: Obj = replacement["metadata"] if isinstance(replacement.get("metadata"), dict) else {}
                given = meta.get("name")
                if given not in (None, name):
                    raise ApiError(400, f"the name of the object ({given}) does not match the name on the URL ({name})")
                if rt.schema is not None and not meta.get("resourceVersion"):
                    # The registry store's Update (staging/src/k8s.io/apiserver/pkg/registry/generic/registry/
                    # store.go): custom resources do not allow unconditional updates.
                    raise invalid_update(rt, name)
                obj = self._store.update(rt, namespace, name, lambda _: replacement, route.subresource, options)
            case "patch":
                change = patcher(request.content_type, _parse_json_or_yaml(request), rt)
                obj = self._store.update(rt, namespace, name, change, route.subresource, options)
            case _:  # delete
                if rt.key == NAMESPACES.key and name in _IMMORTAL_NAMESPACES:
                    # The NamespaceLifecycle admission plugin (plugin/pkg/admission/namespace/lifecycle).
                    raise ApiError(403, f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                                   details={"name": name, "kind": "namespaces"})
                delete_options = _delete_options(request)
                with self._store.lock:
                    _check_preconditions(self._store.get(rt, namespace, name), delete_options.get("preconditions"))
                    obj = self._store.delete(rt, namespace, name, propagation=_propagation(query, request),
                                             dry_run=options.dry_run)
        if as_table and verb == "get":
            return _json(table(rt, [obj], self._store.resource_version, include=include))
        if metadata_only:
            return _json(_partial(obj))
        return _json(obj, 200, options.warnings)

    def _list(self, rt: ResourceType, namespace: str | None, query: Mapping[str, str]) -> tuple[list[Obj], int, Obj]:
        """A list request's items, resource version and ListMeta, with ``limit``/``continue`` paging.

        The continue token carries the list's resource version and the last key returned, as the
        API server's does (``storage.EncodeContinue``); later pages are read from the current state
        after that key (the emulator keeps no snapshots), and a token older than the watch event log
        answers 410 Expired as a compacted one does."""
        selector = self._selector(rt, namespace, query)
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            raise ApiError(400, f"invalid limit: {query.get('limit')!r}") from None
        token = query.get("continue")
        with self._store.lock:
            items, rv = self._store.select(rt, selector)
            start: tuple[str, str] | None = None
            if token:
                rv, start = self._store.decode_continue(token)
                items = [item for item in items if _sort_key(item) > start]
            listing: Obj = {"resourceVersion": str(rv)}
            if 0 < limit < len(items):
                remaining = len(items) - limit
                items = items[:limit]
                listing["continue"] = self._store.encode_continue(rv, _sort_key(items[-1]))
                listing["remainingItemCount"] = remaining
            return items, rv, listing

    @staticmethod
    def _selector(rt: ResourceType, namespace: str | None, query: Mapping[str, str]) -> Selector:
        try:
            selector = Selector.parse(namespace, query.get("labelSelector"), query.get("fieldSelector"))
        except ValueError as exc:
            raise ApiError(400, f"invalid selector: {exc}") from None
        check_field_selector(rt, selector)
        return selector

    @staticmethod
    def _body_object(request: KubeRequest) -> Obj:
        """The object of a create or replace request: JSON, or protobuf as kubectl sends for built-ins."""
        if request.content_type == PROTOBUF:
            return protobuf.decode(request.body)
        obj = _parse_json(request.body)
        if not isinstance(obj, dict):
            raise ApiError(400, "the request body must be a JSON object")
        return obj

    # --------------------------------------------------------------------------------- watch

    async def _serve_watch(self, raw: aiohttp.web.BaseRequest, route: Route) -> aiohttp.web.StreamResponse:
        rt = self._store.resolve(route.group, route.version, route.plural)
        self._check_faults(raw.method, "watch", route)
        query = raw.query
        as_table = wants_table(raw.headers.get("Accept", ""))
        include = query.get("includeObject", "Metadata")
        fields = query.get("fieldSelector")
        if route.name is not None:
            fields = ",".join(filter(None, [f"metadata.name={route.name}", fields]))
        try:
            selector = Selector.parse(route.namespace, query.get("labelSelector"), fields)
        except ValueError as exc:
            raise ApiError(400, f"invalid selector: {exc}") from None
        check_field_selector(rt, selector)
        initial_events = query.get("sendInitialEvents") == "true"
        since = None if initial_events else _since(query.get("resourceVersion"))
        try:
            timeout = float(query["timeoutSeconds"]) if "timeoutSeconds" in query else math.inf
        except ValueError:
            raise ApiError(400, "timeoutSeconds must be a number") from None
        loop = asyncio.get_running_loop()
        expired: ApiError | None = None
        try:
            watcher, initial = self._store.watch(rt, selector, since, loop)
        except ApiError as exc:
            if exc.code != 410:
                raise
            expired = exc

        response = aiohttp.web.StreamResponse(status=200)
        response.content_type = "application/json"
        response.enable_chunked_encoding()
        self._record(raw.method, raw.path, 200)
        await response.prepare(raw)
        if expired is not None:
            await response.write(_event_line("ERROR", expired.status()))
            await response.write_eof()
            return response

        render = self._renderer(rt, as_table, include)
        try:
            chunk = b"".join(render(event_type, obj) for event_type, obj in initial)
            if initial_events:
                end = {"annotations": {"k8s.io/initial-events-end": "true"}}
                chunk += self._bookmark(rt, end)
            if chunk:
                await response.write(chunk)
            bookmarks = query.get("allowWatchBookmarks") == "true"
            how = await self._stream_events(raw, watcher, response, render, loop.time() + timeout, bookmarks)
        except ConnectionError:
            return response  # the client went away
        finally:
            self._store.unwatch(watcher)
        if how == "dropped":
            if raw.transport is not None:
                raw.transport.abort()
            return response
        await response.write_eof()
        return response

    async def _stream_events(
        self,
        raw: aiohttp.web.BaseRequest,
        watcher: Watcher,
        response: aiohttp.web.StreamResponse,
        render: Callable[[str, Obj], bytes],
        deadline: float,
        bookmarks: bool,
    ) -> str:
        """Send queued events until the watcher closes, the deadline passes or the client leaves."""
        loop = asyncio.get_running_loop()
        next_bookmark = loop.time() + self.bookmark_interval if bookmarks else math.inf
        while True:
            watcher.wakeup.clear()
            pending = watcher.pending
            chunk = b"".join(render(*pending.popleft()) for _ in range(len(pending)))
            if chunk:
                await response.write(chunk)
            now = loop.time()
            if watcher.closed:
                return watcher.closed
            if now >= deadline or raw.transport is None or raw.transport.is_closing():
                return "timeout"
            if now >= next_bookmark:
                with self._store.lock:  # no change may slip between the queue and the bookmark
                    bookmark = None if pending else self._bookmark(watcher.rt)
                if bookmark is not None:
                    await response.write(bookmark)
                    next_bookmark = now + self.bookmark_interval
                continue
            wait = min(deadline, next_bookmark, now + _DISCONNECT_CHECK) - now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watcher.wakeup.wait(), wait)

    def _bookmark(self, rt: ResourceType, extra: Mapping[str, Any] | None = None) -> bytes:
        metadata = {"resourceVersion": str(self._store.resource_version), **(extra or {})}
        return _event_line("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": metadata})

    @staticmethod
    def _renderer(rt: ResourceType, as_table: bool, include: str) -> Callable[[str, Obj], bytes]:
        """Event lines: objects, or one-row Tables (with column definitions in the first only)."""
        if not as_table:
            return _event_line
        first = True

        def render(event_type: str, obj: Obj) -> bytes:
            nonlocal first
            rv = int(obj["metadata"]["resourceVersion"])
            rows = table(rt, [obj], rv, include=include, with_columns=first)
            first = False
            return _event_line(event_type, rows)

        return render
