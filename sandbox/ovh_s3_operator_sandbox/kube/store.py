"""The state of the Kubernetes API emulator: objects, resource versions, the event log and watchers.

Every operation is synchronous and runs under one re-entrant lock, so it is atomic for the
event loop (no ``await`` between a state change and the enqueueing of its watch events) and
safe to call from other threads. Stored objects are immutable snapshots: every write stores a
new dict, so snapshots can be shared by responses, the event log and watch queues.

Lookups are O(1): objects are kept per resource in dicts keyed by (namespace, name), with
indexes by uid and by owner uid (for garbage collection) and a count of objects per namespace.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import dataclasses
import json
import random
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ovh_s3_operator_sandbox.kube import auth, builtin_schemas, cel, validation
from ovh_s3_operator_sandbox.kube.model import (
    CLUSTERROLEBINDINGS,
    CLUSTERROLES,
    CONFIGMAPS,
    CRDS,
    NAMESPACES,
    ROLEBINDINGS,
    ROLES,
    SECRETS,
    ApiError,
    FieldError,
    Obj,
    ResourceType,
    already_exists,
    clone,
    conflict,
    invalid,
    not_found,
    rfc3339,
    utcnow,
)
from ovh_s3_operator_sandbox.kube.query import Selector
from ovh_s3_operator_sandbox.kube.schema import StructuralSchema, prune_unknown

ResourceKey = tuple[str, str, str]  # (group, version, plural)
ObjectRef = tuple[ResourceKey, str, str]  # (resource, namespace or "", name)

_SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
    "managedFields",
)
_IMMUTABLE_FIELDS = (
    "uid",
    "name",
    "namespace",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)
ANNOTATIONS_LIMIT = 256 * 1024
_RBAC_KEYS = (ROLES.key, CLUSTERROLES.key, ROLEBINDINGS.key, CLUSTERROLEBINDINGS.key)
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # as the API server's generateName suffixes
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclasses.dataclass
class WriteOptions:
    """How a write request asks to be handled: ``dryRun=All`` (everything but storing) and
    ``fieldValidation`` (Strict: unknown fields are an error; Warn: ``warnings``; Ignore)."""

    dry_run: bool = False
    field_validation: str = "Ignore"
    warnings: list[str] = dataclasses.field(default_factory=list)
    action: str = "create"  # create, update or patch: the wording of strict-validation errors

    def unknown_fields(self, rt: ResourceType, paths: list[str]) -> None:
        """Strict and Warn decoding of fields the schema does not know (``strict decoding error: unknown field``
        of apimachinery's serializer; the create/update prefix is ``transformDecodeError`` of the handlers)."""
        if not paths or self.field_validation == "Ignore":
            return
        problems = [f'unknown field "{path}"' for path in sorted(paths)]
        if self.field_validation == "Warn":
            self.warnings += problems
            return
        message = "strict decoding error: " + ", ".join(problems)
        if self.action != "patch":
            message = f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {message}'
        raise ApiError(400, message)


_DEFAULT_OPTIONS = WriteOptions()


class Change:
    """One committed write, as kept in the event log."""

    __slots__ = ("obj", "old", "resource", "rv", "type")

    def __init__(self, rv: int, resource: ResourceKey, type_: str, obj: Obj, old: Obj | None) -> None:
        self.rv = rv
        self.resource = resource
        self.type = type_
        self.obj = obj
        self.old = old


class Watcher:
    """One open watch stream: what it selects and the events queued for it."""

    def __init__(self, rt: ResourceType, selector: Selector, loop: asyncio.AbstractEventLoop) -> None:
        self.rt = rt
        self.selector = selector
        self.pending: collections.deque[tuple[str, Obj]] = collections.deque()
        self.wakeup = asyncio.Event()
        self.closed: str | None = None  # "dropped" (abort the connection) or "stopped" (end the stream)
        self._loop = loop

    def event_type(self, change: Change) -> str | None:
        """The event this watcher sees for a change (an object leaving the selection is DELETED)."""
        if change.type == "DELETED":
            return "DELETED" if self.selector.matches(change.obj) else None
        now = self.selector.matches(change.obj)
        before = change.old is not None and self.selector.matches(change.old)
        if now:
            return "MODIFIED" if before else "ADDED"
        return "DELETED" if before else None

    def offer(self, change: Change) -> None:
        event_type = self.event_type(change)
        if event_type is not None:
            self.pending.append((event_type, change.obj))
            self._wake()

    def close(self, how: str) -> None:
        self.closed = how
        self._wake()

    def _wake(self) -> None:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self.wakeup.set()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.wakeup.set)


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = obj["metadata"]
    return meta


def _spec_part(rt: ResourceType, obj: Obj) -> Obj:
    """What metadata.generation tracks: everything but metadata (and status, if a subresource)."""
    excluded = ("metadata", "status") if rt.has_status else ("metadata",)
    return {key: value for key, value in obj.items() if key not in excluded}


OBJECT_META = f"{builtin_schemas.META}.ObjectMeta"


def _tracks_generation(rt: ResourceType) -> bool:
    """Custom resources and CRDs have a metadata.generation; the built-in kinds served here do not (their
    registry strategies never set it)."""
    return rt.schema is not None or rt.key == CRDS.key


def _normalize_secret(obj: Obj) -> None:
    data = obj.get("data") or {}
    if not isinstance(data, dict):
        raise ApiError(400, "Secret.data must be a map of base64-encoded strings")
    for key, value in data.items():
        try:
            base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, f"Secret.data[{key}]: illegal base64 data") from None
    string_data = obj.pop("stringData", None) or {}
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    if data or "data" in obj:
        obj["data"] = data
    obj.setdefault("type", "Opaque")


def _normalize_namespace(obj: Obj) -> None:
    meta = _meta(obj)
    meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    status = obj.setdefault("status", {})
    status["phase"] = "Terminating" if meta.get("deletionTimestamp") else status.get("phase") or "Active"


def _normalize_crd(obj: Obj) -> list[ResourceType]:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    types = ResourceType.from_crd(obj)
    expected = f"{names.get('plural')}.{spec.get('group')}"
    if _meta(obj)["name"] != expected:
        detail = f'Invalid value: "{_meta(obj)["name"]}": must be spec.names.plural+"."+spec.group'
        raise invalid(CRDS, _meta(obj)["name"], [FieldError("metadata.name", "FieldValueInvalid", detail)])
    since = _meta(obj)["creationTimestamp"]
    obj["status"] = {
        "acceptedNames": names,
        "conditions": [
            {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": since}
            for kind, reason, message in (
                ("NamesAccepted", "NoConflicts", "no conflicts found"),
                ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            )
        ],
        "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
    }
    return types


def _check_name(rt: ResourceType, name: str) -> None:
    if rt.key in _RBAC_KEYS:
        # pkg/apis/rbac/validation: ValidateRBACName is path.IsValidPathSegmentName
        problems = [f"may not be '{name}'"] if name in (".", "..") else [
            f"may not contain '{char}'" for char in "/%" if char in name]
        if problems:
            detail = f'Invalid value: "{name}": {", ".join(problems)}'
            raise invalid(rt, name, [FieldError("metadata.name", "FieldValueInvalid", detail)])
        return
    pattern, limit = (_DNS_LABEL, 63) if rt.key == NAMESPACES.key else (_DNS_SUBDOMAIN, 253)
    if len(name) > limit or not pattern.fullmatch(name):
        detail = (
            f'Invalid value: "{name}": must be no more than {limit} characters, consist of lower case '
            "alphanumeric characters, '-' or '.', and start and end with an alphanumeric character"
        )
        raise invalid(rt, name, [FieldError("metadata.name", "FieldValueInvalid", detail)])


class Store:
    """Objects of all served resources, with Kubernetes' write semantics."""

    def __init__(
        self,
        *,
        event_log_size: int,
        validate: bool,
        on_types_changed: Callable[[], None],
    ) -> None:
        self.lock = threading.RLock()
        self._validate = validate
        self._on_types_changed = on_types_changed
        self._types: dict[ResourceKey, ResourceType] = {}
        self._schemas: dict[ResourceKey, StructuralSchema] = {}
        self._objects: dict[ResourceKey, dict[tuple[str, str], Obj]] = {}
        self._by_uid: dict[str, ObjectRef] = {}
        self._dependents: dict[str, set[ObjectRef]] = {}
        self._population: collections.Counter[str] = collections.Counter()
        self._rv = 0
        self._log: collections.deque[Change] = collections.deque(maxlen=event_log_size)
        self._log_floor = 0  # the highest resource version no longer in the log
        self._watchers: dict[ResourceKey, set[Watcher]] = {}
        # Called after every committed write, under the lock (controllers of the emulator).
        self.listeners: list[Callable[[ResourceType, Change], None]] = []

    # ------------------------------------------------------------------------------------ types

    @property
    def resource_version(self) -> int:
        return self._rv

    def types(self) -> list[ResourceType]:
        with self.lock:
            return list(self._types.values())

    def register(self, rt: ResourceType) -> None:
        with self.lock:
            self._types[rt.key] = rt
            self._objects.setdefault(rt.key, {})
            if rt.schema is not None:
                self._schemas[rt.key] = StructuralSchema(rt.schema)
            else:
                self._schemas.pop(rt.key, None)
            self._on_types_changed()

    def _unregister(self, key: ResourceKey) -> None:
        rt = self._types[key]
        for obj in list(self._objects[key].values()):
            self._remove(rt, obj, propagate=True)
        for watcher in self._watchers.pop(key, set()):
            watcher.close("stopped")
        del self._types[key], self._objects[key]
        self._schemas.pop(key, None)
        self._on_types_changed()

    def resolve(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self._types.get((group, version, plural))
        if rt is None:
            raise ApiError(404, "the server could not find the requested resource")
        return rt

    # ------------------------------------------------------------------------------------ reads

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        with self.lock:
            obj = self._objects[rt.key].get((namespace or "", name))
            if obj is None:
                raise not_found(rt, name)
            return obj

    def find(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        with self.lock:
            return self._objects[rt.key].get((namespace or "", name))

    def values(self, rt: ResourceType, namespace: str | None = None) -> list[Obj]:
        """The objects of a resource (of one namespace, if given), unsorted."""
        with self.lock:
            objects = self._objects[rt.key].values()
            if namespace is None:
                return list(objects)
            return [obj for obj in objects if obj["metadata"].get("namespace") == namespace]

    def select(self, rt: ResourceType, selector: Selector) -> tuple[list[Obj], int]:
        """Matching objects sorted by namespace and name, and the current resource version."""
        with self.lock:
            objects = self._objects[rt.key]
            items = [objects[key] for key in sorted(objects) if selector.matches(objects[key])]
            return items, self._rv

    def watch(
        self,
        rt: ResourceType,
        selector: Selector,
        since: int | None,
        loop: asyncio.AbstractEventLoop,
    ) -> tuple[Watcher, list[tuple[str, Obj]]]:
        """Open a watcher and return the events it starts with.

        Without ``since``: ADDED for every matching object. With ``since``: every retained
        change after it; 410 Expired if changes after it are no longer retained.
        """
        with self.lock:
            if since is not None and since < self._log_floor:
                raise ApiError(410, f"too old resource version: {since} ({self._log_floor + 1})", reason="Expired")
            watcher = Watcher(rt, selector, loop)
            if since is None:
                initial = [("ADDED", obj) for obj in self.select(rt, selector)[0]]
            else:
                changes: list[Change] = []
                for change in reversed(self._log):
                    if change.rv <= since:
                        break
                    changes.append(change)
                initial = [
                    (event_type, change.obj)
                    for change in reversed(changes)
                    if change.resource == rt.key and (event_type := watcher.event_type(change))
                ]
            self._watchers.setdefault(rt.key, set()).add(watcher)
            return watcher, initial

    def unwatch(self, watcher: Watcher) -> None:
        with self.lock:
            self._watchers.get(watcher.rt.key, set()).discard(watcher)

    def close_watchers(self, how: str) -> None:
        with self.lock:
            for watchers in self._watchers.values():
                for watcher in watchers:
                    watcher.close(how)

    # ------------------------------------------------------------------------------------ writes

    def create(self, rt: ResourceType, namespace: str | None, obj: Obj, options: WriteOptions = _DEFAULT_OPTIONS
               ) -> Obj:
        """Store a new object (``obj`` is consumed); namespace from the URL, else from the body."""
        with self.lock:
            self._set_type(rt, obj)
            meta = obj.setdefault("metadata", {})
            if not isinstance(meta, dict):
                raise ApiError(400, "metadata must be an object")
            namespace = self._creation_namespace(rt, namespace, meta)
            objects = self._objects[rt.key]
            name = meta.get("name")
            if not name and meta.get("generateName"):
                prefix = str(meta["generateName"])
                while not name or (namespace, name) in objects:
                    name = prefix + "".join(random.choices(_NAME_ALPHABET, k=5))
            if not name:
                detail = "Required value: name or generateName is required"
                raise invalid(rt, "", [FieldError("metadata.name", "FieldValueRequired", detail)])
            _check_name(rt, str(name))
            if (namespace, name) in objects:
                raise already_exists(rt, name)
            for field in _SERVER_FIELDS:
                meta.pop(field, None)
            meta.update(name=name, uid=str(uuid.uuid4()), creationTimestamp=rfc3339(utcnow()))
            if _tracks_generation(rt):
                meta["generation"] = 1
            if rt.has_status:
                obj.pop("status", None)
            self._prepare(rt, obj, None, options)
            if options.dry_run:
                return obj
            self._commit(rt, "ADDED", obj, None)
            return obj

    def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        change: Callable[[Obj], Obj],
        subresource: str | None = None,
        options: WriteOptions = _DEFAULT_OPTIONS,
    ) -> Obj:
        """Apply ``change`` to a copy of the object (a patch or a replacement) and store it.

        A different ``metadata.resourceVersion`` in the result is a conflict; immutable metadata
        is kept; with a status subresource, only ``/status`` changes the status and only the
        main endpoint changes the rest. A change that changes nothing is not stored.
        """
        with self.lock:
            current = self.get(rt, namespace, name)
            cur_meta = _meta(current)
            new = change(clone(current))
            if not isinstance(new, dict):
                raise ApiError(400, "the object must be a JSON object")
            meta = new.get("metadata")
            if not isinstance(meta, dict):
                new["metadata"] = meta = {}
            expected_rv = meta.get("resourceVersion")
            if expected_rv not in (None, "") and str(expected_rv) != cur_meta["resourceVersion"]:
                raise conflict(rt, name)
            if rt.has_status and subresource == "status":
                new, status = clone(current), new.get("status")
                new.pop("status", None)
                if status is not None:
                    new["status"] = status
                meta = _meta(new)
            elif rt.has_status:
                new.pop("status", None)
                if "status" in current:
                    new["status"] = clone(current["status"])
            for field in _IMMUTABLE_FIELDS:
                if field in cur_meta:
                    meta[field] = cur_meta[field]
                else:
                    meta.pop(field, None)
            self._set_type(rt, new)
            if cur_meta.get("deletionTimestamp"):
                added = set(meta.get("finalizers") or ()) - set(cur_meta.get("finalizers") or ())
                if added:
                    detail = (
                        "Forbidden: no new finalizers can be added if the object is being deleted, "
                        f"found new finalizers {sorted(added)}"
                    )
                    raise invalid(rt, name, [FieldError("metadata.finalizers", "FieldValueForbidden", detail)])
            self._prepare(rt, new, current, options)
            if new == current:
                return current
            if _tracks_generation(rt) and _spec_part(rt, new) != _spec_part(rt, current):
                meta["generation"] = int(cur_meta.get("generation", 0)) + 1
            if options.dry_run:
                return new
            if meta.get("deletionTimestamp") and not meta.get("finalizers") and rt.key != NAMESPACES.key:
                return self._remove(rt, new, propagate=True, old=current)
            self._commit(rt, "MODIFIED", new, current)
            if rt.key == NAMESPACES.key:
                return self._finish_namespace(name) or new
            return new

    def encode_continue(self, rv: int, key: tuple[str, str]) -> str:
        """A list's continue token: its resource version and the last key returned."""
        return base64.urlsafe_b64encode(json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": list(key)}).encode()
                                        ).decode()

    def decode_continue(self, token: str) -> tuple[int, tuple[str, str]]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            rv, start = int(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
        except (ValueError, KeyError, IndexError, TypeError, binascii.Error):
            raise ApiError(400, "continue key is not valid: incorrect encoded start resourceVersion (version "
                                "meta.k8s.io/v1)") from None
        if rv < self._log_floor:
            raise ApiError(410, "The provided continue parameter is too old to display a consistent list result. "
                                "You can start a new list without the continue parameter.", reason="Expired")
        return rv, start

    def delete(self, rt: ResourceType, namespace: str | None, name: str, *, propagation: str = "Background",
               dry_run: bool = False) -> Obj:
        """Delete an object: mark it if it has finalizers, else remove it and collect its dependents.
        A dry run answers what the deletion would answer and changes nothing."""
        with self.lock:
            obj = self.get(rt, namespace, name)
            gc_finalizer = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}.get(propagation)
            if gc_finalizer and rt.key != NAMESPACES.key and not _meta(obj).get("deletionTimestamp"):
                # The API server hands the deletion to the garbage collector with a finalizer
                # (registry store's deletionFinalizersForGarbageCollection).
                obj = clone(obj)
                _meta(obj)["finalizers"] = [*(_meta(obj).get("finalizers") or ()), gc_finalizer]
            if not dry_run:
                return self._delete(rt, obj, propagation != "Orphan")
            if rt.key != NAMESPACES.key and (not _meta(obj).get("finalizers") or _meta(obj).get("deletionTimestamp")):
                return obj
            return self._marked(rt, obj)

    # ---------------------------------------------------------------------------------- helpers

    def _set_type(self, rt: ResourceType, obj: Obj) -> None:
        for field, expected in (("apiVersion", rt.api_version), ("kind", rt.kind)):
            if obj.get(field) not in (None, "", expected):
                raise ApiError(400, f"the {field} of the object ({obj[field]}) does not match {expected}")
            obj[field] = expected

    def _creation_namespace(self, rt: ResourceType, namespace: str | None, meta: dict[str, Any]) -> str:
        if not rt.namespaced:
            meta.pop("namespace", None)
            return ""
        in_body = meta.get("namespace")
        if namespace and in_body and in_body != namespace:
            raise ApiError(400, "the namespace of the provided object does not match the namespace sent on the request")
        namespace = namespace or in_body
        if not namespace:
            raise ApiError(400, "the namespace of the object is required")
        ns = self._objects[NAMESPACES.key].get(("", namespace))
        if ns is None:
            raise not_found(NAMESPACES, namespace)
        if _meta(ns).get("deletionTimestamp"):
            message = f"unable to create new content in namespace {namespace} because it is being terminated"
            raise ApiError(403, message)
        meta["namespace"] = namespace
        return namespace

    def _prepare(self, rt: ResourceType, obj: Obj, old: Obj | None, options: WriteOptions = _DEFAULT_OPTIONS
                 ) -> None:
        """Unknown fields dropped, built-in normalization, then schema pruning, defaulting and validation."""
        schema = self._schemas.get(rt.key)
        definition = builtin_schemas.DEFINITIONS.get(
            builtin_schemas.definition_name(rt.group, rt.version, rt.kind)) if schema is None else None
        if definition is not None:  # built-in kinds: Go decoding drops unknown fields
            options.unknown_fields(rt, prune_unknown(obj, definition, builtin_schemas.DEFINITIONS))
        elif schema is not None and self._validate:
            meta = prune_unknown(obj.get("metadata"), builtin_schemas.DEFINITIONS[OBJECT_META],
                                 builtin_schemas.DEFINITIONS, "metadata")
            options.unknown_fields(rt, meta + schema.prune(obj))
        annotations = _meta(obj).get("annotations") or {}
        size = sum(len(str(key)) + len(str(value)) for key, value in annotations.items())
        if size > ANNOTATIONS_LIMIT:
            # apimachinery's ValidateAnnotations: TotalAnnotationSizeLimitB = 256 KiB
            detail = f"Too long: may not be more than {ANNOTATIONS_LIMIT} bytes"
            raise invalid(rt, _meta(obj)["name"], [FieldError("metadata.annotations", "FieldValueTooLong", detail)])
        meta_errors = validation.validate_metadata(_meta(obj))
        if meta_errors:
            raise invalid(rt, _meta(obj)["name"], meta_errors)
        if rt.key in (SECRETS.key, CONFIGMAPS.key):
            data_errors = validation.validate_data(rt.kind, obj, old)
            if data_errors:
                raise invalid(rt, _meta(obj)["name"], data_errors)
        if rt.key == SECRETS.key:
            _normalize_secret(obj)
        elif rt.key == NAMESPACES.key:
            _normalize_namespace(obj)
        elif rt.key == CRDS.key:
            _normalize_crd(obj)
        elif rt.key in _RBAC_KEYS:
            auth.default_rbac(rt, obj)
            rbac_errors = auth.validate_rbac(rt, obj, old)
            if rbac_errors:
                raise invalid(rt, _meta(obj)["name"], rbac_errors)
        if schema is not None and self._validate:
            schema.default(obj)
            errors = schema.validate(obj)
            errors += cel.validate(schema.schema, obj, old if old is not None else cel.MISSING)
            if errors:
                raise invalid(rt, _meta(obj)["name"], errors)

    def _commit(self, rt: ResourceType, type_: str, obj: Obj, old: Obj | None) -> None:
        self._rv += 1
        meta = _meta(obj)
        meta["resourceVersion"] = str(self._rv)
        namespace = meta.get("namespace") or ""
        ref: ObjectRef = (rt.key, namespace, meta["name"])
        if old is not None:
            for owner in _meta(old).get("ownerReferences") or ():
                dependents = self._dependents.get(owner.get("uid"), set())
                dependents.discard(ref)
        if type_ == "DELETED":
            del self._objects[rt.key][namespace, meta["name"]]
            self._by_uid.pop(meta["uid"], None)
        else:
            self._objects[rt.key][namespace, meta["name"]] = obj
            self._by_uid[meta["uid"]] = ref
            for owner in meta.get("ownerReferences") or ():
                self._dependents.setdefault(owner.get("uid"), set()).add(ref)
        if namespace:
            self._population[namespace] += {"ADDED": 1, "DELETED": -1}.get(type_, 0)
        if len(self._log) == self._log.maxlen:
            self._log_floor = self._log[0].rv
        change = Change(self._rv, rt.key, type_, obj, old)
        self._log.append(change)
        for watcher in self._watchers.get(rt.key, ()):
            watcher.offer(change)
        if rt.key == CRDS.key:
            self._sync_crd_types(meta["name"], obj if type_ != "DELETED" else None)
        for listener in self.listeners:
            listener(rt, change)

    def _marked(self, rt: ResourceType, obj: Obj) -> Obj:
        """The object with a deletionTimestamp, and a new generation if it has one (``rest.BeforeDelete``)."""
        marked = clone(obj)
        meta = _meta(marked)
        if meta.get("deletionTimestamp"):
            return marked
        meta.update(deletionTimestamp=rfc3339(utcnow()), deletionGracePeriodSeconds=0)
        if int(meta.get("generation") or 0) > 0:
            meta["generation"] = int(meta["generation"]) + 1
        if rt.key == NAMESPACES.key:
            _normalize_namespace(marked)
        return marked

    def _mark_deleted(self, rt: ResourceType, obj: Obj) -> Obj:
        """Start a graceful deletion."""
        marked = self._marked(rt, obj)
        self._commit(rt, "MODIFIED", marked, obj)
        return marked

    def _delete(self, rt: ResourceType, obj: Obj, propagate: bool) -> Obj:
        meta = _meta(obj)
        if rt.key == NAMESPACES.key:
            marked = obj if meta.get("deletionTimestamp") else self._mark_deleted(rt, obj)
            self._delete_contents(meta["name"], propagate)
            return self._finish_namespace(meta["name"]) or marked
        if not meta.get("finalizers"):
            return self._remove(rt, obj, propagate)
        if meta.get("deletionTimestamp"):
            return obj
        return self._mark_deleted(rt, obj)

    def _remove(self, rt: ResourceType, obj: Obj, propagate: bool, old: Obj | None = None) -> Obj:
        """Remove an object for good (its dependents are the garbage collector's, :mod:`.gc`)."""
        final = {**obj, "metadata": dict(_meta(obj))}
        self._commit(rt, "DELETED", final, old if old is not None else obj)
        namespace = _meta(obj).get("namespace")
        if namespace:
            self._finish_namespace(namespace)
        return final

    def dependents_of(self, uid: str) -> list[ObjectRef]:
        """The objects whose ownerReferences name ``uid``."""
        with self.lock:
            return sorted(self._dependents.get(uid, ()))

    def ref_of(self, uid: str | None) -> ObjectRef | None:
        with self.lock:
            return self._by_uid.get(uid or "")

    def type_of(self, ref: ObjectRef) -> ResourceType:
        return self._types[ref[0]]

    def lookup(self, ref: ObjectRef) -> Obj | None:
        with self.lock:
            return self._lookup(ref)

    def _lookup(self, ref: ObjectRef) -> Obj | None:
        objects = self._objects.get(ref[0])
        return objects.get((ref[1], ref[2])) if objects is not None else None

    def _delete_contents(self, namespace: str, propagate: bool) -> None:
        for rt in list(self._types.values()):
            if not rt.namespaced:
                continue
            for key in [key for key in self._objects[rt.key] if key[0] == namespace]:
                obj = self._objects[rt.key].get(key)
                if obj is not None:
                    self._delete(rt, obj, propagate)

    def _finish_namespace(self, name: str) -> Obj | None:
        """Remove a terminating namespace once it is empty and has no finalizers."""
        ns = self._objects[NAMESPACES.key].get(("", name))
        if ns is None:
            return None
        meta = _meta(ns)
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not self._population[name]:
            return self._remove(NAMESPACES, ns, propagate=True)
        return ns

    def _sync_crd_types(self, name: str, crd: Obj | None) -> None:
        """Serve exactly the versions a stored CRD serves (none once it is removed)."""
        served = ResourceType.from_crd(crd) if crd is not None else []
        plural, _, group = name.partition(".")
        keys = {rt.key for rt in served}
        for key in [k for k in self._types if (k[0], k[2]) == (group, plural) and k not in keys]:
            self._unregister(key)
        for rt in served:
            self.register(rt)
