"""Decoding of the Kubernetes protobuf encoding, for the built-in kinds ``kubectl create`` sends.

``kubectl create namespace|secret|configmap|serviceaccount`` post ``application/vnd.kubernetes.protobuf``
bodies: the magic ``k8s\\x00`` then a ``runtime.Unknown`` envelope whose ``raw`` field holds the
object. Only the fields of these kinds (field numbers from k8s.io/api's generated.proto) are
decoded; unknown fields are skipped. Responses are always JSON, which clients also accept.
"""

from __future__ import annotations

import base64
from typing import Any

from ovh_s3_operator_sandbox.kube.model import ApiError, Obj

PROTOBUF = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"

# field number → (JSON name, value kind, nested schema for messages/maps, repeated)
Schema = dict[int, tuple[str, str, "Schema | None", bool]]

_STRING_MAP: Schema = {1: ("key", "string", None, False), 2: ("value", "string", None, False)}
_BYTES_MAP: Schema = {1: ("key", "string", None, False), 2: ("value", "bytes", None, False)}
_OWNER_REFERENCE: Schema = {
    1: ("kind", "string", None, False),
    3: ("name", "string", None, False),
    4: ("uid", "string", None, False),
    5: ("apiVersion", "string", None, False),
    6: ("controller", "bool", None, False),
    7: ("blockOwnerDeletion", "bool", None, False),
}
_OBJECT_META: Schema = {
    1: ("name", "string", None, False),
    2: ("generateName", "string", None, False),
    3: ("namespace", "string", None, False),
    5: ("uid", "string", None, False),
    6: ("resourceVersion", "string", None, False),
    7: ("generation", "int", None, False),
    11: ("labels", "map", _STRING_MAP, True),
    12: ("annotations", "map", _STRING_MAP, True),
    13: ("ownerReferences", "message", _OWNER_REFERENCE, True),
    14: ("finalizers", "string", None, True),
}
_OBJECT_REFERENCE: Schema = {1: ("name", "string", None, False)}
_KINDS: dict[str, Schema] = {
    "Namespace": {
        1: ("metadata", "message", _OBJECT_META, False),
        2: ("spec", "message", {1: ("finalizers", "string", None, True)}, False),
    },
    "Secret": {
        1: ("metadata", "message", _OBJECT_META, False),
        2: ("data", "map", _BYTES_MAP, True),
        3: ("type", "string", None, False),
        4: ("stringData", "map", _STRING_MAP, True),
        5: ("immutable", "bool", None, False),
    },
    "ConfigMap": {
        1: ("metadata", "message", _OBJECT_META, False),
        2: ("data", "map", _STRING_MAP, True),
        3: ("binaryData", "map", _BYTES_MAP, True),
        4: ("immutable", "bool", None, False),
    },
    "ServiceAccount": {
        1: ("metadata", "message", _OBJECT_META, False),
        3: ("imagePullSecrets", "message", _OBJECT_REFERENCE, True),
        4: ("automountServiceAccountToken", "bool", None, False),
    },
}
# k8s.io/api/rbac/v1 and authorization/v1, authentication/v1 generated.proto (kubectl create role|rolebinding|
# clusterrole|clusterrolebinding, kubectl auth can-i|whoami).
_POLICY_RULE: Schema = {
    1: ("verbs", "string", None, True),
    2: ("apiGroups", "string", None, True),
    3: ("resources", "string", None, True),
    4: ("resourceNames", "string", None, True),
    5: ("nonResourceURLs", "string", None, True),
}
_LABEL_SELECTOR: Schema = {
    1: ("matchLabels", "map", _STRING_MAP, True),
    2: ("matchExpressions", "message", {1: ("key", "string", None, False), 2: ("operator", "string", None, False),
                                        3: ("values", "string", None, True)}, True),
}
_SUBJECT: Schema = {
    1: ("kind", "string", None, False),
    2: ("apiGroup", "string", None, False),
    3: ("name", "string", None, False),
    4: ("namespace", "string", None, False),
}
_ROLE_REF: Schema = {1: ("apiGroup", "string", None, False), 2: ("kind", "string", None, False),
                     3: ("name", "string", None, False)}
_ROLE: Schema = {1: ("metadata", "message", _OBJECT_META, False), 2: ("rules", "message", _POLICY_RULE, True)}
_BINDING: Schema = {
    1: ("metadata", "message", _OBJECT_META, False),
    2: ("subjects", "message", _SUBJECT, True),
    3: ("roleRef", "message", _ROLE_REF, False),
}
_RESOURCE_ATTRIBUTES: Schema = {
    1: ("namespace", "string", None, False),
    2: ("verb", "string", None, False),
    3: ("group", "string", None, False),
    4: ("version", "string", None, False),
    5: ("resource", "string", None, False),
    6: ("subresource", "string", None, False),
    7: ("name", "string", None, False),
}
_NON_RESOURCE_ATTRIBUTES: Schema = {1: ("path", "string", None, False), 2: ("verb", "string", None, False)}
_KINDS.update({
    "Role": _ROLE,
    "ClusterRole": {**_ROLE, 3: ("aggregationRule", "message",
                                 {1: ("clusterRoleSelectors", "message", _LABEL_SELECTOR, True)}, False)},
    "RoleBinding": _BINDING,
    "ClusterRoleBinding": _BINDING,
    "SelfSubjectAccessReview": {
        1: ("metadata", "message", _OBJECT_META, False),
        2: ("spec", "message", {1: ("resourceAttributes", "message", _RESOURCE_ATTRIBUTES, False),
                                2: ("nonResourceAttributes", "message", _NON_RESOURCE_ATTRIBUTES, False)}, False),
    },
    "SubjectAccessReview": {
        1: ("metadata", "message", _OBJECT_META, False),
        2: ("spec", "message", {1: ("resourceAttributes", "message", _RESOURCE_ATTRIBUTES, False),
                                2: ("nonResourceAttributes", "message", _NON_RESOURCE_ATTRIBUTES, False),
                                3: ("user", "string", None, False), 4: ("groups", "string", None, True),
                                6: ("uid", "string", None, False)}, False),
    },
    "SelfSubjectRulesReview": {
        1: ("metadata", "message", _OBJECT_META, False),
        2: ("spec", "message", {1: ("namespace", "string", None, False)}, False),
    },
    "SelfSubjectReview": {1: ("metadata", "message", _OBJECT_META, False)},
})
_UNKNOWN: Schema = {
    1: ("typeMeta", "message", {1: ("apiVersion", "string", None, False), 2: ("kind", "string", None, False)}, False),
    2: ("raw", "raw", None, False),
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _value(kind: str, raw: int | bytes, schema: Schema | None) -> Any:
    match kind:
        case "int":
            assert isinstance(raw, int)
            return raw - (1 << 64) if raw >= 1 << 63 else raw
        case "bool":
            return bool(raw)
        case "string":
            assert isinstance(raw, bytes)
            return raw.decode()
        case "bytes":
            assert isinstance(raw, bytes)
            return base64.b64encode(raw).decode()
        case "raw":
            return raw
        case _:  # message, map entry
            assert isinstance(raw, bytes) and schema is not None
            return _message(raw, schema)


def _message(data: bytes, schema: Schema) -> Obj:
    result: Obj = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        raw: int | bytes
        if wire_type == 0:
            raw, pos = _varint(data, pos)
        elif wire_type == 2:
            length, pos = _varint(data, pos)
            raw, pos = data[pos : pos + length], pos + length
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            raw, pos = int.from_bytes(data[pos : pos + size], "little"), pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        if number not in schema:
            continue
        name, kind, sub, repeated = schema[number]
        value = _value(kind, raw, sub)
        if kind == "map":
            result.setdefault(name, {})[value.get("key", "")] = value.get("value", "")
        elif repeated:
            result.setdefault(name, []).append(value)
        elif value or kind in ("message", "raw"):  # zero scalars mean "unset", as in Go
            result[name] = value
    return result


def decode(body: bytes) -> Obj:
    """Decode a protobuf-encoded object of a supported built-in kind into its JSON form."""
    if not body.startswith(_MAGIC):
        raise ApiError(400, "the protobuf body lacks the Kubernetes envelope")
    try:
        envelope = _message(body[len(_MAGIC) :], _UNKNOWN)
        type_meta = envelope.get("typeMeta", {})
        schema = _KINDS.get(type_meta.get("kind", ""))
        if schema is None:
            raise ApiError(415, f"protobuf is not supported for {type_meta.get('kind')!r}; send JSON")
        obj = _message(envelope.get("raw", b""), schema)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the protobuf body cannot be decoded: {exc}") from None
    return {"apiVersion": type_meta.get("apiVersion"), "kind": type_meta["kind"], **obj}
