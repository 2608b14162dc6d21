"""OpenAPI schemas of the built-in kinds the emulator serves, as kube-apiserver publishes them.

Definition names, field names, formats and list extensions follow ``api/openapi-spec`` of
kubernetes/kubernetes (``io.k8s.api.core.v1.Secret``, …); descriptions are shortened. Every field of
these kinds is listed (they are also what unknown fields are detected and dropped against, as Go
decoding drops them), but nested types the emulator never interprets (a CRD's spec, managedFields)
are left open with ``x-kubernetes-preserve-unknown-fields``.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
CORE = "io.k8s.api.core.v1"
RBAC = "io.k8s.api.rbac.v1"
CRD = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1"


def ref(name: str) -> Schema:
    return {"$ref": f"#/definitions/{name}"}


def _s(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def _b(description: str) -> Schema:
    return {"type": "boolean", "description": description}


def _i(description: str, fmt: str = "int32") -> Schema:
    return {"type": "integer", "format": fmt, "description": description}


def _map(description: str, **values: Any) -> Schema:
    return {"type": "object", "description": description, "additionalProperties": {"type": "string", **values}}


def _strings(description: str, **extra: Any) -> Schema:
    return {"type": "array", "description": description, "items": {"type": "string", "default": ""}, **extra}


def _array(description: str, item: str, **extra: Any) -> Schema:
    return {"type": "array", "description": description, "items": {**ref(item), "default": {}}, **extra}


def _open(description: str) -> Schema:
    return {"type": "object", "description": description, "x-kubernetes-preserve-unknown-fields": True}


def _kind(description: str, gvk: tuple[str, str, str], **properties: Schema) -> Schema:
    group, version, kind = gvk
    return {
        "type": "object",
        "description": description,
        "properties": {
            "apiVersion": _s("APIVersion defines the versioned schema of this representation of an object."),
            "kind": _s("Kind is a string value representing the REST resource this object represents."),
            "metadata": {**ref(f"{META}.ObjectMeta"), "default": {},
                         "description": "Standard object's metadata."},
            **properties,
        },
        "x-kubernetes-group-version-kind": [{"group": group, "kind": kind, "version": version}],
    }


_TIME = {"type": "string", "format": "date-time"}

DEFINITIONS: dict[str, Schema] = {
    f"{META}.ObjectMeta": {
        "type": "object",
        "description": "ObjectMeta is metadata that all persisted resources must have.",
        "properties": {
            "annotations": _map("Annotations: arbitrary non-identifying metadata."),
            "creationTimestamp": {**_TIME, "description": "When this object was created."},
            "deletionGracePeriodSeconds": _i("Seconds allowed for graceful termination.", "int64"),
            "deletionTimestamp": {**_TIME, "description": "When this object will be deleted."},
            "finalizers": _strings("Must be empty before the object is deleted from the registry.",
                                   **{"x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"}),
            "generateName": _s("Prefix of a server-generated name."),
            "generation": _i("A sequence number representing a specific generation of the desired state.", "int64"),
            "labels": _map("Map of string keys and values to organize and categorize objects."),
            "managedFields": {"type": "array", "description": "Field managers of the object.",
                              "items": _open("ManagedFieldsEntry")},
            "name": _s("Name must be unique within a namespace."),
            "namespace": _s("Namespace defines the space within which each name must be unique."),
            "ownerReferences": _array("Objects this object depends on.", f"{META}.OwnerReference", **{
                "x-kubernetes-list-map-keys": ["uid"], "x-kubernetes-list-type": "map",
                "x-kubernetes-patch-merge-key": "uid", "x-kubernetes-patch-strategy": "merge"}),
            "resourceVersion": _s("An opaque value that represents the internal version of this object."),
            "selfLink": _s("Deprecated."),
            "uid": _s("UID is the unique in time and space value for this object."),
        },
    },
    f"{META}.OwnerReference": {
        "type": "object",
        "description": "Information to identify an owning object.",
        "required": ["apiVersion", "kind", "name", "uid"],
        "properties": {
            "apiVersion": _s("API version of the referent."),
            "blockOwnerDeletion": _b("If true, the owner cannot be deleted before this reference is removed."),
            "controller": _b("If true, this reference points to the managing controller."),
            "kind": _s("Kind of the referent."),
            "name": _s("Name of the referent."),
            "uid": _s("UID of the referent."),
        },
        "x-kubernetes-map-type": "atomic",
    },
    f"{META}.LabelSelector": {
        "type": "object",
        "description": "A label query over a set of resources.",
        "properties": {
            "matchExpressions": {"type": "array", "description": "A list of label selector requirements.",
                                 "items": _open("LabelSelectorRequirement")},
            "matchLabels": _map("A map of {key,value} pairs."),
        },
    },
    f"{CORE}.ObjectReference": {
        "type": "object",
        "description": "A reference to an object.",
        "properties": {name: _s(f"{name.capitalize()} of the referent.") for name in
                       ("apiVersion", "fieldPath", "kind", "name", "namespace", "resourceVersion", "uid")},
    },
    f"{CORE}.LocalObjectReference": {
        "type": "object", "description": "A reference to an object in the same namespace.",
        "properties": {"name": _s("Name of the referent.")},
    },
    f"{CORE}.Namespace": _kind("Namespace provides a scope for Names.", ("", "v1", "Namespace"), spec={
        "type": "object", "description": "The behavior of the Namespace.",
        "properties": {"finalizers": _strings("Finalizers of the namespace.")}}, status={
        "type": "object", "description": "The current status of the Namespace.",
        "properties": {"phase": _s("The current lifecycle phase of the namespace."),
                       "conditions": {"type": "array", "description": "The latest observations.",
                                      "items": _open("NamespaceCondition")}}}),
    f"{CORE}.Secret": _kind("Secret holds secret data of a certain type.", ("", "v1", "Secret"),
                            data=_map("Base64-encoded secret data.", format="byte"),
                            immutable=_b("If true, data cannot be updated."),
                            stringData=_map("Write-only convenience field: merged into data."),
                            type=_s("Used to facilitate programmatic handling of secret data.")),
    f"{CORE}.ConfigMap": _kind("ConfigMap holds configuration data for pods to consume.", ("", "v1", "ConfigMap"),
                               binaryData=_map("Binary data.", format="byte"), data=_map("Configuration data."),
                               immutable=_b("If true, data cannot be updated.")),
    f"{CORE}.ServiceAccount": _kind(
        "ServiceAccount binds together a name, a principal and a set of secrets.", ("", "v1", "ServiceAccount"),
        automountServiceAccountToken=_b("Whether pods mount an API token automatically."),
        imagePullSecrets=_array("Secrets for pulling images.", f"{CORE}.LocalObjectReference"),
        secrets=_array("Secrets pods may use.", f"{CORE}.ObjectReference")),
    f"{CORE}.Event": _kind(
        "Event is a report of an event somewhere in the cluster.", ("", "v1", "Event"),
        action=_s("What action was taken/failed regarding the involved object."),
        count=_i("The number of times this event has occurred."),
        eventTime={**_TIME, "format": "date-time", "description": "When this Event was first observed (MicroTime)."},
        firstTimestamp={**_TIME, "description": "When this event was first recorded."},
        involvedObject={**ref(f"{CORE}.ObjectReference"), "default": {}, "description": "The object of the event."},
        lastTimestamp={**_TIME, "description": "When this event was last recorded."},
        message=_s("A human-readable description of the status of this operation."),
        reason=_s("Short, machine understandable string of why this happened."),
        related={**ref(f"{CORE}.ObjectReference"), "description": "Optional secondary object."},
        reportingComponent=_s("Name of the controller that emitted this Event."),
        reportingInstance=_s("ID of the controller instance."),
        series=_open("Data about the Event series this event represents."),
        source={"type": "object", "description": "The component reporting this event.",
                "properties": {"component": _s("Component from which the event is generated."),
                               "host": _s("Node name on which the event is generated.")}},
        type=_s("Type of this event (Normal, Warning).")),
    "io.k8s.api.events.v1.Event": _kind(
        "Event is a report of an event somewhere in the cluster.", ("events.k8s.io", "v1", "Event"),
        action=_s("What action was taken/failed regarding the regarding object."),
        deprecatedCount=_i("Deprecated field assuring backward compatibility with core.v1 Event type."),
        deprecatedFirstTimestamp={**_TIME, "description": "Deprecated."},
        deprecatedLastTimestamp={**_TIME, "description": "Deprecated."},
        deprecatedSource={"type": "object", "description": "Deprecated.",
                          "properties": {"component": _s("Component."), "host": _s("Host.")}},
        eventTime={**_TIME, "description": "When this Event was first observed (MicroTime)."},
        note=_s("A human-readable description of the status of this operation."),
        reason=_s("Why the action was taken."),
        regarding={**ref(f"{CORE}.ObjectReference"), "default": {}, "description": "The object of the event."},
        related={**ref(f"{CORE}.ObjectReference"), "description": "Optional secondary object."},
        reportingController=_s("Name of the controller that emitted this Event."),
        reportingInstance=_s("ID of the controller instance."),
        series=_open("Data about the Event series this event represents."),
        type=_s("Type of this event (Normal, Warning).")),
    f"{RBAC}.PolicyRule": {
        "type": "object",
        "description": "PolicyRule holds information that describes a policy rule.",
        "required": ["verbs"],
        "properties": {
            "apiGroups": _strings("The API groups of the resources.", **{"x-kubernetes-list-type": "atomic"}),
            "nonResourceURLs": _strings("Partial URLs a user should have access to.",
                                        **{"x-kubernetes-list-type": "atomic"}),
            "resourceNames": _strings("Names the rule applies to.", **{"x-kubernetes-list-type": "atomic"}),
            "resources": _strings("Resources this rule applies to.", **{"x-kubernetes-list-type": "atomic"}),
            "verbs": _strings("Verbs this rule applies to.", **{"x-kubernetes-list-type": "atomic"}),
        },
    },
    f"{RBAC}.Subject": {
        "type": "object", "description": "A reference to a user, group or service account.",
        "required": ["kind", "name"],
        "properties": {"apiGroup": _s("API group of the referenced subject."),
                       "kind": _s("Kind of object being referenced: User, Group or ServiceAccount."),
                       "name": _s("Name of the object being referenced."),
                       "namespace": _s("Namespace of the referenced object.")},
        "x-kubernetes-map-type": "atomic",
    },
    f"{RBAC}.RoleRef": {
        "type": "object", "description": "The role being referenced.", "required": ["apiGroup", "kind", "name"],
        "properties": {"apiGroup": _s("API group of the referenced role."), "kind": _s("Role or ClusterRole."),
                       "name": _s("Name of the role.")},
        "x-kubernetes-map-type": "atomic",
    },
    f"{RBAC}.Role": _kind("A namespaced, logical grouping of PolicyRules.",
                          ("rbac.authorization.k8s.io", "v1", "Role"),
                          rules=_array("The PolicyRules of this Role.", f"{RBAC}.PolicyRule",
                                       **{"x-kubernetes-list-type": "atomic"})),
    f"{RBAC}.ClusterRole": _kind(
        "A cluster level, logical grouping of PolicyRules.", ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
        aggregationRule={"type": "object", "description": "How to build the Rules of this ClusterRole.",
                         "properties": {"clusterRoleSelectors": _array("Selectors of ClusterRoles to aggregate.",
                                                                       f"{META}.LabelSelector")}},
        rules=_array("The PolicyRules of this ClusterRole.", f"{RBAC}.PolicyRule",
                     **{"x-kubernetes-list-type": "atomic"})),
    f"{RBAC}.RoleBinding": _kind(
        "Grants the permissions of a role to subjects in a namespace.",
        ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
        roleRef={**ref(f"{RBAC}.RoleRef"), "default": {}, "description": "The role the binding grants."},
        subjects=_array("The subjects the role applies to.", f"{RBAC}.Subject",
                        **{"x-kubernetes-list-type": "atomic"})),
    f"{RBAC}.ClusterRoleBinding": _kind(
        "Grants the permissions of a ClusterRole to subjects cluster-wide.",
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
        roleRef={**ref(f"{RBAC}.RoleRef"), "default": {}, "description": "The ClusterRole the binding grants."},
        subjects=_array("The subjects the role applies to.", f"{RBAC}.Subject",
                        **{"x-kubernetes-list-type": "atomic"})),
    f"{CRD}.CustomResourceDefinition": _kind(
        "CustomResourceDefinition represents a resource that should be exposed on the API server.",
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        spec=_open("The resource being defined."), status=_open("The state of the CustomResourceDefinition.")),
}

_REVIEWS = {
    "io.k8s.api.authorization.v1.SelfSubjectAccessReview": ("authorization.k8s.io", "SelfSubjectAccessReview"),
    "io.k8s.api.authorization.v1.SelfSubjectRulesReview": ("authorization.k8s.io", "SelfSubjectRulesReview"),
    "io.k8s.api.authorization.v1.SubjectAccessReview": ("authorization.k8s.io", "SubjectAccessReview"),
    "io.k8s.api.authentication.v1.SelfSubjectReview": ("authentication.k8s.io", "SelfSubjectReview"),
}
for _name, (_group, _kind_name) in _REVIEWS.items():
    DEFINITIONS[_name] = _kind(f"{_kind_name} checks what a user may do.", (_group, "v1", _kind_name),
                               spec=_open("The request being evaluated."), status=_open("The answer."))


def definition_name(group: str, version: str, kind: str) -> str:
    """The name of a built-in kind's definition, or None if it has none."""
    package = {"": CORE, "rbac.authorization.k8s.io": RBAC, "apiextensions.k8s.io": CRD,
               "events.k8s.io": "io.k8s.api.events.v1", "authorization.k8s.io": "io.k8s.api.authorization.v1",
               "authentication.k8s.io": "io.k8s.api.authentication.v1"}.get(group, "")
    return f"{package}.{kind}" if version == "v1" else ""
