"""OpenAPI v2 and v3 documents of the served resources, as kube-apiserver publishes them.

``/openapi/v2`` (JSON, or the gnostic protobuf ``application/com.github.proto-openapi.spec.v2@v1.0+protobuf``
that client-go's ``DiscoveryClient.OpenAPISchema`` asks for and kubectl parses before validating),
``/openapi/v3`` (the index: ``paths`` → ``serverRelativeURL`` with a content hash) and
``/openapi/v3/apis/<group>/<version>`` (``/openapi/v3/api/v1`` for the core group). Built-in kinds
use :mod:`.builtin_schemas`; a custom resource's definition is its CRD version's ``openAPIV3Schema``
with ``metadata`` as a reference to ObjectMeta and ``x-kubernetes-group-version-kind``, named by the
reversed group as apiextensions-apiserver names them (``dev.ovh-operator.s3.v1alpha1.OVHObjectStorageUser``,
``pkg/controller/openapi/builder``). Each version document has the resource paths with their
operations, each tagged with its kind; PATCH, PUT and POST declare the ``fieldValidation``,
``fieldManager`` and ``dryRun`` query parameters, which is how kubectl (``cli-runtime``
``query_param_verifier_v3.go``) decides to leave validation to the server (``fieldValidation=Strict``).
The v2 document carries the definitions only (no paths): kubectl uses it for client-side validation
when the v3 check fails, and for ``kubectl explain --output=plaintext-openapiv2``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import struct
from collections.abc import Iterable, Mapping
from typing import Any

from ovh_s3_operator_sandbox.kube import builtin_schemas
from ovh_s3_operator_sandbox.kube.builtin_schemas import META, Schema
from ovh_s3_operator_sandbox.kube.model import ResourceType

PROTOBUF_V2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
INFO = {"title": "Kubernetes", "version": "v1.32.0"}


def definition_name(rt: ResourceType) -> str:
    if rt.schema is None:
        return builtin_schemas.definition_name(rt.group, rt.version, rt.kind)
    return ".".join([*reversed(rt.group.split(".")), rt.version, rt.kind])


def _crd_definition(rt: ResourceType) -> Schema:
    assert rt.schema is not None
    schema: Schema = copy.deepcopy(dict(rt.schema))
    properties = schema.setdefault("properties", {})
    properties.setdefault("apiVersion", {"type": "string", "description": "APIVersion defines the versioned "
                                         "schema of this representation of an object."})
    properties.setdefault("kind", {"type": "string", "description": "Kind is a string value representing the "
                                   "REST resource this object represents."})
    properties["metadata"] = {**builtin_schemas.ref(f"{META}.ObjectMeta"),
                              "description": "Standard object's metadata."}
    schema["x-kubernetes-group-version-kind"] = [{"group": rt.group, "kind": rt.kind, "version": rt.version}]
    return schema


def definitions(types: Iterable[ResourceType]) -> dict[str, Schema]:
    """Every definition: the built-in ones and one per served custom resource version."""
    result = dict(builtin_schemas.DEFINITIONS)
    for rt in types:
        if rt.schema is not None:
            result[definition_name(rt)] = _crd_definition(rt)
    return result


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"].rsplit("/", 1)[-1]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _closure(roots: Iterable[str], all_definitions: Mapping[str, Schema]) -> dict[str, Schema]:
    result: dict[str, Schema] = {}
    pending = [name for name in roots if name in all_definitions]
    while pending:
        name = pending.pop()
        if name in result:
            continue
        result[name] = all_definitions[name]
        pending += [ref for ref in _refs(result[name]) if ref in all_definitions and ref not in result]
    return dict(sorted(result.items()))


# ----------------------------------------------------------------------------------------------- v2

def _to_v2(node: Any) -> Any:
    """v2 has no ``nullable`` and no CEL rules (``ToStructuralOpenAPIV2`` drops them)."""
    if isinstance(node, dict):
        return {key: _to_v2(value) for key, value in node.items()
                if key not in ("nullable", "x-kubernetes-validations")}
    if isinstance(node, list):
        return [_to_v2(item) for item in node]
    return node


def v2_document(types: Iterable[ResourceType]) -> Schema:
    return {"swagger": "2.0", "info": dict(INFO), "paths": {}, "definitions": _to_v2(definitions(types))}


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _string(number: int, text: str) -> bytes:
    return _field(number, text.encode())


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(int(value))


def _bool(number: int, value: bool) -> bytes:
    return _varint(number << 3) + b"\x01" if value else b""


def _double(number: int, value: float) -> bytes:
    return _varint(number << 3 | 1) + struct.pack("<d", float(value))


def _any(number: int, value: Any) -> bytes:
    """gnostic ``Any``: the value as YAML text (JSON is YAML)."""
    return _field(number, _string(2, json.dumps(value)))


_INT_FIELDS = {"maxLength": 11, "minLength": 12, "maxItems": 14, "minItems": 15, "maxProperties": 17,
               "minProperties": 18}
_DOUBLE_FIELDS = {"multipleOf": 6, "maximum": 7, "minimum": 9}
_BOOL_FIELDS = {"exclusiveMaximum": 8, "exclusiveMinimum": 10, "uniqueItems": 16, "readOnly": 27}
_STRING_FIELDS = {"$ref": 1, "format": 2, "title": 3, "description": 4, "pattern": 13}


def _schema_proto(schema: Mapping[str, Any]) -> bytes:
    """openapi.v2.Schema (gnostic ``openapiv2/OpenAPIv2.proto``)."""
    out = b""
    for key, value in schema.items():
        if key in _STRING_FIELDS:
            out += _string(_STRING_FIELDS[key], str(value))
        elif key in _INT_FIELDS:
            out += _int(_INT_FIELDS[key], value)
        elif key in _DOUBLE_FIELDS:
            out += _double(_DOUBLE_FIELDS[key], value)
        elif key in _BOOL_FIELDS:
            out += _bool(_BOOL_FIELDS[key], value)
        elif key == "default":
            out += _any(5, value)
        elif key == "required":
            out += b"".join(_string(19, name) for name in value)
        elif key == "enum":
            out += b"".join(_any(20, item) for item in value)
        elif key == "additionalProperties":
            item = _field(1, _schema_proto(value)) if isinstance(value, Mapping) else _bool(2, bool(value))
            out += _field(21, item)
        elif key == "type":
            types = value if isinstance(value, list) else [value]
            out += _field(22, b"".join(_string(1, name) for name in types))
        elif key == "items" and isinstance(value, Mapping):
            out += _field(23, _field(1, _schema_proto(value)))
        elif key == "allOf":
            out += b"".join(_field(24, _schema_proto(sub)) for sub in value)
        elif key == "properties":
            named = b"".join(_field(1, _string(1, name) + _field(2, _schema_proto(sub)))
                             for name, sub in value.items())
            out += _field(25, named)
        elif key.startswith("x-"):
            out += _field(31, _string(1, key) + _any(2, value))
    return out


def v2_protobuf(document: Mapping[str, Any]) -> bytes:
    """openapi.v2.Document: swagger, info, paths (empty) and definitions."""
    info = _string(1, document["info"]["title"]) + _string(2, document["info"]["version"])
    named = b"".join(_field(1, _string(1, name) + _field(2, _schema_proto(schema)))
                     for name, schema in document["definitions"].items())
    return _string(1, document["swagger"]) + _field(2, info) + _field(8, b"") + _field(9, named)


# ----------------------------------------------------------------------------------------------- v3

def _to_v3(node: Any) -> Any:
    """References point to ``#/components/schemas``; a reference with siblings goes into ``allOf``."""
    if isinstance(node, dict):
        converted = {key: _to_v3(value) for key, value in node.items()}
        target = converted.get("$ref")
        if isinstance(target, str):
            target = target.replace("#/definitions/", "#/components/schemas/")
            others = {key: value for key, value in converted.items() if key != "$ref"}
            return {"allOf": [{"$ref": target}], **others} if others else {"$ref": target}
        return converted
    if isinstance(node, list):
        return [_to_v3(item) for item in node]
    return node


def group_version_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _query(name: str, description: str) -> Schema:
    return {"name": name, "in": "query", "description": description, "schema": {"type": "string",
                                                                                "uniqueItems": True}}


_WRITE_PARAMETERS = [
    _query("dryRun", "When present, indicates that modifications should not be persisted."),
    _query("fieldManager", "fieldManager is a name associated with the actor or entity that is making these "
                           "changes."),
    _query("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request "
                              "containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict."),
]
# What each PATCH accepts (kubectl apply sends a strategic merge patch only where it is listed, as for the
# built-in kinds; custom resources take JSON and merge patches). Server-side apply is not served.
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json")
_STRATEGIC = "application/strategic-merge-patch+json"


def _operation(rt: ResourceType, action: str, schema_ref: str, *, write: bool, patch: bool = False) -> Schema:
    reference = {"$ref": schema_ref}
    operation: Schema = {
        "operationId": f"{action}{rt.kind}",
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
    }
    if write:
        operation["parameters"] = list(_WRITE_PARAMETERS)
        content_types = ((*_PATCH_TYPES, *([_STRATEGIC] if rt.schema is None else [])) if patch else ("*/*",))
        schema = {"type": "object"} if patch else reference
        operation["requestBody"] = {"content": {kind: {"schema": schema} for kind in content_types},
                                    "required": True}
        if patch:
            operation["parameters"].append(_query("force", "Force is going to \"force\" Apply requests."))
    return operation


def _paths(rt: ResourceType, schema_ref: str) -> dict[str, Schema]:
    base = "/" + group_version_path(rt.group, rt.version)
    collection = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
    if rt.verbs == ("create",):
        return {collection: {"post": _operation(rt, "post", schema_ref, write=True)}}
    paths = {
        collection: {"get": _operation(rt, "list", schema_ref, write=False),
                     "post": _operation(rt, "post", schema_ref, write=True)},
        f"{collection}/{{name}}": {"get": _operation(rt, "get", schema_ref, write=False),
                                   "put": _operation(rt, "put", schema_ref, write=True),
                                   "patch": _operation(rt, "patch", schema_ref, write=True, patch=True),
                                   "delete": _operation(rt, "delete", schema_ref, write=False)},
    }
    for subresource in sorted(rt.subresources):
        paths[f"{collection}/{{name}}/{subresource}"] = {
            "get": _operation(rt, "get", schema_ref, write=False),
            "put": _operation(rt, "put", schema_ref, write=True),
            "patch": _operation(rt, "patch", schema_ref, write=True, patch=True)}
    return paths


def v3_document(types: Iterable[ResourceType], group: str, version: str) -> Schema | None:
    """The document of one group version; None if nothing is served there."""
    served = list(types)
    mine = [rt for rt in served if (rt.group, rt.version) == (group, version) and definition_name(rt)]
    if not mine:
        return None
    all_definitions = definitions(served)
    paths: dict[str, Schema] = {}
    for rt in mine:
        paths.update(_paths(rt, f"#/components/schemas/{definition_name(rt)}"))
    schemas = _closure([definition_name(rt) for rt in mine], all_definitions)
    return {"openapi": "3.0.0", "info": dict(INFO), "paths": paths, "components": {"schemas": _to_v3(schemas)}}


def document_hash(document: Mapping[str, Any]) -> str:
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()[:64].upper()


def v3_index(types: Iterable[ResourceType]) -> Schema:
    served = list(types)
    paths: dict[str, Schema] = {}
    for group, version in sorted({(rt.group, rt.version) for rt in served}):
        document = v3_document(served, group, version)
        if document is not None:
            path = group_version_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={document_hash(document)}"}
    return {"paths": paths}
