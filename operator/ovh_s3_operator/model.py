"""Typed views of an OVHObjectStorageUser: names, its spec (validated), its status (as recorded).

Everything here is read from objects a tenant can write, spec and status alike: parsing never
trusts a field's type, and a status field that does not parse is treated as absent.
"""

from __future__ import annotations

import datetime
import enum
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

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
ROTATE_ANNOTATION = f"{GROUP}/rotate"
"""Set to any new value to have the S3 key rotated once (``status.lastRotationRequest`` shows it done)."""
MARKER_PREFIX = "[osu:"
DESCRIPTION_LIMIT = 255
"""The longest OVH user description the operator writes (OVH documents no limit: stay well within any)."""
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
TEMPLATE_ENTRIES = 16
TEMPLATE_LENGTH = 8192
"""The most entries of spec.secret.template, and the longest template text of one."""
SECRET_METADATA_ENTRIES = 32
ANNOTATION_LENGTH = 4096
"""The most labels (and annotations) spec.secret may add to the Secret, and the longest annotation."""


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


# --- the Secret's shape: names and metadata as kube-apiserver validates them ---------------------
# (k8s.io/apimachinery/pkg/util/validation: IsConfigMapKey, IsQualifiedName, IsValidLabelValue)

_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def secret_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a key of a Secret's data, or None."""
    if len(key) > 253:
        return f"the key {key[:40]}… is longer than 253 characters"
    if not _SECRET_KEY.fullmatch(key) or key == "." or key.startswith(".."):
        return (f"invalid key {key!r}: use letters, digits, '-', '_' or '.' (not '.' alone, not starting "
                "with '..')")
    return None


def qualified_name_problem(key: str) -> str | None:
    """Why ``key`` cannot be a label or annotation key (an optional DNS subdomain prefix and '/', then a
    name of at most 63 characters), or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return (f"invalid key {key[:80]!r}: its prefix (before '/') must be a lower-case DNS subdomain of at "
                "most 253 characters")
    if not 0 < len(name) <= 63 or not _QUALIFIED_NAME.fullmatch(name):
        return (f"invalid key {key[:80]!r}: its name must be 1-63 letters, digits, '-', '_' or '.', starting "
                "and ending with a letter or digit")
    return None


def reserved_key(key: str) -> bool:
    """Label and annotation keys the operator sets itself on its Secrets."""
    prefix = key.rpartition("/")[0]
    return key == MANAGED_BY_LABEL or prefix == GROUP or prefix.endswith("." + GROUP)


def _metadata_problems(entries: dict[str, str], what: str) -> list[str]:
    problems = []
    for key in entries:
        if (problem := qualified_name_problem(key)) is not None:
            problems.append(problem)
        elif reserved_key(key):
            problems.append(f"the {what} {key} is reserved for the operator ({MANAGED_BY_LABEL} and keys under "
                            f"{GROUP}/); choose another key")
    return problems


def _label_problems(labels: dict[str, str]) -> list[str]:
    return _metadata_problems(labels, "label") + [
        f"invalid value {text!r} of label {key}: use at most 63 letters, digits, '-', '_' or '.', starting and "
        "ending with a letter or digit (or nothing)"
        for key, text in labels.items() if text and not _QUALIFIED_NAME.fullmatch(text)]


_ENTRY_PROBLEMS: dict[str, Callable[[dict[str, str]], list[str]]] = {
    "template": lambda template: [problem for key in template if (problem := secret_key_problem(key)) is not None],
    "labels": _label_problems,
    "annotations": lambda annotations: _metadata_problems(annotations, "annotation"),
}
"""What is wrong with the keys (and label values) of spec.secret's maps."""


class SecretFormat(enum.StrEnum):
    DEFAULT = "Default"
    COSI = "COSI"


class SecretKeys(BaseModel):
    """New names for the Secret's four default keys (each optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)

    access_key_id: str | None = None
    secret_access_key: str | None = None
    endpoint: str | None = None
    region: str | None = None

    @field_validator("*")
    @classmethod
    def _key_name(cls, value: str | None) -> str | None:
        if value is not None and (problem := secret_key_problem(value)) is not None:
            raise ValueError(problem)
        return value


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(s|m|h)")
_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """Whole seconds (rounded up) in a duration as Kubernetes writes them (Go's ``time.ParseDuration``
    with the units s, m and h, e.g. ``90s``, ``1h30m``, ``720h``; no sign, no days: Go has none)."""
    if not text or _DURATION.sub("", text) != "":
        raise ValueError(f"invalid duration {text!r}: use a number and a unit (s, m or h), e.g. 90s, 1h or 720h")
    return float(math.ceil(sum(float(number) * _UNITS[unit] for number, unit in _DURATION.findall(text))))


def format_duration(seconds: float) -> str:
    """The shortest of ``<n>h``, ``<n>m``, ``<n>s`` that says ``seconds`` exactly (whole seconds)."""
    whole = int(seconds)
    for unit, size in (("h", 3600), ("m", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def _duration(value: object, *, least: float, most: float, name: str) -> float:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string such as 1h or 720h")
    seconds = parse_duration(value)
    if not least <= seconds <= most:
        raise ValueError(f"{name} must be between {format_duration(least)} and {format_duration(most)}, not {value}")
    return seconds


class Rotation(BaseModel):
    """``spec.rotation``: when a new S3 key replaces the current one on its own, and for how long the
    previous key stays valid (durations are parsed into seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    interval: float | None = None
    grace_period: float = Field(3600.0, alias="gracePeriod")

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, value: object) -> float | None:
        return None if value is None else _duration(value, least=3600.0, most=8760 * 3600.0, name="interval")

    @field_validator("grace_period", mode="before")
    @classmethod
    def _grace(cls, value: object) -> float:
        return _duration(value, least=0.0, most=168 * 3600.0, name="gracePeriod")

    @model_validator(mode="after")
    def _grace_within_interval(self) -> Rotation:
        if self.interval is not None and self.grace_period >= self.interval:
            raise ValueError("gracePeriod must be shorter than interval: two keys would otherwise always be valid")
        return self


class DeletionPolicy(enum.StrEnum):
    DELETE = "Delete"
    RETAIN = "Retain"


class SecretRef(BaseModel):
    """``spec.secret``: where the credentials go, and the shape of the Secret that holds them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, max_length=253)
    format: SecretFormat = SecretFormat.DEFAULT
    keys: SecretKeys = SecretKeys()
    template: dict[str, Annotated[str, Field(max_length=TEMPLATE_LENGTH)]] = Field(
        default_factory=dict, max_length=TEMPLATE_ENTRIES)
    labels: dict[str, Annotated[str, Field(max_length=63)]] = Field(
        default_factory=dict, max_length=SECRET_METADATA_ENTRIES)
    annotations: dict[str, Annotated[str, Field(max_length=ANNOTATION_LENGTH)]] = Field(
        default_factory=dict, max_length=SECRET_METADATA_ENTRIES)

    @field_validator("template", "labels", "annotations")
    @classmethod
    def _entries(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        if problems := _ENTRY_PROBLEMS[str(info.field_name)](value):
            raise ValueError("; ".join(problems))
        return value


class ProjectRef(BaseModel):
    """``spec.projectRef``: the OVHProject whose OVH project holds the user (absent: the operator's own)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=253)


class Spec(BaseModel):
    """``spec`` of the resource; unknown fields are refused rather than silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    description: str = Field("", max_length=200)
    roles: tuple[str, ...] = Field((OBJECTSTORE_OPERATOR,), min_length=1)
    region: str | None = None
    grants: tuple[Grant, ...] = ()
    policy: dict[str, Any] | None = None
    secret: SecretRef = SecretRef()
    rotation: Rotation = Rotation()
    deletion_policy: DeletionPolicy | None = Field(None, alias="deletionPolicy")
    user_id: int | None = Field(None, alias="userId", ge=1, le=2**63 - 1)
    """An existing OVH user to adopt instead of creating one."""
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


def micro_time_now() -> str:
    """Now as a metav1.MicroTime (Events' eventTime, Leases' times)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


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
    previous_access_key_id: str | None = None
    previous_key_expiry: datetime.datetime | None = None
    last_rotation_time: datetime.datetime | None = None
    next_rotation_time: datetime.datetime | None = None
    last_rotation_request: str | None = None
    pending_rotation_request: str | None = None
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
            previous_access_key_id=_str(raw.get("previousAccessKeyId")),
            previous_key_expiry=parse_time(raw.get("previousAccessKeyExpiryTime")),
            last_rotation_time=parse_time(raw.get("lastRotationTime")),
            next_rotation_time=parse_time(raw.get("nextRotationTime")),
            last_rotation_request=_text(raw.get("lastRotationRequest")),
            pending_rotation_request=_text(raw.get("pendingRotationRequest")),
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
    "previous_access_key_id": "previousAccessKeyId",
    "previous_key_expiry": "previousAccessKeyExpiryTime",
    "last_rotation_time": "lastRotationTime",
    "next_rotation_time": "nextRotationTime",
    "last_rotation_request": "lastRotationRequest",
    "pending_rotation_request": "pendingRotationRequest",
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
    annotations: Mapping[str, str] = field(default_factory=dict)

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
            annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
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
