"""Render and apply the Secret that carries a resource's S3 credentials.

The Secret is owned by the resource (ownerReference, so it goes with it) and labelled as managed by
the operator. An annotation holds a SHA-256 digest of the access key and secret: it tells whether the
Secret still holds the credentials the operator wrote without asking OVH for the secret again. The
digest is as sensitive as nothing else on the Secret: the Secret holds the secret itself.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import SecretConflict
from .k8s import AlreadyExists, KubeClient
from .model import GROUP, Resource

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


@dataclass(frozen=True)
class ObservedSecret:
    """What the operator needs to know about an existing Secret (never the secret itself)."""

    owned: bool
    access: str | None
    intact: bool  # still holds the access key and secret the operator wrote
    endpoint: str | None
    region: str | None

    @classmethod
    def from_body(cls, body: Mapping[str, Any], resource: Resource) -> ObservedSecret:
        meta = body.get("metadata") or {}
        owned = any(ref.get("uid") == resource.uid for ref in meta.get("ownerReferences") or ())
        values = _decode(body.get("data"))
        access = values.get(ACCESS_KEY) or None
        recorded = (meta.get("annotations") or {}).get(DIGEST_ANNOTATION)
        intact = bool(access and values.get(SECRET_KEY) and recorded == digest(access, values[SECRET_KEY]))
        return cls(owned=owned, access=access, intact=intact,
                   endpoint=values.get(ENDPOINT_KEY), region=values.get(REGION_KEY))

    def up_to_date(self, access: str, region: str) -> bool:
        return (self.owned and self.intact and self.access == access
                and self.endpoint == endpoint_url(region) and self.region == region)


def default_name(resource: Resource) -> str:
    return f"{resource.name}-s3"


def _metadata(resource: Resource, name: str) -> dict[str, Any]:
    labels = {MANAGED_BY_LABEL: MANAGED_BY}
    if len(resource.name) <= 63:
        labels[OWNER_LABEL] = resource.name
    return {"name": name, "namespace": resource.namespace, "labels": labels,
            "ownerReferences": [resource.owner_reference()]}


async def read(kube: KubeClient, resource: Resource, name: str) -> ObservedSecret | None:
    """The Secret as it is; raises SecretConflict when it exists but belongs to something else."""
    body = await kube.read_secret(resource.namespace, name)
    if body is None:
        return None
    observed = ObservedSecret.from_body(body, resource)
    if not observed.owned:
        raise SecretConflict(
            f"Secret {name} already exists in namespace {resource.namespace} and is not owned by this "
            "resource; the operator leaves it untouched. Choose another spec.secret.name or delete that Secret"
        )
    return observed


async def write(kube: KubeClient, resource: Resource, name: str, existing: ObservedSecret | None, *,
                access: str, secret: str | None, region: str) -> str:
    """Create the Secret or patch the operator's keys into it; returns its resourceVersion.

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
            return await kube.create_secret(resource.namespace, body)
        except AlreadyExists:
            # Created meanwhile (e.g. by an earlier attempt): only take it over if it is ours.
            await read(kube, resource, name)
    patch_meta = {key: value for key, value in metadata.items() if key not in ("name", "namespace")}
    return await kube.patch_secret(resource.namespace, name, {"metadata": patch_meta, "data": _encode(values)})


async def delete_if_owned(kube: KubeClient, resource: Resource, name: str) -> bool:
    """Delete a Secret the resource used before (spec.secret.name changed), if it still owns it."""
    body = await kube.read_secret(resource.namespace, name)
    if body is None or not ObservedSecret.from_body(body, resource).owned:
        return False
    await kube.delete_secret(resource.namespace, name)
    return True
