"""Validation of metadata and of Secrets and ConfigMaps, as kube-apiserver does it.

Sources: ``staging/src/k8s.io/apimachinery/pkg/api/validation/objectmeta.go`` (labels, annotation keys,
ownerReferences), ``staging/src/k8s.io/apimachinery/pkg/util/validation/validation.go`` (qualified
names, label values, config keys and their messages), ``pkg/apis/core/validation/validation.go``
(``ValidateSecret``, ``ValidateSecretUpdate``, ``ValidateConfigMap``, ``ValidateConfigMapUpdate``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ovh_s3_operator_sandbox.kube.model import FieldError, Obj

_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_NAME_RE = re.compile(_NAME)
_VALUE_RE = re.compile(f"({_NAME})?")
_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_CONFIG_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")

_NAME_MESSAGE = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                 "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                 f"validation is '{_NAME}')")
_PREFIX_MESSAGE = ("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                   "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
                   "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_VALUE_MESSAGE = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
                  "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
                  f"regex used for validation is '({_NAME})?')")
_CONFIG_KEY_MESSAGE = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  "
                       "or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")


def _invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, "FieldValueInvalid", f"Invalid value: {json.dumps(value)}: {detail}")


def qualified_name_problems(key: str) -> list[str]:
    """``IsQualifiedName``."""
    prefix, slash, name = key.rpartition("/")
    problems = []
    if slash and not prefix:
        problems.append("prefix part must be non-empty")
    elif slash and (len(prefix) > 253 or not _SUBDOMAIN_RE.fullmatch(prefix)):
        problems.append(_PREFIX_MESSAGE if len(prefix) <= 253 else "prefix part must be no more than 253 characters")
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    elif not _NAME_RE.fullmatch(name):
        problems.append(_NAME_MESSAGE)
    return problems


def validate_metadata(meta: Mapping[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    for key, value in (meta.get("labels") or {}).items():
        errors += [_invalid("metadata.labels", key, problem) for problem in qualified_name_problems(str(key))]
        text = str(value)
        if len(text) > 63:
            errors.append(_invalid("metadata.labels", text, "must be no more than 63 characters"))
        elif not _VALUE_RE.fullmatch(text):
            errors.append(_invalid("metadata.labels", text, _VALUE_MESSAGE))
    for key in meta.get("annotations") or {}:
        errors += [_invalid("metadata.annotations", key.lower(), problem)
                   for problem in qualified_name_problems(str(key))]
    references = meta.get("ownerReferences") or []
    for reference in references:
        for field, what in (("apiVersion", "version"), ("kind", "kind"), ("name", "name"), ("uid", "uid")):
            if not reference.get(field):
                errors.append(_invalid(f"metadata.ownerReferences.{field}", "", f"{what} must not be empty"))
    controllers = [ref for ref in references if ref.get("controller") is True]
    if len(controllers) > 1:
        names = ", ".join(f"{ref.get('kind')}/{ref.get('name')}" for ref in controllers)
        errors.append(FieldError("metadata.ownerReferences", "FieldValueInvalid",
                                 "Invalid value: []v1.OwnerReference{...}: Only one reference can have Controller "
                                 f"set to true. Found \"true\" in references for {names}"))
    return errors


def validate_data(kind: str, obj: Obj, old: Obj | None) -> list[FieldError]:
    """Secret and ConfigMap keys, immutability, and (Secrets) the type."""
    errors: list[FieldError] = []
    for field in ("data", "binaryData", "stringData"):
        for key in obj.get(field) or {}:
            if not _CONFIG_KEY_RE.fullmatch(str(key)) or key in (".", ".."):
                errors.append(_invalid(f"{field}[{key}]", key, _CONFIG_KEY_MESSAGE))
    if old is None:
        return errors
    if kind == "Secret" and obj.get("type") != old.get("type"):
        errors.append(_invalid("type", obj.get("type"), "field is immutable"))
    if old.get("immutable") is True:
        forbidden = "Forbidden: field is immutable when `immutable` is set"
        if obj.get("immutable") is not True:
            errors.append(FieldError("immutable", "FieldValueForbidden", forbidden))
        for field in ("data", "binaryData"):
            if (obj.get(field) or {}) != (old.get(field) or {}):
                errors.append(FieldError(field, "FieldValueForbidden", forbidden))
    return errors
