"""Render and apply the Secret that carries a resource's S3 credentials.

The Secret is owned by the resource (ownerReference, so it goes with it) and labelled as managed by
the operator. An annotation holds a SHA-256 digest of the access key and secret: it tells whether the
Secret still holds the credentials the operator wrote without asking OVH for the secret again.

Ownership is decided on the Secret's metadata alone: a Secret the resource does not own is never
read whole, never changed and never deleted.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import KubeAlreadyExists, SecretConflict
from .model import GROUP, Resource
from .ports import Kube

ACCESS_KEY = "AWS_ACCESS_KEY_ID"
SECRET_KEY = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 - a key name
ENDPOINT_KEY = "AWS_ENDPOINT_URL"
REGION_KEY = "AWS_REGION"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "ovh-s3-operator"
OWNER_LABEL = f"{GROUP}/owner"
DIGEST_ANNOTATION = f"{GROUP}/credentials-digest"


def endpoint_url(region: str) -> str:
    return f"https://s3.{region}.io.cloud.ovh.net"


def digest(access: str, secret: str) -> str:
    return "sha256:" + hashlib.sha256(f"{access}\0{secret}".encode()).hexdigest()


def _decode(data: Mapping[str, str] | None) -> dict[str, str]:
    out = {}
    for key, value in (data or {}).items():
        try:
            out[key] = base64.b64decode(value).decode()
        except (ValueError, UnicodeDecodeError):
            out[key] = ""
    return out


def _encode(values: Mapping[str, str]) -> dict[str, str]:
    return {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}


def owned_by(metadata: Mapping[str, Any], resource: Resource) -> bool:
    return any(ref.get("uid") == resource.uid and ref.get("controller")
               for ref in metadata.get("ownerReferences") or ())


@dataclass(frozen=True)
class ObservedSecret:
    """What the operator needs to know about its Secret (never the secret itself)."""

    uid: str
    resource_version: str
    access: str | None
    intact: bool  # still holds the access key and secret the operator wrote
    endpoint: str | None
    region: str | None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ObservedSecret:
        meta = body.get("metadata") or {}
        values = _decode(body.get("data"))
        access = values.get(ACCESS_KEY) or None
        recorded = (meta.get("annotations") or {}).get(DIGEST_ANNOTATION)
        intact = bool(access and values.get(SECRET_KEY) and recorded == digest(access, values[SECRET_KEY]))
        return cls(uid=str(meta.get("uid") or ""), resource_version=str(meta.get("resourceVersion") or ""),
                   access=access, intact=intact, endpoint=values.get(ENDPOINT_KEY), region=values.get(REGION_KEY))

    def up_to_date(self, access: str | None, region: str) -> bool:
        return (self.intact and access is not None and self.access == access
                and self.endpoint == endpoint_url(region) and self.region == region)


def default_name(resource: Resource) -> str:
    return f"{resource.name}-s3"


def _metadata(resource: Resource, name: str) -> dict[str, Any]:
    labels = {MANAGED_BY_LABEL: MANAGED_BY}
    if len(resource.name) <= 63:
        labels[OWNER_LABEL] = resource.name
    return {"name": name, "namespace": resource.namespace, "labels": labels,
            "ownerReferences": [resource.owner_reference()]}


def _conflict(resource: Resource, name: str) -> SecretConflict:
    return SecretConflict(
        f"Secret {name} already exists in namespace {resource.namespace} and is not owned by this "
        "resource; the operator leaves it untouched. Choose another spec.secret.name or delete that Secret"
    )


async def observe(kube: Kube, resource: Resource, name: str,
                  known: ObservedSecret | None = None) -> ObservedSecret | None:
    """The Secret as it is, None if absent; SecretConflict if it belongs to something else.

    ``known`` is what an earlier call observed: if the Secret has not changed since (same
    resourceVersion), its data is not read again.
    """
    meta = await kube.read_secret_metadata(resource.namespace, name)
    if meta is None:
        return None
    metadata = meta.get("metadata") or {}
    if not owned_by(metadata, resource):
        raise _conflict(resource, name)
    if known is not None and known.resource_version == metadata.get("resourceVersion") \
            and known.uid == metadata.get("uid"):
        return known
    body = await kube.read_secret(resource.namespace, name)
    if body is None or not owned_by(body.get("metadata") or {}, resource):
        return None
    return ObservedSecret.from_body(body)


async def write(kube: Kube, resource: Resource, name: str, existing: ObservedSecret | None, *,
                access: str, secret: str | None, region: str) -> ObservedSecret:
    """Create the Secret or patch the operator's keys into it; returns what it now holds.

    ``secret`` may be None only when ``existing`` already holds ``access`` and its secret intact:
    then only the endpoint, region and metadata are patched.
    """
    values = {ACCESS_KEY: access, ENDPOINT_KEY: endpoint_url(region), REGION_KEY: region}
    metadata = _metadata(resource, name)
    if secret is not None:
        values[SECRET_KEY] = secret
        metadata["annotations"] = {DIGEST_ANNOTATION: digest(access, secret)}
    else:
        assert existing is not None and existing.intact and existing.access == access
    if existing is None:
        assert secret is not None
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata,
                "data": _encode(values)}
        try:
            return _written(await kube.create_secret(resource.namespace, body), access, region)
        except KubeAlreadyExists:
            # Created meanwhile (e.g. by an earlier attempt): only take it over if it is ours.
            if await observe(kube, resource, name) is None:
                raise
    patch_meta = {key: value for key, value in metadata.items() if key not in ("name", "namespace")}
    patched = await kube.patch_secret(resource.namespace, name, {"metadata": patch_meta, "data": _encode(values)})
    return _written(patched, access, region)


def _written(metadata: Mapping[str, Any], access: str, region: str) -> ObservedSecret:
    return ObservedSecret(uid=str(metadata.get("uid") or ""), resource_version=str(metadata.get("resourceVersion")),
                          access=access, intact=True, endpoint=endpoint_url(region), region=region)


async def delete_if_owned(kube: Kube, resource: Resource, name: str) -> bool:
    """Delete a Secret the resource used before (spec.secret.name changed), if it still owns it."""
    meta = await kube.read_secret_metadata(resource.namespace, name)
    metadata = (meta or {}).get("metadata") or {}
    if meta is None or not owned_by(metadata, resource):
        return False
    await kube.delete_secret(resource.namespace, name, str(metadata.get("uid") or ""))
    return True
