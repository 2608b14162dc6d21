"""Typed views of an OVHObjectStorageUser: names, its spec (validated), its status (as recorded).

Everything here is read from objects a tenant can write, spec and status alike: parsing never
trusts a field's type, and a status field that does not parse is treated as absent.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import InvalidSpec

GROUP = "s3.ovh-operator.dev"
VERSION = "v1alpha1"
PLURAL = "ovhobjectstorageusers"
KIND = "OVHObjectStorageUser"
PROJECT_PLURAL = "ovhprojects"
PROJECT_KIND = "OVHProject"
API_VERSION = f"{GROUP}/{VERSION}"
FINALIZER = f"{GROUP}/ovh-user"
READY = "Ready"
OBJECTSTORE_OPERATOR = "objectstore_operator"
"""The OVH role every user gets unless spec.roles says otherwise."""
MARKER_PREFIX = "[osu:"
DESCRIPTION_LIMIT = 255
"""The longest OVH user description the operator writes (OVH documents no limit: stay well within any)."""
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class Access(enum.StrEnum):
    READ = "read"
    READWRITE = "readwrite"
    ADMIN = "admin"


class Grant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str
    prefix: str | None = Field(None, min_length=1, max_length=1024)
    access: Access

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not BUCKET_NAME.match(value) or ".." in value:
            raise ValueError(
                f"invalid bucket name {value!r}: use 3-63 lower-case letters, digits, dots or hyphens, "
                "starting and ending with a letter or digit"
            )
        return value


class SecretRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, max_length=253)


class ProjectRef(BaseModel):
    """``spec.projectRef``: the OVHProject whose OVH project holds the user (absent: the operator's own)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=253)


class Spec(BaseModel):
    """``spec`` of the resource; unknown fields are refused rather than silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field("", max_length=200)
    roles: tuple[str, ...] = Field((OBJECTSTORE_OPERATOR,), min_length=1)
    region: str | None = None
    grants: tuple[Grant, ...] = ()
    policy: dict[str, Any] | None = None
    secret: SecretRef = SecretRef()
    project_ref: ProjectRef | None = Field(None, alias="projectRef")

    @field_validator("description")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must contain printable characters only (no line breaks or control characters)")
        return value


def _location(loc: tuple[int | str, ...]) -> str:
    path = "spec"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def parse_spec(raw: Mapping[str, Any]) -> Spec:
    """Validate ``spec``; every problem is named by its field path, e.g. ``spec.grants[0].access``."""
    try:
        return Spec.model_validate(dict(raw))
    except ValidationError as exc:
        problems = [f"{_location(err['loc'])}: {err['msg']}" for err in exc.errors(include_input=False)]
        raise InvalidSpec("; ".join(problems)) from None


# --- the marker on OVH users -------------------------------------------------------------------


@dataclass(frozen=True)
class Marker:
    """What makes an OVH user this resource's: ``[osu:<cluster id>/<resource uid>]`` at the very start
    of its description, followed by ``<namespace>/<name>`` and ``spec.description``.

    First, so that no truncation can cut it and no description can forge it; with the cluster id,
    so that clusters sharing an OVH project never touch each other's users.
    """

    cluster: str
    uid: str

    @property
    def text(self) -> str:
        return f"{MARKER_PREFIX}{self.cluster}/{self.uid}]"

    def description(self, namespace: str, name: str, description: str) -> str:
        return f"{self.text} {namespace}/{name} {description}".rstrip()[:DESCRIPTION_LIMIT]

    def is_on(self, description: str) -> bool:
        return description == self.text or description.startswith(self.text + " ")


_MARKED = re.compile(
    r"^\[osu:(?P<cluster>[A-Za-z0-9-]+)/(?P<uid>[A-Za-z0-9-]+)\](?: (?P<namespace>[a-z0-9-]+)/(?P<name>\S+))?")


@dataclass(frozen=True)
class MarkedUser:
    """What an OVH user's description says about the resource it belongs to."""

    marker: Marker
    namespace: str | None
    name: str | None


def read_marker(description: str) -> MarkedUser | None:
    match = _MARKED.match(description)
    if match is None:
        return None
    return MarkedUser(Marker(match["cluster"], match["uid"]), match["namespace"], match["name"])


# --- status -------------------------------------------------------------------------------------


def parse_time(value: object) -> datetime.datetime | None:
    """An RFC 3339 timestamp as Kubernetes writes them; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def format_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str
    last_transition_time: str | None
    observed_generation: int | None

    @classmethod
    def parse(cls, raw: object) -> Condition | None:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("type"), str):
            return None
        generation = raw.get("observedGeneration")
        return cls(type=raw["type"], status=str(raw.get("status") or "Unknown"), reason=str(raw.get("reason") or ""),
                   message=str(raw.get("message") or ""),
                   last_transition_time=raw.get("lastTransitionTime") if isinstance(
                       raw.get("lastTransitionTime"), str) else None,
                   observed_generation=generation if type(generation) is int else None)

    def to_api(self) -> dict[str, Any]:
        return {"type": self.type, "status": self.status, "reason": self.reason, "message": self.message,
                "lastTransitionTime": self.last_transition_time, "observedGeneration": self.observed_generation}


def _int(value: object) -> int | None:
    return value if type(value) is int and value > 0 else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Status:
    """``status`` as recorded. Untrusted: the user id is acted on only once OVH shows this resource's
    marker on that user."""

    ready: Condition | None = None
    observed_generation: int | None = None
    user_id: int | None = None
    username: str | None = None
    access_key_id: str | None = None
    secret_name: str | None = None
    user_requested_at: datetime.datetime | None = None
    project: str | None = None
    """The OVHProject the user lives in (None: the operator's own), once ``service_name`` is recorded."""
    service_name: str | None = None
    """The OVH project id the user lives in, recorded before the user is created."""

    @classmethod
    def parse(cls, raw: object) -> Status:
        if not isinstance(raw, Mapping):
            return cls()
        conditions = raw.get("conditions")
        parsed = [Condition.parse(c) for c in conditions] if isinstance(conditions, list) else []
        return cls(
            ready=next((c for c in parsed if c is not None and c.type == READY), None),
            observed_generation=_int(raw.get("observedGeneration")),
            user_id=_int(raw.get("userId")),
            username=_str(raw.get("username")),
            access_key_id=_str(raw.get("accessKeyId")),
            secret_name=_str(raw.get("secretName")),
            user_requested_at=parse_time(raw.get("userRequestedAt")),
            project=_str(raw.get("project")),
            service_name=_str(raw.get("serviceName")),
        )

    @property
    def user_may_exist(self) -> bool:
        """An OVH user was created, or may have been, for the resource."""
        return bool(self.user_id or self.user_requested_at)


# The status fields the operator writes, by their names in the API.
STATUS_FIELDS = {
    "user_id": "userId",
    "username": "username",
    "access_key_id": "accessKeyId",
    "secret_name": "secretName",
    "user_requested_at": "userRequestedAt",
    "project": "project",
    "service_name": "serviceName",
}


def project_name(spec: Mapping[str, Any]) -> str:
    """``spec.projectRef.name`` of a spec that may not validate ("" when absent: the operator's own)."""
    ref = spec.get("projectRef")
    name = ref.get("name") if isinstance(ref, Mapping) else None
    return name if isinstance(name, str) else ""


@dataclass(frozen=True)
class Resource:
    """One OVHObjectStorageUser as read from the API."""

    namespace: str
    name: str
    uid: str
    generation: int
    resource_version: str
    spec: Mapping[str, Any]
    status: Status
    deleting: bool
    finalizers: tuple[str, ...]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Resource:
        meta = body.get("metadata") or {}
        spec = body.get("spec")
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            generation=int(meta.get("generation") or 0),
            resource_version=str(meta.get("resourceVersion") or ""),
            spec=spec if isinstance(spec, Mapping) else {},
            status=Status.parse(body.get("status")),
            deleting=bool(meta.get("deletionTimestamp")),
            finalizers=tuple(meta.get("finalizers") or ()),
        )

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def is_ready(self) -> bool:
        """Ready=True, computed for the resource's current generation."""
        ready = self.status.ready
        return ready is not None and ready.status == "True" and ready.observed_generation == self.generation

    def owner_reference(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": KIND, "name": self.name, "uid": self.uid,
                "controller": True, "blockOwnerDeletion": True}

    def object_reference(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": KIND, "namespace": self.namespace, "name": self.name,
                "uid": self.uid}
