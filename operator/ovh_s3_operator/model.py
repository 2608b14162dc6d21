"""Typed views of an OVHObjectStorageUser: its spec (validated) and its status (as recorded)."""

from __future__ import annotations

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
API_VERSION = f"{GROUP}/{VERSION}"
FINALIZER = f"{GROUP}/ovh-user"
DEFAULT_ROLES = ("objectstore_operator",)
MARKER_PREFIX = "[osu:"
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


class Spec(BaseModel):
    """``spec`` of the resource; unknown fields are refused rather than silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field("", max_length=200)
    roles: tuple[str, ...] = Field(DEFAULT_ROLES, min_length=1)
    region: str | None = None
    grants: tuple[Grant, ...] = ()
    policy: dict[str, Any] | None = None
    secret: SecretRef = SecretRef()

    @field_validator("description")
    @classmethod
    def _no_marker(cls, value: str) -> str:
        if MARKER_PREFIX in value:
            raise ValueError(f"must not contain {MARKER_PREFIX!r}: the operator appends its own marker")
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


@dataclass(frozen=True)
class Resource:
    """The identity and state of one custom resource, as kopf delivered it."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    deleting: bool

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Resource:
        meta = body.get("metadata", {})
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            generation=int(meta.get("generation") or 0),
            spec=body.get("spec") or {},
            status=body.get("status") or {},
            deleting=bool(meta.get("deletionTimestamp")),
        )

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def marker(self) -> str:
        """Appended to the OVH user description so that the operator can find its own user again."""
        return f"{MARKER_PREFIX}{self.uid}]"

    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
