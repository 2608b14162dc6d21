"""Resource types, printer columns and API errors of the Kubernetes API emulator."""

from __future__ import annotations

import dataclasses
import datetime
import http
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ovh_s3_operator_sandbox.kube.query import compile_jsonpath

Obj = dict[str, Any]

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

# Status reasons of the Kubernetes API for the HTTP codes it uses (metav1.StatusReason).
REASONS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def clone(obj: Obj) -> Obj:
    """A deep copy of a JSON object (faster than copy.deepcopy for JSON data)."""
    result: Obj = json.loads(json.dumps(obj))
    return result


def reason_for(code: int) -> str:
    if code in REASONS:
        return REASONS[code]
    try:
        return http.HTTPStatus(code).phrase.replace(" ", "")
    except ValueError:
        return "Unknown"


class ApiError(Exception):
    """A failure answered as a Kubernetes ``Status`` object."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason or reason_for(code)
        self.message = message
        self.details = dict(details or {})

    def status(self) -> Obj:
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        # metav1.StatusDetails: every field is omitempty.
        details = {key: value for key, value in self.details.items() if value not in ("", None, [], {})}
        if details:
            body["details"] = details
        return body


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One field-level validation failure (a ``causes`` entry of a 422 ``Invalid`` Status)."""

    field: str
    reason: str  # FieldValueRequired, FieldValueNotSupported, FieldValueInvalid, …
    detail: str

    def __str__(self) -> str:
        return f"{self.field}: {self.detail}"


@dataclasses.dataclass(frozen=True)
class PrinterColumn:
    """One column of ``kubectl get`` (a CRD's additionalPrinterColumn or a built-in default)."""

    name: str
    type: str
    value: Callable[[Mapping[str, Any]], Any] = dataclasses.field(compare=False)
    description: str = ""
    priority: int = 0
    format: str = ""

    @classmethod
    def from_crd(cls, spec: Mapping[str, Any]) -> PrinterColumn:
        path = compile_jsonpath(str(spec["jsonPath"]))

        def value(obj: Mapping[str, Any]) -> Any:
            results = path(obj)
            if not results:
                return None
            if len(results) == 1:
                return results[0]
            return ",".join(str(result) for result in results)

        return cls(
            name=str(spec["name"]),
            type=str(spec.get("type", "string")),
            value=value,
            description=str(spec.get("description", "")),
            priority=int(spec.get("priority", 0)),
            format=str(spec.get("format", "")),
        )

    @classmethod
    def path(cls, name: str, type_: str, jsonpath: str, description: str = "") -> PrinterColumn:
        return cls.from_crd({"name": name, "type": type_, "jsonPath": jsonpath, "description": description})


AGE = PrinterColumn.path("Age", "date", ".metadata.creationTimestamp", "Time since the object was created.")


@dataclasses.dataclass(frozen=True)
class ResourceType:
    """A served resource: its names for discovery, its scope, subresources, columns and schema."""

    group: str
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    columns: tuple[PrinterColumn, ...] = (AGE,)
    schema: Mapping[str, Any] | None = dataclasses.field(default=None, compare=False)
    verbs: tuple[str, ...] = VERBS

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def group_resource(self) -> str:
        """``secrets`` or ``ovhobjectstorageusers.s3.ovh-operator.dev``, as in K8s error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @classmethod
    def from_crd(cls, crd: Mapping[str, Any]) -> list[ResourceType]:
        """The resource types of all served versions of a CustomResourceDefinition."""
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        if not spec.get("group") or not names.get("plural") or not names.get("kind"):
            raise ApiError(
                422,
                "CustomResourceDefinition is invalid: spec.group, spec.names.plural and spec.names.kind are required",
            )
        result = []
        for version in spec.get("versions") or []:
            if not version.get("served", True):
                continue
            columns = tuple(PrinterColumn.from_crd(col) for col in version.get("additionalPrinterColumns") or [])
            result.append(
                cls(
                    group=str(spec["group"]),
                    version=str(version["name"]),
                    plural=str(names["plural"]),
                    kind=str(names["kind"]),
                    singular=str(names.get("singular") or str(names["kind"]).lower()),
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    short_names=tuple(names.get("shortNames") or ()),
                    categories=tuple(names.get("categories") or ()),
                    subresources=frozenset(version.get("subresources") or ()),
                    columns=columns or (AGE,),
                    schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                )
            )
        return result


def _data_count(obj: Mapping[str, Any]) -> int:
    return len(obj.get("data") or {}) + len(obj.get("binaryData") or {})


NAMESPACES = ResourceType(
    "",
    "v1",
    "namespaces",
    "Namespace",
    "namespace",
    False,
    short_names=("ns",),
    subresources=frozenset({"status"}),
    columns=(PrinterColumn.path("Status", "string", ".status.phase", "The phase of the namespace."), AGE),
)
SECRETS = ResourceType(
    "",
    "v1",
    "secrets",
    "Secret",
    "secret",
    True,
    columns=(
        PrinterColumn.path("Type", "string", ".type", "The type of the secret."),
        PrinterColumn("Data", "integer", _data_count, "The number of data keys."),
        AGE,
    ),
)
CONFIGMAPS = ResourceType(
    "",
    "v1",
    "configmaps",
    "ConfigMap",
    "configmap",
    True,
    short_names=("cm",),
    columns=(PrinterColumn("Data", "integer", _data_count, "The number of data keys."), AGE),
)
EVENTS = ResourceType("", "v1", "events", "Event", "event", True, short_names=("ev",))
EVENTS_V1 = ResourceType("events.k8s.io", "v1", "events", "Event", "event", True, short_names=("ev",))
LEASES = ResourceType("coordination.k8s.io", "v1", "leases", "Lease", "lease", True)
SERVICEACCOUNTS = ResourceType(
    "", "v1", "serviceaccounts", "ServiceAccount", "serviceaccount", True, short_names=("sa",)
)
CRDS = ResourceType(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    "customresourcedefinition",
    False,
    short_names=("crd", "crds"),
    categories=("api-extensions",),
    subresources=frozenset({"status"}),
    columns=(PrinterColumn.path("Created At", "date", ".metadata.creationTimestamp"),),
)
RBAC_GROUP = "rbac.authorization.k8s.io"
ROLES = ResourceType(RBAC_GROUP, "v1", "roles", "Role", "role", True)
CLUSTERROLES = ResourceType(RBAC_GROUP, "v1", "clusterroles", "ClusterRole", "clusterrole", False)
_ROLE_COLUMN = PrinterColumn("Role", "string", lambda obj: f"{obj.get('roleRef', {}).get('kind')}/"
                             f"{obj.get('roleRef', {}).get('name')}", "The role the binding grants.")
ROLEBINDINGS = ResourceType(RBAC_GROUP, "v1", "rolebindings", "RoleBinding", "rolebinding", True,
                            columns=(_ROLE_COLUMN, AGE))
CLUSTERROLEBINDINGS = ResourceType(RBAC_GROUP, "v1", "clusterrolebindings", "ClusterRoleBinding",
                                   "clusterrolebinding", False, columns=(_ROLE_COLUMN, AGE))
# Reviews are created and answered, never stored (kubectl auth can-i, kubectl auth whoami).
SELF_SUBJECT_ACCESS_REVIEWS = ResourceType("authorization.k8s.io", "v1", "selfsubjectaccessreviews",
                                           "SelfSubjectAccessReview", "", False, verbs=("create",))
SELF_SUBJECT_RULES_REVIEWS = ResourceType("authorization.k8s.io", "v1", "selfsubjectrulesreviews",
                                          "SelfSubjectRulesReview", "", False, verbs=("create",))
SUBJECT_ACCESS_REVIEWS = ResourceType("authorization.k8s.io", "v1", "subjectaccessreviews",
                                      "SubjectAccessReview", "", False, verbs=("create",))
SELF_SUBJECT_REVIEWS = ResourceType("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", "",
                                    False, verbs=("create",))
REVIEWS = (SELF_SUBJECT_ACCESS_REVIEWS, SELF_SUBJECT_RULES_REVIEWS, SUBJECT_ACCESS_REVIEWS, SELF_SUBJECT_REVIEWS)
BUILTINS = (NAMESPACES, SECRETS, CONFIGMAPS, EVENTS, EVENTS_V1, LEASES, SERVICEACCOUNTS, CRDS, ROLES, CLUSTERROLES,
            ROLEBINDINGS, CLUSTERROLEBINDINGS, *REVIEWS)
VIEWS = {EVENTS_V1.key: EVENTS}
"""Resources served as another resource's objects in another shape (see :mod:`.events`)."""


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str) -> datetime.datetime | None:
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        404,
        f'{rt.group_resource} "{name}" not found',
        details={"name": name, "group": rt.group, "kind": rt.plural},
    )


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        f'{rt.group_resource} "{name}" already exists',
        reason="AlreadyExists",
        details={"name": name, "group": rt.group, "kind": rt.plural},
    )


def conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {rt.group_resource} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details={"name": name, "group": rt.group, "kind": rt.plural},
    )


def invalid(rt: ResourceType, name: str, errors: Sequence[FieldError]) -> ApiError:
    listing = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(map(str, errors)) + "]"
    return ApiError(
        422,
        f'{rt.group_kind} "{name}" is invalid: {listing}',
        details={
            "name": name,
            "group": rt.group,
            "kind": rt.kind,
            "causes": [{"reason": err.reason, "message": err.detail, "field": err.field} for err in errors],
        },
    )


def invalid_update(rt: ResourceType, name: str) -> ApiError:
    """A PUT without metadata.resourceVersion where unconditional updates are not allowed: the registry names
    the resource (plural) where the kind would be, and prints the version as %#v of a uint64."""
    detail = "Invalid value: 0x0: must be specified for an update"
    return ApiError(
        422,
        f'{rt.group_resource} "{name}" is invalid: metadata.resourceVersion: {detail}',
        details={"name": name, "group": rt.group, "kind": rt.plural,
                 "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": "metadata.resourceVersion"}]},
    )
